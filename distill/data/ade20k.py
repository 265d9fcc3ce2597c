"""ADE20K (SceneParsing 2016): `ADEChallengeData2016/{images,annotations}/{training,validation}/`.

Annotation 0 ("other") becomes 255 and classes 1..150 shift down to 0..149 (mmseg's reduce_zero_label).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import DatasetError, SegmentationDataset, pair_files, require_dir
from .voc import bit_colormap

CLASSES = [
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk",
    "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand",
    "path", "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove",
    "palm", "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus",
    "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle",
    "buffet", "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything",
    "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven",
    "ball", "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake",
    "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray",
    "ashcan", "fan", "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator",
    "glass", "clock", "flag"]
assert len(CLASSES) == 150
PALETTE = bit_colormap(len(CLASSES) + 1)[1:]  # skip black, which reads as "unlabelled"
SPLITS = {"train": "training", "training": "training", "val": "validation", "validation": "validation"}


def reduce_zero_label_lut(num_classes: int) -> np.ndarray:
    lut = np.full(256, -1, np.int16)
    lut[0] = 255
    lut[1:num_classes + 1] = np.arange(num_classes)
    lut[255] = 255
    return lut


def ade20k_pairs(root: str | Path, split: str) -> list[tuple[Path, Path]]:
    root = Path(root)
    if (root / "ADEChallengeData2016").is_dir():
        root = root / "ADEChallengeData2016"
    if split not in SPLITS:
        raise DatasetError(f"ade20k: unknown split {split!r}; expected one of {sorted(SPLITS)}")
    img_dir = require_dir(root / "images" / SPLITS[split], "ADE20K images (ADEChallengeData2016/images/...)")
    ann_dir = require_dir(root / "annotations" / SPLITS[split], "ADE20K annotations")
    return pair_files(list(img_dir.glob("*.jpg")), lambda img: ann_dir / f"{img.stem}.png", img_dir)


def ADE20K(root, split="train", transforms=None):
    return SegmentationDataset(ade20k_pairs(root, split), reduce_zero_label_lut(len(CLASSES)), len(CLASSES),
                               transforms, "ade20k")
