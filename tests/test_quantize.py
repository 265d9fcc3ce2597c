"""INT8: calibration data from the dataset, ONNX Runtime Q/DQ quantisation in the form TensorRT
wants, and the FP32-vs-INT8 accuracy gate on a validation split written in its on-disk format."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from export.data import calibration_images, preprocess, synthetic_images
from export.metadata import onnx_meta
from export.onnx import torch_to_onnx
from export.parity import onnx_runner
from export.quantize import quantize_onnx_int8
from runtime.contract import ExportError

from .conftest import write_synthetic_student

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    return tmp_path_factory.mktemp("data") / "synthetic"


@pytest.fixture(scope="module")
def synthetic_student(tmp_path_factory):
    """A student with the synthetic dataset's classes, so the gate's labels fit its outputs."""
    return write_synthetic_student(tmp_path_factory.mktemp("syn") / "student.pt", "lraspp_mobilenetv2_w035",
                                   (64, 128), seed=0, bn_passes=1)


def test_preprocess_is_the_runtime_formula():
    meta = {"arch": "a", "num_classes": 1, "classes": ["x"], "palette": [[0, 0, 0]], "mean": [10.0, 20.0, 30.0],
            "std": [2.0, 4.0, 5.0], "input_size": [32, 48]}
    img = synthetic_images(1, (32, 48), seed=4)[0]
    x = preprocess([img], meta)
    expected = ((img.astype(np.float32) - [10, 20, 30]) / [2, 4, 5]).transpose(2, 0, 1)[None]
    assert x.dtype == np.float32 and x.shape == (1, 3, 32, 48)
    np.testing.assert_allclose(x, expected, rtol=1e-5, atol=1e-5)


def test_calibration_images_from_dataset(synthetic_student, synthetic_root):
    from distill import checkpoint

    meta = checkpoint.load_meta(synthetic_student)
    images = calibration_images(meta, data_root=synthetic_root, num_calib=5)
    assert len(images) == 5 and images[0].dtype == np.uint8 and images[0].shape == (64, 128, 3)
    assert len(calibration_images(meta, data_root=synthetic_root)) == 32  # the synthetic default
    with pytest.raises(ExportError, match="INT8 needs calibration images"):
        calibration_images(meta)
    with pytest.raises(ExportError, match="calibration folder not found"):
        calibration_images(meta, calib_dir=synthetic_root / "nope")


def _zero_points(model):
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return inits, [inits[n.input[2]] for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
                   and len(n.input) > 2 and n.input[2] in inits]


def test_qdq_int8_for_onnxruntime_fuses_every_conv(mobilenet_ckpt, tmp_path):
    """The `ort` target: uint8 activations with zero points, so ReLU6 folds into the quantisation range and
    ONNX Runtime turns every Conv into a QLinearConv (with symmetric int8 activations the Clip nodes stay
    in float and so do the convolutions next to them: INT8 slower than FP32, docs/int8.md)."""
    import onnxruntime as ort

    from export.trt import prequantized
    from runtime import metadata

    fp32 = torch_to_onnx(mobilenet_ckpt, tmp_path / "m.onnx")
    images = synthetic_images(8, (64, 128), seed=2)
    int8 = quantize_onnx_int8(fp32, tmp_path / "m.int8.onnx", images, target="ort")
    model = onnx.load(str(int8))
    ops = [n.op_type for n in model.graph.node]
    assert "Clip" not in ops and "Relu" not in ops
    _, zero_points = _zero_points(model)
    assert zero_points and all(z.dtype == np.uint8 for z in zero_points if z.size == 1 and z.ndim == 0)
    assert any(z.dtype == np.uint8 and z.any() for z in zero_points)  # asymmetric activations
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(str(int8), so, providers=["CPUExecutionProvider"])
    optimized = [n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node]
    n_conv = ops.count("Conv")
    assert n_conv > 10 and optimized.count("QLinearConv") == n_conv and "Conv" not in optimized
    # the logits' upsampling stays float (ONNX Runtime runs a bilinear Resize in float anyway): no
    # Quantize/Dequantize pair over the full-resolution output, which TensorRT's file keeps
    out = model.graph.output[0].name
    (last,) = [n for n in model.graph.node if out in n.output]
    assert last.op_type == "Resize" and not [n for n in model.graph.node if out in n.input]
    meta = onnx_meta(int8)
    assert metadata.quantization_target(meta) == "ort" and meta["export"]["quantization"]["float_nodes"] == [last.name]
    with pytest.raises(ExportError, match="quantised for ONNX Runtime"):
        prequantized(meta, int8)  # export.trt refuses it
    x = preprocess(synthetic_images(2, (64, 128), seed=9), meta)
    agree = (onnx_runner(int8)(x).argmax(1) == onnx_runner(fp32)(x).argmax(1)).mean()
    assert agree > 0.9


def test_qdq_int8_is_what_tensorrt_wants(mobilenet_ckpt, tmp_path, caplog):
    from export.trt import prequantized
    from runtime.backends.onnxruntime import OnnxRuntimeBackend

    fp32 = torch_to_onnx(mobilenet_ckpt, tmp_path / "m.onnx")
    images = synthetic_images(8, (64, 128), seed=2)
    int8 = quantize_onnx_int8(fp32, tmp_path / "m.int8.onnx", images, target="trt")
    assert prequantized(onnx_meta(int8), int8) and not prequantized(onnx_meta(fp32), fp32)
    with caplog.at_level("WARNING"):  # fine for TensorRT, slow on ONNX Runtime's CPU kernels: said so
        OnnxRuntimeBackend(int8, device="cpu")
    assert "quantised for TensorRT" in caplog.text and "--target ort" in caplog.text
    model = onnx.load(str(int8))
    ops = [n.op_type for n in model.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    inits, zero_points = _zero_points(model)
    assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points)  # symmetric
    per_channel = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[1] in inits
                   and inits[n.input[1]].size > 1]
    assert per_channel  # per-channel weight scales
    (last,) = [n for n in model.graph.node if model.graph.output[0].name in n.output]
    assert last.op_type == "DequantizeLinear"  # TensorRT quantises up to the output
    meta = onnx_meta(int8)
    assert meta["export"]["precision"] == "int8" and meta["export"]["quantization"]["calibration_images"] == 8
    x = preprocess(synthetic_images(2, (64, 128), seed=9), meta)
    agree = (onnx_runner(int8)(x).argmax(1) == onnx_runner(fp32)(x).argmax(1)).mean()
    assert agree > 0.9


@pytest.mark.slow  # 14 s: two full INT8 exports; the fast loop keeps the gate's own tests (test_int8_gate.py)
def test_cli_gate_passes_and_fails(synthetic_student, synthetic_root, tmp_path):
    out = tmp_path / "s.int8.onnx"
    args = [sys.executable, "-m", "export.quantize", str(synthetic_student), "-o", str(out),
            "--data-root", str(synthetic_root), "--num-calib", "8"]
    r = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "gate verdict" not in r.stderr, r.stderr  # the candidate awaiting its gate is not warned about
    gate = json.loads(Path(str(out) + ".gate.json").read_text())
    assert gate["images"] == 32 and gate["passed"] and abs(gate["drop"]) <= 1.0
    assert onnx_meta(out)["export"]["gate"] == {"max_drop": 1.0, "max_boundary_drop": 1.0, "split": "val",
                                                "report": "s.int8.onnx.gate.json", "passed": True,
                                                **{k: gate[k] for k in ("drop", "boundary_f1_drop", "fp32_miou",
                                                                        "int8_miou", "images")}}
    assert abs(gate["boundary_f1_drop"]) <= 1.0 and gate["max_boundary_drop"] == 1.0
    assert gate["boundary_f1_drop"] == pytest.approx(gate["fp32_boundary_f1"] - gate["int8_boundary_f1"])
    assert "(FP32)" in r.stdout and "(INT8)" in r.stdout and "bF1" in r.stdout
    assert onnx_meta(out)["export"]["quantization"]["target"] == "ort"  # the default
    r = subprocess.run(args + ["--max-boundary-drop", str(gate["boundary_f1_drop"] - 0.5)], cwd=ROOT,
                       capture_output=True, text=True)  # mIoU within its limit, boundaries not: fails
    assert r.returncode == 1 and "FAILED" in r.stdout, r.stdout + r.stderr
    assert json.loads(Path(str(out) + ".gate.json").read_text())["passed"]  # the record of the model in use
    passed_bytes = out.read_bytes()
    fail = ["--max-drop", str(gate["drop"] - 0.5)]  # negative: INT8 would have to beat FP32 by 0.5 points
    r = subprocess.run(args + fail, cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 1 and "FAILED" in r.stdout
    assert r.stderr.strip().splitlines()[-1].startswith("error: s.int8.onnx failed its accuracy gate")
    assert json.loads(Path(str(out) + ".gate.json").read_text()) == gate  # the failed candidate's record went with it
    assert out.read_bytes() == passed_bytes  # the model that passed its gate earlier is left as it was
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no candidate left
    out2 = tmp_path / "new" / "t.int8.onnx"
    r = subprocess.run(args[:5] + [str(out2)] + args[6:] + fail + ["--keep-failed"], cwd=ROOT, capture_output=True,
                       text=True)
    assert r.returncode == 1 and not out2.exists() and (out2.parent / "t.int8.FAILED.onnx").is_file()
    failed = json.loads((out2.parent / "t.int8.FAILED.onnx.gate.json").read_text())
    assert failed["file"] == "t.int8.FAILED.onnx" and not failed["passed"] and failed["int8_model"] == "t.int8.onnx"
    assert not Path(str(out2) + ".gate.json").exists()


def test_cli_refuses_ungated_int8_and_missing_calibration(student_ckpt, calib, tmp_path):
    """No labelled data: INT8 is refused (one line saying how to give it) before any work, unless --no-gate."""
    args = [sys.executable, "-m", "export.quantize", str(student_ckpt), "-o", str(tmp_path / "q.onnx")]
    for extra in ([], ["--calib-dir", str(calib)]):
        r = subprocess.run(args + extra, cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 2 and r.stderr.strip().splitlines() == [r.stderr.strip()], r.stderr
        assert r.stderr.startswith("error: INT8 is published only after its accuracy gate on labelled validation "
                                   "data: pass --data-root DIR") and "or --no-gate" in r.stderr
    r = subprocess.run(args + ["--no-gate"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("error: INT8 needs calibration images"), r.stderr
    assert list(tmp_path.iterdir()) == []


def test_relative_drop_limits_both_metrics():
    from export.quantize import relative_drop

    ref = {"mIoU": 50.0, "boundary_f1": 40.0}
    limits = {"mIoU": 1.0, "boundary_f1": 2.0}
    assert relative_drop(ref, ref, limits) == 0.0
    assert relative_drop(ref, {"mIoU": 49.5, "boundary_f1": 37.0}, limits) == pytest.approx(1.5)  # boundary decides
    assert relative_drop(ref, {"mIoU": 48.0, "boundary_f1": 40.0}, limits) == pytest.approx(2.0)
    assert relative_drop(ref, {"mIoU": 48.0, "boundary_f1": 39.0}, {"mIoU": None, "boundary_f1": 2.0}) == 0.5


@pytest.mark.slow  # 17 s: OpenVINO INT8 with and without the boundary limit
def test_openvino_int8_gate_guards_boundaries(synthetic_student, synthetic_root, tmp_path):
    from export.metadata import openvino_meta

    out = tmp_path / "s.int8.xml"
    args = [sys.executable, "-m", "export.openvino", str(synthetic_student), "--precision", "int8", "-o", str(out),
            "--data-root", str(synthetic_root), "--num-calib", "8"]
    r = subprocess.run(args + ["--accuracy-control", "--max-boundary-drop", "0.5"], cwd=ROOT, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "gate verdict" not in r.stderr, r.stderr  # the candidate awaiting its gate is not warned about
    gate = json.loads(Path(str(out) + ".gate.json").read_text())
    assert gate["passed"] and gate["max_boundary_drop"] == 0.5 and gate["boundary_f1_drop"] <= 0.5, (gate, r.stdout)
    quant = openvino_meta(out)["export"]["quantization"]
    assert quant["accuracy_control"] and quant["max_boundary_drop"] == 0.5 and quant["max_drop"] == 1.0
    r = subprocess.run(args + ["--max-boundary-drop", str(gate["boundary_f1_drop"] - 0.5)], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 1 and "FAILED" in r.stdout, r.stdout + r.stderr
    assert json.loads(Path(str(out) + ".gate.json").read_text()) == gate  # the model in use keeps its record


def test_activations_onnxruntime_cannot_run_in_int8_are_reported(mobilenet_ckpt, tmp_path):
    """MobileNetV3's hard-swish has no int8 kernel in ONNX Runtime: it stays in float between Q/DQ pairs (the
    reason its INT8 is no faster than FP32 there, 1.03x in docs/results/speed.md); MobileNetV2's ReLU6 folds away."""
    from export.quantize import ort_int8_graph

    from .conftest import write_student

    images = synthetic_images(4, (64, 128), seed=2)
    v2 = quantize_onnx_int8(torch_to_onnx(mobilenet_ckpt, tmp_path / "v2.onnx"), tmp_path / "v2.int8.onnx", images)
    v3_ckpt = write_student(tmp_path / "v3.pt", arch="lraspp_mobilenetv3_large")
    v3 = quantize_onnx_int8(torch_to_onnx(v3_ckpt, tmp_path / "v3.onnx"), tmp_path / "v3.int8.onnx", images)
    g2, g3 = ort_int8_graph(v2), ort_int8_graph(v3)
    assert g2["float_convs"] == 0 and g2["float_activations"] == 0 and g2["int8_convs"] > 10
    assert g3["float_convs"] == 0 and g3["float_activations"] >= 20  # one hard-sigmoid per hard-swish and SE gate
