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
  what INT8 rounding erodes first.

Calibration images go through exactly the runtime's preprocessing (common.preprocess).
"""
from __future__ import annotations

import copy
import sys
from pathlib import Path

import numpy as np

from runtime import metadata
from runtime.cli import atomic_path, finite_float
from runtime.contract import ArgumentParser
from runtime.formats import default_output, require

from .common import (ExportError, check_writable, exporter, onnx_meta, preprocess, publish, set_onnx_meta,
                     source_kind, space_needed, staged, work_dir, writing)
from .onnx import fp32_onnx

# Quantiser settings per target, chosen by measurement (docs/int8.md, benchmarks.speed):
# - ort: uint8 activations with a zero point let the quantiser fold ReLU/ReLU6 into the quantisation
#   range, so every Conv(+ReLU) becomes one QLinearConv. With symmetric int8 activations the ReLUs stay
#   as float ops between Q/DQ pairs; ONNX Runtime then leaves the convolutions around them in float and
#   adds NCHW<->NHWC transposes, and INT8 ends up slower than FP32 on x86.
# - trt: TensorRT's explicit quantisation takes only symmetric int8 (zero point 0) Q/DQ; it fuses the
#   FP32 bias into the int8 convolution itself, so the bias stays float.
TARGETS = {
    "ort": {"activation": "QUInt8", "weight": "QInt8",
            "extra": {"WeightSymmetric": True, "ActivationSymmetric": False}},
    "trt": {"activation": "QInt8", "weight": "QInt8",
            "extra": {"WeightSymmetric": True, "ActivationSymmetric": True, "QuantizeBias": False}},
}


def _reader(images, meta):
    quant = require("onnxruntime.quantization", "export", "INT8 quantisation")
    inputs = preprocess(images, meta)

    class Reader(quant.CalibrationDataReader):
        def __init__(self):
            self.it = iter(inputs)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {metadata.INPUT_NAME: x[None]}

        def rewind(self):
            self.it = iter(inputs)

    return Reader()


def quantize_onnx_int8(src, out, images, target="ort", preprocess_model=True) -> Path:
    """FP32 ONNX -> Q/DQ INT8 ONNX with ONNX Runtime's static quantiser, calibrated on `images`.

    Per-channel symmetric weights for both targets; activations per TARGETS[target]. The target is
    recorded in the metadata (export.quantization.target).
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
        quant.quantize_static(str(model_in), str(tmp), _reader(images, meta),
                              quant_format=quant.QuantFormat.QDQ, per_channel=True,
                              activation_type=getattr(quant.QuantType, settings["activation"]),
                              weight_type=getattr(quant.QuantType, settings["weight"]),
                              calibrate_method=quant.CalibrationMethod.MinMax, extra_options=dict(settings["extra"]))
        onnx = require("onnx", "export")
        model = onnx.load(str(tmp))
        meta = copy.deepcopy(meta)
        meta.setdefault("export", {}).update(precision="int8", quantization={
            "tool": "onnxruntime.quantization.quantize_static", "format": "QDQ", "target": target,
            "activations": settings["activation"], "symmetric_activations": settings["extra"]["ActivationSymmetric"],
            "per_channel": True, "calibration_images": len(images)})
        set_onnx_meta(model, meta)
        onnx.save(model, str(tmp))
    return out


IGNORE_INDEX = 255

# activations ONNX Runtime has no int8 kernel for: between Q/DQ pairs they run in float, with a dequantise
# before and a quantise after each, over the whole feature map
FLOAT_ACTIVATIONS = ("HardSigmoid", "HardSwish", "Sigmoid", "Tanh", "Relu", "Clip", "LeakyRelu")


def ort_int8_graph(path) -> dict:
    """What ONNX Runtime's CPU provider makes of a Q/DQ model after its graph optimisation: how many
    convolutions run as int8 QLinearConv and how many stay float, and the float activations left
    between Q/DQ pairs. The reason an INT8 model is fast on ONNX Runtime, or not."""
    import os
    import tempfile

    onnx = require("onnx", "export")
    ort = require("onnxruntime", "export", "running ONNX models")
    with tempfile.TemporaryDirectory() as d:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED  # no CPU-specific layouts
        so.optimized_model_filepath = os.path.join(d, "optimized.onnx")
        so.log_severity_level = 3
        ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        ops = [n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node]
    return {"int8_convs": ops.count("QLinearConv"), "float_convs": ops.count("Conv") + ops.count("FusedConv"),
            "float_activations": sum(ops.count(op) for op in FLOAT_ACTIVATIONS)}


