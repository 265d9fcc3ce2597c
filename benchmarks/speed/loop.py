"""Does the real-time loop keep up with its backend? `python -m benchmarks.speed.loop`.

On one model and one video, each as a user would run it (its own process, the real CLI):
  bench      `runtime.bench`: the model alone (throughput = what the loop could reach at best);
  loop_bare  `runtime.run --sink none --no-overlay`: decode, preprocess, infer, postprocess;
  loop_full  `runtime.run --sink out.mp4`: the same plus the overlay and MP4 encoding;
  bench_app  OpenVINO's own `benchmark_app` on the same IR, latency hint, same threads, at the compute
             precision runtime.bench ran (when installed): the check that our bench measures what OpenVINO does;
  bench_app_default  the same at OpenVINO's default precision (bf16 on a CPU with AVX512-BF16), which the
             runtime does not use unasked: an IR runs at the precision its gate checked (f32).
Each repeat runs them back to back and records its own ratios, loop FPS / bench FPS, so a slow minute
hits a ratio's two sides alike. The goals are checked on the minimum ratio over the repeats (at least
5): loop_bare >= 0.9, loop_full >= 0.8 (the real-time preset: 0.85, 0.75), and the CPU time per frame
spent outside the model (decode, preprocess, postprocess, overlay, encode; from the CPU clocks of the
threads that do them, which other programs on the machine do not change) <= 8 ms with overlay and MP4.

Where a goal is not met, the report says why from the same runs: the backend's process CPU per call
(bench) leaves cores x frame time - that much free per frame at bench speed; the loop cannot beat
cores / (model CPU + outside CPU) frames per second, whatever its threads do.

Presets (`--preset`, one or both): `student` (default) is the 512x1024 OpenVINO INT8 LR-ASPP MobileNetV2
that `benchmarks.speed` builds (random weights) -> loop.md; `realtime` the LR-ASPP MobileNetV3-Large
real-time student -> loop_realtime.md; `camvid` the trained CamVid student that ships
(models/camvid/student.int8.xml, what `runtime.run` runs without --model) at its own input size ->
loop_camvid.md. All on the demo's panning street video at 1280x720 (`--video` to use your own). Writes
`<out-dir>/<name>.md` and `.csv`.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from runtime.contract import ArgumentParser, command, number, positive_int
from runtime.contract.telemetry import PYTHON_PREAMBLE

from ..report import markdown_table, provenance, write_csv
from ..street import street_video

# name -> (architecture benchmarks.speed builds, or "shipped": runtime's default model; report name,
#          goal loop_bare / bench, goal loop_full / bench)
PRESETS = {"student": ("lraspp_mobilenetv2", "loop", 0.9, 0.8),
           "realtime": ("lraspp_mobilenetv3_large", "loop_realtime", 0.85, 0.75),
           "camvid": ("shipped", "loop_camvid", 0.85, 0.75)}
MIN_REPEATS = 5           # the goals need at least this many repeats (their minimum is the figure)
OUTSIDE_GOAL_MS = 8.0     # CPU per 720p frame outside the model, with overlay and MP4
CPU_STAGES = ("decode", "preprocess", "postprocess", "overlay", "sink")
BENCH_SECONDS = 4.0       # runtime.bench runs at least this long in each repeat (the loops run 3-20 s)
APP_SECONDS = 5           # each benchmark_app run


def _run(cmd: list[str]) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {(r.stderr or r.stdout).strip()[-500:]}")
    return r.stdout


def bench(model: Path, iters: int, threads: int, tmp: Path) -> dict:
    out = tmp / "bench.json"
    _run([sys.executable, "-m", "runtime.bench", "--model", str(model), "--iters", str(iters), "--warmup", "10",
          "--threads", str(threads), "-o", str(out)])
    r = json.loads(out.read_text())
    return {"fps": r["throughput_fps"], "p50_ms": r["latency_ms"]["p50"], "model_cpu_ms": r["cpu_ms_per_iter"],
            "calls": iters, "compute": compute_precision(r["precision"])}


OV_TYPE_NAMES = {"float32": "f32", "float16": "f16", "bfloat16": "bf16"}


def compute_precision(text: str) -> str:
    """What a model computed in, from runtime.bench's precision field: 'int8 (fp32 compute)' -> 'f32',
    'fp16' -> 'f16' (weights and compute alike)."""
    from runtime.backends.openvino import OV_TYPES  # runtime's precision names -> OpenVINO's element types

    m = re.search(r"\((\w+) compute\)", text)
    name = m.group(1) if m else text.strip()
    return OV_TYPES.get(name, name)


def benchmark_app(model: Path, seconds: int, threads: int, shape, precision: str | None = None) -> dict | None:
    """benchmark_app's median latency and throughput, computing in `precision` (None: OpenVINO's default);
    `compute` is the precision it reports having used."""
    exe = shutil.which("benchmark_app") or str(Path(sys.executable).with_name("benchmark_app"))
    if not Path(exe).exists():
        return None
    # benchmark_app takes -nthreads only without a hint; the latency hint uses every core, as ours does
    tune = ["-hint", "latency"] if threads >= (os.cpu_count() or 1) else ["-hint", "none", "-nstreams", "1",
                                                                            "-nthreads", str(threads)]
    # benchmark_app's own script, run with OpenVINO's usage telemetry off (runtime/contract/telemetry.py)
    app = [sys.executable, "-c", PYTHON_PREAMBLE + "from openvino.tools.benchmark.main import main; "
           "sys.argv[0] = 'benchmark_app'; sys.exit(main())"]
    text = _run([*app, "-m", str(model), "-d", "CPU", *tune, "-t", str(seconds),
                 "-data_shape", f"image[1,3,{shape[0]},{shape[1]}]",
                 *(["-infer_precision", precision] if precision else [])])
    median = re.search(r"Median:\s+([\d.]+) ms", text)
    fps = re.search(r"Throughput:\s+([\d.]+) FPS", text)
    used = re.search(r"INFERENCE_PRECISION_HINT: <Type: '(\w+)'>", text)
    if not (median and fps):
        raise RuntimeError(f"cannot read benchmark_app's output: {text[-500:]}")
    return {"fps": float(fps.group(1)), "p50_ms": float(median.group(1)),
            "compute": OV_TYPE_NAMES.get(used.group(1), used.group(1)) if used else precision or "default"}


def loop(model: Path, video: Path, frames: int, threads: int, tmp: Path, full: bool, writer_nice=None) -> dict:
    stats = tmp / "run.json"
    sink = ["--sink", str(tmp / "out.mp4")] if full else ["--sink", "none", "--no-overlay"]
    if full and writer_nice is not None:
        sink += ["--writer-nice", str(writer_nice)]
    _run([sys.executable, "-m", "runtime.run", "--model", str(model), "--source", str(video), *sink,
          "--threads", str(threads), "--max-frames", str(frames), "-q", "-o", str(stats)])
    r = json.loads(stats.read_text())
    lat, cpu = r["latency_ms"], r["cpu_ms_per_frame"]
    return {"fps": r["fps"], "p50_ms": lat["infer"]["p50"], "preprocess_ms": lat["preprocess"]["p50"],
            "postprocess_ms": lat["postprocess"]["p50"], "sink_ms": lat["sink"]["p50"],
            **{f"cpu_{s}_ms": cpu[s] for s in CPU_STAGES}, "outside_cpu_ms": cpu["outside_model"],
            "process_cpu_ms": cpu["process"]}


def measure(model: Path, video: Path, repeats: int, frames: int, iters: int, threads: int, shape,
            report=print, writer_nice=None, bench_seconds: float | None = None) -> list[dict]:
    """One row per run and repeat; in each repeat bench and the loops run back to back. `bench_seconds`: bench
    makes at least that many seconds of calls (a 20-call probe sets the count), so that a fast model's bench
    is not a one-second sample next to a loop run several times longer."""
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if bench_seconds:
            iters = max(iters, math.ceil(bench_seconds * bench(model, 20, threads, tmp)["fps"]))
            report(f"runtime.bench: {iters} calls per repeat (at least {bench_seconds:g} s)")
        app = model.suffix == ".xml"
        for rep in range(repeats):
            ours = bench(model, iters, threads, tmp)  # first in the repeat; its compute precision is bench_app's
            runs = {"bench": lambda: ours,
                    "loop_bare": lambda: loop(model, video, frames, threads, tmp, full=False),
                    "loop_full": lambda: loop(model, video, frames, threads, tmp, full=True, writer_nice=writer_nice),
                    "bench_app": lambda: (benchmark_app(model, APP_SECONDS, threads, shape, ours["compute"])
                                          if app else None),
                    "bench_app_default": lambda: (benchmark_app(model, APP_SECONDS, threads, shape)
                                                  if app else None)}
            for name, fn in runs.items():
                result = fn()
                if result is not None:
                    rows.append({"repeat": rep, "run": name,
                                 **{k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}})
                    report(f"repeat {rep} {name}: {result['fps']:.1f} FPS, infer p50 {result['p50_ms']:.1f} ms"
                           + (f" ({result['compute']})" if "compute" in result else ""))
    return rows


def per_repeat(rows: list[dict]) -> list[dict]:
    """Each repeat's bench FPS, loop FPS and their ratio (both sides from that repeat)."""
    out = []
    for rep in sorted({r["repeat"] for r in rows}):
        by = {r["run"]: r for r in rows if r["repeat"] == rep}
        if "bench" not in by:
            continue
        row = {"repeat": rep, "bench_fps": by["bench"]["fps"]}
        for kind in ("loop_bare", "loop_full"):
            if kind in by:
                row[f"{kind}_fps"] = by[kind]["fps"]
                row[f"{kind}_ratio"] = round(by[kind]["fps"] / by["bench"]["fps"], 3)
        out.append(row)
    return out


