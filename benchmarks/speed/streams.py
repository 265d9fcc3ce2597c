"""Several streams through one loaded model: `python -m benchmarks.speed.streams`.

1, 2, 4 and 8 streams (`--streams`) of a synthetic street video at 720x1280 and at 360x480 (`--sizes`, HxW as
every size flag; 360x480 is the CamVid model's own input), each count one real `runtime.run --source V
--source V ... --sink none --no-overlay -o stats.json` in its own process: one model compiled once serving
every stream (runtime/streams.py; OpenVINO with the throughput hint from two streams on, as a user gets it),
each stream decoding its own copy of the video. Per run (backend, source size, streams, repeat): total FPS
(every stream's frames over the run's wall time), per-stream FPS (mean, min), p99 latency (frame read to done)
and of the model call, the CPU per frame outside the model split by stage as `benchmarks.speed.loop` splits
it, and the ceiling: OpenVINO's `benchmark_app -hint throughput` on the same file at the compute precision the
runs used, every core.

Repeats and pairing (`--repeats`, default 3): back-to-back runs of the same thing differ a lot on a shared
machine, so, as `benchmarks.speed.loop` does, each repeat runs every stream count of a size and then that
size's ceiling, back to back, and its ratios pair runs of that repeat only: each count's total / the same
repeat's one stream, and total / the same repeat's ceiling, so a slow minute hits both sides of a ratio alike.
The report gives per (backend, size, streams) the median over the repeats of each figure, the min-max of total
FPS, and the median of the per-repeat paired ratios (each repeat's values in the CSV); the issue's targets are
judged on those medians.

Run length: once per size, before its repeats, a 1-stream probe of a few frames gives the FPS to expect; in
the first repeat each run then gets `--seconds` x (the previous count's total FPS) / streams frames per stream
(one stream: x the probe's), so every run lasts about `--seconds`, and the later repeats run each count with
the first's frame counts; videos are rendered long enough into --work-dir and reused.

Models: `openvino` (default) runs `--model`, default the shipped CamVid student (models/camvid_lite/brd.int8.xml,
what `runtime.run` runs without --model); `onnxruntime` runs `--onnx`, default an INT8 ONNX timing copy of the
shipped checkpoint built in --work-dir (synthetic calibration, no gate; its name says so). The report judges
the issue's targets (pass/fail lines, not a failing exit): two streams >= 1.25x one stream, and on the 360x480
source total >= 0.8 of the ceiling. Writes `<out-dir>/streams.md`, `.csv` (the medians, each repeat's paired
ratios) and `streams_runs.csv` (every run).
"""
from __future__ import annotations

import json
import math
import sys
import tempfile
from pathlib import Path

from runtime.contract import ArgumentParser, check_folder, command, number, positive_int, size

from ..street import street_video
from .clis import benchmark_app, compute_precision, run_cli
from .loop_report import CPU_STAGES
from .streams_report import write_report

BACKENDS = ("openvino", "onnxruntime")
STREAMS = (1, 2, 4, 8)
SIZES = ((720, 1280), (360, 480))
SECONDS = 10.0
REPEATS = 3           # each: every stream count, then the ceiling; the report takes medians of paired ratios
PROBE_FRAMES = 30     # the 1-stream probe that sizes the runs (also warms the file caches)
MIN_FRAMES = 10       # per stream: fewer would be mostly start-up
SCENE_FRAMES = 40     # frames per panned scene of the street video


def video(work: Path, hw, frames: int) -> tuple[Path, int]:
    """The street video at `hw` with at least `frames` frames (reused from --work-dir when long enough);
    (path, its frame count)."""
    import cv2

    path = work / f"street_{hw[0]}x{hw[1]}.mp4"
    if path.is_file():
        cap = cv2.VideoCapture(str(path))
        have = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        cap.release()
        if have >= frames:
            return path, have
    scenes = max(1, math.ceil(frames / SCENE_FRAMES))
    street_video(path, size=tuple(hw), fps=30, scenes=scenes, frames_per_scene=SCENE_FRAMES)
    return path, scenes * SCENE_FRAMES


