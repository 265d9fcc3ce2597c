"""`python -m benchmarks.demo`: BRD Edge end to end on the built-in synthetic data, on a CPU.

generate data -> train the small teacher -> train a plain and a BRD student -> export both to ONNX,
ONNX INT8, OpenVINO FP32/FP16/INT8 (each with its parity check, INT8 with its accuracy gate) -> score the
BRD student's exported files, FP32 and INT8, on the labelled val split (distill.evaluate --model) -> run
the runtime loop on a generated street video, writing an overlay video -> both benchmarks with short
settings -> runs/demo/report.md. Each step says what it does and how long it took; re-running
reuses every finished step (delete its output, or the whole folder, to redo it).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from runtime.contract import add_overrides, ArgumentParser, check_folder, command, positive_int, UserError
from runtime.formats import FORMATS, lookup

from ..street import street_video

# The students run their configs' own iteration counts (configs/synthetic*.yaml: 250), the teacher a quarter
# of its config's 1600 (the benchmark's teacher alone takes ~20 minutes): about 10 minutes on 2 CPU cores.
STUDENT_PAIR = "resnet10_w8"
DEMO_TEACHER_ITERS = 400
# what the demo exports: ONNX FP32/INT8, OpenVINO FP32/FP16/INT8 (TensorRT needs the device that runs it)
DEMO_SUFFIXES = tuple(f.suffix for f in FORMATS if f.name in ("onnx", "openvino"))


class Steps:
    """Runs named steps, reusing those whose outputs exist; timings persist in steps.json across re-runs."""

    def __init__(self, out: Path):
        self.file = out / "steps.json"
        self.earlier = {t["step"]: t for t in json.loads(self.file.read_text())} if self.file.exists() else {}
        self.timings: list[dict] = []

    def __call__(self, name: str, outputs: list, fn, *args, **kwargs):
        """`outputs`: paths, or tuples of alternatives (a model published, or kept as *.FAILED.*)."""
        if outputs and all(any(Path(q).exists() for q in (p if isinstance(p, tuple) else (p,))) for p in outputs):
            shown = [str(p[0] if isinstance(p, tuple) else p) for p in outputs[:2]]
            print(f"== {name}: reused ({', '.join(shown)}{' ...' if len(outputs) > 2 else ''})",
                  flush=True)
            before = self.earlier.get(name, {})
            self._record({"step": name, "seconds": before.get("seconds"), "status": before.get("status", "done") + " (reused)"})
            return None
        print(f"== {name} ...", flush=True)
        t = time.perf_counter()
        result = fn(*args, **kwargs)
        dt = time.perf_counter() - t
        status = result if isinstance(result, str) else "done"
        print(f"== {name}: {status} in {dt:.1f} s", flush=True)
        self._record({"step": name, "seconds": round(dt, 1), "status": status})
        return result

    def _record(self, timing: dict):
        self.timings.append(timing)
        self.file.parent.mkdir(parents=True, exist_ok=True)
        self.file.write_text(json.dumps(self.timings, indent=1))

    @property
    def total(self) -> float:
        return sum(t["seconds"] or 0 for t in self.timings)


def _cli(main, argv: list[str]) -> str:
    """Run an export/runtime CLI in-process; its exit code becomes the step's status."""
    print("   $ python -m", main.__module__, " ".join(argv), flush=True)
    code = main(argv) or 0
    if code == 2:
        raise UserError(f"demo: `{main.__module__} {' '.join(argv)}` refused its input (see above)")
    return "done" if code == 0 else "FAILED (parity/accuracy gate, see above)"


def _export_student(ckpt: Path, base: Path, data: Path) -> str:
    """One student to ONNX FP32, ONNX INT8 and OpenVINO FP32/FP16/INT8, each through its CLI and checks."""
    from export import onnx as export_onnx
    from export import openvino as export_openvino
    from export import quantize as export_quantize

    onnx = Path(str(base) + lookup("onnx", "fp32").suffix)
    gate = ["--data-root", str(data), "--keep-failed"]  # a model that fails stays visible as *.FAILED.*
    status = [_cli(export_onnx.main, [str(ckpt), "-o", str(onnx)]),
              _cli(export_quantize.main, [str(onnx), *gate]),
              _cli(export_openvino.main, [str(onnx), "--precision", "fp32", *gate]),
              _cli(export_openvino.main, [str(onnx), "--precision", "fp16", *gate]),
              _cli(export_openvino.main, [str(onnx), "--precision", "int8", *gate])]
    failed = [s for s in status if s != "done"]
    return failed[0] if failed else "done"


