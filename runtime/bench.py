"""The model alone: `python -m runtime.bench --model student.xml [--iters 200 --warmup 20 --size 512x1024]`.

Warm-up iterations first (allocations, kernel selection, caches), then `--iters` timed calls on one
fixed random input; p50/p90/p99 latency and throughput, printed with the backend, precision,
device and thread count they were measured with. `--requests K` keeps K async requests in flight
(OpenVINO) and reports throughput over the whole run instead of per-call latency.
"""
from __future__ import annotations

import sys
import time
from collections import deque

import numpy as np

from . import formats, shipped
from .backends import load_backend
from .contract import ArgumentParser, check_output, command, non_negative_int, positive_int, size, write_json_file
from .preprocess import resolve_size
from .run import backend_options
from .stats import percentiles, table, time_calls


def bench(backend, shape=None, iters=100, warmup=10, requests=1, seed=0):
    """Time backend.infer on one random input; returns a dict of results (latencies in ms)."""
    if shape is None or len(shape) == 2:
        hw = resolve_size(backend.meta, backend.input_shape, None, size=shape, source=str(backend.path))
        shape = (1, 3) + tuple(hw)
    x = np.random.default_rng(seed).standard_normal(shape).astype(backend.input_dtype)
    for _ in range(warmup):
        backend.infer(x)
    times = []
    t_start, cpu_start = time.perf_counter(), time.process_time()
    if requests <= 1:  # the output is not copied out: benchmark_app does not read it either
        times = time_calls(lambda: backend.start(x).wait(copy=False), iters)
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
    cpu = time.process_time() - cpu_start  # every thread of the process: the backend's workers included
    result = backend.describe()
    result.update({"shape": list(shape), "iters": iters, "warmup": warmup, "requests": requests,
                   "latency_ms": percentiles(times), "throughput_fps": iters * shape[0] / wall, "wall_s": wall,
                   # what one call costs the cores, whatever else runs: runtime.run's `process` CPU per
                   # frame minus this is the loop's own cost
                   "cpu_ms_per_iter": cpu * 1000.0 / iters})
    return result


@command(interrupted="no results written")
def main(argv=None):
    p = ArgumentParser(prog="python -m runtime.bench", description=__doc__, examples=(
        "python -m runtime.bench --model student.onnx",
        "python -m runtime.bench --model student.xml --precision-hint bf16 --threads 4 -o bench.json",
        "python -m runtime.bench --model dynamic.onnx --size 512x1024 --batch 2 --iters 50"))
    p.add_argument("--model", default=None, help="model file: " + ", ".join(f.suffix for f in formats.FORMATS)
                   + " (default: the shipped CamVid student, models/camvid_lite/brd.int8.xml)")
    p.add_argument("--iters", type=positive_int, default=100, help="timed calls (default 100)")
    p.add_argument("--warmup", type=non_negative_int, default=10, help="untimed calls first (default 10)")
    p.add_argument("--size", type=size, default=None, metavar="HxW", help="input size (default: the model's)")
    p.add_argument("--batch", type=positive_int, default=1, help="images per call (default 1)")
    p.add_argument("--device", default="auto", help="onnx: auto|cpu|cuda|trt; openvino: auto|cpu|gpu|npu (default auto)")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU inference threads (default: the runtime's)")
    p.add_argument("--hint", default=None, choices=["latency", "throughput"],
                   help="OpenVINO performance hint (default latency)")
    p.add_argument("--requests", type=positive_int, default=1,
                   help="async requests in flight, OpenVINO (default 1: per-call latency)")
    p.add_argument("--precision-hint", dest="precision", default=None, choices=["fp32", "fp16", "bf16"],
                   help="OpenVINO compute precision (default: the one the IR's parity and accuracy gate were "
                        "measured at, recorded in it; another one makes the run unchecked, said in one line)")
    p.add_argument("-o", "--output", default=None, help="write the results as JSON to this file")
    args = p.parse_args(argv)
    if args.output:  # before the timing: results that cannot be written would be lost at the end
        check_output(args.output, 0, "-o/--output")
    shipped_model = args.model is None
    args.model = args.model or shipped.default_model()
    options = backend_options(args, batch=args.batch)  # compiled for the batch it times, as runtime.run is for 1
    options.pop("requests", None)
    if args.requests > 1:
        options["requests"] = args.requests
    backend = load_backend(args.model, **options)
    if shipped_model:
        print(shipped.describe(args.model, backend.meta), flush=True)
    shape = args.size  # HxW (bench resolves and checks it), or the model's
    if args.batch > 1:
        hw = resolve_size(backend.meta, backend.input_shape, None, size=shape, source=str(backend.path),
                          batch=args.batch)
        shape = (args.batch, 3) + tuple(hw)
    r = bench(backend, shape, args.iters, args.warmup, args.requests)
    print("{} | {} {} on {} ({} threads, {} CPUs) | input {} | {} iters after {} warm-up, {} in flight".format(
        r["model"], r["backend"], r["precision"], r["device"], r["threads"], r["cpus"], "x".join(map(str, r["shape"])),
        r["iters"], r["warmup"], r["requests"]))
    print(table({"infer": r["latency_ms"]}))
    print("throughput {:.1f} images/s".format(r["throughput_fps"]))
    if args.output:
        write_json_file(args.output, r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