def _median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


def summarise(rows: list[dict], goals=(0.9, 0.8), min_repeats=MIN_REPEATS) -> tuple[list[dict], list[dict]]:
    """(median per run kind, the goals: each ratio's minimum and median over the repeats; met only with
    at least `min_repeats` repeats, else None)."""
    kinds = list(dict.fromkeys(r["run"] for r in rows))
    keys = list(dict.fromkeys(k for r in rows for k, v in r.items()
                              if k not in ("run", "repeat") and isinstance(v, (int, float))))
    med = []
    for k in kinds:
        sel = [r for r in rows if r["run"] == k]
        med.append({"run": k, **{key: _median(r.get(key) for r in sel) for key in keys}, "repeats": len(sel)})
    reps = per_repeat(rows)
    checks = []
    for kind, goal in zip(("loop_bare", "loop_full"), goals):
        ratios = [r[f"{kind}_ratio"] for r in reps if f"{kind}_ratio" in r]
        if ratios:
            checks.append({"check": f"{kind} FPS / bench FPS, minimum over repeats", "value": min(ratios),
                           "median": _median(ratios), "goal": f">= {goal}",
                           "met": min(ratios) >= goal if len(ratios) >= min_repeats else None})
    full = [r["outside_cpu_ms"] for r in rows if r["run"] == "loop_full" and r.get("outside_cpu_ms") is not None]
    if full:
        checks.append({"check": "loop_full CPU outside the model, ms per frame (maximum over repeats)",
                       "value": round(max(full), 2), "median": _median(full), "goal": f"<= {OUTSIDE_GOAL_MS}",
                       "met": max(full) <= OUTSIDE_GOAL_MS if len(full) >= min_repeats else None})
    # like for like: benchmark_app at the precision bench ran
    same = paired_p50_ratio(rows, "bench", "bench_app")
    if same is not None:
        checks.append({"check": "bench p50 / benchmark_app median - 1, same compute precision (median over repeats)",
                       "value": round(same - 1, 3), "median": None, "goal": "within +-0.05",
                       "met": abs(same - 1) <= 0.05})
    cost = paired_p50_ratio(rows, "bench_app", "bench_app_default")  # what the checked precision costs; no goal
    if cost is not None:
        checks.append({"check": "benchmark_app median at the checked precision / at OpenVINO's default "
                                "(median over repeats)", "value": round(cost, 3), "median": None, "goal": "",
                       "met": None})
    return med, checks


