"""Does the exported model still compute what was trained? Run the reference (the PyTorch model,
or the FP32 ONNX model when exporting from .onnx without torch) and the export on the same images;
report max/mean abs logit difference and argmax agreement, write `<output>.parity.json`.

Default tolerances on argmax agreement: FP32 99.9%, FP16 99.5%; INT8 only a 95% floor here (that
catches broken calibration or preprocessing): it is judged by the accuracy gate (mIoU on the
validation split, export.quantize.accuracy_gate). An IR checked at bf16 compute (export.openvino
--compute bf16) has a 99% floor (or its weights' own, if lower): it too is judged by the gate. The record
says what OpenVINO compiled the IR at (`compute`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime import metadata
from runtime.contract import ExportError, cause_line, fraction, positive_int
from runtime.formats import backend_class, format_for, require

from .data import preprocess
from .metadata import model_meta
from .publish import file_hashes, sibling, write_json

MIN_AGREEMENT = {"fp32": 0.999, "fp16": 0.995, "int8": 0.95}  # INT8: a floor that catches broken calibration
MIN_AGREEMENT_BF16 = 0.99  # bf16 compute: a floor too (8 mantissa bits flip the odd near-tie pixel); the gate judges


def default_agreement(precision: str, compute: str | None = None):
    """The argmax agreement parity needs by default: the weights' (MIN_AGREEMENT), or the bf16 floor where the
    model computes in bf16 and that is lower."""
    tol = MIN_AGREEMENT.get(precision)
    if compute == "bf16" and tol is not None:
        tol = min(tol, MIN_AGREEMENT_BF16)
    return tol


def onnx_runner(path):
    ort = require("onnxruntime", "export", "running ONNX models")
    so = ort.SessionOptions()
    so.log_severity_level = 3
    # no memory arena: a check runs a few images, and at 1024x2048 an arena per session would keep the
    # peak of each (the reference's and the candidate's) for the life of the export
    so.enable_cpu_mem_arena = False
    try:
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's own Fail/InvalidGraph/NoSuchFile types
        raise ExportError(f"{path}: ONNX Runtime cannot load it ({type(e).__name__}: {_first_line(e)})") from None
    name = sess.get_outputs()[0].name
    return lambda x: sess.run([name], {metadata.INPUT_NAME: x})[0]


def openvino_runner(path):
    """The IR compiled for the CPU at the compute precision recorded in it (export.openvino --compute: f32, or
    bf16 whatever the CPU, emulated where it has no native bf16), which is what the runtime compiles it at by
    default (a bf16 one: where the CPU has native bf16); f32 for an IR that records none (the CPU plugin would
    otherwise pick bf16 on AMX/AVX512-BF16 machines). The runner's `compute` is what OpenVINO compiled it at."""
    ov = require("openvino", "openvino", "running OpenVINO models")
    from runtime.backends.openvino import checked_precision

    try:
        core = ov.Core()
        model = core.read_model(str(path))
        meta = metadata.loads(model.get_rt_info([metadata.META_KEY]).astype(str), str(path)) \
            if model.has_rt_info([metadata.META_KEY]) else {}
        compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": checked_precision(meta) or "f32"})
    except Exception as e:  # OpenVINO raises RuntimeError/GeneralFailure for unreadable IR
        raise ExportError(f"{path}: OpenVINO cannot load it ({type(e).__name__}: {_first_line(e)})") from None
    out = compiled.outputs[0]

    def run(x):
        return compiled(x)[out]
    run.compute = compiled_precision(compiled)
    return run


def compiled_precision(compiled) -> str | None:
    """What an OpenVINO compiled model computes in ('f32', 'bf16', 'f16'), from its INFERENCE_PRECISION_HINT."""
    try:
        value = compiled.get_property("INFERENCE_PRECISION_HINT")
    except Exception:  # a device that does not report it
        return None
    return value.get_type_name() if hasattr(value, "get_type_name") else str(value)


def _first_line(e):
    return cause_line(e)


def runner_for(path):
    """A function batch -> output for a model file, by suffix."""
    fmt = format_for(path)
    if fmt.name == "onnx":
        return onnx_runner(path)
    if fmt.name == "openvino":
        return openvino_runner(path)
    return backend_class(fmt)(str(path)).infer  # TensorRT: the runtime's backend


def torch_runner(model, argmax=False):
    import torch

    def run(x):
        with torch.no_grad():
            y = model(torch.from_numpy(x))
        return (y.argmax(1) if argmax else y).numpy()
    return run


