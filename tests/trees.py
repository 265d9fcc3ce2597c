"""Small dataset trees in each real on-disk layout, at any image size, for end-to-end runs.

Scenes come from the synthetic street generator (rendered small, resized to the asked size: images
bilinear, labels nearest), and its 11 classes are written as valid label values of each dataset (Cityscapes
label ids, VOC class indices, ADE20K 1-based ids, COCO-Stuff train ids). The values are in range and spatially
coherent; they are not claimed to be the same semantic classes.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from distill.data.synthetic import render

# synthetic class index -> label value written (road, sidewalk, building, fence, pole, sign, vegetation, sky,
# person, car, wire)
CITYSCAPES_IDS = [7, 8, 11, 13, 17, 20, 21, 23, 24, 26, 0]          # 0: unlabeled (ignored)
VOC_IDS = [0, 0, 0, 9, 5, 20, 16, 0, 15, 7, 255]                   # 255: border (ignored)
ADE20K_IDS = [7, 12, 2, 33, 94, 44, 5, 3, 13, 21, 0]               # 0: ignored
COCOSTUFF_IDS = [148, 144, 95, 111, 110, 11, 168, 156, 0, 2, 255]
CAMVID_IDS = [3, 4, 1, 7, 2, 6, 5, 0, 9, 8, 11]                    # 11: Unlabelled (ignored)


def _scene(i: int, size, values, seed=0):
    h, w = size
    small = (max(16, h // 4), max(16, w // 4))
    img, lbl = render(seed, "train", i, small)
    img = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
    lbl = cv2.resize(np.asarray(values, np.uint8)[lbl], (w, h), interpolation=cv2.INTER_NEAREST)
    return img, lbl


def _save(path: Path, img=None, lbl=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    if img is not None:
        assert cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    else:
        Image.fromarray(lbl).save(path)


def cityscapes(root, size=(1024, 2048), train=2, val=1, city="aachen") -> Path:
    root = Path(root)
    for split, n, off in (("train", train, 0), ("val", val, 100)):
        for i in range(n):
            img, lbl = _scene(off + i, size, CITYSCAPES_IDS)
            stem = f"{city}_{off + i:06d}_000019"
            _save(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", img)
            _save(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", lbl=lbl)
    return root


def voc(root, size=(375, 500), train=2, val=1) -> Path:
    voc = Path(root) / "VOCdevkit" / "VOC2012"
    sets = voc / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True, exist_ok=True)
    for split, n, off in (("train_aug", train, 0), ("val", val, 100)):
        names = [f"2008_{off + i:06d}" for i in range(n)]
        for i, name in enumerate(names):
            img, lbl = _scene(off + i, size, VOC_IDS)
            _save(voc / "JPEGImages" / f"{name}.jpg", img)
            _save(voc / "SegmentationClassAug" / f"{name}.png", lbl=lbl)
        (sets / f"{split}.txt").write_text("".join(f"{n}\n" for n in names))
    return voc


def ade20k(root, size=(512, 683), train=2, val=1) -> Path:
    base = Path(root) / "ADEChallengeData2016"
    for folder, n, off, tag in (("training", train, 0, "train"), ("validation", val, 100, "val")):
        for i in range(n):
            img, lbl = _scene(off + i, size, ADE20K_IDS)
            name = f"ADE_{tag}_{off + i + 1:08d}"
            _save(base / "images" / folder / f"{name}.jpg", img)
            _save(base / "annotations" / folder / f"{name}.png", lbl=lbl)
    return base


def cocostuff10k(root, size=(480, 640), train=2, val=1) -> Path:
    root = Path(root)
    for folder, n, off in (("train2014", train, 0), ("test2014", val, 100)):
        for i in range(n):
            img, lbl = _scene(off + i, size, COCOSTUFF_IDS)
            name = f"COCO_train2014_{off + i:012d}"
            _save(root / "images" / folder / f"{name}.jpg", img)
            _save(root / "annotations" / folder / f"{name}_labelTrainIds.png", lbl=lbl)
    return root


def camvid(root, size=(360, 480), train=(("0001TP", 2), ("0016E5", 2)), val=(("0016E5", 1),)) -> Path:
    """SegNet's CamVid folder: frames named <drive>_<frame>.png, labels of the same name in <split>annot/,
    and <split>.txt listing the pairs under SegNet's own absolute prefix."""
    root = Path(root)
    k = 0
    for split, drives in (("train", train), ("val", val)):
        lines = []
        for drive, n in drives:
            for i in range(n):
                img, lbl = _scene(k, size, CAMVID_IDS)
                name = f"{drive}_{(k + 1) * 30:06d}.png"
                _save(root / split / name, img)
                _save(root / f"{split}annot" / name, lbl=lbl)
                lines.append(f"/SegNet/CamVid/{split}/{name} /SegNet/CamVid/{split}annot/{name}\n")
                k += 1
        (root / f"{split}.txt").write_text("".join(lines))
    return root


TREES = {"cityscapes": cityscapes, "voc": voc, "ade20k": ade20k, "cocostuff10k": cocostuff10k, "camvid": camvid}
