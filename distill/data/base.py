"""What every dataset shares: a list of (image, label) file pairs, a raw-value -> train-id table, checks.

Each dataset module only knows its own on-disk layout; it hands `SegmentationDataset` the pairs and
the lookup table. Reading, mapping and the label-range check live here, once.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from runtime import contract

IGNORE_INDEX = 255


class DatasetError(contract.DataError):
    """A dataset tree or file that is not what the loader expects; the message names the path."""


def identity_lut(num_classes: int) -> np.ndarray:
    """Labels already stored as train ids: 0..num_classes-1 and 255 are valid, anything else is an error."""
    lut = np.full(256, -1, np.int16)
    lut[:num_classes] = np.arange(num_classes)
    lut[IGNORE_INDEX] = IGNORE_INDEX
    return lut


def read_image(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DatasetError(f"{path}: cannot read image (missing, truncated or not an image)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_label(path: Path) -> np.ndarray:
    """A single-channel label PNG as uint8. PIL keeps palette indices (VOC); OpenCV would expand them to RGB.
    Without Pillow (a device with the core install) a single-channel file is read by OpenCV."""
    try:
        from PIL import Image
    except ImportError:
        return _read_label_cv2(path)
    try:
        with Image.open(path) as im:
            if im.mode not in ("L", "P", "I", "I;16"):
                raise DatasetError(f"{path}: label must be a single-channel (L/P) PNG, found mode {im.mode}")
            arr = np.asarray(im)
    except (OSError, SyntaxError) as e:
        raise DatasetError(f"{path}: cannot read label ({e})") from e
    if arr.dtype != np.uint8:
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise DatasetError(f"{path}: label values {arr.min()}..{arr.max()} do not fit 8 bits")
        arr = arr.astype(np.uint8)
    return arr


def _read_label_cv2(path: Path) -> np.ndarray:
    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise DatasetError(f"{path}: cannot read label (missing, truncated or not an image)")
    if arr.ndim != 2:
        raise DatasetError(f"{path}: a label OpenCV reads as {arr.shape[2]} channels (a palette PNG?): install Pillow "
                           "to read its indices (pip install Pillow)")
    if arr.dtype != np.uint8:
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise DatasetError(f"{path}: label values {arr.min()}..{arr.max()} do not fit 8 bits")
        arr = arr.astype(np.uint8)
    return arr


def pair_files(images: Sequence[Path], label_for: Callable[[Path], Path], where: Path) -> list[tuple[Path, Path]]:
    """Pair each image with its label; an image without its label is an error naming both files."""
    if not images:
        raise DatasetError(f"{where}: no images found (empty split or wrong root)")
    pairs = []
    for img in sorted(images):
        lbl = label_for(img)
        if not lbl.is_file():
            raise DatasetError(f"{img}: image has no label (expected {lbl})")
        pairs.append((img, lbl))
    return pairs


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{path}: not a directory; expected {what}")
    return path


class SegmentationDataset:
    """Indexable (image, label) pairs. Without transforms an item is (HxWx3 uint8 RGB, HxW uint8, 255=ignore);
    with `transforms` it is whatever `transforms(image, label)` returns."""

    def __init__(self, pairs: list[tuple[Path, Path]], lut: np.ndarray, num_classes: int,
                 transforms: Callable | None = None, name: str = ""):
        self.pairs = pairs
        self.lut = lut.astype(np.int16)
        self.num_classes = num_classes
        self.transforms = transforms
        self.name = name

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        img_path, lbl_path = self.pairs[index]
        image = read_image(img_path)
        raw = read_label(lbl_path)
        if raw.shape != image.shape[:2]:
            raise DatasetError(f"{lbl_path}: label is {raw.shape[1]}x{raw.shape[0]} but its image "
                               f"{img_path.name} is {image.shape[1]}x{image.shape[0]}")
        label = self.lut[raw]
        if label.min() < 0:
            bad = np.unique(raw[label < 0])
            raise DatasetError(f"{lbl_path}: label values {bad[:10].tolist()} are outside the "
                               f"{self.num_classes} classes of {self.name or 'this dataset'} (255 = ignore)")
        return image, label.astype(np.uint8)

    def __getitem__(self, index: int):
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        image, label = self.load(index % len(self))
        if self.transforms is not None:
            return self.transforms(image, label)
        return image, label

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {len(self)} images, {self.num_classes} classes)"