def paired_p50_ratio(rows: list[dict], a: str, b: str) -> float | None:
    """Median over the repeats of run a's p50 / run b's p50 in the same repeat: a small model's latency can sit
    at one of two levels for a whole run, and medians taken in different repeats would compare the levels."""
    pairs = {}
    for r in rows:
        if r["run"] in (a, b):
            pairs.setdefault(r["repeat"], {})[r["run"]] = r["p50_ms"]
    ratios = [p[a] / p[b] for p in pairs.values() if len(p) == 2]
    return statistics.median(ratios) if ratios else None


def limits(rows: list[dict], cores: int) -> list[dict]:
    """Per loop kind (medians over the repeats): the model's CPU per frame (bench), the CPU the cores leave
    free per frame at bench speed, the loop's CPU outside the model, the ratio those allow at best, the
    ratio reached (minimum) and how much of the cores the loop kept busy."""
    bench = {r["repeat"]: r for r in rows if r["run"] == "bench"}
    out = []
    for kind in ("loop_bare", "loop_full"):
        sel = [(bench[r["repeat"]], r) for r in rows if r["run"] == kind and r["repeat"] in bench]
        if not sel or any(b.get("model_cpu_ms") is None or r.get("outside_cpu_ms") is None for b, r in sel):
            continue
        frame_ms = [1000.0 * cores / b["fps"] for b, _ in sel]  # core-ms per frame at bench speed
        out.append({
            "run": kind, "model_cpu_ms": _median(b["model_cpu_ms"] for b, _ in sel),
            "free_cpu_ms": _median(f - b["model_cpu_ms"] for f, (b, _) in zip(frame_ms, sel)),
            "outside_cpu_ms": _median(r["outside_cpu_ms"] for _, r in sel),
            # what the model's threads cost per frame inside the loop, where they share the cores
            "loop_model_cpu_ms": _median(r["process_cpu_ms"] - r["outside_cpu_ms"] for _, r in sel),
            "limit_ratio": _median(min(1.0, f / (b["model_cpu_ms"] + r["outside_cpu_ms"]))
                                   for f, (b, r) in zip(frame_ms, sel)),
            "ratio_min": min(round(r["fps"] / b["fps"], 3) for b, r in sel),
            "cores_busy": _median(r["process_cpu_ms"] * r["fps"] / (1000.0 * cores) for _, r in sel)})
    return out