def streams_run(model: Path, source: Path, n: int, frames: int, tmp: Path) -> dict:
    """One `runtime.run` with `n` copies of `source`, `frames` per stream, bare (no overlay, no sink): the
    row's figures from its -o JSON (totals at the top level, one entry per stream)."""
    out = tmp / f"streams_{n}.json"
    run_cli([sys.executable, "-m", "runtime.run", "--model", str(model), *(["--source", str(source)] * n),
             "--sink", "none", "--no-overlay", "--max-frames", str(frames), "-q", "-o", str(out)])
    r = json.loads(out.read_text())
    per = [s["fps"] for s in r["streams"]]
    lat, cpu = r["latency_ms"], r["cpu_ms_per_frame"]
    return {"streams": n, "frames_per_stream": frames, "frames": r["frames"]["processed"],
            "wall_s": round(r["wall_s"], 3), "total_fps": round(r["fps"], 2),
            "stream_fps_mean": round(sum(per) / len(per), 2), "stream_fps_min": round(min(per), 2),
            "p99_ms": round(lat["total"]["p99"], 2), "infer_p99_ms": round(lat["infer"]["p99"], 2),
            **{f"cpu_{s}_ms": round(cpu[s], 2) for s in CPU_STAGES},
            "outside_cpu_ms": round(cpu["outside_model"], 2), "process_cpu_ms": round(cpu["process"], 2),
            # what the model's threads cost per frame inside the run (the process's CPU less the loops' own)
            "model_cpu_ms": round(cpu["process"] - cpu["outside_model"], 2),
            "compute": compute_precision(r["backend"]["precision"]),
            "input_hw": tuple(r["backend"]["input_shape"][-2:]),
            "stream_fps": ";".join(f"{f:.2f}" for f in per),
            "stream_frames": ";".join(str(s["frames"]["processed"]) for s in r["streams"])}


def ceiling(model: Path, seconds: float, input_hw, compute: str) -> dict | None:
    """benchmark_app -hint throughput on `model` at `compute` (an ONNX's int8 runs its other layers in f32,
    as ONNX Runtime does); None where benchmark_app is not installed."""
    precision = compute if compute in ("f32", "f16", "bf16") else "f32"
    return benchmark_app(model, max(1, round(seconds)), None, input_hw, precision, hint="throughput")


def measure_size(backend: str, model: Path, hw, counts, seconds: float, work: Path, tmp: Path, repeats: int = 1,
                 report=print) -> list[dict]:
    """The runs of one backend and source size, one row per count and repeat: each repeat runs every count,
    then the ceiling (right after them), and each row's ratios pair it with its own repeat's one stream and
    ceiling. Run lengths are set once: a probe before the repeats, the first repeat's totals for the rest."""
    probe_video, _ = video(work, hw, PROBE_FRAMES)
    expected = streams_run(model, probe_video, 1, PROBE_FRAMES, tmp)["total_fps"]
    source, length = video(work, hw, math.ceil(1.3 * seconds * expected) + PROBE_FRAMES)
    frames, rows = {}, []
    for rep in range(repeats):
        runs = []
        for n in sorted(counts):
            if n not in frames:  # first repeat: this count's length from the previous count's total
                frames[n] = min(length, max(MIN_FRAMES, math.ceil(seconds * expected / n)))
            row = {"backend": backend, "source_hw": f"{hw[0]}x{hw[1]}", "repeat": rep,
                   **streams_run(model, source, n, frames[n], tmp)}
            expected = row["total_fps"]  # (first repeat) the next count's run length: this one's total
            runs.append(row)
            report(f"{backend} {row['source_hw']} repeat {rep} x{n}: {row['total_fps']:.1f} FPS total, per stream "
                   f"mean {row['stream_fps_mean']:.1f} min {row['stream_fps_min']:.1f}, p99 {row['p99_ms']:.1f} ms")
        input_hw = [r.pop("input_hw") for r in runs][0]  # the model's input, what benchmark_app feeds it
        top = ceiling(model, seconds, input_hw, runs[0]["compute"])
        one = next((r["total_fps"] for r in runs if r["streams"] == 1), None)
        for row in runs:  # paired: this repeat's one stream and ceiling
            row["ceiling_fps"] = top["fps"] if top else None
            row["ceiling_compute"] = top["compute"] if top else None
            row["ceiling_ratio"] = round(row["total_fps"] / top["fps"], 3) if top else None
            row["vs_1_stream"] = round(row["total_fps"] / one, 3) if one else None
        if top:
            report(f"{backend} {runs[0]['source_hw']} repeat {rep}: ceiling (benchmark_app -hint throughput, "
                   f"{top['compute']}) {top['fps']:.1f} FPS")
        rows += runs
    return rows


