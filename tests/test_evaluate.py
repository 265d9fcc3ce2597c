"""evaluate(): sliding-window averaging, flip, mode handling; evaluate_predictions; the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn as nn

from distill import checkpoint
from distill.data import DATASETS, MEAN, STD, build_dataset
from distill.data.transforms import EvalTransform
from distill.evaluate import cli, evaluate, evaluate_predictions, main, predict_logits, slide_logits
from runtime.contract import ConfigError

from .conftest import write_synthetic_student


class CallCounter(nn.Module):
    """Logits equal to the call number (1, 2, ...) everywhere: shows which windows cover which pixel."""

    def __init__(self, num_classes=2):
        super().__init__()
        self.calls, self.shapes, self.num_classes = 0, [], num_classes

    def forward(self, x):
        self.calls += 1
        self.shapes.append(tuple(x.shape[-2:]))
        return torch.full((x.shape[0], self.num_classes, *x.shape[-2:]), float(self.calls))


class ColumnRamp(nn.Module):
    """Logit of class 1 grows left to right: not flip-equivariant."""

    def forward(self, x):
        w = x.shape[-1]
        ramp = torch.arange(w, dtype=x.dtype).expand(x.shape[0], 1, x.shape[-2], w)
        return torch.cat([torch.zeros_like(ramp), ramp], 1)


def test_slide_windows_cover_the_image_and_overlaps_are_averaged():
    model = CallCounter()
    out = slide_logits(model, torch.zeros(1, 3, 6, 10), crop_size=(6, 6), stride=(4, 4))
    assert model.shapes == [(6, 6), (6, 6)]  # windows at cols 0..5 and 4..9
    row = out[0, 0, 0]
    assert torch.equal(row, torch.tensor([1, 1, 1, 1, 1.5, 1.5, 2, 2, 2, 2]))


def test_slide_pads_images_smaller_than_the_window():
    model = CallCounter()
    out = slide_logits(model, torch.zeros(1, 3, 4, 5), crop_size=(8, 8), stride=(4, 4))
    assert out.shape == (1, 2, 4, 5) and model.shapes == [(8, 8)]


def test_slide_equals_whole_for_a_pointwise_model():
    torch.manual_seed(0)
    model = nn.Conv2d(3, 4, 1)
    x = torch.randn(1, 3, 13, 21)
    whole = predict_logits(model, x)
    slide = predict_logits(model, x, mode="slide", crop_size=(8, 8), stride=(5, 3))
    assert torch.allclose(whole, slide, atol=1e-6)


def test_flip_averages_the_mirrored_pass():
    x = torch.zeros(1, 3, 2, 5)
    plain = predict_logits(ColumnRamp(), x)[0, 1, 0]
    flipped = predict_logits(ColumnRamp(), x, flip=True)[0, 1, 0]
    assert torch.equal(plain, torch.arange(5.0))
    assert torch.equal(flipped, torch.full((5,), 2.0))  # (i + (4 - i)) / 2
    with pytest.raises(ValueError, match="crop_size"):
        predict_logits(ColumnRamp(), x, mode="slide")
    with pytest.raises(ValueError, match="mode"):
        predict_logits(ColumnRamp(), x, mode="tiles")


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    build_dataset("synthetic", root, "val", num_images=3, size=(32, 64), seed=0)
    return root


@pytest.fixture(scope="module")
def synth_ckpt(tmp_path_factory):
    return write_synthetic_student(tmp_path_factory.mktemp("ckpt") / "student.pt", input_size=(32, 64), seed=0)


def test_evaluate_real_model_restores_train_mode(synth_root, synth_ckpt):
    model, meta = checkpoint.load(synth_ckpt)
    ds = build_dataset("synthetic", synth_root, "val", transforms=EvalTransform(MEAN, STD), num_images=3,
                       size=(32, 64), seed=0)
    model.train()
    r = evaluate(model, ds, meta["num_classes"], mode="slide", crop_size=(32, 32), stride=(32, 16), flip=True,
                 max_images=2)
    assert model.training and r["num_images"] == 2
    for k in ("mIoU", "IoU", "aAcc", "boundary_iou", "boundary_f1", "split_rate", "miss_rate", "spurious_rate"):
        assert k in r
    assert len(r["IoU"]) == meta["num_classes"] and 0 <= r["aAcc"] <= 1


def test_evaluate_predictions_with_an_oracle_and_a_constant(synth_root):
    raw = build_dataset("synthetic", synth_root, "val", num_images=3, size=(32, 64), seed=0)
    n = DATASETS["synthetic"].num_classes
    oracle = evaluate_predictions(lambda img: _label_of(raw, img), raw, n)
    assert oracle["mIoU"] == 1.0 and oracle["boundary_iou"] == 1.0
    assert oracle["split_rate"] == oracle["miss_rate"] == oracle["spurious_rate"] == 0.0
    sky = evaluate_predictions(lambda img: np.full(img.shape[:2], 7), raw, n)
    assert sky["mIoU"] < 0.2 and sky["IoU"][7] > 0
    with pytest.raises(ValueError, match="shape"):
        evaluate_predictions(lambda img: np.zeros((3, 3), int), raw, n)


def _label_of(ds, img):
    for i in range(len(ds)):
        image, label = ds[i]
        if np.array_equal(image, img):
            return np.where(label == 255, 0, label)
    raise AssertionError("image not in dataset")


def test_cli_flags_and_config(synth_root, synth_ckpt, tmp_path, capsys):
    out = tmp_path / "metrics.json"
    main(["--model", str(synth_ckpt), "--dataset", "synthetic", "--root", str(synth_root), "--split", "val",
          "--data-kwargs", '{"num_images": 3, "size": [32, 64], "seed": 0}', "--mode", "slide", "--window", "32x32",
          "--stride", "16x16", "-o", str(out)])
    text = capsys.readouterr().out
    assert "traffic sign" in text and "mIoU" in text and "boundary_iou" in text
    saved = json.loads(out.read_text())  # strict JSON: absent classes are null, not NaN
    assert saved["settings"]["mode"] == "slide" and saved["num_images"] == 3
    assert len(saved["IoU"]) == DATASETS["synthetic"].num_classes

    cfg = tmp_path / "eval.yaml"
    cfg.write_text(f"data:\n  dataset: synthetic\n  root: {synth_root}\n  val_split: val\n"
                   f"  val_kwargs: {{num_images: 3, size: [32, 64], seed: 0}}\neval:\n  max_images: 1\n  flip: true\n")
    r = main(["--model", str(synth_ckpt), "--cfg", str(cfg)])
    assert r["num_images"] == 1 and r["settings"]["flip"] is True
    with pytest.raises(ConfigError, match="--dataset NAME --root DIR"):
        main(["--model", str(synth_ckpt)])
    assert cli(["--model", str(synth_ckpt)]) == 2
    assert capsys.readouterr().err.startswith("error: say what to evaluate on")
