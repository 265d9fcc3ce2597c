"""INT8: post-training static quantisation calibrated on real images, and the accuracy gate.

- ONNX Runtime: Q/DQ ONNX (symmetric INT8 activations and per-channel weights, the explicit
  quantisation TensorRT 10+ builds from), `python -m export.quantize student.pt|.onnx`.
- OpenVINO: NNCF post-training quantisation of the IR (export.openvino --precision int8), or
  NNCF's accuracy-controlled quantisation when a labelled validation split is given.
- The gate: FP32 vs INT8 mIoU on the validation split; fails when the drop exceeds --max-drop.

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

from .common import (ExportError, check_writable, exporter, onnx_meta, preprocess, publish, record_file,
                     set_onnx_meta, sibling, source_kind, staged, work_dir)
from .onnx import fp32_onnx


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


def quantize_onnx_int8(src, out, images, for_tensorrt=True, preprocess_model=True) -> Path:
    """FP32 ONNX -> Q/DQ INT8 ONNX with ONNX Runtime's static quantiser, calibrated on `images`.

    Symmetric activations and weights (zero point 0) with per-channel weight scales: what
    TensorRT's explicit quantisation expects; ONNX Runtime runs the same file on CPU.
    """
    quant = require("onnxruntime.quantization", "export", "INT8 quantisation")
    if not images:
        raise ExportError("INT8 calibration needs at least one image")
    src, out = Path(src), check_writable(out)
    meta = onnx_meta(src)
    if meta.get("export", {}).get("opset", 17) < 13:
        raise ExportError(f"{src}: per-channel INT8 needs opset >= 13; re-export with --opset 17")
    extra = {"ActivationSymmetric": True, "WeightSymmetric": True}
    if for_tensorrt:
        extra["QuantizeBias"] = False  # TensorRT fuses FP32 bias into the INT8 conv itself
    with work_dir() as tmpdir, atomic_path(out) as tmp:
        model_in = src
        if preprocess_model:  # shape inference + graph optimisation, as ORT recommends before quantising
            model_in = Path(tmpdir) / "pre.onnx"
            quant.quant_pre_process(str(src), str(model_in), skip_symbolic_shape=False)
        quant.quantize_static(str(model_in), str(tmp), _reader(images, meta),
                              quant_format=quant.QuantFormat.QDQ, per_channel=True,
                              activation_type=quant.QuantType.QInt8, weight_type=quant.QuantType.QInt8,
                              calibrate_method=quant.CalibrationMethod.MinMax, extra_options=extra)
        onnx = require("onnx", "export")
        model = onnx.load(str(tmp))
        meta = copy.deepcopy(meta)
        meta.setdefault("export", {}).update(precision="int8", quantization={
            "tool": "onnxruntime.quantization.quantize_static", "format": "QDQ", "symmetric": True,
            "per_channel": True, "calibration_images": len(images)})
        set_onnx_meta(model, meta)
        onnx.save(model, str(tmp))
    return out


def quantize_openvino_int8(ov_model, images, meta, validation=None, max_drop=None):
    """NNCF post-training quantisation of an OpenVINO model; with `validation` (list of (image, label))
    and `max_drop` (mIoU points), NNCF's accuracy-controlled variant keeps the drop within bounds."""
    nncf = require("nncf", "openvino", "OpenVINO INT8 quantisation")
    if not images:
        raise ExportError("INT8 calibration needs at least one image")
    inputs = [x[None] for x in preprocess(images, meta)]
    calib = nncf.Dataset(inputs)
    if validation is None:
        return nncf.quantize(ov_model, calib, subset_size=len(inputs))

    val_inputs = [(preprocess([img], meta), label) for img, label in validation]

    def validate(compiled, data):
        return miou(lambda x: compiled(x)[compiled.outputs[0]], data, meta) / 100.0

    return nncf.quantize_with_accuracy_control(
        ov_model, calib, nncf.Dataset(val_inputs), validation_fn=validate, max_drop=max_drop / 100.0,
        drop_type=nncf.DropType.ABSOLUTE, subset_size=len(inputs))


