"""INT8: post-training static quantisation calibrated on real images, and the accuracy gate.

- ONNX Runtime: Q/DQ ONNX from ONNX Runtime's static quantiser, `python -m export.quantize
  student.pt|.onnx [--target ort|trt]`. The two targets want different files (TARGETS, measured in
  docs/int8.md): ONNX Runtime's CPU kernels want asymmetric uint8 activations, TensorRT wants
  symmetric int8. Each file records its target; export.trt refuses an `ort` one, and the runtime
  warns when an ONNX Runtime CPU session is given a `trt` one.
- OpenVINO: NNCF post-training quantisation of the IR (export.openvino --precision int8), or
  NNCF's accuracy-controlled quantisation when a labelled validation split is given.
- The gate: FP32 vs INT8 mIoU and boundary F1 on the validation split; fails when either drop
  exceeds its limit (--max-drop, --max-boundary-drop). Boundaries are what BRD buys, and they are
  what INT8 rounding erodes first. Both models are scored by `distill.evaluate --model`'s own code
  (distill.score: the runtime backends, at the labels' native resolution, with the model's evaluation
  settings), so the gate's fp32_miou is what evaluating the FP32 model gives on the same images.
- No INT8 without the gate: without labelled validation data (--data-root) the exporters refuse to
  publish INT8 (exit 2) unless told --no-gate; the model's metadata then records "gate": null and the
  runtime warns when it loads it.

Calibration images go through exactly the runtime's preprocessing (export.data.preprocess), one at a time:
calibration and the gate stream through their images in bounded memory.
"""
from __future__ import annotations

import copy
import sys
from pathlib import Path

from runtime import metadata
from runtime.contract import ArgumentParser, ExportError, atomic_path
from runtime.formats import format_for, require

from .cli import exporter, output_path, source_kind
from .data import preprocess
from .gate import add_gate_args, gate_record, require_gate
from .metadata import CHECKED_PRECISION, model_meta, onnx_meta, set_onnx_meta
from .onnx import fp32_onnx
from .publish import check_writable, file_hashes, publish, sibling, space_needed, staged, write_json
from .work import work_dir, writing

# Quantiser settings per target, chosen by measurement (docs/int8.md, benchmarks.speed):
# - ort: uint8 activations with a zero point let the quantiser fold ReLU/ReLU6 into the quantisation
#   range, so every Conv(+ReLU) becomes one QLinearConv. With symmetric int8 activations the ReLUs stay
#   as float ops between Q/DQ pairs; ONNX Runtime then leaves the convolutions around them in float and
#   adds NCHW<->NHWC transposes, and INT8 ends up slower than FP32 on x86.
#   The Resize that upsamples the logits to the output is left float: ONNX Runtime runs a bilinear Resize
#   in float whatever surrounds it, so quantising it only adds a Quantize/Dequantize pair over the
#   full-resolution logits (docs/int8.md).
# - trt: TensorRT's explicit quantisation takes only symmetric int8 (zero point 0) Q/DQ; it fuses the
#   FP32 bias into the int8 convolution itself, so the bias stays float.
TARGETS = {
    "ort": {"activation": "QUInt8", "weight": "QInt8", "float_output_resize": True,
            "extra": {"WeightSymmetric": True, "ActivationSymmetric": False}},
    "trt": {"activation": "QInt8", "weight": "QInt8", "float_output_resize": False,
            "extra": {"WeightSymmetric": True, "ActivationSymmetric": True, "QuantizeBias": False}},
}


def output_resizes(path) -> list[str]:
    """The names of the Resize nodes that write a graph output (the logits' upsampling)."""
    onnx = require("onnx", "export")
    graph = onnx.load(str(path), load_external_data=False).graph
    outputs = {o.name for o in graph.output}
    return [n.name for n in graph.node if n.op_type == "Resize" and outputs & set(n.output)]


def _reader(images, meta):
    """ONNX Runtime's calibration reader over `images` (any sequence, lazy ones included): each image is
    read and preprocessed when the calibrator asks for it, so at most one is held (MinMax keeps only
    per-tensor minima and maxima of what it has seen)."""
    quant = require("onnxruntime.quantization", "export", "INT8 quantisation")

    class Reader(quant.CalibrationDataReader):
        def __init__(self):
            self.it = iter(images)

        def get_next(self):
            img = next(self.it, None)
            return None if img is None else {metadata.INPUT_NAME: preprocess([img], meta)}

        def rewind(self):
            self.it = iter(images)

    return Reader()


