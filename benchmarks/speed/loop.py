"""Does the real-time loop keep up with its backend? `python -m benchmarks.speed.loop`.

On one model and one video, each as a user would run it (its own process, the real CLI):
  bench      `runtime.bench`: the model alone (throughput = what the loop could reach at best);
  loop_bare  `runtime.run --sink none --no-overlay`: decode, preprocess, infer, postprocess;
  loop_full  `runtime.run --sink out.mp4`: the same plus the overlay and MP4 encoding;
  bench_app  OpenVINO's own `benchmark_app` on the same IR, latency hint, same threads, at the compute
             precision runtime.bench ran (when installed): the check that our bench measures what OpenVINO does;
  bench_app_default  the same at OpenVINO's default precision (bf16 on a CPU with AVX512-BF16), which the
             runtime does not use unasked: an IR runs at the precision its gate checked (f32);
  ceiling    `benchmark_app -hint throughput` at bench's compute precision, every core: the most frames per
             second these cores give the model (several requests in flight), the honest upper reference; the
             synchronous bench runs one request at a time, which a loop that overlaps its own work with
             inference can beat.
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
(models/camvid_lite/brd.int8.xml, what `runtime.run` runs without --model) at its own input size ->
loop_camvid.md. All on the demo's panning street video at 1280x720 (`--video` to use your own). Writes
`<out-dir>/<name>.md` and `.csv`.
"""
from __future__ import annotations

import json
import math
import sys
import tempfile
from pathlib import Path

from runtime.contract import ArgumentParser, check_folder, command, number, positive_int

from ..street import street_video
from .clis import bench, benchmark_app, run_cli
from .loop_report import CPU_STAGES, MIN_REPEATS, write_report

# name -> (architecture benchmarks.speed builds, or "shipped": runtime's default model; report name,
#          goal loop_bare / bench, goal loop_full / bench)
PRESETS = {"student": ("lraspp_mobilenetv2", "loop", 0.9, 0.8),
           "realtime": ("lraspp_mobilenetv3_large", "loop_realtime", 0.85, 0.75),
           "camvid": ("shipped", "loop_camvid", 0.85, 0.75)}
BENCH_SECONDS = 4.0       # runtime.bench runs at least this long in each repeat, so that its sample is not
                          # much shorter than a loop run's
APP_SECONDS = 5           # each benchmark_app run


def loop(model: Path, video: Path, frames: int, threads: int, tmp: Path, full: bool, writer_nice=None) -> dict:
    stats = tmp / "run.json"
    sink = ["--sink", str(tmp / "out.mp4")] if full else ["--sink", "none", "--no-overlay"]
    if full and writer_nice is not None:
        sink += ["--writer-nice", str(writer_nice)]
    run_cli([sys.executable, "-m", "runtime.run", "--model", str(model), "--source", str(video), *sink,
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
                                                  if app else None),
                    "ceiling": lambda: (benchmark_app(model, APP_SECONDS, None, shape, ours["compute"],
                                                      hint="throughput") if app else None)}
            for name, fn in runs.items():
                result = fn()
                if result is not None:
                    rows.append({"repeat": rep, "run": name,
                                 **{k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}})
                    report(f"repeat {rep} {name}: {result['fps']:.1f} FPS, infer p50 {result['p50_ms']:.1f} ms"
                           + (f" ({result['compute']})" if "compute" in result else ""))
    return rows


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
    check_folder(args.out_dir, 0, "--out-dir")  # before the runs: the report must have somewhere to go
    if len(args.preset) > 1 and (args.model or args.name):
        p.error("--model and --name go with one --preset")
    video = args.video or street_video(args.work_dir / "street720.mp4", size=(720, 1280), fps=30,
                                       scenes=-(-args.frames // 40), frames_per_scene=40)
    from runtime.backends import load_backend
    for preset in args.preset:
        arch, name, *goals = PRESETS[preset]
        model = args.model or default_model(args.work_dir, arch)
        shape = load_backend(model, device="cpu").meta["input_size"]
        rows = measure(model, video, args.repeats, args.frames, args.iters, args.threads, shape,
                       writer_nice=args.writer_nice, bench_seconds=args.bench_seconds)
        path = write_report(rows, model, video, args.frames, args.threads, args.out_dir, argv, args.name or name,
                            tuple(goals), app_seconds=APP_SECONDS)
        print(f"wrote {path} and {path.with_suffix('.csv')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
