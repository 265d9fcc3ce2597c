"""Pascal VOC 2012 with the SBD augmentation, in its usual layout:

    <root>/JPEGImages/<id>.jpg
    <root>/SegmentationClassAug/<id>.png        (SegmentationClass/ if there is no Aug folder)
    <root>/ImageSets/Segmentation/{train_aug,train,val}.txt

`root` is the VOC2012 folder or one holding `VOC2012/` (or `VOCdevkit/VOC2012/`). Labels are 0..20 with
the object border 255, kept as ignore.
"""
from __future__ import annotations

from pathlib import Path


from .base import DatasetError, SegmentationDataset, identity_lut, pair_files, require_dir

CLASSES = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
           "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
           "tvmonitor"]


def bit_colormap(n: int) -> list[list[int]]:
    """The VOC palette (bits of the class index spread over R, G, B), also used where a dataset has none."""
    cmap = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap.append([r, g, b])
    return cmap


PALETTE = bit_colormap(len(CLASSES))
SPLIT_FILES = {"train": ("train_aug", "train"), "train_aug": ("train_aug",), "val": ("val",),
               "trainval": ("trainval",)}


def _find_root(root: Path) -> Path:
    for cand in (root, root / "VOC2012", root / "VOCdevkit" / "VOC2012"):
        if (cand / "JPEGImages").is_dir():
            return cand
    raise DatasetError(f"{root}: not a VOC2012 root (no JPEGImages/ here, in VOC2012/ or VOCdevkit/VOC2012/)")


def voc_pairs(root: str | Path, split: str) -> list[tuple[Path, Path]]:
    root = _find_root(Path(root))
    sets = require_dir(root / "ImageSets" / "Segmentation", "VOC split lists")
    names = SPLIT_FILES.get(split, (split,))
    list_file = next((sets / f"{n}.txt" for n in names if (sets / f"{n}.txt").is_file()), None)
    if list_file is None:
        raise DatasetError(f"{sets}: no list for split {split!r} (looked for {', '.join(n + '.txt' for n in names)})")
    label_dir = root / "SegmentationClassAug"
    if not label_dir.is_dir():
        label_dir = require_dir(root / "SegmentationClass", "SegmentationClassAug/ or SegmentationClass/")
    ids = [line.split()[0] for line in list_file.read_text().splitlines() if line.strip()]
    images = []
    for i in ids:
        img = root / "JPEGImages" / f"{i}.jpg"
        if not img.is_file():
            raise DatasetError(f"{list_file}: lists {i!r} but {img} does not exist")
        images.append(img)
    return pair_files(images, lambda img: label_dir / f"{img.stem}.png", list_file)


def VOC(root, split="train", transforms=None):
    return SegmentationDataset(voc_pairs(root, split), identity_lut(len(CLASSES)), len(CLASSES), transforms, "voc")