def quantize_onnx_int8(src, out, images, target="ort", preprocess_model=True, gate=None) -> Path:
    """FP32 ONNX -> Q/DQ INT8 ONNX with ONNX Runtime's static quantiser, calibrated on `images`.

    Per-channel symmetric weights for both targets; activations per TARGETS[target]. The target is
    recorded in the metadata (export.quantization.target), and so is `gate` (export.gate): the gate the
    file is published under (export.gate.gate_record), None for a file nobody gates (the runtime warns).
    """
    quant = require("onnxruntime.quantization", "export", "INT8 quantisation")
    if target not in TARGETS:
        raise ExportError(f"unknown INT8 target {target!r}; expected one of {', '.join(TARGETS)}")
    if not images:
        raise ExportError("INT8 calibration needs at least one image")
    src, out = Path(src), check_writable(out)
    meta = onnx_meta(src)
    if meta.get("export", {}).get("opset", 17) < 13:
        raise ExportError(f"{src}: per-channel INT8 needs opset >= 13; re-export with --opset 17")
    settings = TARGETS[target]
    with writing(out, "the INT8 model"), work_dir() as tmpdir, atomic_path(out) as tmp:
        model_in = src
        if preprocess_model:  # shape inference + graph optimisation, as ORT recommends before quantising
            model_in = Path(tmpdir) / "pre.onnx"
            quant.quant_pre_process(str(src), str(model_in), skip_symbolic_shape=False)
        float_nodes = output_resizes(model_in) if settings["float_output_resize"] else []
        quant.quantize_static(str(model_in), str(tmp), _reader(images, meta),
                              quant_format=quant.QuantFormat.QDQ, per_channel=True,
                              activation_type=getattr(quant.QuantType, settings["activation"]),
                              weight_type=getattr(quant.QuantType, settings["weight"]),
                              calibrate_method=quant.CalibrationMethod.MinMax, extra_options=dict(settings["extra"]),
                              nodes_to_exclude=float_nodes)
        onnx = require("onnx", "export")
        model = onnx.load(str(tmp))
        meta = copy.deepcopy(meta)
        meta.setdefault("export", {}).update(precision="int8", quantization={
            "tool": "onnxruntime.quantization.quantize_static", "format": "QDQ", "target": target,
            "activations": settings["activation"], "symmetric_activations": settings["extra"]["ActivationSymmetric"],
            "per_channel": True, "float_nodes": float_nodes, "calibration_images": len(images)}, gate=gate)
        set_onnx_meta(model, meta)
        onnx.save(model, str(tmp))
    return out


# operators of a model that is quantised already: quantising it again makes an invalid graph (ONNX Runtime
# refuses it: "two nodes with same node name ..._DequantizeLinear")
QUANTIZED_OPS = ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger")


def refuse_quantized(src, command="export.quantize") -> None:
    """An ONNX source must be the FP32 model: one whose metadata records another precision, or whose graph
    holds quantisation operators, is refused with one line (exit 2) before any work."""
    onnx = require("onnx", "export", "reading ONNX models")
    precision = onnx_meta(src).get("export", {}).get("precision", "fp32")
    found = sorted({n.op_type for n in onnx.load(str(src), load_external_data=False).graph.node} & set(QUANTIZED_OPS))
    if precision != "fp32" or found:
        what = f"its metadata says {precision}" if precision != "fp32" else f"its graph holds {', '.join(found)}"
        raise ExportError(f"{src}: already a quantised model ({what}); {command} takes the FP32 model: "
                          f"the student checkpoint (.pt) or its FP32 ONNX (python -m export.onnx student.pt)")


IGNORE_INDEX = 255

# activations ONNX Runtime has no int8 kernel for: between Q/DQ pairs they run in float, with a dequantise
# before and a quantise after each, over the whole feature map
FLOAT_ACTIVATIONS = ("HardSigmoid", "HardSwish", "Sigmoid", "Tanh", "Relu", "Clip", "LeakyRelu")


