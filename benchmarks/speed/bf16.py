"""A checked bf16: what `export.openvino --compute bf16` costs in accuracy and buys in speed, against the same IR
checked and run at f32: `python -m benchmarks.speed.bf16`.

For each model (`--models`):
  shipped      the CamVid student that ships (models/camvid_lite/brd.pt, 360x480), gated on CamVid val
               (`--camvid-root`, all of its frames);
  a .pt path   a student checkpoint, gated on `--data-root` (its own dataset) when given;
  an arch      a registered network (`lraspp_mobilenetv2`, the 512x1024 student of benchmarks.speed and the loop)
               with seeded random weights at `--size`: speed only. Without trained weights and the data they
               were trained on there is no accuracy to gate; its bf16 IR is compared with its f32 IR by parity
               only (argmax agreement on synthetic images) and is named student.unchecked.bf16.xml.
A checkpoint is exported twice with the real CLI: `python -m export.openvino` (f32, what the runtime runs today)
and `... --compute bf16` (parity and the accuracy gate at bf16; --keep-failed, so a failed gate is still reported
and timed). Both IRs are then timed with `runtime.bench` in alternating order over `--repeats` repeats, the f32
IR at its checked f32 and the bf16 IR at bf16 (`--precision-hint bf16`, its checked precision, so the figure is
bf16's whatever this CPU has), and with OpenVINO's `benchmark_app` at the same precisions as a cross-check.

The report says whether this CPU has native bf16 (OpenVINO's CPU OPTIMIZATION_CAPABILITIES holds BF16: AVX512-BF16
or AMX). Where it does not, OpenVINO still compiles an IR at bf16 but runs part of the graph in emulated bf16:
the accuracy numbers are bf16's rounding, the bf16 timings are NOT those of a bf16 CPU, and the runtime runs the
bf16-checked IR at f32 there (the `runtime default here` column). Writes `<out-dir>/bf16.md` and `bf16.csv`.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from runtime.contract import (ArgumentParser, DataError, check_folder, command, make_folder, non_negative_int,
                              positive_int, size)

from ..report import markdown_table, provenance, write_csv

DEFAULT_MODELS = ("shipped", "lraspp_mobilenetv2")
CAMVID = Path(__file__).resolve().parents[3] / "shared" / "camvid"  # ../shared/camvid beside the checkout
# the report's two tables (the CSV has every column)
ACCURACY = ["model", "input", "IR", "compute", "checked by", "mIoU", "mIoU drop", "bF1 drop", "parity agreement %",
            "parity vs"]
SPEED = ["model", "input", "compute", "p50 ms", "p50 min-max", "FPS", "CPU ms/call", "benchmark_app p50 ms",
         "f32/bf16 speed-up", "runtime default here", "threads", "repeats"]
PARITY_IMAGES = 8  # synthetic images the parity-only comparison of a random-weight model runs on


def native_bf16() -> dict:
    """The CPU as OpenVINO sees it: its OPTIMIZATION_CAPABILITIES, whether they hold BF16, what the CPU plugin
    computes in by default, and the ISA flags that matter (benchmarks.speed's list)."""
    from runtime.formats import require

    from .table import machine

    ov = require("openvino", "openvino", "the bf16 benchmark")
    core = ov.Core()
    caps = [str(c) for c in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")]
    default = core.get_property("CPU", "INFERENCE_PRECISION_HINT")
    m = machine()
    return {"cpu": m["cpu"], "cores": m["cores"], "flags": m["flags"], "capabilities": caps, "native": "BF16" in caps,
            "default": default.get_type_name() if hasattr(default, "get_type_name") else str(default),
            "openvino": ov.__version__.split("-")[0]}


def resolve(item: str, camvid_root: Path, data_root) -> dict:
    """What one `--models` item is, checked before any work: its checkpoint (or the arch to build), the data it is
    gated on (None: parity only) and a label."""
    from runtime.shipped import CHECKPOINT, MODELS_DIR

    if item == "shipped":
        ckpt = MODELS_DIR / CHECKPOINT
        if not ckpt.is_file():
            raise DataError(f"{ckpt}: the shipped CamVid student is not in this checkout")
        if not Path(camvid_root).is_dir():
            raise DataError(f"{camvid_root}: CamVid not found (the shipped student is gated on its val split); "
                            "pass --camvid-root DIR")
        return {"name": "camvid-student", "ckpt": ckpt, "data": Path(camvid_root), "label": "shipped CamVid student"}
    if item.endswith((".pt", ".pth", ".ckpt")) or os.sep in item:
        ckpt = Path(item)
        if not ckpt.is_file():
            raise DataError(f"{ckpt}: no such checkpoint")
        return {"name": ckpt.stem, "ckpt": ckpt, "data": Path(data_root) if data_root else None, "label": str(ckpt)}
    from distill.models import list_models

    from .model_cost import parse_arch

    try:
        name, _ = parse_arch(item)
    except ValueError as e:
        raise DataError(f"--models: {e}") from None
    if name not in list_models():
        raise DataError(f"--models: {item!r} is neither 'shipped', a checkpoint (.pt) nor a registered architecture "
                        f"({', '.join(list_models())})")
    return {"name": item.replace(":", "-").replace("=", "_").replace(",", "-"), "arch": item, "data": None,
            "label": f"{item} (random weights)"}


def export_gated(model: dict, d: Path, report=print) -> dict:
    """The checkpoint through the real CLI: f32 IR, then the IR checked at bf16 (parity and gate at bf16; a failed
    one kept as *.FAILED.xml so that it is reported). Returns the two IRs and what their records say."""
    data = ["--data-root", str(model["data"])] if model["data"] else []
    f32 = d / "student.xml"
    _export([str(model["ckpt"]), "-o", str(f32), *data])
    bf16 = d / "student.bf16.xml"
    report(f"{model['label']}: exporting at --compute bf16 (parity and the accuracy gate at bf16)")
    code = _export([str(model["ckpt"]), "--compute", "bf16", "-o", str(bf16), *data, "--keep-failed"], ok=(0, 1))
    if code == 1:
        bf16 = bf16.with_name("student.bf16.FAILED.xml")
    gate = json.loads(Path(str(bf16) + ".gate.json").read_text()) if Path(str(bf16) + ".gate.json").exists() else {}
    parity = {k: json.loads(Path(str(p) + ".parity.json").read_text()) for k, p in (("f32", f32), ("bf16", bf16))}
    return {"f32": f32, "bf16": bf16, "gate": gate, "parity": parity, "passed": code == 0}


def _export(args, ok=(0,)) -> int:
    r = subprocess.run([sys.executable, "-m", "export.openvino", *args], capture_output=True, text=True,
                       errors="replace")
    if r.returncode not in ok:
        errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
        if r.returncode == 2 and errors:
            raise DataError(errors[-1][len("error: "):])
        raise RuntimeError(f"export.openvino {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()[-800:]}")
    return r.returncode


def export_random(model: dict, d: Path, shape) -> dict:
    """A random-weight network (benchmarks.speed's checkpoint): its f32 IR and an unchecked IR recorded at bf16,
    compared by parity only (the bf16 IR at bf16 against the f32 IR at f32, on synthetic images)."""
    from export.data import synthetic_images
    from export.onnx import torch_to_onnx
    from export.openvino import onnx_to_openvino
    from export.parity import check_parity, openvino_runner

    from .table import write_checkpoint

    ckpt = write_checkpoint(model["arch"], shape, d / "student.pt")
    onnx_path = torch_to_onnx(ckpt, d / "student.unchecked.onnx")
    f32 = onnx_to_openvino(onnx_path, d / "student.unchecked.xml")
    bf16 = onnx_to_openvino(onnx_path, d / "student.unchecked.bf16.xml", compute="bf16")
    images = synthetic_images(PARITY_IMAGES, shape, seed=1)
    parity = check_parity(bf16, "fp32", openvino_runner(f32), "the f32 IR at f32", images, "synthetic")
    return {"f32": f32, "bf16": bf16, "gate": {}, "parity": {"bf16": parity}, "passed": None}


def time_both(files: dict, repeats: int, iters: int, warmup: int, threads, app_seconds: int, report=print) -> dict:
    """{compute: [per repeat: runtime.bench (+ benchmark_app) figures]}, the two IRs in alternating order."""
    from .clis import benchmark_app

    runs = {"f32": [], "bf16": []}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(repeats):
            for compute in (("f32", "bf16") if rep % 2 == 0 else ("bf16", "f32")):
                r = runtime_bench(files[compute], compute, iters, warmup, threads, Path(tmp))
                if app_seconds:
                    app = benchmark_app(files[compute], app_seconds, threads or os.cpu_count(), r["shape"][2:],
                                        precision=compute)
                    if app:
                        r.update(app_p50_ms=app["p50_ms"], app_fps=app["fps"], app_compute=app["compute"])
                runs[compute].append(r)
            report(f"  repeat {rep + 1}/{repeats}: f32 {runs['f32'][-1]['p50_ms']:.1f} ms, "
                   f"bf16 {runs['bf16'][-1]['p50_ms']:.1f} ms (p50)")
    return runs


def runtime_bench(xml: Path, compute: str, iters: int, warmup: int, threads, tmp: Path) -> dict:
    """runtime.bench on `xml` computing in `compute` (the f32 IR at its default, the bf16 one asked for bf16)."""
    from .clis import compute_precision, run_cli

    out = tmp / "bench.json"
    run_cli([sys.executable, "-m", "runtime.bench", "--model", str(xml), "--iters", str(iters), "--warmup",
             str(warmup), *(["--threads", str(threads)] if threads else []),
             *(["--precision-hint", "bf16"] if compute == "bf16" else []), "-o", str(out)])
    r = json.loads(out.read_text())
    ran = compute_precision(r["precision"])
    if ran != compute:
        raise RuntimeError(f"{xml}: runtime.bench computed in {ran}, not {compute}")
    return {"p50_ms": r["latency_ms"]["p50"], "fps": r["throughput_fps"], "cpu_ms": r["cpu_ms_per_iter"],
            "shape": r["shape"], "threads": r["threads"]}


def rows_for(model: dict, files: dict, runs: dict, cpu: dict) -> list[dict]:
    """The model's two report rows, f32 and bf16."""
    from runtime.backends.openvino import run_precision

    gate, rows = files["gate"], []
    med = {c: statistics.median(r["p50_ms"] for r in runs[c]) for c in runs}
    for compute in ("f32", "bf16"):
        rs, parity = runs[compute], files["parity"].get(compute) or {}
        app = [r["app_p50_ms"] for r in rs if "app_p50_ms" in r]
        row = {"model": model["label"], "input": "x".join(map(str, rs[0]["shape"][2:])),
               "IR": Path(files[compute]).name, "compute": compute,
               "checked by": _checked_by(model, files, compute),
               "mIoU": gate.get("fp32_miou" if compute == "f32" else "bf16_miou"),
               "mIoU drop": gate.get("drop") if compute == "bf16" else None,
               "bF1 drop": gate.get("boundary_f1_drop") if compute == "bf16" else None,
               "parity agreement %": 100 * parity["argmax_agreement"] if "argmax_agreement" in parity else None,
               "parity vs": parity.get("reference"),
               "p50 ms": round(med[compute], 2),
               "p50 min-max": f"{min(r['p50_ms'] for r in rs):.1f}-{max(r['p50_ms'] for r in rs):.1f}",
               "FPS": round(statistics.median(r["fps"] for r in rs), 1),
               "CPU ms/call": round(statistics.median(r["cpu_ms"] for r in rs), 1),
               "benchmark_app p50 ms": round(statistics.median(app), 2) if app else None,
               "f32/bf16 speed-up": round(med["f32"] / med["bf16"], 2) if compute == "bf16" else None,
               "runtime default here": run_precision(compute, cpu["capabilities"]),
               "threads": rs[0]["threads"], "repeats": len(rs)}
        rows.append(row)
    return rows


def _checked_by(model, files, compute) -> str:
    gate = files["gate"]
    if compute == "f32":
        return "parity (f32)" + (f"; the gate's FP32 side, {gate['images']} val images" if gate else "")
    if gate:
        return f"gate at bf16, {gate['images']} val images: {'passed' if files['passed'] else 'FAILED'}"
    if model.get("arch"):
        return "parity only (random weights: no gate)"
    return "gate did not run (parity failed first)" if files["passed"] is False else "parity only"


def write_report(rows: list[dict], cpu: dict, out: Path, argv) -> Path:
    native = cpu["native"]
    flags = ", ".join(cpu["flags"]) or "none"
    text = [
        "# A checked bf16: `export.openvino --compute bf16`",
        "",
        "Each model's f32 IR (checked and run at f32, what the runtime runs today) against the same weights exported "
        "with `--compute bf16` (parity and the accuracy gate run the IR compiled at bf16; the IR records bf16). "
        "Accuracy: the gate's FP32 IR at f32 vs the IR at bf16 on the whole val split (mIoU and boundary F1, "
        "points); parity: argmax agreement with the reference named. Speed: `runtime.bench`, batch 1, p50 over each "
        "repeat's calls, median over the repeats (the two IRs alternate), the f32 IR at f32, the bf16 IR at bf16 "
        "(`--precision-hint bf16`, its checked precision); `benchmark_app` at the same precision beside it.",
        "",
        f"Machine: {cpu['cpu']}, {cpu['cores']} cores; ISA flags: {flags}; OpenVINO {cpu['openvino']} CPU "
        f"capabilities: {', '.join(cpu['capabilities'])}; its default compute precision: {cpu['default']}. "
        f"**Native bf16: {'yes' if native else 'no'}.**",
        "",
    ]
    if not native:
        text += ["**This CPU has no native bf16** (no AVX512-BF16 or AMX; no BF16 in OpenVINO's capabilities). "
                 "OpenVINO still compiles the IR at bf16 here (the compiled model reports bf16 and runs part of the "
                 "graph in emulated bf16), so the accuracy columns are bf16's rounding, but the bf16 timings are "
                 "*not* what a CPU with native bf16 gives (emulation is slower than f32). The runtime itself runs "
                 "a bf16-checked IR at f32 on such a CPU (`runtime default here`). Re-run this on a CPU with "
                 "AVX512-BF16 or AMX (Sapphire Rapids or later) for the speed.", ""]
    text += ["## Accuracy", "", markdown_table(rows, ACCURACY), "## Speed", "",
             "p50 in ms; FPS = runtime.bench's throughput; CPU ms/call = the process's CPU time per call (every "
             "thread); speed-up = f32 p50 / bf16 p50.", "", markdown_table(rows, SPEED),
             provenance("benchmarks.speed.bf16", argv), ""]
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out / "bf16.csv")
    path = out / "bf16.md"
    path.write_text("\n".join(text))
    return path


def measure(args, models, cpu, report=print) -> list[dict]:
    rows = []
    for model in models:
        d = make_folder(args.work_dir / model["name"])  # removed again if the command fails while it is empty
        report(f"{model['label']}: exporting f32 and bf16 IRs into {d}")
        files = export_random(model, d, args.size) if model.get("arch") else export_gated(model, d, report)
        report(f"{model['label']}: timing {args.repeats} repeats of {args.iters} calls each")
        runs = time_both(files, args.repeats, args.iters, args.warmup, args.threads, args.app_seconds, report)
        rows += rows_for(model, files, runs, cpu)
        report(markdown_table(rows[-2:], ACCURACY[:1] + ACCURACY[3:] + SPEED[3:6]))
    return rows


@command
def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m benchmarks.speed.bf16", description=__doc__.split("\n\n")[0], examples=(
        "python -m benchmarks.speed.bf16",
        "python -m benchmarks.speed.bf16 --models shipped lraspp_mobilenetv3_large --repeats 7",
        "python -m benchmarks.speed.bf16 --models runs/cityscapes/best.pt --data-root data/cityscapes"))
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), metavar="MODEL",
                   help="'shipped' (the CamVid student, gated on --camvid-root), a student checkpoint (.pt, gated on "
                        "--data-root when given) or a registered architecture (random weights at --size, speed and "
                        "parity only); default: shipped lraspp_mobilenetv2")
    p.add_argument("--camvid-root", type=Path, default=CAMVID, help=f"CamVid, for the shipped student (default {CAMVID})")
    p.add_argument("--data-root", type=Path, default=None,
                   help="the dataset a .pt model was trained on, for its accuracy gate (its dataset name from the "
                        "checkpoint)")
    p.add_argument("--size", type=size, default=(512, 1024), metavar="HxW",
                   help="input HxW of a random-weight architecture (default 512x1024)")
    p.add_argument("--repeats", type=positive_int, default=5, help="timing repeats, f32 and bf16 alternating (default 5)")
    p.add_argument("--iters", type=positive_int, default=50, help="runtime.bench calls per repeat (default 50)")
    p.add_argument("--warmup", type=non_negative_int, default=10, help="untimed calls first in each (default 10)")
    p.add_argument("--threads", type=positive_int, default=None, help="inference threads (default: the runtime's)")
    p.add_argument("--app-seconds", type=non_negative_int, default=5,
                   help="seconds of benchmark_app per IR and repeat (default 5; 0: not run)")
    p.add_argument("--work-dir", type=Path, default=Path("runs/bf16"), help="the IRs and their records (kept)")
    p.add_argument("--out-dir", type=Path, default=Path("docs/results"), help="where bf16.md and bf16.csv go")
    args = p.parse_args(argv)
    models = [resolve(m, args.camvid_root, args.data_root) for m in args.models]  # before any work
    if args.data_root is not None and not args.data_root.is_dir():
        raise DataError(f"{args.data_root}: --data-root is not a folder")
    check_folder(args.work_dir, 0, "--work-dir")
    check_folder(args.out_dir, 0, "--out-dir")
    cpu = native_bf16()
    native = "yes" if cpu["native"] else "NO (bf16 is emulated here: its bf16 timings are not a bf16 CPU's)"
    print(f"{cpu['cpu']}: native bf16 {native}; OpenVINO CPU capabilities {', '.join(cpu['capabilities'])}", flush=True)
    rows = measure(args, models, cpu)
    path = write_report(rows, cpu, args.out_dir, argv)
    print(f"wrote {path} and {path.with_suffix('.csv')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