def compare(reference, candidate, inputs, labels_output: bool) -> dict:
    """Per-image comparison; logits diffs are skipped when the export outputs labels."""
    agree = total = 0
    max_abs, abs_sum, n_vals = 0.0, 0.0, 0
    for x in inputs:
        ref, out = reference(x[None]), candidate(x[None])
        ref_labels = ref if labels_output else ref.argmax(1)
        out_labels = out if labels_output else out.argmax(1)
        agree += int((ref_labels.astype(np.int64) == out_labels.astype(np.int64)).sum())
        total += ref_labels.size
        if not labels_output:  # float32 differences, summed in float64: no float64 copies of full-size logits
            d = np.abs(np.subtract(ref, out, dtype=np.float32))
            max_abs, abs_sum, n_vals = max(max_abs, float(d.max())), abs_sum + float(d.sum(dtype=np.float64)), n_vals + d.size
    res = {"argmax_agreement": agree / max(total, 1), "pixels": total}
    if not labels_output:
        res.update(max_abs_diff=max_abs, mean_abs_diff=abs_sum / max(n_vals, 1))
    return res


def check_parity(model_path, precision: str, reference, reference_name: str, images, images_source: str,
                 min_agreement: float | None = None, meta: dict | None = None, write=True, name=None) -> dict:
    """Compare `model_path` to `reference` (batch -> output) on uint8 `images`; write the JSON next to
    the file checked (`name`: the model's final name, when it is checked under a temporary one; the
    record moves with it, export.publish), with the sha256 of the bytes it describes.

    Returns the report; report["passed"] is False when agreement < the tolerance.
    """
    model_path = Path(model_path)
    final = Path(name) if name else model_path
    meta = meta or model_meta(model_path)
    labels_output = meta.get("export", {}).get("output") == metadata.OUTPUT_LABELS
    inputs = (preprocess([img], meta)[0] for img in images)  # one image at a time
    candidate = runner_for(model_path)
    compute = getattr(candidate, "compute", None)
    res = compare(reference, candidate, inputs, labels_output)
    tol = default_agreement(precision, compute) if min_agreement is None else min_agreement
    report = {"model": final.name, "precision": precision, **({"compute": compute} if compute else {}),
              "reference": reference_name,
              "images": len(images), "images_source": images_source, "input_size": list(meta["input_size"]),
              "output": "labels" if labels_output else "logits", **res,
              "min_argmax_agreement": tol, "passed": tol is None or res["argmax_agreement"] >= tol,
              "file": model_path.name, **file_hashes(model_path)}
    print(format_report(report))
    if write:
        write_json(sibling(model_path, ".parity.json"), report)
    return report


def format_report(r: dict) -> str:
    diffs = (f"max |diff| {r['max_abs_diff']:.3g}, mean |diff| {r['mean_abs_diff']:.3g}, "
             if "max_abs_diff" in r else "")
    tol = "" if r["min_argmax_agreement"] is None else f" (need >= {100 * r['min_argmax_agreement']:.1f}%)"
    verdict = "ok" if r["passed"] else "FAILED"
    what = r["precision"] + (f", {r['compute']} compute" if r.get("compute") else "")
    return (f"parity {r['model']} [{what}] vs {r['reference']} on {r['images']} {r['images_source']} "
            f"images: {diffs}argmax agreement {100 * r['argmax_agreement']:.3f}%{tol}: {verdict}")


def add_parity_args(p):
    g = p.add_argument_group("parity")
    g.add_argument("--parity-images", type=positive_int, default=4, help="images for the parity check (default 4)")
    g.add_argument("--min-agreement", type=fraction,
                   help="argmax agreement needed, 0..1 (default 0.999 FP32, 0.995 FP16, 0.95 INT8; at most 0.99 at bf16 "
                        "compute)")
    g.add_argument("--skip-parity", action="store_true", help="no parity check (not recommended)")
    g.add_argument("--keep-failed", action="store_true",
                   help="keep a model that fails parity or the accuracy gate as <name>.FAILED<suffix> (default: delete it)")


def parity_from_args(args, out, precision: str, torch_model=None, reference_onnx=None, final=None) -> int:
    """The CLI's check: 0 if parity passed (or was skipped), 1 if it failed. `out` is the file checked,
    `final` the name it will have (the JSON, next to `out`, names it)."""
    from .data import parity_images

    if args.skip_parity:
        return 0
    meta = model_meta(out)
    images, source = parity_images(meta, args.parity_images, getattr(args, "data_root", None),
                                   getattr(args, "dataset", None), getattr(args, "calib_dir", None))
    labels_output = meta.get("export", {}).get("output") == metadata.OUTPUT_LABELS
    if torch_model is not None:
        reference, name = torch_runner(torch_model, argmax=labels_output), "pytorch"
    else:
        reference, name = onnx_runner(reference_onnx), f"onnxruntime {Path(reference_onnx).name} (no torch)"
    report = check_parity(out, precision, reference, name, images, source, args.min_agreement, meta, name=final)
    return 0 if report["passed"] else 1


