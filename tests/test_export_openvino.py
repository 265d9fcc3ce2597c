"""OpenVINO IR export: FP32 really FP32, FP16 weights, NNCF INT8; parity and metadata in rt_info;
the .onnx path with torch and distill genuinely unimportable."""
import json
import subprocess
import sys
from pathlib import Path

import openvino as ov
import pytest

from export.data import synthetic_images
from export.metadata import onnx_meta, openvino_meta
from export.onnx import torch_to_onnx
from export.openvino import onnx_to_openvino
from export.parity import check_parity, onnx_runner
from runtime.contract import ExportError

ROOT = Path(__file__).resolve().parents[1]

# Runs a module with torch and distill absent, as on a device.
NO_TORCH = """
import runpy, sys
for name in ('torch', 'distill'):  # None in sys.modules: `import` fails and find_spec says absent
    sys.modules[name] = None
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)
"""


def run_without_torch(module, *args):
    return subprocess.run([sys.executable, "-c", NO_TORCH, module, *args], cwd=ROOT, capture_output=True, text=True)


def constant_types(xml):
    model = ov.Core().read_model(str(xml))
    return {op.get_output_element_type(0).get_type_name() for op in model.get_ops() if op.get_type_name() == "Constant"
            and op.get_output_size() and len(op.get_output_partial_shape(0)) == 4}  # conv weights


@pytest.fixture(scope="module")
def onnx_model(student_ckpt, tmp_path_factory):
    return torch_to_onnx(student_ckpt, tmp_path_factory.mktemp("ov") / "student.onnx")


@pytest.fixture(scope="module")
def calib_dir(tmp_path_factory):
    import cv2

    d = tmp_path_factory.mktemp("calib")
    for i, img in enumerate(synthetic_images(8, (64, 128), seed=3)):
        cv2.imwrite(str(d / f"{i:02d}.png"), img[..., ::-1])
    return d


