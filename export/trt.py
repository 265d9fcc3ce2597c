"""Student checkpoint or ONNX -> TensorRT engine:
`python -m export.trt student.pt|student.onnx [--precision fp32|fp16|int8] [--workspace GB] [--min-shape/--opt-shape/--max-shape]`.

The .engine is a plain serialised engine (trtexec and DeepStream load it); its metadata, TensorRT
version, GPU compute capability, precision, shapes and the ONNX sha256 go in `<engine>.json`
(runtime/trt_sidecar.py reads and checks it). The builder API follows the installed TensorRT:
- 8.5/8.6 (JetPack 5): explicit-batch network flag, weakly typed FP16/INT8 builder flags;
- 10.x: explicit batch is implicit, memory-pool limit, weakly typed flags;
- 11.x: strongly typed only (no precision flags): FP16 means an FP16 ONNX (I/O kept FP32).
INT8 is always explicit quantisation: a Q/DQ ONNX from ONNX Runtime's quantiser (export.quantize);
TensorRT 10+ keeps no implicit (calibrator) path. An INT8 engine is gated like every INT8 model: scored
against its FP32 ONNX on the labelled validation split (export.quantize.accuracy_gate, through the
runtime's TensorRT backend), published only when it passes; without labelled data it is refused unless
--no-gate (its sidecar's metadata then records "gate": null). Python 3.8 compatible; needs no torch given an
.onnx (the gate needs the dataset readers and metrics of the training package).
"""
import copy
import re
import subprocess
import sys
from pathlib import Path

from runtime import metadata
from runtime.contract import ArgumentParser, ExportError, atomic_path, positive_float, sha256_file
from runtime.formats import FORMATS, default_output, require
from runtime.trt_sidecar import SIDECAR_FORMAT, sidecar_path

from .cli import exporter, output_path, source_kind
from .gate import add_gate_args, gate_record, require_gate
from .metadata import onnx_meta
from .publish import check_writable, publish, space_needed, staged, write_json
from .work import work_dir, writing

PRECISIONS = tuple(f.precision for f in FORMATS if f.name == "tensorrt")

DEFAULT_MAX_BATCH = 4


def parse_version(version):
    m = re.match(r"(\d+)\.(\d+)", str(version))
    if not m:
        raise ExportError("cannot read TensorRT version {!r}".format(version))
    return int(m.group(1)), int(m.group(2))


def api_for(version):
    """The builder API to use for a TensorRT version string: 'trt8', 'trt10' or 'trt11'."""
    major, minor = parse_version(version)
    if (major, minor) < (8, 5):
        raise ExportError("TensorRT {} is too old: BRD Edge needs 8.5 or newer (JetPack 5.1+)".format(version))
    if major < 10:
        return "trt8"
    return "trt10" if major == 10 else "trt11"


def parse_shape(text):
    """'1x3x128x256' (or '1,3,128,256') -> (1, 3, 128, 256)."""
    parts = re.split(r"[x,]", str(text).strip().lower())
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise ExportError("bad shape {!r}: expected NxCxHxW, e.g. 1x3x512x1024".format(text)) from None
    if len(shape) != 4 or min(shape) < 1:
        raise ExportError("bad shape {!r}: expected 4 positive dims NxCxHxW".format(text))
    return shape


def onnx_input_dims(onnx_path):
    """The 'image' input's dims: ints for fixed axes, None for dynamic ones."""
    onnx = require("onnx", "export", "reading ONNX models")
    model = onnx.load(str(onnx_path), load_external_data=False)
    for inp in model.graph.input:
        if inp.name == metadata.INPUT_NAME:
            return [d.dim_value if d.HasField("dim_value") else None for d in inp.type.tensor_type.shape.dim]
    raise ExportError("{}: no input named {!r}".format(onnx_path, metadata.INPUT_NAME))


