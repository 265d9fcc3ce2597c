"""The streams benchmark's report (`python -m benchmarks.speed.streams` measures, this judges and writes): one
row per backend, source size and stream count with the medians over the repeats (total FPS's min-max too) and
each repeat's paired ratios (a count's total / its repeat's one stream, / its repeat's ceiling), the issue's
targets judged on the medians of those ratios as pass/fail lines (a report, not a failing exit: timings are the
machine's), the CPU per frame outside the model, the machine. Writes `streams.md`, `.csv` (one row per count:
the medians and each repeat's values) and `streams_runs.csv` (one row per run).
"""
from __future__ import annotations

import statistics
from pathlib import Path

from ..report import markdown_table, provenance, write_csv
from .loop_report import CPU_STAGES

TWO_STREAMS_GAIN = 1.25   # issue 31: two streams together >= 1.25x one stream
CEILING_SHARE = 0.8       # issue 31: total >= 0.8 of the throughput ceiling on the model's own size
TARGET_HW = "360x480"     # the CamVid model's own input (HxW): no resize beyond the model's, decode is cheap

KEY = ("backend", "source_hw", "streams")
PAIRED = ("total_fps", "ceiling_fps", "ceiling_ratio", "vs_1_stream")  # each repeat's value kept in the CSV
MAIN_COLUMNS = ["backend", "source_hw", "streams", "repeats", "frames_per_stream", "total_fps", "total_fps_min",
                "total_fps_max", "stream_fps_mean", "stream_fps_min", "p99_ms", "infer_p99_ms", "outside_cpu_ms",
                "ceiling_fps", "ceiling_ratio", "vs_1_stream"]
REPEAT_COLUMNS = ["backend", "source_hw", "streams", *[f"{k}_repeats" for k in PAIRED]]
CPU_COLUMNS = ["backend", "source_hw", "streams", *[f"cpu_{s}_ms" for s in CPU_STAGES], "outside_cpu_ms",
               "model_cpu_ms", "process_cpu_ms"]


def _groups(rows):
    out = {}
    for r in rows:
        out.setdefault((r["backend"], r["source_hw"]), []).append(r)
    return out


def _median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


def summarise(runs: list[dict]) -> list[dict]:
    """One row per backend, source size and stream count from its runs (one per repeat): the median over the
    repeats of every figure, total FPS's min and max, and for the paired figures each repeat's value in repeat
    order (`<figure>_repeats`, ';'-joined, empty where a repeat has none). The ratios' medians are medians of
    the per-repeat paired ratios, not ratios of medians."""
    groups = {}
    for r in runs:
        groups.setdefault(tuple(r[k] for k in KEY), []).append(r)
    out = []
    for key, sel in groups.items():
        sel = sorted(sel, key=lambda r: r.get("repeat", 0))
        numbers = list(dict.fromkeys(k for r in sel for k, v in r.items() if k not in (*KEY, "repeat")
                                     and isinstance(v, (int, float)) and not isinstance(v, bool)))
        texts = [k for k in ("compute", "ceiling_compute") if any(r.get(k) for r in sel)]
        total = [r["total_fps"] for r in sel]
        row = {**dict(zip(KEY, key)), "repeats": len(sel), **{k: _median(r.get(k) for r in sel) for k in numbers},
               "total_fps_min": min(total), "total_fps_max": max(total),
               **{k: ",".join(dict.fromkeys(r[k] for r in sel if r.get(k))) for k in texts}}
        row.update({f"{k}_repeats": ";".join("" if r.get(k) is None else f"{r[k]:g}" for r in sel) for k in PAIRED})
        out.append(row)
    return out