def _train(steps: Steps, out: Path, data: Path, teacher_cfg, student_overrides, student_iters) -> dict[str, Path]:
    """Steps 1-3: the data, the teacher, the plain and BRD students. Returns {method: model.pt}."""
    from benchmarks.gain.runs import train_one
    from distill.checkpoint import run_model
    from distill.data import build_dataset
    from distill.engine import train

    def make_data():
        for split, kw in (("train", teacher_cfg.data.kwargs), ("val", teacher_cfg.data.val_kwargs)):
            ds = build_dataset("synthetic", data, split, **kw)
            print(f"   synthetic/{split}: {len(ds)} images {kw.get('size')}")

    teacher = run_model(out / "teacher")
    steps("1. generate synthetic street data", [data / "synthetic_train.json", data / "synthetic_val.json"], make_data)
    steps(f"2. train the teacher ({teacher_cfg.model.arch}, {teacher_cfg.train.iters} iters)", [teacher], train, teacher_cfg)
    students = {}
    for method in ("plain", "brd"):
        run_dir = out / "runs" / f"{method}_s0"
        students[method] = run_model(run_dir)
        steps(f"3. train the {method} student ({student_iters} iters)", [students[method]], train_one, method, 0,
              out / "runs", overrides=student_overrides, teacher=teacher)
    return students


def _deploy(steps: Steps, out: Path, data: Path, models: Path, students: dict[str, Path]) -> None:
    """Steps 4-5: export both students, score the BRD one's files, and run the runtime loop on a street video."""
    from runtime import run as runtime_run

    for method in ("plain", "brd"):
        base = models / f"{STUDENT_PAIR}_{method}"
        outputs = [(Path(str(base) + s), Path(f"{base}{s[:-len(Path(s).suffix)]}.FAILED{Path(s).suffix}"))
                   for s in DEMO_SUFFIXES]
        steps(f"4. export the {method} student (ONNX, ONNX INT8, OpenVINO FP32/FP16/INT8)", outputs, _export_student,
              students[method], base, data)
    scores = out / "scores"
    steps("4c. score the BRD student's exported models on the val split (distill.evaluate --model)",
          [scores / "scores.json"], score_exports, models / f"{STUDENT_PAIR}_brd", data, scores)

    video = out / "street.mp4"
    overlay = out / "overlay.mp4"
    steps("5a. generate a street video", [video], street_video, video)
    # the BRD student in OpenVINO INT8, or FP32 where INT8 failed its checks (a failed model is never deployed)
    int8_ir, fp32_ir = (models / (f"{STUDENT_PAIR}_brd" + lookup("openvino", p).suffix) for p in ("int8", "fp32"))
    live = next((m for m in (int8_ir, fp32_ir) if m.exists()), int8_ir)
    steps(f"5b. runtime loop: BRD student ({live.name}) on the video -> overlay video", [overlay], _cli,
          runtime_run.main, ["--model", str(live), "--source", str(video),
                             "--sink", str(overlay), "-o", str(out / "runtime_stats.json")])