def resolve_profile(dims, meta, min_shape=None, opt_shape=None, max_shape=None):
    """min/opt/max input shapes for the optimisation profile, checked against the ONNX input.

    Defaults: batch 1..DEFAULT_MAX_BATCH (opt 1) at the metadata input size; a dynamic H/W must
    be given explicitly for min and max (opt defaults to the metadata size).
    """
    h, w = meta["input_size"]
    fixed = lambda i, default: dims[i] if dims[i] is not None else default  # noqa: E731
    opt = parse_shape(opt_shape) if opt_shape else (1, 3, fixed(2, h), fixed(3, w))
    lo = parse_shape(min_shape) if min_shape else (1, 3, fixed(2, opt[2]), fixed(3, opt[3]))
    hi = parse_shape(max_shape) if max_shape else (max(DEFAULT_MAX_BATCH, opt[0]), 3, fixed(2, opt[2]), fixed(3, opt[3]))
    names = ("batch", "channels", "height", "width")
    for i, name in enumerate(names):
        if dims[i] is not None and not lo[i] == opt[i] == hi[i] == dims[i]:
            raise ExportError("the ONNX input has a fixed {} of {}; the profile gives min/opt/max {}/{}/{}".format(
                name, dims[i], lo[i], opt[i], hi[i]))
        if not lo[i] <= opt[i] <= hi[i]:
            raise ExportError("profile {} must satisfy min <= opt <= max, got {}/{}/{}".format(name, lo[i], opt[i], hi[i]))
    if opt[1] != 3:
        raise ExportError("the input has 3 channels (RGB), the profile says {}".format(opt[1]))
    return {"min": list(lo), "opt": list(opt), "max": list(hi)}


def gpu_info():
    """(name, compute capability 'X.Y') of GPU 0: pycuda if present, else nvidia-smi."""
    try:
        import pycuda.driver as cuda

        cuda.init()
        dev = cuda.Device(0)
        return dev.name(), "{}.{}".format(*dev.compute_capability())
    except Exception:  # pycuda absent or no context: ask the driver tool
        pass
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20).stdout.strip().splitlines()
        name, cc = [s.strip() for s in out[0].split(",")]
        return name, cc
    except (OSError, IndexError, ValueError, subprocess.SubprocessError):
        # a Jetson has no nvidia-smi and needs pycuda (on x86 the `tensorrt` extra installs it; on a Jetson pip
        # would also fetch a PyPI TensorRT over JetPack's)
        raise ExportError("cannot read the GPU's compute capability (no pycuda, no nvidia-smi): pip install pycuda "
                          "(on x86 the tensorrt extra, pip install 'brd-edge[tensorrt]', brings it)") from None


def make_sidecar(meta, trt_version, gpu, compute_capability, precision, profile, outputs, onnx_sha256, api,
                 gate=None):
    meta = copy.deepcopy(meta)
    meta.setdefault("export", {}).update(format="tensorrt", precision=precision)
    if precision == "int8":  # the gate it is published under (export.gate.gate_record), None: nobody gated it
        meta["export"]["gate"] = gate
    return {"format": SIDECAR_FORMAT, "meta": meta, "tensorrt_version": str(trt_version), "api": api,
            "gpu": gpu, "compute_capability": str(compute_capability), "precision": precision,
            "inputs": [{"name": metadata.INPUT_NAME, "dtype": "float32", "profile": profile}],
            "outputs": outputs, "onnx_sha256": onnx_sha256,
            "version_compatible": False, "hardware_compatible": False}


def _fp16_onnx(src, dst):
    """TensorRT 11 has no FP16 builder flag: the precision must be in the graph."""
    onnx = require("onnx", "export")
    float16 = require("onnxruntime.transformers.float16", "export", "FP16 conversion for TensorRT 11")
    model = float16.convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))
    return dst


