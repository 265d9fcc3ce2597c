"""ONNX export of the small students: parity with PyTorch, metadata round trip, --argmax,
dynamic shapes, and the bad-input errors (one line, exit 2, nothing half-written)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from distill import checkpoint
from export.metadata import onnx_meta
from export.onnx import torch_to_onnx
from runtime import metadata
from runtime.contract import ExportError

from .cli_driver import run_in_one_process

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True)


def run_onnx(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"image": x})[0]


@pytest.fixture(scope="module")
def student_onnx(student_ckpt, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "student.onnx"
    r = cli("export.onnx", str(student_ckpt), "-o", str(out))
    assert r.returncode == 0, r.stderr
    return out, r.stdout


def test_cli_export_parity_and_metadata(student_ckpt, student_onnx):
    out, stdout = student_onnx
    assert "argmax agreement 100.000%" in stdout
    report = json.loads(Path(str(out) + ".parity.json").read_text())
    assert report["passed"] and report["reference"] == "pytorch" and report["precision"] == "fp32"
    assert report["max_abs_diff"] < 1e-4 and report["argmax_agreement"] >= 0.999

    model = onnx.load(str(out))
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == ["image"]
    assert [o.name for o in model.graph.output] == ["logits"]
    meta = onnx_meta(out)
    ckpt_meta = checkpoint.load_meta(student_ckpt)
    for key in ("arch", "num_classes", "classes", "palette", "mean", "std", "input_size", "dataset"):
        assert meta[key] == ckpt_meta[key]
    assert meta["export"]["opset"] == 17 and meta["export"]["output"] == "logits"
    props = {p.key: p.value for p in model.metadata_props}
    assert props["brd_edge_arch"] == "deeplabv3_resnet10_w16"

    # the ONNX model computes what the PyTorch model computes, on an input of the batch not traced
    torch_model, _ = checkpoint.load(student_ckpt)
    x = np.random.default_rng(0).normal(size=(2, 3, 64, 128)).astype(np.float32)
    with torch.no_grad():
        ref = torch_model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run_onnx(out, x), ref, atol=1e-4)


def test_argmax_in_graph(mobilenet_ckpt, tmp_path):
    out = torch_to_onnx(mobilenet_ckpt, tmp_path / "m.onnx", argmax=True)
    model = onnx.load(str(out))
    assert [o.name for o in model.graph.output] == ["labels"]
    assert any(n.op_type == "ArgMax" for n in model.graph.node)
    torch_model, meta = checkpoint.load(mobilenet_ckpt)
    x = np.random.default_rng(1).normal(size=(1, 3, 64, 128)).astype(np.float32)
    labels = run_onnx(out, x)
    assert labels.dtype == np.uint8 and labels.shape == (1, 64, 128)
    with torch.no_grad():
        ref = torch_model(torch.from_numpy(x)).argmax(1).numpy()
    assert (labels == ref).mean() > 0.999
    assert onnx_meta(out)["export"]["output"] == metadata.OUTPUT_LABELS


def test_dynamic_and_fixed_shapes(mobilenet_ckpt, tmp_path):
    dyn = torch_to_onnx(mobilenet_ckpt, tmp_path / "dyn.onnx", dynamic=True)
    torch_model, _ = checkpoint.load(mobilenet_ckpt)
    for h, w in ((64, 128), (96, 160)):
        x = np.random.default_rng(h).normal(size=(1, 3, h, w)).astype(np.float32)
        with torch.no_grad():
            ref = torch_model(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(run_onnx(dyn, x), ref, atol=1e-4)
    assert onnx_meta(dyn)["export"]["dynamic_hw"] is True

    fixed = torch_to_onnx(mobilenet_ckpt, tmp_path / "fixed.onnx", height=96, width=192, opset=13, simplify=False)
    dims = [d.dim_value or d.dim_param for d in onnx.load(str(fixed)).graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", 3, 96, 192]
    meta = onnx_meta(fixed)
    assert meta["input_size"] == [96, 192] and meta["export"]["trained_input_size"] == [64, 128]


def test_bad_inputs_one_line_errors(student_ckpt, tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    training = tmp_path / "train.pt"
    checkpoint.save_training(training, {"step": 3})
    blocker = tmp_path / "a_file"  # a file where the output folder should be (chmod means nothing to root)
    blocker.write_text("")
    cases = [
        ((str(junk),), "not a readable BRD Edge checkpoint"),
        ((str(training),), "training checkpoint"),
        ((str(student_ckpt), "--opset", "9", "-o", str(tmp_path / "x.onnx")), "opset 9 is not supported"),
        ((str(student_ckpt), "-o", str(blocker / "x.onnx")), "cannot create output folder"),
        ((str(tmp_path / "missing.pt"),), "no such checkpoint"),
    ]
    results = run_in_one_process([("export.onnx", args) for args, _ in cases])
    for (args, expected), r in zip(cases, results):
        assert r.returncode == 2, (args, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], r.stderr
        assert "Traceback" not in r.stderr
    leftovers = [p.name for p in tmp_path.rglob("*") if p.suffix in (".onnx", ".tmp") or ".tmp" in p.name]
    assert leftovers == []


def test_failed_export_leaves_nothing(student_ckpt, tmp_path):
    with pytest.raises(ExportError):
        torch_to_onnx(student_ckpt, tmp_path / "odd.onnx", height=60, width=128)
    assert list(tmp_path.iterdir()) == []
