"""The verdict travels with the model: an INT8 model's metadata gets its gate section after the gate, with
`passed` and the record it is kept with; the runtime warns in one line when it loads a model that did not pass
(kept with --keep-failed), whose gate never ran, or that was not gated (--no-gate), and says nothing for one
that passed."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from export.data import synthetic_images
from export.metadata import model_meta
from export.onnx import torch_to_onnx
from export.publish import file_hashes, publish, sibling
from export.quantize import quantize_onnx_int8

from .conftest import write_synthetic_student

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fp32(tmp_path_factory):
    d = tmp_path_factory.mktemp("verdict")
    ckpt = write_synthetic_student(d / "s.pt", "lraspp_mobilenetv2_w035", (64, 128), seed=0, bn_passes=1)
    return torch_to_onnx(ckpt, d / "s.onnx")


def _gate_lines(model):
    """The lines about the gate that the runtime prints on stderr when it loads `model` (runtime.bench)."""
    r = subprocess.run([sys.executable, "-m", "runtime.bench", "--model", str(model), "--iters", "1", "--warmup", "0"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return [line for line in r.stderr.splitlines() if "gate" in line]


def _records_describe(model):
    """Both records next to `model` name it and hash the bytes that are there (metadata included)."""
    hashes = file_hashes(model)
    for suffix in (".parity.json", ".gate.json"):
        record = json.loads(sibling(model, suffix).read_text())
        assert record["file"] == model.name and record["sha256"] == hashes["sha256"], suffix
        assert record.get("companions_sha256") == hashes.get("companions_sha256"), suffix
    return json.loads(sibling(model, ".gate.json").read_text())


@pytest.mark.parametrize("module, name, flags", [
    ("export.openvino", "s.int8.xml", ["--precision", "int8"]),
    ("export.quantize", "s.int8.onnx", []),
], ids=["openvino", "onnxruntime"])
def test_a_model_kept_after_a_failed_gate_says_so_and_the_runtime_warns(fp32, tmp_path, module, name, flags):
    out = tmp_path / name
    args = [sys.executable, "-m", module, str(fp32), *flags, "-o", str(out), "--data-root",
            str(tmp_path / "synthetic"), "--num-calib", "8"]
    r = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    gate = model_meta(out)["export"]["gate"]
    record = _records_describe(out)
    assert gate["passed"] is True and gate["report"] == f"{name}.gate.json" and record["passed"]
    assert gate["drop"] == record["drop"] and gate["max_drop"] == 1.0 and gate["images"] == record["images"]
    assert _gate_lines(out) == []  # a model that passed loads without a word

    # the gate forced to fail (INT8 would have to beat FP32 by 100 points), the candidate kept
    r = subprocess.run(args + ["--max-drop", "-100", "--keep-failed"], cwd=ROOT, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 1 and "failed its accuracy gate" in r.stderr, r.stdout + r.stderr
    failed = out.with_name(out.stem + ".FAILED" + out.suffix)
    gate = model_meta(failed)["export"]["gate"]
    record = _records_describe(failed)
    assert gate["passed"] is False and record["passed"] is False and gate["max_drop"] == -100
    assert gate["report"] == f"{failed.name}.gate.json"  # its own record, not the passing model's
    assert _gate_lines(failed) == [
        f"{failed}: INT8 model that FAILED its accuracy gate (mIoU drop {gate['drop']:.2f} (max -100.00), "
        f"boundary-F1 drop {gate['boundary_f1_drop']:.2f} (max 1.00) points; kept with --keep-failed, see "
        f"{failed.name}.gate.json): do not deploy it"]
    assert model_meta(out)["export"]["gate"]["passed"] is True and _gate_lines(out) == []  # the one in use: as it was


def test_a_kept_model_whose_gate_never_ran_says_so(fp32, tmp_path):
    """Parity failed first, so the gate never ran: the kept model says passed: false and why."""
    candidate = tmp_path / ".q.candidate.onnx"
    pending = {"max_drop": 1.0, "max_boundary_drop": 1.0, "split": "val", "passed": None}
    quantize_onnx_int8(fp32, candidate, synthetic_images(4, (64, 128), seed=2), gate=pending)
    assert model_meta(candidate)["export"]["gate"]["passed"] is None  # before the gate: no verdict
    kept = publish(candidate, tmp_path / "q.int8.onnx", False, keep_failed=True, why="its parity check", gated=True)
    assert kept == tmp_path / "q.int8.FAILED.onnx" and not candidate.exists()
    gate = model_meta(kept)["export"]["gate"]
    assert gate["passed"] is False and gate["report"] is None and gate["not_run"] == "its parity check failed first"
    assert _gate_lines(kept) == [f"{kept}: INT8 model that FAILED its accuracy gate (its gate never ran (its parity "
                                 "check failed first); kept with --keep-failed, see its export log): do not deploy it"]


def test_an_int8_model_without_a_verdict_is_warned_about(fp32, tmp_path):
    """A gate section with no verdict (written before the gate, as exporters used to) is not taken as a pass."""
    model = quantize_onnx_int8(fp32, tmp_path / "old.int8.onnx", synthetic_images(4, (64, 128), seed=2),
                               gate={"max_drop": 1.0, "max_boundary_drop": 1.0, "split": "val",
                                     "report": "old.int8.onnx.gate.json"})
    assert _gate_lines(model) == [f"{model}: INT8 model with no accuracy gate verdict in its metadata: its accuracy "
                                  "is unchecked (re-export it with its gate)"]


def test_the_shipped_int8_ir_carries_its_passing_verdict():
    from runtime import shipped

    ir = ROOT / "models" / shipped.DEFAULT
    if not ir.is_file():
        pytest.skip(f"{ir}: the shipped model is not in this checkout")
    gate, record = model_meta(ir)["export"]["gate"], _records_describe(ir)
    assert gate["passed"] is True and record["passed"] and gate["int8_miou"] == record["int8_miou"]
    assert _gate_lines(ir) == []


def test_an_engine_carries_its_verdict_in_its_sidecar(fp32, tmp_path):
    """TensorRT (no GPU needed for this part): the verdict goes into the engine's sidecar metadata, the engine's
    bytes are left as they are, and the records hash what is kept, sidecar included."""
    from export.metadata import onnx_meta
    from export.publish import write_json
    from export.trt import make_sidecar
    from runtime.backends.base import gate_warning
    from runtime.trt_sidecar import read_sidecar, sidecar_path

    candidate = tmp_path / ".e.pid1.candidate.engine"
    candidate.write_bytes(b"plan")
    pending = {"max_drop": 0.5, "max_boundary_drop": 1.0, "split": "val", "passed": None}
    write_json(sidecar_path(candidate), make_sidecar(onnx_meta(fp32), "10.3.0", "Orin", "8.7", "int8",
                                                     {"min": [1, 3, 64, 128]}, [{"name": "logits"}], "ab" * 32,
                                                     "trt10", gate=pending))
    report = {"passed": False, "drop": 0.9, "max_drop": 0.5, "boundary_f1_drop": 0.2, "max_boundary_drop": 1.0,
              "fp32_miou": 50.0, "int8_miou": 49.1, "images": 6, **file_hashes(candidate)}
    write_json(sibling(candidate, ".gate.json"), report)
    kept = publish(candidate, tmp_path / "e.engine", False, keep_failed=True, why="its accuracy gate", gated=True)
    assert kept.read_bytes() == b"plan"
    meta = read_sidecar(kept)["meta"]
    assert meta["export"]["gate"] == {**pending, **{k: report[k] for k in report if k in (
        "passed", "drop", "max_drop", "boundary_f1_drop", "max_boundary_drop", "fp32_miou", "int8_miou", "images")},
        "report": "e.FAILED.engine.gate.json"}
    record = json.loads(sibling(kept, ".gate.json").read_text())
    assert record["file"] == kept.name and record["companions_sha256"] == file_hashes(kept)["companions_sha256"]
    assert gate_warning(meta, kept) == (
        f"{kept}: INT8 model that FAILED its accuracy gate (mIoU drop 0.90 (max 0.50), boundary-F1 drop 0.20 "
        "(max 1.00) points; kept with --keep-failed, see e.FAILED.engine.gate.json): do not deploy it")
