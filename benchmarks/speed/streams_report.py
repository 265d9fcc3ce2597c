"""The streams benchmark's report (`python -m benchmarks.speed.streams` measures, this judges and writes): one
row per backend, source size and stream count, the issue's targets as pass/fail lines (a report, not a failing
exit: timings are the machine's), the CPU per frame outside the model, the machine. Writes `streams.md`, `.csv`.
"""
from __future__ import annotations

from pathlib import Path

from ..report import markdown_table, provenance, write_csv
from .loop_report import CPU_STAGES

TWO_STREAMS_GAIN = 1.25   # issue 31: two streams together >= 1.25x one stream
CEILING_SHARE = 0.8       # issue 31: total >= 0.8 of the throughput ceiling on the model's own size
TARGET_HW = "360x480"     # the CamVid model's own input (HxW): no resize beyond the model's, decode is cheap

MAIN_COLUMNS = ["backend", "source_hw", "streams", "frames_per_stream", "frames", "wall_s", "total_fps",
                "stream_fps_mean", "stream_fps_min", "p99_ms", "infer_p99_ms", "outside_cpu_ms", "ceiling_fps",
                "ceiling_ratio", "vs_1_stream"]
CPU_COLUMNS = ["backend", "source_hw", "streams", *[f"cpu_{s}_ms" for s in CPU_STAGES], "outside_cpu_ms",
               "model_cpu_ms", "process_cpu_ms"]


def _groups(rows):
    out = {}
    for r in rows:
        out.setdefault((r["backend"], r["source_hw"]), []).append(r)
    return out


def targets(rows: list[dict]) -> list[dict]:
    """The issue's targets per backend: 2 streams / 1 stream on every source size, and on the 360x480 source
    the best total / ceiling over the stream counts (the count a user would pick); `met` None: not measurable
    (a count, the size or the ceiling missing)."""
    out = []
    for (backend, hw), sel in _groups(rows).items():
        two = next((r for r in sel if r["streams"] == 2), None)
        gain = two.get("vs_1_stream") if two else None
        out.append({"target": "2 streams / 1 stream, total FPS", "backend": backend, "source_hw": hw, "value": gain,
                    "goal": f">= {TWO_STREAMS_GAIN}", "met": None if gain is None else gain >= TWO_STREAMS_GAIN})
        if hw == TARGET_HW:
            rated = [r for r in sel if r.get("ceiling_ratio") is not None]
            best = max(rated, key=lambda r: r["ceiling_ratio"]) if rated else None
            out.append({"target": "total FPS / throughput ceiling" + (f", best at {best['streams']} streams"
                                                                        if best else ""),
                        "backend": backend, "source_hw": hw, "value": best["ceiling_ratio"] if best else None,
                        "goal": f">= {CEILING_SHARE}",
                        "met": None if best is None else best["ceiling_ratio"] >= CEILING_SHARE})
    if TARGET_HW not in {r["source_hw"] for r in rows}:
        out.append({"target": "total FPS / throughput ceiling", "backend": "", "source_hw": TARGET_HW, "value": None,
                    "goal": f">= {CEILING_SHARE}", "met": None})
    return out


def verdict_lines(checks: list[dict], shipped: dict) -> list[str]:
    """One PASS / FAIL / NOT MEASURED line per target; the targets are set for the shipped CamVid student
    (`shipped`: {backend: which form of it that backend ran}); for other models the lines are for information."""
    lines = []
    for c in checks:
        word = {True: "PASS", False: "FAIL", None: "NOT MEASURED"}[c["met"]]
        value = "" if c["value"] is None else f"{c['value']:.3g} "
        if not c["backend"]:  # the size was not asked for
            lines.append(f"{word}: {c['target']} (goal {c['goal']}): the {c['source_hw']} source was not in --sizes")
            continue
        whose = shipped.get(c["backend"], "not the shipped student: for information")
        lines.append(f"{word}: {c['target']} = {value}(goal {c['goal']}), {c['backend']} on the {c['source_hw']} "
                     f"source ({whose})")
    return lines


def machine_line() -> str:
    """The CPU, its cores and which of the ISA flags that matter for INT8 / bf16 it has (and has not)."""
    from .table import CPU_FLAGS, machine, versions

    m, v = machine(), versions()
    absent = [f for f in CPU_FLAGS if f not in m["flags"]]
    return (f"Machine: {m['cpu']}, {m['cores']} cores; ISA flags present: {', '.join(m['flags']) or 'none'}; "
            f"absent: {', '.join(absent) or 'none'}. Versions: "
            + ", ".join(f"{k} {val}" for k, val in v.items() if k != "torch") + ".")


EXPLAIN = (
    "How to read it. Each row is one `runtime.run` process with `--source` given `streams` times (the same "
    "video, each stream decoding its own copy), `--sink none --no-overlay`, `--max-frames frames_per_stream`. "
    "total_fps = every stream's frames / the run's wall time (`frames` / `wall_s`); stream_fps = each stream's "
    "frames / its own wall time (mean and min over the streams; the CSV has each). p99_ms: frame read to done "
    "(queueing included), over every frame of every stream; infer_p99_ms: the model call alone. CPU columns "
    "are ms of CPU per frame from the clocks of the threads that do the work, as `benchmarks.speed.loop` splits "
    "them (decode on each stream's reading thread, preprocess, postprocess; no overlay or sink here), "
    "`model_cpu_ms` the process's CPU less those: what the model's threads cost per frame. One stream runs "
    "OpenVINO with the latency hint (runtime.run's default), two or more with the throughput hint and the "
    "infer requests shared out (runtime/streams.py). The ceiling is OpenVINO's `benchmark_app -hint throughput` "
    "on the same file at the compute precision the runs used, every core, no decode: the most frames per "
    "second these cores give the model; ceiling_ratio = total_fps / ceiling_fps, vs_1_stream = total_fps / "
    "one stream's. For onnxruntime rows the ceiling is still OpenVINO's on that ONNX file: what the cores can "
    "do with the graph, not ONNX Runtime's own best.")


def write_report(rows: list[dict], files: dict, seconds: float, out: Path, argv, shipped=None,
                 name: str = "streams") -> tuple[Path, list[str]]:
    """<out>/<name>.md and .csv; (the .md's path, the target verdict lines)."""
    checks = targets(rows)
    verdicts = verdict_lines(checks, dict(shipped or {}))
    compute = sorted({f"{r['backend']} {r['compute']}" for r in rows})
    models = ", ".join(f"{b}: `{p}`" for b, p in files.items())
    text = ["# Several streams through one model", "",
            f"Models: {models}. Source sizes (HxW): {', '.join(dict.fromkeys(r['source_hw'] for r in rows))}; "
            f"stream counts: {', '.join(str(n) for n in sorted({r['streams'] for r in rows}))}; about {seconds:g} s "
            f"a run. Compute precision: {', '.join(compute)}. Each run in its own process with the real CLI; each "
            "source size's ceiling ran right after its rows.", "", machine_line(), "",
            "## Targets (issue 31; reported, not asserted)", "", *[f"- {v}" for v in verdicts], "",
            markdown_table(checks), "## Each run", "", markdown_table(rows, MAIN_COLUMNS),
            "## CPU per frame, ms", "", markdown_table(rows, CPU_COLUMNS), EXPLAIN, "",
            provenance("benchmarks.speed.streams", argv), ""]
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out / f"{name}.csv")
    path = out / f"{name}.md"
    path.write_text("\n".join(text))
    return path, verdicts
