"""Degenerate data, named before the work: images too small to mean anything (skipped and counted), a crop
that no image can fill, a split with no labelled pixel. Image sizes come from the file headers (PIL opens
lazily: no pixel is decoded), so a scan of a split costs a fraction of a millisecond per image. Pillow is
imported only when a size is read: scoring an exported model (require_labels) runs on a device install
without it."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import IGNORE_INDEX, DatasetError, read_label


def image_hw(path) -> tuple[int, int]:
    """(H, W) of an image file from its header (decoded by OpenCV where Pillow is not installed)."""
    try:
        from PIL import Image
    except ImportError:
        import cv2

        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise DatasetError(f"{path}: cannot read the image") from None
        return int(img.shape[0]), int(img.shape[1])
    try:
        with Image.open(path) as im:
            w, h = im.size
    except (OSError, SyntaxError) as e:
        raise DatasetError(f"{path}: cannot read the image header ({e})") from None
    return int(h), int(w)


def scan(dataset, min_size=None, what: str = "split") -> dict:
    """Read every image's size; drop the images smaller than `min_size` (H, W) from `dataset` (in place) and
    say so in one line. Returns {"images": kept, "skipped": n, "largest": (H, W) of what is kept}. No image
    left is a DatasetError."""
    sizes = [image_hw(img) for img, _ in dataset.pairs]
    small = []
    if min_size:
        mh, mw = min_size
        small = [i for i, (h, w) in enumerate(sizes) if h < mh or w < mw]
        if small:
            first, (h, w) = dataset.pairs[small[0]][0], sizes[small[0]]
            print(f"data: skipped {len(small)} of {len(sizes)} {what} images smaller than {mh}x{mw} "
                  f"(data.min_size), e.g. {first} ({h}x{w})")
            if len(small) == len(sizes):
                raise DatasetError(f"{Path(first).parent}: every one of the {len(sizes)} {what} images is "
                                   f"smaller than {mh}x{mw} (data.min_size): nothing left to use")
            drop = set(small)
            dataset.pairs = [pair for i, pair in enumerate(dataset.pairs) if i not in drop]
            sizes = [hw for i, hw in enumerate(sizes) if i not in drop]
    largest = (max(h for h, _ in sizes), max(w for _, w in sizes)) if sizes else (0, 0)
    return {"images": len(sizes), "skipped": len(small), "largest": largest}


def check_crop(crop_size, scale_range, largest, what: str) -> None:
    """A random crop larger than every scaled image would be mostly padding in every sample: an error naming
    data.crop_size (crops larger than the image at *some* scales are the recipe, and padded)."""
    top = max(scale_range)
    biggest = [int(round(s * top)) for s in largest]
    ch, cw = crop_size
    if ch > biggest[0] or cw > biggest[1]:
        raise DatasetError(f"data.crop_size: {ch}x{cw} is larger than the largest scaled image {biggest[0]}x"
                           f"{biggest[1]} ({what}: largest image {largest[0]}x{largest[1]} x data.scale_range max "
                           f"{top}): every crop would be mostly padding")


def require_labels(dataset, what: str) -> None:
    """At least one labelled pixel (not 255 = ignore) in the split, else a DatasetError: training on it would
    learn nothing, and its mIoU is undefined (NaN). Stops at the first labelled label, so a normal split
    costs one label read."""
    lut = getattr(dataset, "lut", None)
    for _, lbl in dataset.pairs:
        raw = read_label(lbl)
        label = lut[raw] if lut is not None else raw
        if np.any((label != IGNORE_INDEX) & (label >= 0)):
            return
    where = Path(dataset.pairs[0][1]).parent if dataset.pairs else what
    raise DatasetError(f"{where}: the {what} has no labelled pixel (all {len(dataset.pairs)} labels are "
                       f"{IGNORE_INDEX} = ignore): nothing to train on or measure")