EXPLAIN = (
    "How to read it. FPS: bench = its throughput, loops = frames / wall time. Ratios pair each loop with "
    "the bench of its own repeat. CPU figures are ms of CPU per frame from the clocks of the threads that do "
    "the work (decode on the reading thread, preprocess, postprocess, overlay, sink = encode and write); "
    "`process_cpu_ms` is the whole process (model threads included), `model_cpu_ms` the bench's process CPU "
    "per call. CPU time does not depend on what else runs; wall-time ratios do. Physical limit: at bench "
    "speed the cores give cores x 1000 / bench FPS core-ms per frame; the model takes `model_cpu_ms` of it, "
    "leaving `free_cpu_ms`. A loop that needs `outside_cpu_ms` more per frame cannot exceed "
    "`limit_ratio` = min(1, cores x 1000 / bench FPS / (model + outside)); `cores_busy` is the share of the "
    "cores the loop kept busy (1.0: nothing more to take). The model CPU includes its threads' spinning, "
    "so the limit is a conservative one. `loop_model_cpu_ms` (the loop's process CPU less `outside_cpu_ms`) "
    "is what the model's threads cost per frame inside the loop: where it is above `model_cpu_ms`, sharing "
    "the cores made the model dearer (a latency-mode inference splits each call over all its threads, and "
    "when the loop's own threads take a core from one of them the others wait for it), and the loop falls "
    "short of `limit_ratio` by about that much.")