def run_demo(out: Path, teacher_iters: int | None = None, student_iters: int | None = None,
             overrides: list[str] = (), bench_iters: int = 30) -> Path:
    """`overrides` (key=value) go to every training config, e.g. smaller data for a quick check."""
    from benchmarks.gain.protocol import run_distill_gain
    from benchmarks.speed.no_added_cost import run_no_added_cost
    from distill.checkpoint import run_model
    from distill.config import load_config

    t_start = time.perf_counter()
    out = check_folder(Path(out), what="--out-dir")  # before any work: writable, with some free space
    data = out / "data"
    models = out / "models"
    steps = Steps(out)
    common = [f"data.root={data}", *overrides]
    teacher_cfg = load_config("configs/synthetic_teacher.yaml", common + [f"out_dir={out / 'teacher'}"]
                              + [f"train.iters={teacher_iters or DEMO_TEACHER_ITERS}"])
    teacher = run_model(out / "teacher")
    student_overrides = common + ([f"train.iters={student_iters}"] if student_iters else [])
    student_iters = load_config("configs/synthetic.yaml", student_overrides).train.iters
    students = _train(steps, out, data, teacher_cfg, student_overrides, student_iters)
    _deploy(steps, out, data, models, students)
    nac = out / "no_added_cost"
    steps("6. benchmark: no added inference cost", [nac / "table.md"], run_no_added_cost,
          [(STUDENT_PAIR, students["plain"], students["brd"])], nac, teacher=teacher, data_root=str(data),
          iters=bench_iters, warmup=5, rounds=3, models_dir=models)
    gain = out / "distill_gain"
    steps("7. benchmark: what BRD buys (plain vs BRD, 1 seed, no tuning)", [gain / "synthetic.md"], run_distill_gain,
          ["plain", "brd"], [0], gain, runs_dir=out / "runs", overrides=student_overrides, teacher_ckpt=teacher,
          tune=False)
    report = write_report(out, steps.timings, steps.total)
    print(f"\nreport: {report}   (this run {(time.perf_counter() - t_start) / 60:.1f} min; "
          f"all steps when first run {steps.total / 60:.1f} min)")
    return report


# the exported files the demo scores, FP32 next to INT8: (format, precision) rows of the FORMATS table
SCORED = (("onnx", "fp32"), ("onnx", "int8"), ("openvino", "fp32"), ("openvino", "int8"))


def score_exports(base: Path, data: Path, scores: Path) -> str:
    """Score each published export of `base` (FP32 and INT8, ONNX and OpenVINO) on the synthetic val split
    with `distill.evaluate --model`, the command a user runs on a deployed file; scores/scores.json."""
    from distill import evaluate
    from distill.data.synthetic import generated_settings

    scores.mkdir(parents=True, exist_ok=True)
    settings = generated_settings(data, "val")
    rows = []
    for fmt, precision in SCORED:
        model = Path(str(base) + lookup(fmt, precision).suffix)
        if not model.exists():  # failed its checks (kept as *.FAILED.*, never scored as if deployed)
            rows.append({"model": model.name, "format": fmt, "precision": precision, "published": False})
            continue
        result = scores / f"{model.name}.json"
        argv = ["--model", str(model), "--dataset", "synthetic", "--root", str(data), "--split", "val",
                "--data-kwargs", json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()}),
                "-o", str(result)]
        print("   $ python -m distill.evaluate", " ".join(argv), flush=True)
        r = evaluate.main(argv)
        rows.append({"model": model.name, "format": fmt, "precision": precision, "published": True,
                     "runs_as": r["settings"]["precision"], "images": r["num_images"], "mIoU": r["mIoU"],
                     "boundary_f1": r["boundary_f1"], "split_rate": r["split_rate"]})
    (scores / "scores.json").write_text(json.dumps(rows, indent=1))
    return "done"


def scores_table(out: Path) -> str:
    """FP32 and INT8 side by side, per format, from scores/scores.json (percent)."""
    from ..report import markdown_table

    path = out / "scores" / "scores.json"
    if not path.exists():
        return "(no scores)\n"
    rows = json.loads(path.read_text())
    pct = lambda r, k: round(100 * r[k], 2) if r.get("published") and r.get(k) is not None else None  # noqa: E731
    table = []
    for fmt in dict.fromkeys(r["format"] for r in rows):
        by = {r["precision"]: r for r in rows if r["format"] == fmt}
        f, q = by.get("fp32", {}), by.get("int8", {})
        table.append({"format": fmt, "FP32 file": f.get("model"), "INT8 file": q.get("model") if q.get("published")
                      else f"{q.get('model')} (failed its checks: not published)",
                      "runs as": f"{f.get('runs_as')} / {q.get('runs_as')}",
                      "mIoU FP32": pct(f, "mIoU"), "mIoU INT8": pct(q, "mIoU"),
                      "bF1 FP32": pct(f, "boundary_f1"), "bF1 INT8": pct(q, "boundary_f1"),
                      "split rate FP32": pct(f, "split_rate"), "split rate INT8": pct(q, "split_rate")})
    return markdown_table(table)


