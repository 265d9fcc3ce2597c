"""Does the real-time loop keep up with its backend? `python -m benchmarks.loop`.

On one model and one video, each as a user would run it (its own process, the real CLI):
  bench      `runtime.bench`: the model alone (throughput = what the loop could reach at best);
  bench_app  OpenVINO's own `benchmark_app` on the same IR, latency hint, same threads (when installed);
  loop_bare  `runtime.run --sink none --no-overlay`: decode, preprocess, infer, postprocess;
  loop_full  `runtime.run --sink out.mp4`: the same plus the overlay and MP4 encoding.
The four are repeated `--repeats` times in turn (so a slow minute hits all of them) and the medians are
compared: loop_bare / bench (goal >= 0.9), loop_full / bench (goal >= 0.8), bench vs benchmark_app
latency (goal within 5%).

Defaults: the 512x1024 OpenVINO INT8 LR-ASPP MobileNetV2 that `benchmarks.speed` builds (random weights),
and the demo's panning street video at 1280x720 (`--video` to use your own). Writes `<out-dir>/<name>.md` and `.csv`.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from runtime.contract import ArgumentParser, command, positive_int

from ..report import markdown_table, provenance, write_csv
from ..street import street_video

GOALS = {"loop_bare": 0.9, "loop_full": 0.8}


def _run(cmd: list[str]) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {(r.stderr or r.stdout).strip()[-500:]}")
    return r.stdout


def bench(model: Path, iters: int, threads: int, tmp: Path) -> dict:
    out = tmp / "bench.json"
    _run([sys.executable, "-m", "runtime.bench", "--model", str(model), "--iters", str(iters), "--warmup", "10",
          "--threads", str(threads), "--json", str(out)])
    r = json.loads(out.read_text())
    return {"fps": r["throughput_fps"], "p50_ms": r["latency_ms"]["p50"]}


def benchmark_app(model: Path, seconds: int, threads: int, shape) -> dict | None:
    exe = shutil.which("benchmark_app") or str(Path(sys.executable).with_name("benchmark_app"))
    if not Path(exe).exists():
        return None
    # benchmark_app takes -nthreads only without a hint; the latency hint uses every core, as ours does
    tune = ["-hint", "latency"] if threads >= (os.cpu_count() or 1) else ["-hint", "none", "-nstreams", "1",
                                                                            "-nthreads", str(threads)]
    text = _run([exe, "-m", str(model), "-d", "CPU", *tune, "-t", str(seconds),
                 "-data_shape", f"image[1,3,{shape[0]},{shape[1]}]"])
    median = re.search(r"Median:\s+([\d.]+) ms", text)
    fps = re.search(r"Throughput:\s+([\d.]+) FPS", text)
    if not (median and fps):
        raise RuntimeError(f"cannot read benchmark_app's output: {text[-500:]}")
    return {"fps": float(fps.group(1)), "p50_ms": float(median.group(1))}


def loop(model: Path, video: Path, frames: int, threads: int, tmp: Path, full: bool) -> dict:
    stats = tmp / "run.json"
    sink = ["--sink", str(tmp / "out.mp4")] if full else ["--sink", "none", "--no-overlay"]
    _run([sys.executable, "-m", "runtime.run", "--model", str(model), "--source", str(video), *sink,
          "--threads", str(threads), "--max-frames", str(frames), "-q", "--stats", str(stats)])
    r = json.loads(stats.read_text())
    lat = r["latency_ms"]
    return {"fps": r["fps"], "p50_ms": lat["infer"]["p50"], "preprocess_ms": lat["preprocess"]["p50"],
            "postprocess_ms": lat["postprocess"]["p50"], "sink_ms": lat["sink"]["p50"]}


def measure(model: Path, video: Path, repeats: int, frames: int, iters: int, threads: int, shape,
            report=print) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for rep in range(repeats):
            runs = {"bench": lambda: bench(model, iters, threads, tmp),
                    "bench_app": lambda: benchmark_app(model, max(5, iters // 10), threads, shape),
                    "loop_bare": lambda: loop(model, video, frames, threads, tmp, full=False),
                    "loop_full": lambda: loop(model, video, frames, threads, tmp, full=True)}
            for name, fn in runs.items():
                result = fn()
                if result is not None:
                    rows.append({"repeat": rep, "run": name, **{k: round(v, 2) for k, v in result.items()}})
                    report(f"repeat {rep} {name}: {result['fps']:.1f} FPS, infer p50 {result['p50_ms']:.1f} ms")
    return rows


def summarise(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """(median per run kind, the goals checked against those medians)."""
    kinds = list(dict.fromkeys(r["run"] for r in rows))
    med = []
    keys = list(dict.fromkeys(k for r in rows for k in r if k not in ("run", "repeat")))
    for k in kinds:
        sel = [r for r in rows if r["run"] == k]
        med.append({"run": k, **{key: round(statistics.median(r[key] for r in sel), 2) if key in sel[0] else None
                                 for key in keys}, "repeats": len(sel)})
    by = {m["run"]: m for m in med}
    checks = []
    for k, goal in GOALS.items():
        if k in by and "bench" in by:
            ratio = by[k]["fps"] / by["bench"]["fps"]
            checks.append({"check": f"{k} FPS / bench FPS", "value": round(ratio, 3), "goal": f">= {goal}",
                           "met": ratio >= goal})
    if "bench_app" in by:
        diff = by["bench"]["p50_ms"] / by["bench_app"]["p50_ms"] - 1
        checks.append({"check": "bench p50 / benchmark_app median - 1", "value": round(diff, 3),
                       "goal": "within +-0.05", "met": abs(diff) <= 0.05})
    return med, checks


def write_report(rows, model: Path, video: Path, frames: int, threads: int, out: Path, argv, name="loop") -> Path:
    import cv2

    med, checks = summarise(rows)
    cap = cv2.VideoCapture(str(video))
    vw, vh = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    cap.release()
    text = ["# Does the loop keep up with its backend?", "",
            f"Model `{model}`, video {vw}x{vh} ({video.name}), {frames} frames per loop run, {threads} threads. "
            "Each kind ran in its own process with the real CLI, the kinds in turn, repeated; medians below. "
            "FPS: bench = its throughput, loops = frames / wall time; p50_ms = the model call's median.", "",
            "## Medians", "", markdown_table(med), "## Goals (issue 11)", "", markdown_table(checks),
            provenance("benchmarks.loop", argv), ""]
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out / f"{name}.csv")
    path = out / f"{name}.md"
    path.write_text("\n".join(text))
    return path


def default_model(work: Path) -> Path:
    from .table import build_files
    return build_files("lraspp_mobilenetv2", (512, 1024), work, {"ov-int8"}, calib=16)["ov-int8"]


@command
def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m benchmarks.loop", description=__doc__.split("\n\n")[0], examples=(
        "python -m benchmarks.loop",
        "python -m benchmarks.loop --model student.int8.xml --video street.mp4 --name loop_student"))
    p.add_argument("--model", type=Path, help="OpenVINO IR (default: benchmarks.speed's LR-ASPP MobileNetV2 INT8)")
    p.add_argument("--video", type=Path, help="video file (default: the demo's street video at 1280x720)")
    p.add_argument("--frames", type=positive_int, default=200, help="frames per loop run (default 200)")
    p.add_argument("--iters", type=positive_int, default=100, help="runtime.bench iterations (default 100)")
    p.add_argument("--repeats", type=positive_int, default=3, help="rounds of the four runs (default 3)")
    p.add_argument("--threads", type=positive_int, default=2, help="inference threads (default 2)")
    p.add_argument("--work-dir", type=Path, default=Path("runs/speed"), help="where the default model is built")
    p.add_argument("--out-dir", type=Path, default=Path("docs/results"), help="where the report goes")
    p.add_argument("--name", default="loop", help="report file names: NAME.md and NAME.csv (default loop)")
    args = p.parse_args(argv)
    for path, flag in ((args.model, "--model"), (args.video, "--video")):
        if path is not None and not path.is_file():
            p.error(f"{flag} {path}: no such file")
    model = args.model or default_model(args.work_dir)
    video = args.video or street_video(args.work_dir / "street720.mp4", size=(720, 1280), fps=30,
                                       scenes=-(-args.frames // 40), frames_per_scene=40)
    from runtime.backends import load_backend
    shape = load_backend(model, device="cpu").meta["input_size"]
    rows = measure(model, video, args.repeats, args.frames, args.iters, args.threads, shape)
    path = write_report(rows, model, video, args.frames, args.threads, args.out_dir, argv, args.name)
    print(f"wrote {path} and {path.with_suffix('.csv')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
