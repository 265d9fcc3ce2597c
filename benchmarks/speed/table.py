"""Inference speed of students at real size on every backend present: `python -m benchmarks.speed`.

For each network (a registry name with its arguments, e.g. `deeplabv3_resnet18:stem=v1s`, the Cityscapes
student; the report names each by registry name, stem and parameter count): a checkpoint with seeded random weights (speed does not depend on the values),
exported with our own commands' functions (ONNX; ONNX Runtime Q/DQ INT8 for the `ort` target; OpenVINO
IR f32/fp16/INT8 through NNCF; TensorRT FP16/INT8 where tensorrt and a GPU are present). Then every
backend's model is opened at once and timed *interleaved*: each round runs each backend once, in an
order that rotates from round to round, so a slow minute of the machine hits every column alike.
Batch 1, one fixed input, p50 over the rounds after warm-up.

Backends (`--backends`):
  torch       PyTorch eager, fp32, torch.inference_mode, --threads intra-op threads
  ort-fp32    ONNX Runtime CPUExecutionProvider, default session options, --threads threads
  ort-int8    the same session on the Q/DQ INT8 model (export.quantize --target ort)
  ort-int8-trt  the same session on the TensorRT-form Q/DQ INT8 model (--target trt): what ONNX Runtime
              made of our INT8 before the targets were split (docs/int8.md)
  ov-f32      OpenVINO CPU, FP32 IR, f32 compute
  ov-bf16     OpenVINO CPU, FP32 IR, bf16 compute (the CPU plugin's default where the CPU has bf16)
  ov-fp16     OpenVINO CPU, FP16-compressed IR, at the compute precision recorded in the IR (f32: what its
              checks ran at and what the runtime runs by default)
  ov-int8     OpenVINO CPU, NNCF INT8 IR, at the recorded compute precision (f32) likewise
  trt-fp16    TensorRT FP16 engine (skipped without tensorrt and a GPU)
  trt-int8    TensorRT INT8 engine from symmetric Q/DQ (export.quantize --target trt)

Writes `<out>/<name>.md` and `.csv` (`--name`, default speed) with the machine (CPU model, cores, ISA flags that matter
for INT8/bf16) and the backend versions; the model files stay in --work-dir for reuse. They are timing
copies (random weights, no parity check, no gate; INT8 records "gate": null) and their names say so:
<work-dir>/<network>/student.unchecked<suffix>.
"""
from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from runtime.contract import ArgumentParser, check_folder, command, non_negative_float, positive_int, size
from runtime.formats import default_output

from ..report import markdown_table, provenance, write_csv

# deeplabv3_resnet18:stem=v1s is the Cityscapes student (CIRKD's, 13.6M parameters); with the default stem (v1c) the
# same name is mmseg's 18.1M network, so the stem is always named
DEFAULT_ARCHS = ("lraspp_mobilenetv2", "deeplabv3_mobilenetv2", "deeplabv3_resnet18:stem=v1s", "lraspp_mobilenetv3_large")
BACKENDS = ("torch", "ort-fp32", "ort-int8", "ort-int8-trt", "ov-f32", "ov-bf16", "ov-fp16", "ov-int8", "trt-fp16", "trt-int8")
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_fp16")
NUM_CLASSES = 19  # Cityscapes
MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


def write_checkpoint(arch: str, size, path: Path, seed: int = 0) -> Path:
    """Seeded random weights with populated BatchNorm statistics (eval BN is then not an identity).
    `arch`: a registry name with its arguments (model_cost.parse_arch)."""
    import torch

    from distill import checkpoint
    from distill.data import DATASETS
    from distill.models import build_model

    from .model_cost import parse_arch

    name, kwargs = parse_arch(arch)
    info = DATASETS["cityscapes"]
    torch.manual_seed(seed)
    model = build_model(name, info.num_classes, **kwargs).train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(2, 3, 128, 256))
    meta = checkpoint.make_meta(name, kwargs, info.num_classes, list(info.classes), [list(c) for c in info.palette],
                                MEAN, STD, list(size), "cityscapes")
    checkpoint.save(path, model.eval(), meta)
    return path


