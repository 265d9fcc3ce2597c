"""Scoring any model file (`distill.evaluate --model`): a checkpoint, its FP32 ONNX and its f32 OpenVINO IR give
the same numbers on a labelled split at the labels' native resolution; exported files score without torch."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from distill.data import build_dataset
from distill.evaluate import main
from export.onnx import torch_to_onnx
from export.openvino import onnx_to_openvino
from runtime.contract import ConfigError

from .conftest import write_synthetic_student

ROOT = Path(__file__).resolve().parents[1]
# the labelled split is 72x144: not the model's 64x128 input, so a fixed-input export cannot run it in one pass
SPLIT = '{"num_images": 4, "size": [72, 144], "seed": 1}'
NO_TORCH = """
import runpy, sys
for name in ('torch', 'distill.data.transforms', 'distill.checkpoint', 'PIL'):  # None: `import` fails
    sys.modules[name] = None  # a device install: neither torch nor Pillow
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("score")
    root = d / "data"
    build_dataset("synthetic", root, "val", **json.loads(SPLIT))
    ckpt = decisive(write_synthetic_student(d / "s.pt", "deeplabv3_resnet10_w16", (64, 128), seed=3, bn_passes=2))
    fixed = torch_to_onnx(ckpt, d / "s.onnx")
    dynamic = torch_to_onnx(ckpt, d / "dyn.onnx", dynamic=True)
    return {"root": root, "pt": ckpt, "onnx": fixed, "xml": onnx_to_openvino(fixed, d / "s.xml", "fp32"),
            "dyn_onnx": dynamic, "dyn_xml": onnx_to_openvino(dynamic, d / "dyn.xml", "fp32")}


def decisive(ckpt):
    """Random weights leave logits nearly tied, so that rounding flips the argmax; a classifier scaled up
    separates them, as training does."""
    import torch

    from distill import checkpoint

    model, meta = checkpoint.load(ckpt)
    convs = [m for m in model.head.modules() if isinstance(m, torch.nn.Conv2d) and m.out_channels == meta["num_classes"]]
    with torch.no_grad():
        convs[-1].weight.mul_(30.0)
    checkpoint.save(ckpt, model, meta)
    return ckpt


def _score(model, root, *flags):
    return main(["--model", str(model), "--dataset", "synthetic", "--root", str(root), "--data-kwargs", SPLIT, *flags])


def _same(a, b):
    assert abs(100 * a["mIoU"] - 100 * b["mIoU"]) <= 0.05, (a["mIoU"], b["mIoU"])
    assert abs(100 * a["boundary_f1"] - 100 * b["boundary_f1"]) <= 0.05
    assert a["split_rate"] == pytest.approx(b["split_rate"], abs=1e-3)


def test_checkpoint_onnx_and_f32_ir_score_alike(files, capsys):
    """Whole images at their own 72x144 (dynamic exports) and sliding 64x128 windows (fixed exports; whole-image
    scoring of a fixed model tiles it the same way, never stretching): .pt, .onnx and f32 IR agree."""
    root = files["root"]
    whole = {k: _score(files[k], root) for k in ("pt", "dyn_onnx", "dyn_xml")}
    slide = {k: _score(files[k], root, "--mode", "slide", "--window", "64x128") for k in ("pt", "onnx", "xml")}
    tiled = _score(files["onnx"], root)  # a fixed 64x128 model asked for whole 72x144 images
    capsys.readouterr()
    assert whole["pt"]["num_images"] == 4 and sum(v is not None and v == v for v in whole["pt"]["IoU"]) >= 3
    for group in (whole, slide):
        for k in group:
            _same(group["pt"], group[k])
    _same(slide["pt"], tiled)
    assert "never stretched" in tiled["settings"]["how"] and "64x128 windows" in tiled["settings"]["how"]
    assert whole["dyn_xml"]["settings"]["precision"] == "fp32"  # the precision it was checked at, not bf16
    assert slide["onnx"]["settings"]["backend"] == "onnxruntime"


def test_onnx_scores_without_torch_and_writes_json_and_table(files, tmp_path):
    out = tmp_path / "m.json"
    r = subprocess.run([sys.executable, "-c", NO_TORCH, "distill.evaluate", "--model", str(files["onnx"]),
                        "--dataset", "synthetic", "--root", str(files["root"]), "--data-kwargs", SPLIT,
                        "--mode", "slide", "-o", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "traffic sign" in r.stdout and "mIoU" in r.stdout and "onnxruntime" in r.stdout
    saved = json.loads(out.read_text())
    assert saved["num_images"] == 4 and saved["settings"]["backend"] == "onnxruntime"
    reference = _score(files["pt"], files["root"], "--mode", "slide", "--window", "64x128")
    _same(reference, saved)


def test_bad_requests_are_one_line(files, tmp_path, capsys):
    from distill.evaluate import cli

    with pytest.raises(ConfigError, match="fixed 64x128 input; a 32x64 sliding window"):
        _score(files["onnx"], files["root"], "--mode", "slide", "--window", "32x64")
    argmax = torch_to_onnx(files["pt"], tmp_path / "a.onnx", argmax=True)
    with pytest.raises(ConfigError, match="outputs class labels"):
        _score(argmax, files["root"], "--flip")
    with pytest.raises(ConfigError, match="outputs class labels"):  # 72x144 images on a fixed 64x128 labels model
        _score(argmax, files["root"])
    capsys.readouterr()
    (tmp_path / "m.bin").write_bytes(b"x")
    assert cli(["--model", str(tmp_path / "m.bin"), "--dataset", "synthetic", "--root", str(files["root"])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "m.bin" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as e:
        cli(["--model", str(files["onnx"]), "--ckpt", str(files["pt"])])  # one flag names the model file
    assert e.value.code == 2 and "unrecognized arguments: --ckpt" in capsys.readouterr().err


def test_scorer_windows_match_the_checkpoints_slide_logits(files):
    """The numpy windows of distill.score are distill.evaluate.slide_logits: same logits for the same model."""
    import torch

    from distill import checkpoint
    from distill.evaluate import predict_logits
    from distill.score import Scorer, open_model

    model, meta = checkpoint.load(files["pt"])
    image = build_dataset("synthetic", files["root"], "val", **json.loads(SPLIT))[0][0]
    scorer = Scorer(open_model(files["onnx"]), "slide", flip=True)
    got = scorer.logits(image)
    x = (torch.from_numpy(image.astype(np.float32)) - torch.tensor(meta["mean"])) / torch.tensor(meta["std"])
    want = predict_logits(model.eval(), x.permute(2, 0, 1)[None], "slide", (64, 128), None, flip=True)
    np.testing.assert_allclose(got, want.detach().numpy(), atol=1e-3, rtol=1e-3)