CUTS = (
    "What issue 22 cut outside the model (CPU per 1280x720 frame on one thread, best of 3 x 100 calls, "
    "OpenCV 5.0, on the 2-core EPYC while a training held the cores: rough, but CPU time, not wall time): "
    "the overlay 3.7 -> 2.7 ms for the same image pixel for pixel (colours by one single-channel LUT over a "
    "3-channel index image, 1.8 -> 1.4 ms; the legend's class count by cv2.calcHist, 1.0 -> 0.3 ms; "
    "OpenCV's fonts loaded at start-up, not in the first frame, 25 ms), and since then the colours by three "
    "single-channel LUTs merged into reused buffers, about a third of the index image's CPU on the 2-core Xeon "
    "([overlay.md](overlay.md), `python -m benchmarks.speed.overlay`); no overlay drawn for `--sink none`; "
    "decoding on the reading thread (FFmpeg's decoder threads only competed with the backend's; 3.5 ms "
    "either way); overlay and encoding in a writer thread at lower priority (file sinks), so they take "
    "the time the backend leaves free (no CPU saved; its wall-time effect shows on quiet cores: "
    "`runtime.run --writer-nice 0` turns it off). Kept as it was, by measurement: the mp4v encoder "
    "(6.1 ms; FFmpeg's MJPG 8.2 ms and twice the bytes, OpenCV's own MJPEG writer 11.6 ms, XVID the same "
    "as mp4v; OpenCV's FFmpeg writer options changed nothing); decoding at the model's size (OpenCV's "
    "FFmpeg capture cannot decode a video smaller, and the output video is at the frame's size).")


def outside_floor(rows: list[dict], goal: float = OUTSIDE_GOAL_MS) -> str:
    """The CPU outside the model with overlay and MP4, split into what the video codec costs (decoding the
    source frame, encoding the output) and what this code does (preprocess, postprocess, overlay)."""
    full = [r for r in rows if r["run"] == "loop_full" and r.get("cpu_decode_ms") is not None]
    if not full:
        return ""
    med = {s: statistics.median(r[f"cpu_{s}_ms"] for r in full) for s in CPU_STAGES}
    codec = med["decode"] + med["sink"]
    ours = med["preprocess"] + med["postprocess"] + med["overlay"]
    verdict = (f"more than the {goal:g} ms goal by themselves, so no change to the rest can meet it with this codec "
               "at this frame size" if codec > goal else
               f"which leaves {goal - codec:.1f} ms of the {goal:g} ms goal to the rest")
    return (f"Where the CPU outside the model goes (loop_full, medians): the video codec, decoding the source frame "
            f"({med['decode']:.1f} ms) and encoding the output (mp4v, {med['sink']:.1f} ms), takes {codec:.1f} ms, "
            f"{verdict}; preprocess, postprocess and overlay take {ours:.1f} ms together "
            f"({med['preprocess']:.1f} + {med['postprocess']:.1f} + {med['overlay']:.1f}).")


def precision_line(rows) -> str:
    """Which compute precision each timed run used (runtime.bench: the IR's checked one)."""
    used = {r["run"]: r["compute"] for r in rows if r.get("compute")}
    if not used:
        return ""
    text = f"Compute precision: runtime.bench and the loops {used.get('bench', '?')} (the IR's checked precision)"
    if "bench_app" in used:
        text += f"; benchmark_app {used['bench_app']} (`-infer_precision`, like for like)"
    if "bench_app_default" in used:
        text += (f" and once more at OpenVINO's default, {used['bench_app_default']}, which the runtime runs only "
                 "when asked (`--precision-hint`), unchecked")
    return text + "."


def write_report(rows, model: Path, video: Path, frames: int, threads: int, out: Path, argv, name="loop",
                 goals=(0.9, 0.8)) -> Path:
    import cv2

    med, checks = summarise(rows, goals)
    cores = os.cpu_count() or 1
    cap = cv2.VideoCapture(str(video))
    vw, vh = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    cap.release()
    cpu_cols = ["run", *[f"cpu_{s}_ms" for s in CPU_STAGES], "outside_cpu_ms", "process_cpu_ms", "model_cpu_ms"]
    cpu_rows = [{c: m.get(c) for c in cpu_cols} for m in med if m["run"] in ("bench", "loop_bare", "loop_full")]
    reps = len({r["repeat"] for r in rows})
    calls = max((r.get("calls") or 0 for r in rows if r["run"] == "bench"), default=0)
    text = ["# Does the loop keep up with its backend?", "",
            f"Model `{model}`, video {vw}x{vh} ({video.name}), {frames} frames per loop run, {threads} threads, "
            f"{cores} cores, {reps} repeats. Each run in its own process with the real CLI; in each repeat "
            f"bench ({calls} calls), loop_bare, loop_full and benchmark_app ({APP_SECONDS} s at each precision) ran "
            "back to back.", "", precision_line(rows), "",
            "## Each repeat", "", markdown_table(per_repeat(rows)),
            f"## Goals (issue 22: the minimum over >= {MIN_REPEATS} repeats; met is empty with fewer)", "",
            markdown_table(checks), outside_floor(rows), "",
            "## CPU per frame, ms (medians over the repeats)", "", markdown_table(cpu_rows),
            "## The physical limit on these cores (medians; ratio_min: the worst repeat)", "",
            markdown_table(limits(rows, cores)), EXPLAIN, "", CUTS, "",
            "## Medians of everything measured", "", markdown_table(med),
            provenance("benchmarks.speed.loop", argv), ""]
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out / f"{name}.csv")
    path = out / f"{name}.md"
    path.write_text("\n".join(text))
    return path


