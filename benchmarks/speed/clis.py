"""The commands a speed benchmark times, run as a user runs them (each in its own process, the real CLI):
`runtime.bench` (the model alone) and OpenVINO's `benchmark_app` (OpenVINO's own figure for the same IR, at
a compute precision we name). Shared by `benchmarks.speed.loop` (one stream) and `benchmarks.speed.streams`
(several), so both read the same CLIs the same way.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from runtime.contract import DataError
from runtime.contract.telemetry import PYTHON_PREAMBLE

OV_TYPE_NAMES = {"float32": "f32", "float16": "f16", "bfloat16": "bf16"}


def run_cli(cmd: list[str]) -> str:
    """Run `cmd`; its stdout. A bad input (exit 2 with an `error:` line, e.g. the user's --model or video) is
    raised as that one line (DataError), anything else as a RuntimeError with the end of its output."""
    # errors="replace": a command may echo a junk input file's bytes, which must not become our traceback
    r = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    if r.returncode != 0:
        errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
        if r.returncode == 2 and errors:
            raise DataError(errors[-1][len("error: "):])
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {(r.stderr or r.stdout).strip()[-500:]}")
    return r.stdout


def bench(model: Path, iters: int, threads: int, tmp: Path) -> dict:
    """runtime.bench on `model`: throughput, p50, the process's CPU per call and the compute precision."""
    out = tmp / "bench.json"
    run_cli([sys.executable, "-m", "runtime.bench", "--model", str(model), "--iters", str(iters), "--warmup", "10",
             "--threads", str(threads), "-o", str(out)])
    r = json.loads(out.read_text())
    return {"fps": r["throughput_fps"], "p50_ms": r["latency_ms"]["p50"], "model_cpu_ms": r["cpu_ms_per_iter"],
            "calls": iters, "compute": compute_precision(r["precision"])}


def compute_precision(text: str) -> str:
    """What a model computed in, from the runtime's precision field (runtime.bench's, or runtime.run's backend
    section): 'int8 (fp32 compute)' -> 'f32', 'fp16' -> 'f16' (weights and compute alike)."""
    from runtime.backends.openvino import OV_TYPES  # runtime's precision names -> OpenVINO's element types

    m = re.search(r"\((\w+) compute\)", text)
    name = m.group(1) if m else text.strip()
    return OV_TYPES.get(name, name)


def benchmark_app(model: Path, seconds: int, threads: int | None, shape, precision: str | None = None,
                  hint: str = "latency") -> dict | None:
    """benchmark_app's median latency and throughput, computing in `precision` (None: OpenVINO's default);
    `compute` is the precision it reports having used; None where benchmark_app is not installed.

    hint "latency": one request at a time on `threads` threads (the synchronous reference runtime.bench is
    checked against); hint "throughput": as many requests and CPU streams as OpenVINO finds best on every
    core (`threads` ignored), the most frames per second these cores give this model: the ceiling."""
    exe = shutil.which("benchmark_app") or str(Path(sys.executable).with_name("benchmark_app"))
    if not Path(exe).exists():
        return None
    if hint == "throughput":
        tune = ["-hint", "throughput"]
    else:  # benchmark_app takes -nthreads only without a hint; the latency hint uses every core, as ours does
        tune = ["-hint", "latency"] if (threads or 0) >= (os.cpu_count() or 1) else [
            "-hint", "none", "-nstreams", "1", "-nthreads", str(threads)]
    # benchmark_app's own script, run with OpenVINO's usage telemetry off (runtime/contract/telemetry.py)
    app = [sys.executable, "-c", PYTHON_PREAMBLE + "from openvino.tools.benchmark.main import main; "
           "sys.argv[0] = 'benchmark_app'; sys.exit(main())"]
    text = run_cli([*app, "-m", str(model), "-d", "CPU", *tune, "-t", str(seconds),
                    "-data_shape", f"image[1,3,{shape[0]},{shape[1]}]",
                    *(["-infer_precision", precision] if precision else [])])
    median = re.search(r"Median:\s+([\d.]+) (ms|us)", text)  # a fast model's latency is printed in us
    fps = re.search(r"Throughput:\s+([\d.]+) FPS", text)
    used = re.search(r"INFERENCE_PRECISION_HINT: <Type: '(\w+)'>", text)
    if not (median and fps):
        raise RuntimeError(f"cannot read benchmark_app's output: {text[-500:]}")
    return {"fps": float(fps.group(1)), "p50_ms": float(median.group(1)) / (1000.0 if median.group(2) == "us" else 1.0),
            "compute": OV_TYPE_NAMES.get(used.group(1), used.group(1)) if used else precision or "default"}