def test_fp32_from_checkpoint_is_really_fp32(student_ckpt, onnx_model, tmp_path):
    out = tmp_path / "student.xml"
    r = subprocess.run([sys.executable, "-m", "export.openvino", str(student_ckpt), "-o", str(out)],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    report = json.loads(Path(str(out) + ".parity.json").read_text())
    assert report["passed"] and report["reference"] == "pytorch" and report["max_abs_diff"] < 1e-4
    assert constant_types(out) == {"f32"}
    # the weights are stored at 4 bytes each: the .bin is as large as the FP32 ONNX file's weights
    assert out.with_suffix(".bin").stat().st_size > 0.9 * onnx_model.stat().st_size
    meta = openvino_meta(out)
    assert meta["export"]["format"] == "openvino" and meta["export"]["precision"] == "fp32"
    assert {k: meta[k] for k in ("classes", "mean", "std", "input_size")} == \
        {k: onnx_meta(onnx_model)[k] for k in ("classes", "mean", "std", "input_size")}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["student.bin", "student.xml", "student.xml.parity.json"]


def test_fp16_weights_and_parity(onnx_model, tmp_path):
    out = onnx_to_openvino(onnx_model, tmp_path / "s16.xml", precision="fp16")
    assert constant_types(out) == {"f16"}
    fp32_bin = onnx_to_openvino(onnx_model, tmp_path / "s32.xml").with_suffix(".bin").stat().st_size
    assert out.with_suffix(".bin").stat().st_size < 0.6 * fp32_bin
    images = synthetic_images(3, (64, 128), seed=11)
    report = check_parity(out, "fp16", onnx_runner(onnx_model), "onnx fp32", images, "synthetic")
    assert report["passed"] and report["argmax_agreement"] >= 0.995
    assert json.loads(Path(str(out) + ".parity.json").read_text())["precision"] == "fp16"


def test_int8_from_onnx_without_torch(onnx_model, calib_dir, tmp_path):
    """No labelled data (calibration images only): INT8 only with --no-gate, recorded as "gate": null, and the
    runtime says so in one line when it loads the model."""
    out = tmp_path / "s8.xml"
    args = [str(onnx_model), "--precision", "int8", "--calib-dir", str(calib_dir), "-o", str(out)]
    r = run_without_torch("export.openvino", *args)
    assert r.returncode == 2 and "INT8 is published only after its accuracy gate" in r.stderr and not out.exists()
    r = run_without_torch("export.openvino", *args, "--no-gate")
    assert r.returncode == 0, r.stderr
    assert "NOT GATED" in r.stdout and openvino_meta(out)["export"]["gate"] is None
    bench = subprocess.run([sys.executable, "-m", "runtime.bench", "--model", str(out), "--iters", "1", "--warmup", "0"],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bench.returncode == 0, bench.stderr
    assert [line for line in bench.stderr.splitlines() if "gate" in line] == [
        f"{out}: INT8 published without its accuracy gate (exported with --no-gate): its accuracy was never checked "
        "on labelled data"]
    report = json.loads(Path(str(out) + ".parity.json").read_text())
    assert "no torch" in report["reference"] and report["precision"] == "int8"
    assert report["argmax_agreement"] > 0.9
    model = ov.Core().read_model(str(out))
    assert any(op.get_type_name() == "FakeQuantize" for op in model.get_ops())
    assert {"i8"} <= constant_types(out) or {"u8"} <= constant_types(out)
    meta = openvino_meta(out)
    assert meta["export"]["quantization"]["tool"] == "nncf" and meta["export"]["quantization"]["calibration_images"] == 8


def test_fp32_from_onnx_without_torch(onnx_model, tmp_path):
    out = tmp_path / "plain.xml"
    r = run_without_torch("export.openvino", str(onnx_model), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert json.loads(Path(str(out) + ".parity.json").read_text())["max_abs_diff"] < 1e-4


def test_errors_are_one_line_and_leave_nothing(student_ckpt, onnx_model, tmp_path):
    out = tmp_path / "x.xml"
    for args, expected in [((str(onnx_model), "--precision", "int8", "-o", str(out)), "only after its accuracy gate"),
                           ((str(onnx_model), "--precision", "int8", "-o", str(out), "--no-gate"),
                            "INT8 needs calibration images"),
                           ((str(tmp_path / "nope.onnx"), "-o", str(out)), "no such file"),
                           ((str(onnx_model), "-o", str(tmp_path / "x.onnx")), "-o/--output expected the IR's .xml path")]:
        r = run_without_torch("export.openvino", *args)
        assert r.returncode == 2 and r.stderr.startswith("error: ") and expected in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
    r = run_without_torch("export.openvino", str(student_ckpt), "-o", str(out))
    assert r.returncode == 2 and "needs torch" in r.stderr and "or pass an exported .onnx" in r.stderr, r.stderr
    with pytest.raises(ExportError, match="unknown precision"):
        onnx_to_openvino(onnx_model, tmp_path / "y.xml", precision="int4")


def test_the_ir_runs_at_the_precision_it_was_checked_at(onnx_model, tmp_path, caplog):
    """export.openvino records the compute precision parity (and the INT8 gate) ran at; the runtime compiles
    the IR at it by default, not at the device's own default (bf16 on a CPU with AVX512-BF16 or AMX), and an
    override is one line saying the run is unchecked."""
    from runtime.backends.openvino import OpenVINOBackend

    out = onnx_to_openvino(onnx_model, tmp_path / "s.xml")
    assert openvino_meta(out)["export"]["inference_precision"] == "f32"
    hint = lambda compiled: compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()  # noqa: E731
    device_default = hint(ov.Core().compile_model(str(out), "CPU"))
    with caplog.at_level("WARNING"):
        backend = OpenVINOBackend(out, device="cpu")
    assert hint(backend.compiled) == "f32" and backend.precision == "fp32" and "unchecked" not in caplog.text
    print(f"this CPU's own default: {device_default}; the IR runs at f32")
    with caplog.at_level("WARNING"):
        other = OpenVINOBackend(out, device="cpu", inference_precision="bf16")
    assert "computing in bf16, not f32" in caplog.text and "this run is unchecked" in caplog.text
    if device_default == "bf16":  # a CPU that has bf16: the override is what runs
        assert hint(other.compiled) == "bf16"
    r = subprocess.run([sys.executable, "-m", "runtime.bench", "--model", str(out), "--precision-hint", "bf16",
                        "--iters", "1", "--warmup", "0"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert [line for line in r.stderr.splitlines() if "unchecked" in line] == [
        f"{out}: computing in bf16, not f32, the precision its parity check and accuracy gate were measured at: "
        "this run is unchecked"]


@pytest.fixture(scope="module")
def synthetic_onnx(tmp_path_factory):
    """An 11-class student of the synthetic dataset and a 4-image labelled val split to gate it on."""
    from distill.data import build_dataset

    from .conftest import write_synthetic_student

    d = tmp_path_factory.mktemp("bf16")
    build_dataset("synthetic", d / "data", "val", num_images=4, size=[64, 128], seed=1)
    ckpt = write_synthetic_student(d / "s.pt", "lraspp_mobilenetv2_w035", (64, 128), seed=0, bn_passes=1)
    return torch_to_onnx(ckpt, d / "s.onnx"), d / "data"


def test_compute_bf16_is_gated_at_bf16_and_recorded(synthetic_onnx, tmp_path, caplog):
    """--compute bf16: parity and the accuracy gate run the IR compiled at bf16 (emulated on a CPU without native
    bf16; what OpenVINO compiled it at is in both records), the metadata records bf16 and the gate's verdict, and
    the runtime computes in bf16 where the CPU has native bf16 and in f32 (one info line) elsewhere."""
    from export.parity import openvino_runner
    from export.quantize import _gate_backend
    from runtime.backends.openvino import OpenVINOBackend, device_capabilities

    onnx_path, data = synthetic_onnx
    out = tmp_path / "s.bf16.xml"
    r = subprocess.run([sys.executable, "-m", "export.openvino", str(onnx_path), "--compute", "bf16", "-o", str(out),
                        "--data-root", str(data), "--dataset", "synthetic"], cwd=ROOT, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "checked at bf16: runs bf16 on CPUs with native bf16, f32 elsewhere" in r.stdout
    export = openvino_meta(out)["export"]
    assert export["precision"] == "fp32" and export["inference_precision"] == "bf16"
    assert export["gate"]["passed"] is True and export["gate"]["compute"] == "bf16"
    assert export["gate"]["report"] == "s.bf16.xml.gate.json" and "bf16_miou" in export["gate"]
    parity = json.loads(Path(str(out) + ".parity.json").read_text())
    gate = json.loads(Path(str(out) + ".gate.json").read_text())
    assert parity["compute"] == "bf16" and parity["passed"] and parity["min_argmax_agreement"] == 0.99
    assert parity["max_abs_diff"] > 1e-4  # bf16 rounding really happened (an f32 IR stays within 1e-4 of torch)
    assert gate["compute"] == "bf16" and gate["bf16_runs_as"] == "fp32 (bf16 compute)" and gate["passed"]
    assert gate["fp32_runs_as"] == "fp32" and gate["images"] == 4
    # what parity and the gate compile the published file at, whatever this CPU has
    assert openvino_runner(out).compute == "bf16"
    backend = _gate_backend(out)
    assert backend.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name() == "bf16"
    backend.close()
    native = "BF16" in device_capabilities(ov.Core(), "CPU")
    with caplog.at_level("INFO", logger="runtime.backends.openvino"):
        runtime = OpenVINOBackend(out, device="cpu")
    ran = runtime.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    assert (ran, runtime.precision) == (("bf16", "fp32 (bf16 compute)") if native else ("f32", "fp32"))
    assert ("no native bf16" in caplog.text) is not native and "unchecked" not in caplog.text
    print(f"this CPU has native bf16: {native}; the bf16-checked IR runs at {ran}")


def test_compute_bf16_needs_the_gate_and_fp32_or_int8_weights(synthetic_onnx, tmp_path, capsys):
    from export.openvino import main

    onnx_path, data = synthetic_onnx
    out = tmp_path / "x.xml"
    for args, expected in [([], "--compute bf16 records bf16 as checked"),
                           (["--data-root", str(data), "--no-gate"], "--compute bf16 records bf16 as checked"),
                           (["--data-root", str(data), "--precision", "fp16"], "--compute bf16 is for an FP32 or INT8")]:
        assert main([str(onnx_path), "--compute", "bf16", "-o", str(out), *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and expected in err and len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []


def test_the_runtime_runs_bf16_only_where_the_cpu_has_it():
    """The decision: an IR checked at bf16 computes in bf16 on a device whose OPTIMIZATION_CAPABILITIES have
    BF16 (AVX512-BF16 or AMX: Sapphire Rapids), in f32 elsewhere (this Xeon's list has no BF16); an IR checked at
    f32 stays f32 everywhere, and one that records nothing is left to the device."""
    from runtime.backends.openvino import run_precision

    with_bf16 = ["WINOGRAD", "FP32", "FP16", "INT8", "BIN", "BF16", "EXPORT_IMPORT"]
    without = ["WINOGRAD", "FP32", "INT8", "BIN", "EXPORT_IMPORT"]
    assert run_precision("bf16", with_bf16) == "bf16"
    assert run_precision("bf16", without) == "f32" and run_precision("bf16", []) == "f32"
    assert run_precision("f32", with_bf16) == "f32" and run_precision("f32", without) == "f32"
    assert run_precision(None, with_bf16) is None


def test_a_bf16_ir_that_failed_its_gate_or_was_not_measured_at_bf16():
    """The runtime warns about a bf16-checked IR kept after a failed gate; an export whose checks OpenVINO
    compiled at another precision than bf16 is refused (nothing is published)."""
    from export.openvino import check_measured
    from runtime.backends.base import gate_warning

    meta = {"export": {"precision": "fp32", "inference_precision": "bf16", "gate": {
        "passed": False, "drop": 2.5, "max_drop": 1.0, "boundary_f1_drop": 0.5, "max_boundary_drop": 1.0,
        "report": "s.FAILED.xml.gate.json"}}}
    assert gate_warning(meta, "s.FAILED.xml") == (
        "s.FAILED.xml: bf16-compute model that FAILED its accuracy gate (mIoU drop 2.50 (max 1.00), boundary-F1 "
        "drop 0.50 (max 1.00) points; kept with --keep-failed, see s.FAILED.xml.gate.json): do not deploy it")
    assert gate_warning({"export": {"precision": "fp32", "inference_precision": "f32"}}, "s.xml") is None
    check_measured("s.xml", "bf16", None, {"compute": "bf16"})
    with pytest.raises(ExportError, match="OpenVINO compiled it at f32 for the accuracy gate: bf16 was not measured"):
        check_measured("s.xml", "bf16", None, {"compute": "f32"})