def miou(run, items, meta) -> float:
    """mIoU (percent) of `run` (batch -> logits or labels) over preprocessed (input, label) pairs."""
    import cv2

    from distill.metrics import SegMetric

    metric = SegMetric(meta["num_classes"], ignore_index=255, boundary=False, connectivity=False)
    for x, label in items:
        out = run(x)
        pred = (out.argmax(1) if out.ndim == 4 else out)[0].astype(np.uint8)
        if pred.shape != label.shape:  # back to the label's resolution, as the runtime's overlay does
            pred = cv2.resize(pred, (label.shape[1], label.shape[0]), interpolation=cv2.INTER_NEAREST)
        metric.update(pred.astype(np.int64), label.astype(np.int64))
    return 100.0 * float(metric.compute()["mIoU"])


def accuracy_gate(fp32_path, int8_path, validation, max_drop: float = 1.0, name=None) -> dict:
    """FP32 vs INT8 mIoU on the labelled `validation` items; prints the table, returns the verdict.
    `name`: the INT8 model's final name when it is checked under a temporary one (the JSON goes there)."""
    from .common import sibling, write_json
    from .parity import runner_for

    meta = onnx_meta(fp32_path) if Path(fp32_path).suffix == ".onnx" else None
    if meta is None:
        from .common import openvino_meta
        meta = openvino_meta(fp32_path)
    items = [(preprocess([img], meta), label) for img, label in validation]
    fp32 = miou(runner_for(fp32_path), items, meta)
    int8 = miou(runner_for(int8_path), items, meta)
    drop = fp32 - int8
    final = Path(name) if name else Path(int8_path)
    report = {"fp32_model": Path(fp32_path).name, "int8_model": final.name, "images": len(items),
              "fp32_miou": fp32, "int8_miou": int8, "drop": drop, "max_drop": max_drop, "passed": drop <= max_drop}
    print(f"{'model':<28} {'mIoU':>7}\n{report['fp32_model'] + ' (FP32)':<28} {fp32:7.2f}\n"
          f"{report['int8_model'] + ' (INT8)':<28} {int8:7.2f}\n{'drop':<28} {drop:7.2f}  "
          f"(max {max_drop:.2f}): {'ok' if report['passed'] else 'FAILED'}")
    write_json(sibling(final, ".gate.json"), report)
    return report


def validation_items(args, meta, n=None):
    """Labelled validation images for the gate (None when no dataset was given)."""
    from .data import build, dataset_images

    if not getattr(args, "data_root", None):
        return None
    name = args.dataset or meta.get("dataset")
    dataset = build(name, args.data_root, "val", meta)
    return dataset_images(dataset, n or len(dataset), "validation", with_labels=True)


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
    p.add_argument("--max-drop", type=finite_float, default=1.0,
                   help="accuracy gate: max mIoU drop in points (default 1.0; negative: INT8 must beat FP32 by that much)")
    add_data_args(p)
    add_parity_args(p)
    args = p.parse_args(argv)
    source_kind(args.source)
    out = check_writable(Path(args.output) if args.output else default_output(args.source, "onnx", "int8"))
    with work_dir() as tmpdir, staged(out) as candidate:  # published only once parity and the gate pass
        src_onnx, torch_model = fp32_onnx(args.source, tmpdir)
        meta = onnx_meta(src_onnx)
        images = calibration_images(meta, args.data_root, args.dataset, args.calib_dir, args.num_calib)
        quantize_onnx_int8(src_onnx, candidate, images)
        print(f"quantised {out.name}, calibrated on {len(images)} images; checking it")
        code = parity_from_args(args, candidate, "int8", torch_model, reference_onnx=src_onnx, final=out)
        validation = validation_items(args, meta)
        gate = None
        if validation and code == 0:
            gate = accuracy_gate(src_onnx, candidate, validation, args.max_drop, name=out)
            code = 0 if gate["passed"] else 1
        why = "its accuracy gate" if gate and not gate["passed"] else "its parity check"
        kept = publish(candidate, out, code == 0, args.keep_failed, why)
    for suffix in ([] if args.skip_parity else [".parity.json"]) + ([".gate.json"] if gate else []):
        record_file(sibling(out, suffix), kept)
    if kept == out:
        print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return code


if __name__ == "__main__":
    sys.exit(main())