def build_files(arch: str, size, work: Path, backends, calib: int) -> dict:
    """The model file of every backend that needs one (reused when already in `work`)."""
    from export.data import synthetic_images

    d = work / arch.replace(":", "-").replace("=", "_").replace(",", "-")
    d.mkdir(parents=True, exist_ok=True)
    ckpt, onnx_path = d / "student.pt", d / "student.unchecked.onnx"  # timing copies: the name says so
    if not ckpt.exists():
        write_checkpoint(arch, size, ckpt)
    files = {"torch": ckpt}
    if not onnx_path.exists():
        from export.onnx import torch_to_onnx
        torch_to_onnx(ckpt, onnx_path)
    images = synthetic_images(calib, size, seed=1)
    files["ort-fp32"] = onnx_path
    int8_onnx = default_output(onnx_path, "onnx", "int8")  # file names from the FORMATS table
    if "ort-int8" in backends:
        files["ort-int8"] = _once(int8_onnx, lambda out: _ort_int8(onnx_path, out, images, "ort"))
    if "ort-int8-trt" in backends:  # the same row of the table, quantised for the other target
        files["ort-int8-trt"] = _once(int8_onnx.with_name(int8_onnx.name.replace(".int8.", ".int8-trt.")),
                                      lambda out: _ort_int8(onnx_path, out, images, "trt"))
    for name, precision in (("ov-f32", "fp32"), ("ov-bf16", "fp32"), ("ov-fp16", "fp16"), ("ov-int8", "int8")):
        if name in backends:
            files[name] = _once(default_output(onnx_path, "openvino", precision),
                                lambda out, p=precision: _openvino(onnx_path, out, p, images))
    for name, precision in (("trt-fp16", "fp16"), ("trt-int8", "int8")):
        if name in backends and tensorrt_ready():
            files[name] = _once(default_output(onnx_path, "tensorrt", precision),
                                lambda out, q=precision == "int8": _trt(onnx_path, out, q, images))
    return files


def _once(path: Path, make) -> Path:
    if not path.exists():
        make(path)
    return path


def _ort_int8(src, out, images, target):
    from export.quantize import quantize_onnx_int8
    return quantize_onnx_int8(src, out, images, target=target)


def _openvino(src, out, precision, images):
    from export.openvino import onnx_to_openvino
    return onnx_to_openvino(src, out, precision, calib_images=images if precision == "int8" else None)


def _trt(src, out, int8, images):
    from export.trt import onnx_to_trt
    return onnx_to_trt(src, out, fp16=True, int8=int8, calib_images=images if int8 else None)


def tensorrt_ready() -> bool:
    try:
        import tensorrt  # noqa: F401
        import pycuda.driver as cuda
        cuda.init()
        return cuda.Device.count() > 0
    except Exception:  # not installed, or no GPU/driver: the TensorRT columns are skipped
        return False


def runner(name: str, path: Path, threads: int):
    """A function x -> output for one backend, plus a description of what runs."""
    if name == "torch":
        import torch

        from distill import checkpoint

        torch.set_num_threads(threads)
        model, _ = checkpoint.load(path)
        model.eval()

        def run(x):
            with torch.inference_mode():
                return model(torch.from_numpy(x)).numpy()
        return run, f"torch {torch.__version__.split('+')[0]}"
    if name.startswith("ort"):
        from runtime.backends.onnxruntime import OnnxRuntimeBackend
        backend = OnnxRuntimeBackend(path, device="cpu", threads=threads)
    elif name.startswith("ov"):
        from runtime.backends.openvino import OpenVINOBackend
        compute = {"ov-f32": "f32", "ov-bf16": "bf16"}.get(name)
        backend = OpenVINOBackend(path, device="cpu", threads=threads, inference_precision=compute)
    else:
        from runtime.backends.tensorrt import TensorRTBackend
        backend = TensorRTBackend(path)
    return backend.infer, f"{backend.name} {backend.precision}"


def ort_conv_fusion(path: Path) -> str:
    """'k/n': how many of the model's n convolutions ONNX Runtime runs as QLinearConv (int8)."""
    from export.quantize import ort_int8_graph

    g = ort_int8_graph(path)
    return f"{g['int8_convs']}/{g['int8_convs'] + g['float_convs']}"


def time_interleaved(runners: dict, x: np.ndarray, rounds: int, warmup: int, pause: float = 0.0) -> dict:
    """{name: [seconds per call]}: each round calls every runner once, in an order rotated per round.
    `pause` seconds of sleep before each timed call: the worker threads of the previous runtime (OpenMP,
    ONNX Runtime, TBB) spin for a while after their call and would otherwise share the cores with it."""
    names = list(runners)
    for _ in range(warmup):
        for n in names:
            runners[n](x)
    times = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            if pause:
                time.sleep(pause)
            t0 = time.perf_counter()
            runners[n](x)
            times[n].append(time.perf_counter() - t0)
    return times