def onnx_timing_copy(work: Path) -> Path:
    """An INT8 ONNX (ONNX Runtime's Q/DQ form) of the shipped CamVid checkpoint for the onnxruntime rows,
    calibrated on synthetic images and not gated (a timing copy: speed does not depend on the calibration);
    built once into `work`, reused after."""
    from runtime import shipped
    from runtime.backends import load_backend

    out = work / "camvid_student" / "student.unchecked.int8.onnx"
    if out.is_file():
        return out
    from export.data import synthetic_images
    from export.onnx import torch_to_onnx
    from export.quantize import quantize_onnx_int8

    ckpt = shipped.models_dir() / shipped.CHECKPOINT
    fp32 = torch_to_onnx(ckpt, out.with_name("student.unchecked.onnx"))
    hw = load_backend(fp32, device="cpu").meta["input_size"]
    return quantize_onnx_int8(fp32, out, synthetic_images(16, hw, seed=1), target="ort")


def models(backends, model: Path | None, onnx: Path | None, work: Path) -> tuple[dict, dict]:
    """{backend: the file it runs}, and {backend: what it is} for those whose file is the shipped CamVid
    student (or, for onnxruntime, the timing copy of its checkpoint): the issue's targets are set for it."""
    from runtime import shipped

    made, ships = {}, {}
    if "openvino" in backends:
        made["openvino"] = model or shipped.default_model()
        if model is None or model.resolve() == (shipped.MODELS_DIR / shipped.DEFAULT).resolve():
            ships["openvino"] = "the shipped CamVid student"
    if "onnxruntime" in backends:
        made["onnxruntime"] = onnx or onnx_timing_copy(work)
        if onnx is None:
            ships["onnxruntime"] = "an INT8 ONNX timing copy of the shipped CamVid student"
    return made, ships


@command
def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m benchmarks.speed.streams", description=__doc__.split("\n\n")[0], examples=(
        "python -m benchmarks.speed.streams",
        "python -m benchmarks.speed.streams --streams 1 2 --sizes 360x480 --repeats 5 --out-dir runs/streams",
        "python -m benchmarks.speed.streams --backends openvino onnxruntime --model student.int8.xml"))
    p.add_argument("--streams", type=positive_int, nargs="+", default=list(STREAMS), metavar="N",
                   help="stream counts, one run each per repeat (default 1 2 4 8)")
    p.add_argument("--repeats", type=positive_int, default=REPEATS, metavar="N",
                   help=f"repeats: each runs every stream count, then the ceiling, per size; ratios pair runs of "
                        f"one repeat, the report takes their medians (default {REPEATS})")
    p.add_argument("--sizes", type=size, nargs="+", default=list(SIZES), metavar="HxW",
                   help="source video sizes (default 720x1280 360x480; 360x480 is the CamVid model's own)")
    p.add_argument("--backends", nargs="+", choices=BACKENDS, default=["openvino"],
                   help="openvino runs --model, onnxruntime runs --onnx (default openvino)")
    p.add_argument("--seconds", type=number(float, 0.0, lo_open=True), default=SECONDS, metavar="S",
                   help=f"about how long each run and each ceiling measurement lasts (default {SECONDS:g})")
    p.add_argument("--model", type=Path, help="OpenVINO IR for the openvino rows (default: the shipped CamVid "
                                              "student, models/camvid_lite/brd.int8.xml)")
    p.add_argument("--onnx", type=Path, help="ONNX model for the onnxruntime rows (default: an INT8 timing copy "
                                             "of the shipped checkpoint, built in --work-dir)")
    p.add_argument("--work-dir", type=Path, default=Path("runs/speed"), help="where videos and built models go")
    p.add_argument("--out-dir", type=Path, default=Path("docs/results"), help="where streams.md and .csv go")
    args = p.parse_args(argv)
    for path, flag in ((args.model, "--model"), (args.onnx, "--onnx")):
        if path is not None and not path.is_file():
            p.error(f"{flag} {path}: no such file")
    check_folder(args.out_dir, 0, "--out-dir")  # before the runs: the report must have somewhere to go
    check_folder(args.work_dir, 0, "--work-dir")
    files, shipped = models(args.backends, args.model, args.onnx, args.work_dir)
    from runtime.backends import load_backend
    for model in files.values():  # a file the runtime cannot load: its one line, before any video is rendered
        load_backend(model, device="cpu").close()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for backend, model in files.items():
            for hw in args.sizes:
                rows += measure_size(backend, model, hw, set(args.streams), args.seconds, args.work_dir, Path(d),
                                     args.repeats)
    path, verdicts = write_report(rows, files, args.seconds, args.out_dir, argv, shipped)
    print("\n".join(verdicts))
    print(f"wrote {path}, {path.with_suffix('.csv')} and {path.with_name(path.stem + '_runs.csv')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
