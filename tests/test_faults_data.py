"""Degenerate data is named before any work: a crop no image can fill, images too small to mean anything
(skipped and counted), a split without a labelled pixel (training, evaluation, the INT8 gate)."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from .conftest import write_synthetic_student
from .faults import ROOT, cli_exit, error_lines


# ------------------------------------------------------------------------------------------ degenerate data
def _cityscapes_args(root, out, *extra):
    return ["--cfg", str(ROOT / "configs" / "synthetic_plain.yaml"), "--set", f"out_dir={out}",
            "data.dataset=cityscapes", f"data.root={root}", "data.kwargs={}", "data.val_kwargs={}",
            "data.crop_size=[32,64]", "train.iters=2", "train.batch_size=2", "train.threads=1",
            "train.val_every=100000", "train.ckpt_every=1000", "eval.input_size=[32,64]", *extra]


def _add_pair(root, split, name, hw, label_value=7):
    from PIL import Image

    img = root / "leftImg8bit" / split / "aachen" / f"aachen_{name}_000019_leftImg8bit.png"
    lbl = root / "gtFine" / split / "aachen" / f"aachen_{name}_000019_gtFine_labelIds.png"
    cv2.imwrite(str(img), np.full((*hw, 3), 90, np.uint8))
    Image.fromarray(np.full(hw, label_value, np.uint8)).save(lbl)


def test_a_crop_larger_than_every_image_is_an_error_on_a_real_layout(tmp_path, capsys):
    from distill.run import main

    from .trees import cityscapes

    root = cityscapes(tmp_path / "cs", size=(64, 128), train=2, val=1)
    out = tmp_path / "run"
    code, err = cli_exit(main, _cityscapes_args(root, out, "data.crop_size=[512,1024]"), capsys)
    assert code == 2 and error_lines(err)[-1] == (
        f"error: data.crop_size: 512x1024 is larger than the largest scaled image 96x192 ({root} train split: "
        "largest image 64x128 x data.scale_range max 1.5): every crop would be mostly padding")
    assert not out.exists()


def test_tiny_images_are_skipped_and_counted_in_training_and_evaluation(tmp_path, capsys):
    from distill.evaluate import cli
    from distill.run import main

    from .trees import cityscapes

    root = cityscapes(tmp_path / "cs", size=(64, 128), train=2, val=2)
    _add_pair(root, "train", "000050", (1, 1))
    _add_pair(root, "val", "000150", (1, 1))
    out = tmp_path / "run"
    assert main(_cityscapes_args(root, out)) == 0
    printed = capsys.readouterr().out
    assert f"data: skipped 1 of 3 train split images smaller than 16x16 (data.min_size), e.g. {root}" in printed
    assert "data: skipped 1 of 3 val split images smaller than 16x16" in printed
    assert (out / "model.pt").is_file()
    assert cli(["--model", str(out / "model.pt"), "--dataset", "cityscapes", "--root", str(root),
                "-o", str(tmp_path / "m.json")]) == 0
    assert "data: skipped 1 of 3 val split images smaller than 16x16" in capsys.readouterr().out
    result = json.loads((tmp_path / "m.json").read_text())
    assert result["skipped_images"] == 1 and result["num_images"] == 2


def test_a_split_with_no_labelled_pixel_is_an_error_before_training(tmp_path, capsys):
    from distill.run import main

    from .trees import cityscapes

    root = cityscapes(tmp_path / "cs", size=(64, 128), train=2, val=0)
    (root / "leftImg8bit" / "val" / "aachen").mkdir(parents=True)
    (root / "gtFine" / "val" / "aachen").mkdir(parents=True)
    _add_pair(root, "val", "000150", (64, 128), label_value=0)  # 0: unlabeled -> 255
    out = tmp_path / "run"
    code, err = cli_exit(main, _cityscapes_args(root, out), capsys)
    assert code == 2 and error_lines(err)[-1] == (
        f"error: {root / 'gtFine' / 'val' / 'aachen'}: the val split has no labelled pixel (all 1 labels are 255 = "
        "ignore): nothing to train on or measure")
    assert not (out / "last.pt").exists() and not (out / "train_log.csv").exists()


def test_the_int8_gate_refuses_a_split_with_no_labelled_pixel_before_the_work(tmp_path, capsys):
    from PIL import Image

    from distill.data import build_dataset
    from export.onnx import torch_to_onnx
    from export.quantize import main

    ckpt = write_synthetic_student(tmp_path / "s.pt")
    onnx_path = torch_to_onnx(ckpt, tmp_path / "s.onnx", simplify=False)
    data = tmp_path / "data"
    build_dataset("synthetic", data, "train", num_images=2, size=(32, 64), seed=0)
    val = build_dataset("synthetic", data, "val", num_images=2, size=(32, 64), seed=1)
    for _, lbl in val.pairs:
        Image.fromarray(np.full((32, 64), 255, np.uint8)).save(lbl)
    out = tmp_path / "q" / "s.int8.onnx"
    code, err = cli_exit(main, [str(onnx_path), "-o", str(out), "--data-root", str(data)], capsys)
    assert code == 2 and error_lines(err)[-1] == (
        f"error: {data}: the 'synthetic' val split has no labelled pixel (all 2 labels are 255 = ignore): the "
        "accuracy gate would measure nothing")
    assert not out.parent.exists() or not list(out.parent.iterdir())


# ------------------------------------------------------------------------------------------ the synthetic data's root
def test_a_synthetic_data_root_that_is_a_file_is_one_line_naming_it(tmp_path, capsys):
    """The fault trial: data.root naming a regular file was a NotADirectoryError traceback (exit 1)."""
    from distill.run import main

    root = tmp_path / "afile"
    root.write_text("x\n")
    out = tmp_path / "run"
    code, err = cli_exit(main, ["--cfg", str(ROOT / "configs" / "synthetic_plain.yaml"), "--set", f"out_dir={out}",
                                f"data.root={root}", "data.kwargs={num_images: 2, size: [32, 64], seed: 0}",
                                "data.crop_size=[32,64]", "train.iters=1", "train.batch_size=2"], capsys)
    assert code == 2 and "Traceback" not in err, err[-2000:]
    assert error_lines(err) == [
        f"error: {root}: a file, expected the folder to generate the synthetic data into (data.root)"]
    assert root.read_text() == "x\n" and not out.exists()


def test_synthetic_images_that_cannot_be_written_leave_the_split_marked_incomplete(tmp_path, monkeypatch):
    """cv2.imwrite returns False on a full disk: the generator said nothing and marked the split complete."""
    from distill.data import synthetic
    from distill.data.base import DatasetError

    monkeypatch.setattr(synthetic.cv2, "imwrite", lambda *a, **k: False)
    with pytest.raises(DatasetError, match="cannot generate the synthetic val split there"):
        synthetic.generate(tmp_path / "d", "val", 2, (32, 64), 0)
    assert json.loads((tmp_path / "d" / "synthetic_val.json").read_text())["complete"] is False