def default_model(work: Path, arch: str = "lraspp_mobilenetv2") -> Path:
    if arch == "shipped":
        from runtime import shipped
        return shipped.default_model()
    from .table import build_files
    return build_files(arch, (512, 1024), work, {"ov-int8"}, calib=16)["ov-int8"]


@command
def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m benchmarks.speed.loop", description=__doc__.split("\n\n")[0], examples=(
        "python -m benchmarks.speed.loop",
        "python -m benchmarks.speed.loop --preset student realtime camvid",
        "python -m benchmarks.speed.loop --model student.int8.xml --video street.mp4 --name loop_student"))
    p.add_argument("--preset", nargs="+", choices=sorted(PRESETS), default=["student"],
                   help="which report(s): student -> loop.md, realtime -> loop_realtime.md, camvid -> "
                        "loop_camvid.md (default student)")
    p.add_argument("--model", type=Path, help="OpenVINO IR (default: the preset's model, built by benchmarks.speed)")
    p.add_argument("--video", type=Path, help="video file (default: the demo's street video at 1280x720)")
    p.add_argument("--frames", type=positive_int, default=200, help="frames per loop run (default 200)")
    p.add_argument("--iters", type=positive_int, default=100, help="runtime.bench iterations, at least (default 100)")
    p.add_argument("--bench-seconds", type=number(float, 0.0), default=BENCH_SECONDS, metavar="S",
                   help=f"runtime.bench makes at least S seconds of calls per repeat (default {BENCH_SECONDS:g}; 0: --iters)")
    p.add_argument("--repeats", type=positive_int, default=MIN_REPEATS,
                   help=f"repeats of the runs, back to back (default {MIN_REPEATS}; the goals need >= {MIN_REPEATS})")
    p.add_argument("--threads", type=positive_int, default=2, help="inference threads (default 2)")
    p.add_argument("--writer-nice", type=number(int, 0, 19), default=None, metavar="N",
                   help="loop_full's runtime.run --writer-nice (default: runtime.run's own)")
    p.add_argument("--work-dir", type=Path, default=Path("runs/speed"), help="where the default models are built")
    p.add_argument("--out-dir", type=Path, default=Path("docs/results"), help="where the report goes")
    p.add_argument("--name", default=None, help="report file names: NAME.md and NAME.csv (default: the preset's)")
    args = p.parse_args(argv)
    for path, flag in ((args.model, "--model"), (args.video, "--video")):
        if path is not None and not path.is_file():
            p.error(f"{flag} {path}: no such file")
    if len(args.preset) > 1 and (args.model or args.name):
        p.error("--model and --name go with one --preset")
    video = args.video or street_video(args.work_dir / "street720.mp4", size=(720, 1280), fps=30,
                                       scenes=-(-args.frames // 40), frames_per_scene=40)
    from runtime.backends import load_backend
    by_name = {v[1]: k for k, v in PRESETS.items()}  # `--name loop_realtime` (the old spelling) gets its goals
    for preset in ([by_name[args.name]] if args.name in by_name else args.preset):
        arch, name, *goals = PRESETS[preset]
        model = args.model or default_model(args.work_dir, arch)
        shape = load_backend(model, device="cpu").meta["input_size"]
        rows = measure(model, video, args.repeats, args.frames, args.iters, args.threads, shape,
                       writer_nice=args.writer_nice, bench_seconds=args.bench_seconds)
        path = write_report(rows, model, video, args.frames, args.threads, args.out_dir, argv, args.name or name,
                            tuple(goals))
        print(f"wrote {path} and {path.with_suffix('.csv')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