def build_engine(trt, onnx_path, api, fp16, int8, workspace_gb, profile, timing_cache=None):
    """Serialised engine bytes (the version-specific part of the build)."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if api == "trt8":
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    elif api == "trt11":
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError("{}: TensorRT cannot parse it: {}".format(onnx_path, errors[:500]))
    config = builder.create_builder_config()
    if hasattr(config, "set_memory_pool_limit"):  # 8.4+
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    else:
        config.max_workspace_size = int(workspace_gb * (1 << 30))
    if api != "trt11":  # weakly typed: precisions are builder flags; Q/DQ layers need INT8 enabled
        if fp16 or int8:
            config.set_flag(trt.BuilderFlag.FP16)
        if int8:
            config.set_flag(trt.BuilderFlag.INT8)
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape(metadata.INPUT_NAME, profile["min"], profile["opt"], profile["max"])
    config.add_optimization_profile(opt_profile)
    cache = None
    if timing_cache:
        blob = Path(timing_cache).read_bytes() if Path(timing_cache).is_file() else b""
        cache = config.create_timing_cache(blob)
        config.set_timing_cache(cache, ignore_mismatch=False)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise ExportError("{}: TensorRT failed to build the engine (see its log above)".format(onnx_path))
    if cache is not None:
        with atomic_path(Path(timing_cache)) as tmp:
            tmp.write_bytes(bytes(cache.serialize()))
    return bytes(plan)


def prequantized(meta, src):
    """True for a Q/DQ INT8 ONNX made for TensorRT (built as it is), False for an FP32 one; an INT8 ONNX
    made for ONNX Runtime (uint8 activations with zero points) is an error: TensorRT's explicit
    quantisation takes symmetric int8 only."""
    target = metadata.quantization_target(meta)
    if target is None:
        return False
    if target != "trt":
        raise ExportError("{}: this INT8 ONNX was quantised for ONNX Runtime (--target {}: uint8 activations with "
                          "zero points, which TensorRT does not take); give the FP32 ONNX with --precision int8, or quantise "
                          "with `python -m export.quantize MODEL --target trt`".format(src, target))
    return True


def onnx_to_trt(src, out=None, fp16=False, int8=False, workspace_gb=4.0, min_shape=None, opt_shape=None,
                max_shape=None, timing_cache=None, calib_images=None, gate=None):
    """Build `out` (.engine) and its sidecar from an FP32 ONNX model with BRD Edge metadata.

    int8 quantises with ONNX Runtime (Q/DQ for TensorRT, calibrated on `calib_images`) first, unless `src`
    is already a TensorRT-target Q/DQ ONNX; the sidecar's onnx_sha256 is the hash of the ONNX that
    TensorRT actually parsed.
    """
    src = Path(src)
    qdq = prequantized(onnx_meta(src), src)
    int8 = int8 or qdq
    trt = require("tensorrt", "tensorrt", "building TensorRT engines")
    api = api_for(trt.__version__)
    precision = "int8" if int8 else "fp16" if fp16 else "fp32"
    out = check_writable(Path(out) if out else default_output(src, "tensorrt", precision))
    meta = onnx_meta(src)
    profile = resolve_profile(onnx_input_dims(src), meta, min_shape, opt_shape, max_shape)
    with work_dir() as tmpdir:
        parsed = src
        if int8 and not qdq:
            from .quantize import quantize_onnx_int8

            parsed = quantize_onnx_int8(src, Path(tmpdir) / "qdq.onnx", calib_images, target="trt", gate=gate)
        elif fp16 and api == "trt11":
            parsed = _fp16_onnx(src, Path(tmpdir) / "fp16.onnx")
        plan = build_engine(trt, parsed, api, fp16, int8, workspace_gb, profile, timing_cache)
        gpu, cc = gpu_info()
        output = metadata.OUTPUT_LABELS if meta.get("export", {}).get("output") == metadata.OUTPUT_LABELS \
            else metadata.OUTPUT_LOGITS
        sidecar = make_sidecar(meta, trt.__version__, gpu, cc, precision, profile,
                               [{"name": output}], sha256_file(parsed), api, gate)
        with writing(out, "the engine"), atomic_path(out) as tmp:
            tmp.write_bytes(plan)
            write_json(sidecar_path(out), sidecar)
    return out


def _parser():
    from .data import add_data_args
    from .parity import add_parity_args

    p = ArgumentParser(prog="python -m export.trt", description=__doc__, examples=(
        "python -m export.trt student.onnx --precision int8 --data-root data/synthetic --timing-cache trt.cache",
        "python -m export.trt dynamic.onnx --min-shape 1x3x256x512 --opt-shape 1x3x512x1024 --max-shape 4x3x512x1024",
        "python -m export.trt student.onnx --precision int8 --calib-dir calib/ --no-gate   # unchecked"))
    p.add_argument("source", help="student checkpoint (.pt) or ONNX model (.onnx)")
    p.add_argument("-o", "--output", help="output .engine (default: next to the source, named by precision)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="fp32, fp16 kernels, or int8 via a Q/DQ ONNX (needs calibration images; default fp32)")
    p.add_argument("--workspace", type=positive_float, default=4.0, help="builder workspace limit in GB (default 4)")
    p.add_argument("--min-shape", help="profile minimum NxCxHxW (default batch 1 at the model size)")
    p.add_argument("--opt-shape", help="profile optimum NxCxHxW (default batch 1 at the model size)")
    p.add_argument("--max-shape", help="profile maximum NxCxHxW (default batch {})".format(DEFAULT_MAX_BATCH))
    p.add_argument("--timing-cache", help="timing cache file, read if present and updated (faster rebuilds)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset of the intermediate export (.pt source)")
    add_gate_args(p)
    add_data_args(p)
    add_parity_args(p)
    return p


@exporter
def main(argv=None):
    from .data import calibration_images
    from .onnx import check_opset, fp32_onnx
    from .parity import parity_from_args

    args = _parser().parse_args(argv)
    source_kind(args.source)
    if args.precision == "int8":
        require_gate(args)  # before any work: INT8 is published gated, or explicitly not
    shapes = {"--min-shape": args.min_shape, "--opt-shape": args.opt_shape, "--max-shape": args.max_shape}
    for flag, s in shapes.items():
        if s:
            try:
                parse_shape(s)
            except ExportError as e:  # named as the user typed it
                raise ExportError("{}: {}".format(flag, e)) from None
    check_opset(args.opset)
    out = output_path(args.output, args.source, "tensorrt", args.precision)
    require("tensorrt", "tensorrt", "building TensorRT engines")  # before any export work
    int8, fp16 = args.precision == "int8", args.precision in ("fp16", "int8")
    out = check_writable(out, space_needed(args.source))
    with work_dir() as tmpdir, staged(out) as candidate:  # published only once parity passes
        src_onnx, torch_model = fp32_onnx(args.source, tmpdir, args)
        images = None
        meta = onnx_meta(src_onnx)
        qdq = prequantized(meta, src_onnx)  # an INT8 ONNX for TensorRT is built as it is
        if qdq and not args.no_gate:
            raise ExportError("{}: an engine built from an INT8 ONNX has no FP32 model to be gated against: give the "
                              "FP32 ONNX with --precision int8 (quantised and gated here), or --no-gate".format(src_onnx))
        int8 = int8 or qdq
        if int8 and not qdq:
            images = calibration_images(meta, args.data_root, args.dataset, args.calib_dir, args.num_calib)
        onnx_to_trt(src_onnx, candidate, fp16, int8, args.workspace, args.min_shape, args.opt_shape,
                    args.max_shape, args.timing_cache, images, gate=gate_record(args, out) if int8 else None)
        precision = "int8" if qdq else args.precision
        code = parity_from_args(args, candidate, precision, torch_model, reference_onnx=src_onnx, final=out)
        gate = None
        if int8 and not args.no_gate and code == 0:  # scored through the runtime's TensorRT backend
            from .quantize import accuracy_gate, validation_items

            gate = accuracy_gate(src_onnx, candidate, validation_items(args, meta), args.max_drop, name=out,
                                 max_boundary_drop=args.max_boundary_drop)
            code = 0 if gate["passed"] else 1
        why = "its accuracy gate" if gate and not gate["passed"] else "its parity check"
        kept = publish(candidate, out, code == 0, args.keep_failed, why, gated=int8 and not args.no_gate)
    if kept == out:
        print("wrote {} ({:.2f} MB) and {}".format(out, out.stat().st_size / 1e6, sidecar_path(out).name))
    return code


if __name__ == "__main__":
    sys.exit(main())
