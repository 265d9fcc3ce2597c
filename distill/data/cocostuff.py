"""COCO-Stuff 10K, 171 classes, in the layout mmsegmentation's `coco_stuff10k.py` converter writes:

    <root>/images/{train2014,test2014}/<name>.jpg
    <root>/annotations/{train2014,test2014}/<name>_labelTrainIds.png

The converter maps the 182 COCO-Stuff ids (1-based in the 10K .mat files, 0 = unlabelled) to 171
train ids by dropping the 11 thing ids COCO never used; `ID_TO_TRAIN_ID` is that table, and
`to_train_ids` applies it to a raw mask for trees converted by other tools.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import DatasetError, SegmentationDataset, identity_lut, pair_files, require_dir
from .voc import bit_colormap

THINGS = [
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush"]
STUFF = [
    "banner", "blanket", "branch", "bridge", "building-other", "bush", "cabinet", "cage", "cardboard", "carpet",
    "ceiling-other", "ceiling-tile", "cloth", "clothes", "clouds", "counter", "cupboard", "curtain",
    "desk-stuff", "dirt", "door-stuff", "fence", "floor-marble", "floor-other", "floor-stone", "floor-tile",
    "floor-wood", "flower", "fog", "food-other", "fruit", "furniture-other", "grass", "gravel", "ground-other",
    "hill", "house", "leaves", "light", "mat", "metal", "mirror-stuff", "moss", "mountain", "mud", "napkin",
    "net", "paper", "pavement", "pillow", "plant-other", "plastic", "platform", "playingfield", "railing",
    "railroad", "river", "road", "rock", "roof", "rug", "salad", "sand", "sea", "shelf", "sky-other",
    "skyscraper", "snow", "solid-other", "stairs", "stone", "straw", "structural-other", "table", "tent",
    "textile-other", "towel", "tree", "vegetable", "wall-brick", "wall-concrete", "wall-other", "wall-panel",
    "wall-stone", "wall-tile", "wall-wood", "water-other", "waterdrops", "window-blind", "window-other", "wood"]
CLASSES = THINGS + STUFF
assert len(THINGS) == 80 and len(STUFF) == 91
PALETTE = bit_colormap(len(CLASSES) + 1)[1:]

# COCO thing ids 1..91 of which these 11 were never annotated; stuff ids are 92..182.
UNUSED_THING_IDS = (12, 26, 29, 30, 45, 66, 68, 69, 71, 83, 91)
ID_TO_TRAIN_ID = {cid: tid for tid, cid in enumerate(i for i in range(1, 183) if i not in UNUSED_THING_IDS)}
assert len(ID_TO_TRAIN_ID) == len(CLASSES)
SPLITS = {"train": "train2014", "train2014": "train2014", "val": "test2014", "test": "test2014",
          "test2014": "test2014"}


def id_to_train_id_lut() -> np.ndarray:
    """Raw 1-based COCO-Stuff ids -> train ids; 0 (unlabelled), unused ids and 183 ("other") -> 255."""
    lut = np.full(256, 255, np.int16)
    for cid, tid in ID_TO_TRAIN_ID.items():
        lut[cid] = tid
    return lut


def to_train_ids(mask: np.ndarray) -> np.ndarray:
    return id_to_train_id_lut()[mask].astype(np.uint8)


def cocostuff_pairs(root: str | Path, split: str) -> list[tuple[Path, Path]]:
    root = Path(root)
    if split not in SPLITS:
        raise DatasetError(f"cocostuff10k: unknown split {split!r}; expected one of {sorted(SPLITS)}")
    img_dir = require_dir(root / "images" / SPLITS[split], "COCO-Stuff 10K images (mmseg converter layout)")
    ann_dir = require_dir(root / "annotations" / SPLITS[split], "COCO-Stuff 10K annotations (*_labelTrainIds.png)")
    return pair_files(list(img_dir.glob("*.jpg")), lambda img: ann_dir / f"{img.stem}_labelTrainIds.png", img_dir)


def COCOStuff10k(root, split="train", transforms=None):
    return SegmentationDataset(cocostuff_pairs(root, split), identity_lut(len(CLASSES)), len(CLASSES), transforms,
                               "cocostuff10k")