def quantize_openvino_int8(ov_model, images, meta, validation=None, max_drop=None, max_boundary_drop=None):
    """NNCF post-training quantisation of an OpenVINO model. With `validation` (list of (image, label)),
    NNCF's accuracy-controlled variant keeps the mIoU drop within `max_drop` and the boundary-F1 drop
    within `max_boundary_drop` (points; None: that one is not limited)."""
    nncf = require("nncf", "openvino", "OpenVINO INT8 quantisation")
    if not images:
        raise ExportError("INT8 calibration needs at least one image")
    inputs = [x[None] for x in preprocess(images, meta)]
    calib = nncf.Dataset(inputs)
    if validation is None:
        return nncf.quantize(ov_model, calib, subset_size=len(inputs))

    import openvino as ov

    val_inputs = [(preprocess([img], meta), label) for img, label in validation]

    def run_with(compiled):
        return lambda x: compiled(x)[compiled.outputs[0]]

    # NNCF limits one metric's drop. Both limits at once: the metric is minus the larger of the two drops,
    # each relative to its limit, so the FP32 model scores 0 and "drop <= 1" means both drops are within theirs.
    reference = gate_scores(run_with(ov.Core().compile_model(ov_model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})),
                            val_inputs, meta)
    limits = {"mIoU": max_drop, "boundary_f1": max_boundary_drop}
    if not any(v and v > 0 for v in limits.values()):
        raise ExportError("accuracy-controlled INT8 needs a positive --max-drop or --max-boundary-drop")

    def validate(compiled, data):
        return -relative_drop(reference, gate_scores(run_with(compiled), data, meta), limits)

    return nncf.quantize_with_accuracy_control(
        ov_model, calib, nncf.Dataset(val_inputs), validation_fn=validate, max_drop=1.0,
        drop_type=nncf.DropType.ABSOLUTE, subset_size=len(inputs))


def relative_drop(reference: dict, got: dict, limits: dict) -> float:
    """The largest drop (reference - got) in units of its limit, over the metrics with a positive limit:
    <= 1 when every drop is within its limit."""
    return max((reference[k] - got[k]) / limit for k, limit in limits.items() if limit and limit > 0)


def gate_scores(run, items, meta) -> dict:
    """mIoU and boundary F1 (percent) of `run` (batch -> logits or labels) over preprocessed (input, label) pairs."""
    import cv2

    from distill.metrics import SegMetric

    metric = SegMetric(meta["num_classes"], ignore_index=255, boundary=True, connectivity=False)
    for x, label in items:
        out = run(x)
        pred = (out.argmax(1) if out.ndim == 4 else out)[0].astype(np.uint8)
        if pred.shape != label.shape:  # back to the label's resolution, as the runtime's overlay does
            pred = cv2.resize(pred, (label.shape[1], label.shape[0]), interpolation=cv2.INTER_NEAREST)
        metric.update(pred.astype(np.int64), label.astype(np.int64))
    result = metric.compute()
    return {"mIoU": 100.0 * float(result["mIoU"]), "boundary_f1": 100.0 * float(result["boundary_f1"])}


def accuracy_gate(fp32_path, int8_path, validation, max_drop: float = 1.0, name=None,
                  max_boundary_drop: float = 1.0) -> dict:
    """FP32 vs INT8 mIoU and boundary F1 on the labelled `validation` items; prints the table, returns the
    verdict (passed when neither drop exceeds its limit). The JSON goes next to `int8_path`, with its sha256
    (`name`: the INT8 model's final name when it is checked under a temporary one; the record moves with it,
    common.publish)."""
    from .common import file_hashes, sibling, write_json
    from .parity import runner_for

    meta = onnx_meta(fp32_path) if Path(fp32_path).suffix == ".onnx" else None
    if meta is None:
        from .common import openvino_meta
        meta = openvino_meta(fp32_path)
    items = [(preprocess([img], meta), label) for img, label in validation]
    fp32 = gate_scores(runner_for(fp32_path), items, meta)
    int8 = gate_scores(runner_for(int8_path), items, meta)
    drop, b_drop = fp32["mIoU"] - int8["mIoU"], fp32["boundary_f1"] - int8["boundary_f1"]
    final = Path(name) if name else Path(int8_path)
    report = {"fp32_model": Path(fp32_path).name, "int8_model": final.name, "images": len(items),
              "fp32_miou": fp32["mIoU"], "int8_miou": int8["mIoU"], "drop": drop, "max_drop": max_drop,
              "fp32_boundary_f1": fp32["boundary_f1"], "int8_boundary_f1": int8["boundary_f1"],
              "boundary_f1_drop": b_drop, "max_boundary_drop": max_boundary_drop,
              "passed": drop <= max_drop and b_drop <= max_boundary_drop,
              "file": Path(int8_path).name, **file_hashes(int8_path)}
    fp32_name, int8_name = report["fp32_model"] + " (FP32)", report["int8_model"] + " (INT8)"
    print(f"{'model':<28} {'mIoU':>7} {'bF1':>7}\n{fp32_name:<28} {fp32['mIoU']:7.2f} {fp32['boundary_f1']:7.2f}\n"
          f"{int8_name:<28} {int8['mIoU']:7.2f} {int8['boundary_f1']:7.2f}\n"
          f"{'drop':<28} {drop:7.2f} {b_drop:7.2f}  (max {max_drop:.2f} / {max_boundary_drop:.2f}): "
          f"{'ok' if report['passed'] else 'FAILED'}")
    write_json(sibling(int8_path, ".gate.json"), report)
    return report