def ort_int8_graph(path) -> dict:
    """What ONNX Runtime's CPU provider makes of a Q/DQ model after its graph optimisation: how many
    convolutions run as int8 QLinearConv and how many stay float, and the float activations left
    between Q/DQ pairs. The reason an INT8 model is fast on ONNX Runtime, or not."""
    import os

    onnx = require("onnx", "export")
    ort = require("onnxruntime", "export", "running ONNX models")
    with work_dir() as d:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED  # no CPU-specific layouts
        so.optimized_model_filepath = os.path.join(d, "optimized.onnx")
        so.log_severity_level = 3
        ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        ops = [n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node]
    return {"int8_convs": ops.count("QLinearConv"), "float_convs": ops.count("Conv") + ops.count("FusedConv"),
            "float_activations": sum(ops.count(op) for op in FLOAT_ACTIVATIONS)}


def quantize_openvino_int8(ov_model, images, meta, validation=None, max_drop=None, max_boundary_drop=None):
    """NNCF post-training quantisation of an OpenVINO model. With `validation` ((image, label) items),
    NNCF's accuracy-controlled variant keeps the mIoU drop within `max_drop` and the boundary-F1 drop
    within `max_boundary_drop` (points; None: that one is not limited), scored as the gate scores.
    Images are read and preprocessed as NNCF asks for them (bounded memory)."""
    nncf = require("nncf", "openvino", "OpenVINO INT8 quantisation")
    if not images:
        raise ExportError("INT8 calibration needs at least one image")
    calib = nncf.Dataset(images, lambda img: preprocess([img], meta))
    if validation is None:
        return nncf.quantize(ov_model, calib, subset_size=len(images))

    import openvino as ov

    limits = {"mIoU": max_drop, "boundary_f1": max_boundary_drop}
    if not any(v and v > 0 for v in limits.values()):
        raise ExportError("accuracy-controlled INT8 needs a positive --max-drop or --max-boundary-drop")
    # NNCF limits one metric's drop. Both limits at once: the metric is minus the larger of the two drops,
    # each relative to its limit, so the FP32 model scores 0 and "drop <= 1" means both drops are within theirs.
    fp32 = ov.Core().compile_model(ov_model, "CPU", {"INFERENCE_PRECISION_HINT": CHECKED_PRECISION})
    reference = gate_scores(CompiledModel(fp32, meta), validation, meta)

    def validate(compiled, data):
        # (metric, per-image mIoU): with values per item NNCF ranks layers by them instead of keeping every
        # image's logits of both models in memory
        per_item = []
        got = gate_scores(CompiledModel(compiled, meta), data, meta, per_item=per_item)
        return -relative_drop(reference, got, limits), per_item

    # inference data (NNCF's ranking of layers compares outputs) is the model input at its own size
    val = nncf.Dataset(validation, lambda item: preprocess([item[0]], meta))
    return nncf.quantize_with_accuracy_control(
        ov_model, calib, val, validation_fn=validate, max_drop=1.0,
        drop_type=nncf.DropType.ABSOLUTE, subset_size=len(images))


class CompiledModel:
    """An OpenVINO model NNCF compiled, as a backend for distill.score.Scorer (infer, meta, input shape)."""

    name, precision, device = "openvino", "nncf candidate", "CPU"

    def __init__(self, compiled, meta):
        self.compiled, self.meta, self.path = compiled, meta, "NNCF's candidate model"
        shape = compiled.input(0).get_partial_shape()
        self.input_shape = tuple(d.get_length() if d.is_static else None for d in shape)
        out = compiled.output(0)
        self.output_kind = metadata.OUTPUT_LABELS if out.get_element_type().is_integral() else metadata.OUTPUT_LOGITS

    def infer(self, x):
        return self.compiled(x)[self.compiled.outputs[0]]


def relative_drop(reference: dict, got: dict, limits: dict) -> float:
    """The largest drop (reference - got) in units of its limit, over the metrics with a positive limit:
    <= 1 when every drop is within its limit."""
    return max((reference[k] - got[k]) / limit for k, limit in limits.items() if limit and limit > 0)


