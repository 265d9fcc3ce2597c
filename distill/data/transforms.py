"""The field's standard segmentation recipe (mmseg/torchvision references), on numpy arrays.

Both transforms map (image HxWx3 uint8 RGB, label HxW uint8) -> (float32 tensor 3xHxW normalised as
(rgb - mean) / std on the 0-255 scale, int64 tensor HxW). Labels are only ever resized with nearest
neighbour, and padded with 255 (ignore); images are padded with the mean colour.

Randomness comes from torch's generator, which DataLoader seeds per worker (numpy's is not reseeded
in every setting), so `torch.manual_seed` makes a run's augmentation reproducible.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import torch

from runtime.contract import pair

from .base import IGNORE_INDEX


def _uniform(lo: float, hi: float) -> float:
    return lo + (hi - lo) * torch.rand(()).item()


def _coin(p: float = 0.5) -> bool:
    return torch.rand(()).item() < p


def normalize(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    x = (image.astype(np.float32) - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


def exposure(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """Scale the whole image by a factor drawn log-uniformly from [low, high] (exposure in stops, e.g. 0.3 is
    about 1.7 stops darker). mmseg's jitter adds at most 32 grey levels, which cannot turn a day frame
    (mean about 140 on CamVid's day drives) into a dusk one (about 55 on its 0001TP drive); a multiplicative
    factor can (torchvision's ColorJitter brightness is one too)."""
    factor = float(np.exp(_uniform(np.log(low), np.log(high))))
    return np.clip(image.astype(np.float32) * factor, 0, 255).astype(np.uint8)


def photometric_jitter(image: np.ndarray) -> np.ndarray:
    """mmseg's PhotoMetricDistortion: brightness, contrast, saturation, hue, each with probability 1/2."""
    img = image.astype(np.float32)
    if _coin():
        img += _uniform(-32, 32)
    contrast_first = _coin()
    if contrast_first and _coin():
        img *= _uniform(0.5, 1.5)
    img = np.clip(img, 0, 255)
    if _coin() or _coin():
        hsv = cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_RGB2HSV).astype(np.int16)
        if _coin():  # saturation
            hsv[..., 1] = np.clip(hsv[..., 1] * _uniform(0.5, 1.5), 0, 255)
        if _coin():  # hue (OpenCV's 8-bit hue is 0..179)
            hsv[..., 0] = (hsv[..., 0] + int(round(_uniform(-18, 18)))) % 180
        img = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    if not contrast_first and _coin():
        img *= _uniform(0.5, 1.5)
    return np.clip(img, 0, 255).astype(np.uint8)


class TrainTransform:
    """Random scale (relative to the input size), random crop (label padded with 255), horizontal flip,
    exposure (optional: `exposure=(low, high)`), photometric jitter, normalisation."""

    def __init__(self, crop_size, mean, std, scale_range=(0.5, 2.0), flip=True, jitter=True,
                 ignore_index=IGNORE_INDEX, exposure=None):
        self.crop = pair(crop_size)
        self.mean, self.std = list(mean), list(std)
        self.scale_range = tuple(scale_range)
        self.flip, self.jitter, self.ignore_index = flip, jitter, ignore_index
        self.exposure = tuple(exposure) if exposure else None
        if self.exposure and not (len(self.exposure) == 2 and 0 < self.exposure[0] <= self.exposure[1]):
            raise ValueError(f"exposure {list(exposure)}: expected [low, high] with 0 < low <= high")

    def __call__(self, image: np.ndarray, label: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        s = _uniform(*self.scale_range)
        h, w = label.shape
        nh, nw = max(1, int(round(h * s))), max(1, int(round(w * s)))
        if (nh, nw) != (h, w):
            image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
            label = cv2.resize(label, (nw, nh), interpolation=cv2.INTER_NEAREST)
        ch, cw = self.crop
        ph, pw = max(ch - nh, 0), max(cw - nw, 0)
        pad = None
        if ph or pw:  # label padded with ignore (never scored); the image's padding becomes the mean colour below
            image = cv2.copyMakeBorder(image, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=(0, 0, 0))
            label = cv2.copyMakeBorder(label, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=self.ignore_index)
            pad = np.zeros(label.shape, bool)
            pad[nh:, :] = True
            pad[:, nw:] = True
        y = int(torch.randint(0, label.shape[0] - ch + 1, ()).item())
        x = int(torch.randint(0, label.shape[1] - cw + 1, ()).item())
        image, label = image[y:y + ch, x:x + cw], label[y:y + ch, x:x + cw]
        pad = pad[y:y + ch, x:x + cw] if pad is not None else None
        if self.flip and _coin():
            image, label = image[:, ::-1], label[:, ::-1]
            pad = pad[:, ::-1] if pad is not None else None
        if self.exposure:
            image = exposure(image, *self.exposure)
        if self.jitter:
            image = photometric_jitter(np.ascontiguousarray(image))
        x = normalize(image, self.mean, self.std)
        if pad is not None:
            # Padding is the mean colour (0 after normalisation, as mmseg and CIRKD pad), set after the jitter so
            # it stays flat: a black border would draw a false edge into the label-free distillation targets.
            x[:, torch.from_numpy(np.ascontiguousarray(pad))] = 0.0
        return x, torch.from_numpy(np.ascontiguousarray(label).astype(np.int64))


class EvalTransform:
    """Optional resize to `size` (H, W) (label nearest), then normalisation. Without `size` the image keeps
    its resolution, which is how results are reported."""

    def __init__(self, mean, std, size=None):
        self.mean, self.std = list(mean), list(std)
        self.size = pair(size)

    def __call__(self, image: np.ndarray, label: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        if self.size is not None and label.shape != self.size:
            h, w = self.size
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
            label = cv2.resize(label, (w, h), interpolation=cv2.INTER_NEAREST)
        return normalize(image, self.mean, self.std), torch.from_numpy(label.astype(np.int64))
