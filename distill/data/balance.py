"""Class weights for the cross-entropy of imbalanced datasets (CamVid: road 32% of pixels, bicyclist 0.3%).

`median_freq`: SegNet's median-frequency balancing (Eigen & Fergus 2015, used by SegNet on CamVid):
freq(c) = pixels of c / pixels of the images where c appears; weight(c) = median(freq) / freq(c).
`sqrt_median_freq`: its square root, a milder remedy (rare classes are up-weighted less, so they are
over-predicted less). Only label files are read, not images: numpy, no torch.
"""
from __future__ import annotations

import numpy as np

from .base import IGNORE_INDEX, SegmentationDataset, read_label

CHOICES = ("none", "median_freq", "sqrt_median_freq")


def class_pixel_counts(dataset: SegmentationDataset) -> tuple[np.ndarray, np.ndarray]:
    """(pixels of each class, pixels of the images where each class appears), over the dataset's labels."""
    k = dataset.num_classes
    pixels, present_in = np.zeros(k, np.int64), np.zeros(k, np.int64)
    for _, lbl_path in dataset.pairs:
        label = dataset.lut[read_label(lbl_path)]
        counts = np.bincount(label[(label >= 0) & (label != IGNORE_INDEX)].ravel(), minlength=k)[:k]
        pixels += counts
        present_in += np.where(counts > 0, label.size, 0)
    return pixels, present_in


def class_weights(dataset: SegmentationDataset, method: str) -> list[float] | None:
    """Per-class CE weights by `method` (one of CHOICES); None for "none". A class absent from every label
    gets weight 0 (it has no pixel to weigh), so it cannot turn the loss into NaN."""
    if method == "none":
        return None
    if method not in CHOICES:
        raise ValueError(f"class weights: unknown method {method!r}; expected one of {', '.join(CHOICES)}")
    pixels, present_in = class_pixel_counts(dataset)
    seen = pixels > 0
    freq = np.zeros(len(pixels))
    freq[seen] = pixels[seen] / present_in[seen]
    w = np.zeros(len(pixels))
    w[seen] = np.median(freq[seen]) / freq[seen]
    if method == "sqrt_median_freq":
        w = np.sqrt(w)
    return [float(x) for x in w]