def gate_scores(backend, items, meta, per_item=None) -> dict:
    """mIoU and boundary F1 (percent) of a backend over labelled (image, label) items, scored as
    `distill.evaluate --model` scores it (distill.score), with the model's own evaluation settings.
    `per_item`: a list that gets each image's own mIoU (percent) appended."""
    try:
        from distill.metrics import SegMetric
        from distill.score import Scorer, eval_settings, score
    except ImportError as e:
        raise ExportError(f"the accuracy gate scores with distill.score (the training install): {e}") from None
    ev = eval_settings(meta)
    scorer = Scorer(backend, ev["mode"], ev["crop_size"], ev["stride"], ev["flip"])
    on_item = None
    if per_item is not None:
        def on_item(pred, label):
            if pred is None:  # skipped (smaller than data.min_size): the same for every candidate
                per_item.append(0.0)
                return
            one = SegMetric(meta["num_classes"], boundary=False, connectivity=False)
            one.update(pred, label)
            value = one.compute()["mIoU"]
            per_item.append(100.0 * float(value) if value == value else 0.0)  # NaN: no class in the image
    result = score(scorer, items, meta["num_classes"], size=ev["size"], boundary=True, connectivity=False,
                   on_item=on_item, min_size=ev["min_size"], what="validation")
    return {"mIoU": 100.0 * float(result["mIoU"]), "boundary_f1": 100.0 * float(result["boundary_f1"]),
            "images": int(result["num_images"]), "how": scorer.describe()}


def _gate_backend(path):
    """The runtime backend the gate scores a file with: the CPU for ONNX Runtime and OpenVINO (OpenVINO at
    the compute precision recorded in the IR, asked for explicitly: bf16 is measured as bf16 even on a CPU
    where the runtime would run it at f32), the engine's GPU for TensorRT. No warning that a candidate has no
    gate verdict: this gate gives it."""
    from distill.score import open_model

    if format_for(path).name == "openvino":
        from runtime.backends.openvino import checked_precision

        return open_model(path, device="cpu", precision_hint=checked_precision(model_meta(path)), warn_gate=False)
    return open_model(path, device="cpu" if format_for(path).name == "onnx" else "auto", warn_gate=False)


def _compute(backend):
    """What an OpenVINO backend's compiled model computes in ('f32', 'bf16'); None for other backends."""
    from .parity import compiled_precision

    compiled = getattr(backend, "compiled", None)
    return compiled_precision(compiled) if backend.name == "openvino" and compiled is not None else None


def accuracy_gate(fp32_path, int8_path, validation, max_drop: float = 1.0, name=None,
                  max_boundary_drop: float = 1.0, label: str = "int8") -> dict:
    """FP32 vs INT8 mIoU and boundary F1 on the labelled `validation` items (read one at a time); prints the
    table, returns the verdict (passed when neither drop exceeds its limit). The JSON goes next to `int8_path`,
    with its sha256 (`name`: the INT8 model's final name when it is checked under a temporary one; the record
    moves with it, export.publish). `label` names the candidate's keys (int8_miou, ...; bf16_miou for an FP32
    IR checked at bf16 compute); `compute` is what OpenVINO compiled the candidate at (absent elsewhere)."""
    meta = model_meta(fp32_path)
    scores = {}
    for key, path in (("fp32", fp32_path), (label, int8_path)):
        backend = _gate_backend(path)
        try:
            scores[key] = gate_scores(backend, validation, meta)
            scores[key].update(precision=backend.precision, compute=_compute(backend))
        finally:
            backend.close()
    fp32, int8 = scores["fp32"], scores[label]
    drop, b_drop = fp32["mIoU"] - int8["mIoU"], fp32["boundary_f1"] - int8["boundary_f1"]
    final = Path(name) if name else Path(int8_path)
    report = {"fp32_model": Path(fp32_path).name, f"{label}_model": final.name, "images": fp32["images"],
              "fp32_miou": fp32["mIoU"], f"{label}_miou": int8["mIoU"], "drop": drop, "max_drop": max_drop,
              "fp32_boundary_f1": fp32["boundary_f1"], f"{label}_boundary_f1": int8["boundary_f1"],
              "boundary_f1_drop": b_drop, "max_boundary_drop": max_boundary_drop,
              "scored": fp32["how"], "fp32_runs_as": fp32["precision"], f"{label}_runs_as": int8["precision"],
              **({"compute": int8["compute"]} if int8["compute"] else {}),
              "passed": drop <= max_drop and b_drop <= max_boundary_drop,
              "file": Path(int8_path).name, **file_hashes(int8_path)}
    fp32_name, int8_name = report["fp32_model"] + " (FP32)", report[f"{label}_model"] + f" ({label.upper()})"
    print(f"{'model':<28} {'mIoU':>7} {'bF1':>7}\n{fp32_name:<28} {fp32['mIoU']:7.2f} {fp32['boundary_f1']:7.2f}\n"
          f"{int8_name:<28} {int8['mIoU']:7.2f} {int8['boundary_f1']:7.2f}\n"
          f"{'drop':<28} {drop:7.2f} {b_drop:7.2f}  (max {max_drop:.2f} / {max_boundary_drop:.2f}): "
          f"{'ok' if report['passed'] else 'FAILED'}  [{report['images']} images, {fp32['how']}]")
    write_json(sibling(int8_path, ".gate.json"), report)
    return report