def write_report(out: Path, timings: list[dict], total: float) -> Path:
    from ..report import markdown_table

    stats = json.loads((out / "runtime_stats.json").read_text()) if (out / "runtime_stats.json").exists() else {}
    if stats:
        b, f = stats["backend"], stats["frames"]
        runtime = (f"{b['model']} on {b['backend']} {b['device']} ({b['precision']}): {f['processed']} frames "
                   f"({f['skipped']} skipped) at {stats['fps']:.0f} FPS.\n\n" + markdown_table(
                       [{"stage": k, **{q: round(v[q], 2) for q in ("p50", "p90", "p99")}}
                        for k, v in stats["latency_ms"].items()]))
    else:
        runtime = "(no runtime stats)\n"
    parts = [
        "# BRD Edge demo report", "",
        "Built-in synthetic street data, small teacher (DeepLabV3-ResNet18 at half width, trained a quarter of "
        "the benchmark's length) and students (DeepLabV3-ResNet10 at eighth width), trained on a CPU. One seed, no "
        "tuning: differences of a point or two are within seed noise. `python -m benchmarks.gain` runs the "
        "full protocol (tuned KD/CWD/SKD/ablation baselines, 5 seeds, paired intervals); its committed result is "
        "docs/results/synthetic.md.", "",
        "## What BRD buys (benchmarks.gain)", "",
        _read(out / "distill_gain" / "synthetic.md", strip_title=True),
        "## The deployed files, scored (distill.evaluate --model)", "",
        "The BRD student's exported files as a device runs them (the runtime's backends, OpenVINO at the precision "
        "its checks ran at), scored on the labelled val split at native resolution: FP32 and INT8 side by side "
        "(percent; per-class tables in [scores/](scores)).", "",
        scores_table(out),
        "## No added inference cost (benchmarks.speed.no_added_cost)", "",
        _read(out / "no_added_cost" / "table.md", strip_title=True),
        "![latency](no_added_cost/latency.png)", "",
        "## Runtime loop on the street video", "",
        "Overlay video: [overlay.mp4](overlay.mp4) (from [street.mp4](street.mp4)); full stats in "
        "[runtime_stats.json](runtime_stats.json).", "",
        runtime, "Stage latencies in ms; `total` is a frame's time from capture to sink, with the stages of "
        "neighbouring frames overlapping.", "",
        "## Steps", "", markdown_table(timings), f"Sum of the steps' wall times: {total / 60:.1f} min", "",
    ]
    path = out / "report.md"
    path.write_text("\n".join(parts))
    return path


def _read(path: Path, strip_title=False) -> str:
    """A sub-report's Markdown, with its title dropped and its relative links made relative to the demo folder."""
    import re

    if not path.exists():
        return f"({path} missing)\n"
    lines = path.read_text().splitlines()
    if strip_title and lines and lines[0].startswith("# "):
        lines = lines[1:]
    text = "\n".join(lines) + "\n"
    return re.sub(r"\]\((?![a-z]+:|/)([^)]+)\)", lambda m: f"]({path.parent.name}/{m.group(1)})", text)


@command
def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m benchmarks.demo", description=__doc__, examples=(
        "python -m benchmarks.demo",
        "python -m benchmarks.demo --out-dir runs/demo2 --teacher-iters 100 --student-iters 50",
        "python -m benchmarks.demo --set data.kwargs.num_images=40 --set data.val_kwargs.num_images=10"))
    p.add_argument("--out-dir", default="runs/demo", help="folder for everything the demo writes (default runs/demo)")
    p.add_argument("--teacher-iters", type=positive_int, help=f"teacher iterations (default {DEMO_TEACHER_ITERS})")
    p.add_argument("--student-iters", type=positive_int, help="student iterations (default: configs/synthetic.yaml's)")
    add_overrides(p)
    args = p.parse_args(argv)
    run_demo(Path(args.out_dir), args.teacher_iters, args.student_iters, args.overrides)
    return 0


if __name__ == "__main__":
    sys.exit(main())