def model_cost(arch: str, size) -> tuple[float, dict]:
    """(GMACs at `size`, model_cost.network: registry name, stem, parameters) of the network as exported
    (eval mode, no aux head)."""
    from distill.models import build_model

    from .model_cost import count_macs, network, parse_arch

    name, kwargs = parse_arch(arch)
    model = build_model(name, NUM_CLASSES, **kwargs).eval()
    return count_macs(model, size) / 1e9, network(model)


def machine() -> dict:
    info = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "flags": []}
    try:
        text = open("/proc/cpuinfo").read()
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name"))
        flags = next(line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags"))
        info["flags"] = [f for f in CPU_FLAGS if f in flags]
    except (OSError, StopIteration):
        pass
    if hasattr(os, "sched_getaffinity"):
        info["cores"] = len(os.sched_getaffinity(0))
    return info


def versions() -> dict:
    import importlib.metadata as md

    out = {}
    for dist in ("torch", "onnxruntime", "openvino", "nncf", "tensorrt"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


def measure(archs, backends, size, threads, rounds, warmup, work: Path, calib: int, pause: float = 0.0,
            report=print) -> list[dict]:
    rows = []
    x = np.random.default_rng(0).standard_normal((1, 3, *size)).astype(np.float32)
    for arch in archs:
        report(f"{arch}: building the model files in {work / arch}")
        files = build_files(arch, size, work, backends, calib)
        runners, what = {}, {}
        for name in backends:
            if name in files:
                runners[name], what[name] = runner(name, files[name], threads)
        report(f"{arch}: timing {', '.join(runners)} interleaved, {rounds} rounds after {warmup} warm-up")
        times = time_interleaved(runners, x, rounds, warmup, pause)
        gmacs, net = model_cost(arch, size)
        row = {"arch": net["network"], "stem": net["stem"], "params": net["params"], "GMACs": round(gmacs, 2)}
        for name in BACKENDS:
            if name in times:
                row[f"{name}_ms"] = round(float(np.median(times[name])) * 1000, 1)
                row[f"{name}_p90_ms"] = round(float(np.percentile(times[name], 90)) * 1000, 1)
        for name in ("ort-int8", "ort-int8-trt"):
            if name in files:
                row[f"{name.replace('-', '_')}_convs_fused"] = ort_conv_fusion(files[name])
        rows.append(row)
        report(markdown_table([row]))
    return rows


def speedups(rows: list[dict]) -> list[dict]:
    out = []
    for r in rows:
        def ratio(a, b):
            return round(r[f"{a}_ms"] / r[f"{b}_ms"], 2) if f"{a}_ms" in r and f"{b}_ms" in r else None
        fps = {f"{b} FPS": round(1000.0 / r[f"{b}_ms"], 1) for b in BACKENDS if f"{b}_ms" in r}
        out.append({"arch": r["arch"], "stem": r.get("stem", "-"), "ORT INT8 vs FP32": ratio("ort-fp32", "ort-int8"),
                    "ORT INT8 (trt form) vs FP32": ratio("ort-fp32", "ort-int8-trt"),
                    "OV INT8 vs f32": ratio("ov-f32", "ov-int8"), "OV INT8 vs bf16": ratio("ov-bf16", "ov-int8"),
                    "OV INT8 vs torch": ratio("torch", "ov-int8"), **fps})
    return out


def write_report(rows, asked, size, threads, rounds, warmup, out: Path, argv, pause: float = 0.0,
                 name: str = "speed") -> Path:
    m, v = machine(), versions()
    present = [b for b in BACKENDS if any(f"{b}_ms" in r for r in rows)]
    latency = [{"arch": r["arch"], "stem": r.get("stem", "-"), "params": f"{r['params']:,}" if "params" in r else None,
                "GMACs": r["GMACs"],
                **{b: r.get(f"{b}_ms") for b in present}} for r in rows]
    fused = [{"arch": r["arch"], "stem": r.get("stem", "-"), "ort target": r.get("ort_int8_convs_fused"),
              "trt target": r.get("ort_int8_trt_convs_fused")}
             for r in rows if "ort_int8_convs_fused" in r or "ort_int8_trt_convs_fused" in r]
    skipped = [b for b in asked if b not in present]
    not_asked = [b for b in BACKENDS if b not in asked]
    text = [
        "# Inference speed at real size",
        "",
        f"Input 1x3x{size[0]}x{size[1]}, batch 1, {threads} threads for every backend; p50 latency in ms over "
        f"{rounds} interleaved rounds after {warmup} warm-up rounds (each round runs every backend once, in a "
        f"rotating order, with {pause:g} s of rest before each timed call so that the previous runtime's spinning worker "
        "threads are idle). Students with seeded random weights, exported with this repository's exporters "
        "(ONNX Runtime INT8: `export.quantize --target ort`; OpenVINO INT8: NNCF).",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores; ISA flags: {', '.join(m['flags']) or 'none of ' + ', '.join(CPU_FLAGS)}. "
        f"Versions: {', '.join(f'{k} {val}' for k, val in v.items())}.",
        "",
        "## Latency (ms, p50)",
        "",
        markdown_table(latency),
        "## Speed-ups and FPS",
        "",
        "Speed-up = the slower backend's p50 / the faster one's; FPS = 1000 / p50.",
        "",
        markdown_table(speedups(rows)),
    ]
    if fused:
        text += ["## Why ONNX Runtime INT8 pays now", "",
                 "Convolutions that ONNX Runtime runs in INT8 (QLinearConv) after its graph optimisation, of all "
                 "the model's convolutions, for the two Q/DQ forms `export.quantize` writes (docs/int8.md "
                 "explains why they differ):", "", markdown_table(fused)]
    if skipped:
        text += [f"Skipped: {', '.join(skipped)} (tensorrt, pycuda and a GPU are not all present on this machine).", ""]
    if not_asked:
        text += [f"Not asked: {', '.join(not_asked)}.", ""]
    text += [provenance("benchmarks.speed", argv), ""]
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out / f"{name}.csv")
    path = out / f"{name}.md"
    path.write_text("\n".join(text))
    return path


@command
def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m benchmarks.speed", description=__doc__.split("\n\n")[0], examples=(
        "python -m benchmarks.speed",
        "python -m benchmarks.speed --arch lraspp_mobilenetv3_large --backends ort-fp32 ort-int8 ov-int8 --rounds 50",
        "python -m benchmarks.speed --arch lraspp_efficientnet_lite0 --size 360x480 --name speed_camvid_lite"))
    p.add_argument("--arch", nargs="+", default=list(DEFAULT_ARCHS),
                   help="networks to measure: registered names, with their arguments after a colon "
                        "(deeplabv3_resnet18:stem=v1s)")
    p.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS, metavar="BACKEND",
                   help=f"backends to time (default: all present): {', '.join(BACKENDS)}")
    p.add_argument("--size", type=size, default=(512, 1024), metavar="HxW", help="input HxW (default 512x1024)")
    p.add_argument("--threads", type=positive_int, default=2, help="threads per backend (default 2)")
    p.add_argument("--rounds", type=positive_int, default=20, help="timed interleaved rounds (default 20)")
    p.add_argument("--warmup", type=positive_int, default=3, help="warm-up rounds (default 3)")
    p.add_argument("--pause", type=non_negative_float, default=0.25,
                   help="seconds of rest before each timed call, so the previous runtime's spinning worker "
                        "threads are idle (default 0.25)")
    p.add_argument("--calib", type=positive_int, default=16, help="INT8 calibration images (default 16)")
    p.add_argument("--work-dir", type=Path, default=Path("runs/speed"),
                   help="model files, timing copies named student.unchecked.* (kept for reuse)")
    p.add_argument("--out-dir", type=Path, default=Path("docs/results"), help="where the report goes")
    p.add_argument("--name", default="speed", help="the report's name: <out-dir>/<name>.md and .csv "
                                                                 "(default speed)")
    args = p.parse_args(argv)
    if Path(args.name).name != args.name or args.name in ("", ".", ".."):
        p.error(f"argument --name: {args.name!r} is a file stem (NAME.md, NAME.csv), not a path")
    from distill.models import list_models

    from .model_cost import parse_arch
    try:
        names = [parse_arch(a)[0] for a in args.arch]
    except ValueError as e:
        p.error(f"argument --arch: {e}")
    unknown = [a for a in names if a not in list_models()]
    if unknown:
        p.error(f"unknown architecture(s) {', '.join(unknown)}; registered: {', '.join(list_models())}")
    check_folder(args.work_dir, 0, "--work-dir")  # before the work: where the models and the report go
    check_folder(args.out_dir, 0, "--out-dir")
    rows = measure(args.arch, args.backends, args.size, args.threads, args.rounds, args.warmup, args.work_dir,
                   args.calib, args.pause)
    path = write_report(rows, args.backends, args.size, args.threads, args.rounds, args.warmup, args.out_dir, argv,
                        args.pause, args.name)
    print(f"wrote {path} and {path.with_suffix('.csv')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
