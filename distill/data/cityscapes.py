"""Cityscapes: `leftImg8bit/<split>/<city>/*_leftImg8bit.png` + `gtFine/<split>/<city>/*_gtFine_labelIds.png`.

Label ids are mapped to the 19 train ids of the official table (cityscapesscripts/helpers/labels.py);
every other id becomes 255. Trees already converted to `*_gtFine_labelTrainIds.png` (and the synthetic
dataset) are read with `label_type="labelTrainIds"` by the same code.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import DatasetError, SegmentationDataset, identity_lut, pair_files, require_dir

# (name, id, trainId) of the official label table; trainId 255 = not evaluated.
LABELS = [
    ("unlabeled", 0, 255), ("ego vehicle", 1, 255), ("rectification border", 2, 255), ("out of roi", 3, 255),
    ("static", 4, 255), ("dynamic", 5, 255), ("ground", 6, 255), ("road", 7, 0), ("sidewalk", 8, 1),
    ("parking", 9, 255), ("rail track", 10, 255), ("building", 11, 2), ("wall", 12, 3), ("fence", 13, 4),
    ("guard rail", 14, 255), ("bridge", 15, 255), ("tunnel", 16, 255), ("pole", 17, 5), ("polegroup", 18, 255),
    ("traffic light", 19, 6), ("traffic sign", 20, 7), ("vegetation", 21, 8), ("terrain", 22, 9), ("sky", 23, 10),
    ("person", 24, 11), ("rider", 25, 12), ("car", 26, 13), ("truck", 27, 14), ("bus", 28, 15),
    ("caravan", 29, 255), ("trailer", 30, 255), ("train", 31, 16), ("motorcycle", 32, 17), ("bicycle", 33, 18),
]
CLASSES = ["road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
           "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle",
           "bicycle"]
PALETTE = [[128, 64, 128], [244, 35, 232], [70, 70, 70], [102, 102, 156], [190, 153, 153], [153, 153, 153],
           [250, 170, 30], [220, 220, 0], [107, 142, 35], [152, 251, 152], [70, 130, 180], [220, 20, 60],
           [255, 0, 0], [0, 0, 142], [0, 0, 70], [0, 60, 100], [0, 80, 100], [0, 0, 230], [119, 11, 32]]


def id_to_train_id_lut() -> np.ndarray:
    """256-entry table: label id -> train id (255 for unevaluated ids, -1 for values not in the table)."""
    lut = np.full(256, -1, np.int16)
    for _, label_id, train_id in LABELS:
        lut[label_id] = train_id
    return lut


def cityscapes_pairs(root: str | Path, split: str, label_type: str = "labelIds") -> list[tuple[Path, Path]]:
    root = Path(root)
    require_dir(root, "a Cityscapes root holding leftImg8bit/ and gtFine/")
    img_dir = require_dir(root / "leftImg8bit" / split, f"Cityscapes images for split {split!r}")
    gt_dir = require_dir(root / "gtFine" / split, f"Cityscapes fine labels for split {split!r}")
    suffix = "_leftImg8bit.png"

    def label_for(img: Path) -> Path:
        stem = img.name[: -len(suffix)]
        return gt_dir / img.parent.name / f"{stem}_gtFine_{label_type}.png"

    return pair_files(list(img_dir.glob(f"*/*{suffix}")), label_for, img_dir)


def Cityscapes(root, split="train", transforms=None, label_type="labelIds"):
    """The 19-class Cityscapes dataset (label_type "labelIds" mapped through the table, or "labelTrainIds")."""
    if label_type not in ("labelIds", "labelTrainIds"):
        raise DatasetError(f"cityscapes: label_type must be 'labelIds' or 'labelTrainIds', got {label_type!r}")
    lut = id_to_train_id_lut() if label_type == "labelIds" else identity_lut(len(CLASSES))
    return SegmentationDataset(cityscapes_pairs(root, split, label_type), lut, len(CLASSES), transforms, "cityscapes")