def validation_items(args, meta, n=None):
    """Labelled validation items for the gate, read lazily (None when no dataset was given)."""
    from .data import build, dataset_images

    if not getattr(args, "data_root", None):
        return None
    name = args.dataset or meta.get("dataset")
    dataset = build(name, args.data_root, "val", meta)
    items = dataset_images(dataset, n or len(dataset), "validation", with_labels=True)
    if not any((label != IGNORE_INDEX).any() for _, label in items):
        raise ExportError(f"{args.data_root}: the {name!r} val split has no labelled pixel (all {len(items)} labels "
                          f"are {IGNORE_INDEX} = ignore): the accuracy gate would measure nothing")
    return items


@exporter
def main(argv=None) -> int:
    from .data import add_data_args, calibration_images
    from .parity import add_parity_args, parity_from_args

    p = ArgumentParser(prog="python -m export.quantize", description=__doc__, examples=(
        "python -m export.quantize student.onnx --data-root data/synthetic",
        "python -m export.quantize student.pt -o student.int8.onnx --data-root data/cityscapes --calib-dir calib/",
        "python -m export.quantize student.onnx --calib-dir calib/ --no-gate    # unchecked: gate null, warned"))
    p.add_argument("source", help="student checkpoint (.pt) or FP32 ONNX model (.onnx)")
    p.add_argument("-o", "--output", help="output Q/DQ ONNX (default: <source>.int8.onnx)")
    p.add_argument("--target", choices=sorted(TARGETS), default="ort",
                   help="the runtime the Q/DQ file is for: ort (ONNX Runtime CPU: uint8 activations, default) or "
                        "trt (TensorRT: symmetric int8); each is slow or refused on the other")
    add_gate_args(p)
    add_data_args(p)
    add_parity_args(p)
    args = p.parse_args(argv)
    if source_kind(args.source) == "onnx":
        refuse_quantized(args.source)
    require_gate(args)  # before any work: INT8 is published gated, or explicitly not
    out = check_writable(output_path(args.output, args.source, "onnx", "int8"), space_needed(args.source))
    with work_dir() as tmpdir, staged(out) as candidate:  # published only once parity and the gate pass
        src_onnx, torch_model = fp32_onnx(args.source, tmpdir)
        meta = onnx_meta(src_onnx)
        # before the work: a split the gate cannot use is an error
        validation = None if args.no_gate else validation_items(args, meta)
        images = calibration_images(meta, args.data_root, args.dataset, args.calib_dir, args.num_calib)
        quantize_onnx_int8(src_onnx, candidate, images, target=args.target, gate=gate_record(args, out))
        print(f"quantised {out.name}, calibrated on {len(images)} images; checking it")
        if args.target == "ort":
            graph = ort_int8_graph(candidate)
            if graph["float_convs"] or graph["float_activations"]:  # a gate on accuracy does not see speed
                print(f"warning: in ONNX Runtime {graph['float_convs']} convolutions and {graph['float_activations']} "
                      f"activations of {out.name} stay in float between Q/DQ pairs; such a model can run slower "
                      f"than FP32 (docs/int8.md): time both with benchmarks.speed", file=sys.stderr)
        code = parity_from_args(args, candidate, "int8", torch_model, reference_onnx=src_onnx, final=out)
        gate = None
        if validation is not None and code == 0:
            gate = accuracy_gate(src_onnx, candidate, validation, args.max_drop, name=out,
                                 max_boundary_drop=args.max_boundary_drop)
            code = 0 if gate["passed"] else 1
        why = "its accuracy gate" if gate and not gate["passed"] else "its parity check"
        kept = publish(candidate, out, code == 0, args.keep_failed, why, gated=validation is not None)
    if kept == out:
        print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)" + (
            "; NOT GATED (--no-gate): its metadata says so and the runtime warns" if args.no_gate else ""))
    return code


if __name__ == "__main__":
    sys.exit(main())
