"""The trial's cases, generated: every `python -m` entry point x the faults a user or a machine can cause.

Families (Case.kind): missing file, empty file, junk bytes, directory for a file, wrong suffix, truncated file,
wrong kind of model, config (key, value, type, range, duplicate key, binary, syntax), unknown flag, missing
argument, bad value (sizes, numbers, choices), read-only output, full disk, output inside a file, output is a
folder, existing output, busy run folder, source (corrupt frame, no frame, non-image, unreachable camera or
stream), missing library, signal (SIGINT as Ctrl-C sends it to the process group, SIGTERM to the process, at
a few moments), control (the same command without a fault, so a fault case's failure is the fault's).

One module a family of entry points (train.py: distill.*; export.py: export.*; runtime.py: runtime.*; bench.py:
benchmarks.*), built from builders.py; `all_cases` here puts them in one list, in a fixed order.

Paths: `{c}` is the case's own folder (the command's working folder), `{fx}` the shared fixtures
(fixtures.py), which every case only reads (the runner checks they are unchanged).
"""
from __future__ import annotations

from .bench import (benchmarks_demo, benchmarks_faults, benchmarks_gain, benchmarks_gain_curve, benchmarks_gain_sizes,
                    benchmarks_gain_tools, benchmarks_speed, benchmarks_speed_bf16, benchmarks_speed_streams,
                    benchmarks_speed_tools)
from .export import export_onnx, export_openvino, export_quantize, export_trt
from .runtime import runtime_bench, runtime_run
from .train import distill_evaluate, distill_run


GENERATORS = (distill_run, distill_evaluate, export_onnx, export_openvino, export_quantize, export_trt, runtime_run,
              runtime_bench, benchmarks_gain, benchmarks_gain_tools, benchmarks_gain_curve, benchmarks_gain_sizes,
              benchmarks_demo, benchmarks_speed, benchmarks_speed_streams, benchmarks_speed_bf16, benchmarks_speed_tools,
              benchmarks_faults)


def all_cases() -> list:
    """Every case, in a fixed order; (module, fault) is unique."""
    cases = [c for gen in GENERATORS for c in gen()]
    seen = {}
    for c in cases:
        if c.key in seen:
            raise AssertionError(f"two cases {c.key}")
        seen[c.key] = c
    return cases