def targets(rows: list[dict]) -> list[dict]:
    """The issue's targets per backend on the summary rows (`summarise`): 2 streams / 1 stream on every source
    size, and on the 360x480 source total / ceiling at the stream count with the best median (the count a user
    would pick); each value the median of that count's per-repeat paired ratios (`per_repeat`: each repeat's);
    `met` None: not measurable (a count, the size or the ceiling missing)."""
    out = []
    for (backend, hw), sel in _groups(rows).items():
        two = next((r for r in sel if r["streams"] == 2), None)
        gain = two.get("vs_1_stream") if two else None
        out.append({"target": "2 streams / 1 stream, total FPS", "backend": backend, "source_hw": hw, "value": gain,
                    "per_repeat": two.get("vs_1_stream_repeats", "") if two and gain is not None else "",
                    "repeats": two.get("repeats") if two else None,
                    "goal": f">= {TWO_STREAMS_GAIN}", "met": None if gain is None else gain >= TWO_STREAMS_GAIN})
        if hw == TARGET_HW:
            rated = [r for r in sel if r.get("ceiling_ratio") is not None]
            best = max(rated, key=lambda r: r["ceiling_ratio"]) if rated else None
            out.append({"target": "total FPS / throughput ceiling" + (f", best at {best['streams']} streams"
                                                                        if best else ""),
                        "backend": backend, "source_hw": hw, "value": best["ceiling_ratio"] if best else None,
                        "per_repeat": best.get("ceiling_ratio_repeats", "") if best else "",
                        "repeats": best.get("repeats") if best else None,
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
        paired = (f"median of {c['repeats']} paired repeats, each: {c['per_repeat'].replace(';', ', ')}; "
                  if c.get("per_repeat") else "")
        lines.append(f"{word}: {c['target']} = {value}({paired}goal {c['goal']}), {c['backend']} on the "
                     f"{c['source_hw']} source ({whose})")
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
    "How to read it. Back-to-back runs of the same thing differ a lot on a shared machine (a slow minute), so "
    "each repeat runs every stream count of a source size, one after the other, and then that size's ceiling: "
    "the runs a ratio pairs lie within one repeat (about (counts + 1) x the run length), and a slow minute hits "
    "both its sides alike. Each row of the per-count tables is one count's runs: the median over the repeats "
    "of each figure (`total_fps_min`, `total_fps_max`: the range of its total FPS); its ceiling_ratio and "
    "vs_1_stream are the medians of the per-repeat paired ratios (each run's total over its own repeat's "
    "ceiling, over its own repeat's one stream; each repeat's value in the paired table), not ratios of "
    "medians, and the targets are judged on them. Run lengths are set once: a short probe before the "
    "repeats, the first repeat's frame counts kept for the later ones. "
    "Each run is one `runtime.run` process with `--source` given `streams` times (the same "
    "video, each stream decoding its own copy), `--sink none --no-overlay`, `--max-frames frames_per_stream`. "
    "total_fps = every stream's frames / the run's wall time (`frames` / `wall_s`); stream_fps = each stream's "
    "frames / its own wall time (mean and min over the streams; `streams_runs.csv` has each). p99_ms: frame "
    "read to done (queueing included), over every frame of every stream; infer_p99_ms: the model call alone. "
    "CPU columns are ms of CPU per frame from the clocks of the threads that do the work, as "
    "`benchmarks.speed.loop` splits them (decode on each stream's reading thread, preprocess, postprocess; no "
    "overlay or sink here), "
    "`model_cpu_ms` the process's CPU less those: what the model's threads cost per frame. One stream runs "
    "OpenVINO with the latency hint (runtime.run's default), two or more with the throughput hint and the "
    "infer requests shared out (runtime/streams.py). The ceiling is OpenVINO's `benchmark_app -hint throughput` "
    "on the same file at the compute precision the runs used, every core, no decode: the most frames per "
    "second these cores give the model; ceiling_ratio = total_fps / ceiling_fps, vs_1_stream = total_fps / "
    "one stream's, both within a repeat. For onnxruntime rows the ceiling is still OpenVINO's on that ONNX "
    "file: what the cores can do with the graph, not ONNX Runtime's own best.")


def write_report(rows: list[dict], files: dict, seconds: float, out: Path, argv, shipped=None,
                 name: str = "streams") -> tuple[Path, list[str]]:
    """<out>/<name>.md, .csv (a row per count: medians and each repeat's paired values) and <name>_runs.csv (a row
    per run, `rows`); (the .md's path, the target verdict lines)."""
    runs = rows
    rows = summarise(runs)
    checks = targets(rows)
    verdicts = verdict_lines(checks, dict(shipped or {}))
    compute = sorted({f"{r['backend']} {r['compute']}" for r in runs})
    repeats = len({r.get("repeat", 0) for r in runs})
    models = ", ".join(f"{b}: `{p}`" for b, p in files.items())
    text = ["# Several streams through one model", "",
            f"Models: {models}. Source sizes (HxW): {', '.join(dict.fromkeys(r['source_hw'] for r in rows))}; "
            f"stream counts: {', '.join(str(n) for n in sorted({r['streams'] for r in rows}))}; about {seconds:g} s "
            f"a run; {repeats} repeat{'s' if repeats != 1 else ''}, each running every count of a size and then "
            f"its ceiling, back to back. Compute precision: {', '.join(compute)}. Each run in its own process with "
            f"the real CLI. Medians over the repeats; ratios paired within a repeat; every run in `{name}_runs.csv`.",
            "", machine_line(), "",
            "## Targets (issue 31; reported, not asserted; medians of per-repeat paired ratios)", "",
            *[f"- {v}" for v in verdicts], "",
            markdown_table(checks, ["target", "backend", "source_hw", "value", "per_repeat", "goal", "met"]),
            "## Each count (medians over the repeats)", "", markdown_table(rows, MAIN_COLUMNS),
            "## Each repeat's paired figures (repeat order)", "", markdown_table(rows, REPEAT_COLUMNS),
            "## CPU per frame, ms (medians)", "", markdown_table(rows, CPU_COLUMNS), EXPLAIN, "",
            provenance("benchmarks.speed.streams", argv), ""]
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out / f"{name}.csv")
    write_csv(runs, out / f"{name}_runs.csv")
    path = out / f"{name}.md"
    path.write_text("\n".join(text))
    return path, verdicts
