"""One evaluation path: `distill.evaluate --model x.pt`, `x.onnx` and `x.xml` of one model go through the same
scorer (distill.score.Scorer), with the same settings (flags, then --cfg, then the model's own metadata, then the
defaults) and data.min_size applied in one place, so they score the same images alike; the INT8 gate scores with
those settings too."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from distill import checkpoint
from distill.data import DATASETS, build_dataset
from distill.evaluate import main
from distill.models import build_model
from distill.score import open_model
from export.onnx import torch_to_onnx
from export.openvino import onnx_to_openvino
from export.quantize import gate_scores

from . import trees
from .conftest import MEAN, STD
from .test_score import decisive

SIZE = (64, 96)  # the model's input and the split's images: a fixed-input export runs them whole
MIN_SIZE = [16, 16]


def _camvid_split(root: Path) -> Path:
    """A CamVid (SegNet layout) val split of two 64x96 frames and one 8x12 frame, smaller than data.min_size."""
    root = trees.camvid(root, size=SIZE, train=(("0016E5", 1),), val=(("0016E5", 2),))
    img, lbl = trees._scene(7, (8, 12), trees.CAMVID_IDS)
    name = "0016E5_009990.png"
    trees._save(root / "val" / name, img)
    trees._save(root / "valannot" / name, lbl=lbl)
    with open(root / "val.txt", "a") as f:
        f.write(f"/SegNet/CamVid/val/{name} /SegNet/CamVid/valannot/{name}\n")
    return root


def _student(path: Path, flip: bool) -> Path:
    """A CamVid student whose stored config says how it is judged (eval.flip) and what is too small."""
    info = DATASETS["camvid"]
    torch.manual_seed(5)
    model = build_model("deeplabv3_resnet10_w16", info.num_classes)
    with torch.no_grad():
        for _ in range(2):
            model.train()(torch.randn(2, 3, *SIZE))
    config = {"data": {"dataset": "camvid", "val_split": "val", "min_size": MIN_SIZE},
              "eval": {"mode": "whole", "flip": flip, "crop_size": None, "stride": None, "size": None}}
    meta = checkpoint.make_meta("deeplabv3_resnet10_w16", {}, info.num_classes, list(info.classes),
                                [list(c) for c in info.palette], MEAN, STD, list(SIZE), "camvid", config=config)
    checkpoint.save(path, model.eval(), meta)
    return decisive(path)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return _camvid_split(tmp_path_factory.mktemp("camvid") / "camvid")


@pytest.mark.parametrize("flip", [False, True], ids=["plain", "flip"])
def test_checkpoint_onnx_and_ir_are_scored_by_one_path(root, tmp_path, flip, capsys):
    """No --cfg: each file is scored with the settings its metadata carries (flip included), the 8x12 frame is
    skipped for all three (2 images, not 2 for .pt and 3 for .onnx), and the three agree within 5e-4 mIoU."""
    ckpt = _student(tmp_path / "s.pt", flip)
    onnx = torch_to_onnx(ckpt, tmp_path / "s.onnx")
    xml = onnx_to_openvino(onnx, tmp_path / "s.xml", "fp32")
    got = {p.suffix: main(["--model", str(p), "--root", str(root)]) for p in (ckpt, onnx, xml)}
    printed = capsys.readouterr().out
    assert printed.count("data: skipped 1 of 3 val split images smaller than 16x16 (data.min_size)") == 3
    for suffix, r in got.items():
        assert r["num_images"] == 2 and r["skipped_images"] == 1, suffix
        assert r["settings"]["dataset"] == "camvid" and r["settings"]["flip"] is flip, suffix
        assert ("averaged with the mirrored image" in r["settings"]["how"]) is flip
        assert abs(r["mIoU"] - got[".pt"]["mIoU"]) <= 5e-4, (suffix, r["mIoU"], got[".pt"]["mIoU"])
        assert abs(r["boundary_f1"] - got[".pt"]["boundary_f1"]) <= 5e-4, suffix
    assert sum(v == v and v is not None for v in got[".pt"]["IoU"]) >= 3  # not a one-class prediction
    assert got[".pt"]["settings"]["backend"] == "torch" and got[".onnx"]["settings"]["backend"] == "onnxruntime"

    # the INT8 gate scores a file with those same settings: the same images, the same number
    items = build_dataset("camvid", root, "val")
    backend = open_model(xml, device="cpu")
    try:
        gate = gate_scores(backend, items, backend.meta)
    finally:
        backend.close()
    assert gate["images"] == 2 and gate["mIoU"] == pytest.approx(100 * got[".xml"]["mIoU"], abs=1e-9)

    # --cfg comes before the model's metadata, and a flag before both
    cfg = tmp_path / "eval.yaml"
    cfg.write_text(f"data:\n  dataset: camvid\n  root: {root}\n  min_size: [4, 4]\neval:\n  flip: {not flip}\n")
    r = main(["--model", str(onnx), "--cfg", str(cfg)])
    assert r["num_images"] == 3 and r["skipped_images"] == 0 and r["settings"]["flip"] is (not flip)
    r = main(["--model", str(ckpt), "--cfg", str(cfg), "--max-images", "1"])
    assert r["num_images"] == 1