def validation_items(args, meta, n=None):
    """Labelled validation images for the gate (None when no dataset was given)."""
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


def add_gate_args(p):
    p.add_argument("--max-drop", type=finite_float, default=1.0,
                   help="accuracy gate: max mIoU drop in points (default 1.0; negative: INT8 must beat FP32 by that much)")
    p.add_argument("--max-boundary-drop", type=finite_float, default=1.0,
                   help="accuracy gate: max boundary-F1 drop in points (default 1.0)")


@exporter
def main(argv=None) -> int:
    from .data import add_data_args, calibration_images
    from .parity import add_parity_args, parity_from_args

    p = ArgumentParser(prog="python -m export.quantize", description=__doc__, examples=(
        "python -m export.quantize student.onnx --data-root data/synthetic",
        "python -m export.quantize student.pt -o student.int8.onnx --calib-dir calib/ --num-calib 100",
        "python -m export.quantize student.onnx --data-root data/cityscapes --max-drop 0.5 --keep-failed"))
    p.add_argument("source", help="student checkpoint (.pt) or FP32 ONNX model (.onnx)")
    p.add_argument("-o", "--output", help="output Q/DQ ONNX (default: <source>.int8.onnx)")
    p.add_argument("--target", choices=sorted(TARGETS), default="ort",
                   help="the runtime the Q/DQ file is for: ort (ONNX Runtime CPU: uint8 activations, default) or "
                        "trt (TensorRT: symmetric int8); each is slow or refused on the other")
    add_gate_args(p)
    add_data_args(p)
    add_parity_args(p)
    args = p.parse_args(argv)
    source_kind(args.source)
    out = check_writable(Path(args.output) if args.output else default_output(args.source, "onnx", "int8"),
                         space_needed(args.source))
    with work_dir() as tmpdir, staged(out) as candidate:  # published only once parity and the gate pass
        src_onnx, torch_model = fp32_onnx(args.source, tmpdir)
        meta = onnx_meta(src_onnx)
        validation = validation_items(args, meta)  # before the work: a split the gate cannot use is an error
        images = calibration_images(meta, args.data_root, args.dataset, args.calib_dir, args.num_calib)
        quantize_onnx_int8(src_onnx, candidate, images, target=args.target)
        print(f"quantised {out.name}, calibrated on {len(images)} images; checking it")
        if args.target == "ort":
            graph = ort_int8_graph(candidate)
            if graph["float_convs"] or graph["float_activations"]:  # a gate on accuracy does not see speed
                print(f"warning: in ONNX Runtime {graph['float_convs']} convolutions and {graph['float_activations']} "
                      f"activations of {out.name} stay in float between Q/DQ pairs; such a model can run slower "
                      f"than FP32 (docs/int8.md): time both with benchmarks.speed", file=sys.stderr)
        code = parity_from_args(args, candidate, "int8", torch_model, reference_onnx=src_onnx, final=out)
        gate = None
        if validation and code == 0:
            gate = accuracy_gate(src_onnx, candidate, validation, args.max_drop, name=out,
                                 max_boundary_drop=args.max_boundary_drop)
            code = 0 if gate["passed"] else 1
        why = "its accuracy gate" if gate and not gate["passed"] else "its parity check"
        kept = publish(candidate, out, code == 0, args.keep_failed, why)
    if kept == out:
        print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return code


if __name__ == "__main__":
    sys.exit(main())
