"""The model alone: `python -m runtime.bench --model student.xml [--iters 200 --warmup 20 --shape 512x1024]`.

Warm-up iterations first (allocations, kernel selection, caches), then `--iters` timed calls on one
fixed random input; p50/p90/p99 latency and throughput, printed with the backend, precision,
device and thread count they were measured with. `--requests K` keeps K async requests in flight
(OpenVINO) and reports throughput over the whole run instead of per-call latency.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import deque

import numpy as np

from . import formats
from .backends import load_backend
from .cli import OutputError, Signals, check_output, non_negative_int, positive_int, write_json_file
from .preprocess import ShapeError, resolve_size
from .stats import percentiles, table


def parse_shape(text):
    """'HxW' or 'NxCxHxW' -> tuple."""
    parts = text.lower().replace(",", "x").split("x")
    if len(parts) not in (2, 4) or not all(p.strip().isdigit() for p in parts):
        raise argparse.ArgumentTypeError("expected HxW or NxCxHxW, got {!r}".format(text))
    return tuple(int(p) for p in parts)


def bench(backend, shape=None, iters=100, warmup=10, requests=1, seed=0):
    """Time backend.infer on one random input; returns a dict of results (latencies in ms)."""
    if shape is None or len(shape) == 2:
        hw = resolve_size(backend.meta, backend.input_shape, None, size=shape, source=str(backend.path))
        shape = (1, 3) + tuple(hw)
    x = np.random.default_rng(seed).standard_normal(shape).astype(backend.input_dtype)
    for _ in range(warmup):
        backend.infer(x)
    times = []
    t_start = time.perf_counter()
    if requests <= 1:
        for _ in range(iters):  # the output is not copied out: benchmark_app does not read it either
            t0 = time.perf_counter()
            backend.start(x).wait(copy=False)
            times.append(time.perf_counter() - t0)
    else:
        requests = min(requests, backend.max_in_flight)
        pending = deque()
        for _ in range(iters):
            if len(pending) >= requests:
                handle, t0 = pending.popleft()
                handle.wait(copy=False)
                times.append(time.perf_counter() - t0)
            pending.append((backend.start(x), time.perf_counter()))
        while pending:
            handle, t0 = pending.popleft()
            handle.wait(copy=False)
            times.append(time.perf_counter() - t0)
    wall = time.perf_counter() - t_start
    result = backend.describe()
    result.update({"shape": list(shape), "iters": iters, "warmup": warmup, "requests": requests,
                   "latency_ms": percentiles(times), "throughput_fps": iters * shape[0] / wall, "wall_s": wall})
    return result


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m runtime.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--iters", type=positive_int, default=100)
    p.add_argument("--warmup", type=non_negative_int, default=10)
    p.add_argument("--shape", type=parse_shape, default=None, help="HxW or NxCxHxW (default: the model's)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=positive_int, default=None)
    p.add_argument("--hint", default="latency", choices=["latency", "throughput"], help="OpenVINO hint")
    p.add_argument("--requests", type=positive_int, default=1, help="async requests in flight (OpenVINO)")
    p.add_argument("--ov-precision", default=None, choices=["f32", "bf16", "f16"],
                   help="OpenVINO compute precision (default: the device's, bf16 on CPUs that have it)")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)
    if args.shape is not None and not all(args.shape):
        p.error("argument --shape: every dimension must be >= 1, got {}".format("x".join(map(str, args.shape))))
    with Signals() as signals:
        try:
            return _run(args)
        except KeyboardInterrupt:  # nothing half-written: the results are only written at the end
            print("interrupted by {}: no results written".format(signals.name or "SIGINT"), file=sys.stderr)
            return signals.exit_code or 130


def _run(args):
    try:
        if args.json:  # before the timing: results that cannot be written would be lost at the end
            check_output(args.json, 0, "--json")
        backend = load_backend(args.model, device=args.device, threads=args.threads, hint=args.hint,
                               requests=args.requests if args.requests > 1 else None,
                               inference_precision=args.ov_precision)
        r = bench(backend, args.shape, args.iters, args.warmup, args.requests)
    except (formats.MissingDependency, ShapeError, OutputError, FileNotFoundError, ValueError, RuntimeError) as e:
        print("error: {}".format(str(e).splitlines()[0] if str(e) else type(e).__name__), file=sys.stderr)
        return 2
    print("{} | {} {} on {} ({} threads, {} CPUs) | input {} | {} iters after {} warm-up, {} in flight".format(
        r["model"], r["backend"], r["precision"], r["device"], r["threads"], r["cpus"], "x".join(map(str, r["shape"])),
        r["iters"], r["warmup"], r["requests"]))
    print(table({"infer": r["latency_ms"]}))
    print("throughput {:.1f} images/s".format(r["throughput_fps"]))
    if args.json:
        try:
            write_json_file(args.json, r)
        except OutputError as e:
            print("error: {}".format(e), file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
