"""Score any model file on a labelled split, torch-free: `.onnx` (FP32 or INT8), OpenVINO `.xml` (at the
precision it will run), TensorRT `.engine`, through the runtime's own backends and preprocessing, with the
metric of `distill.evaluate` (distill.metrics.SegMetric) at the labels' native resolution.

    python -m distill.evaluate --model student.int8.xml --cfg cityscapes.yaml
    python -m distill.evaluate --model student.onnx --dataset voc --root data/VOCdevkit/VOC2012 -o m.json

The resolution policy (one function, `Scorer.logits`, used by evaluation and by the INT8 accuracy gate alike):
- `whole`: the whole image at its own resolution. A model with a fixed input (the exporters' default) runs an
  image of another size as windows of its input size (stride 2/3 of it; an image smaller than the window is
  padded with the mean colour), never stretched; logits are averaged where windows overlap.
- `slide`: windows of `crop_size` (default: the model's input size) every `stride` (default 2/3 of the
  window), as `distill.evaluate.slide_logits` does for a checkpoint.
- `flip`: logits averaged with those of the mirrored image.
- `size`: image (bilinear) and label (nearest) resized to it first, as `EvalTransform(size=)` does.
Predictions are scored at the (possibly resized) label's resolution; nothing is resized after the argmax.
Images stream through one at a time: memory does not grow with the split.
"""
from __future__ import annotations

import sys

import cv2
import numpy as np

from runtime import metadata
from runtime.contract import ConfigError, pair
from runtime.formats import is_checkpoint

from .metrics import SegMetric


class CheckpointBackend:
    """A checkpoint as one more backend behind `Scorer`: the PyTorch model runs the same normalised NCHW
    input an exported file gets, with a dynamic input (whole images at their own resolution, like a
    `--dynamic` export). torch is imported only here, when a checkpoint is opened."""

    name, precision = "torch", "fp32"
    output_kind = metadata.OUTPUT_LOGITS
    input_shape = (1, 3, None, None)

    def __init__(self, path, device="auto"):
        import torch

        from . import checkpoint

        self.path = str(path)
        self.model, self.meta = checkpoint.load(path)
        if not device or str(device) == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = str(device)
        self.model.to(self.device).eval()

    def infer(self, x):
        import torch

        with torch.no_grad():  # logits at another size than the input: Scorer resizes them, as for any file
            out = self.model(torch.from_numpy(np.ascontiguousarray(x, np.float32)).to(self.device))
        return out.float().cpu().numpy()

    def describe(self) -> dict:
        return {"backend": self.name, "device": self.device, "precision": self.precision}

    def close(self):
        self.model = None


def open_model(path, device="auto", threads=None, precision_hint=None, warn_gate=True):
    """The backend for a model file: a checkpoint's (CheckpointBackend, PyTorch), else the runtime's
    (runtime.formats picks it by suffix). `precision_hint`: an OpenVINO compute precision other than the
    one the file was checked at (the run is then unchecked). `warn_gate`: runtime.backends.load_backend's."""
    if is_checkpoint(path):
        if threads or precision_hint:
            raise ConfigError(f"{path}: --threads and --precision-hint are for exported models; a checkpoint runs "
                              "in PyTorch")
        return CheckpointBackend(path, device)
    from runtime.backends import load_backend

    options = {}
    if device and str(device) != "auto":
        options["device"] = device
    if threads:
        options["threads"] = threads
    if precision_hint:
        options["inference_precision"] = precision_hint
    return load_backend(str(path), warn_gate=warn_gate, **options)



def window_grid(H: int, W: int, window, stride):
    """(y1, y2, x1, x2) of the sliding windows over an H x W image (at least the window's size), every
    `stride`, the last row and column flush with the border: mmseg's slide inference grid, shared by the
    checkpoint's windows (distill.evaluate.slide_logits) and an exported model's (Scorer)."""
    (ch, cw), (sh, sw) = window, stride
    rows = max(H - ch + sh - 1, 0) // sh + 1
    cols = max(W - cw + sw - 1, 0) // sw + 1
    for r in range(rows):
        for c in range(cols):
            y2, x2 = min(r * sh + ch, H), min(c * sw + cw, W)
            yield max(y2 - ch, 0), y2, max(x2 - cw, 0), x2

class Scorer:
    """HxWx3 uint8 RGB image -> HxW class map at the image's resolution, with a runtime backend, under the
    resolution policy of the module docstring."""

    def __init__(self, backend, mode="whole", crop_size=None, stride=None, flip=False):
        if mode not in ("whole", "slide"):
            raise ConfigError(f"mode must be 'whole' or 'slide', got {mode!r}")
        self.backend, self.mode, self.flip = backend, mode, bool(flip)
        self.meta = backend.meta
        dims = tuple(backend.input_shape[2:4])
        self.fixed = dims if all(d is not None for d in dims) else None
        self.labels_out = backend.output_kind == metadata.OUTPUT_LABELS
        crop = pair(crop_size)
        if mode == "slide":
            crop = crop or self.fixed or pair(self.meta["input_size"])
            if self.fixed and crop != self.fixed:
                raise ConfigError(f"{backend.path}: the model has a fixed {self.fixed[0]}x{self.fixed[1]} input; a "
                                  f"{crop[0]}x{crop[1]} sliding window needs a model exported at that size "
                                  f"(export.onnx --size) or with --dynamic")
        self.window = crop if mode == "slide" else self.fixed
        step = pair(stride)
        if self.window is not None and step is None:
            step = (max(1, self.window[0] * 2 // 3), max(1, self.window[1] * 2 // 3))
        self.stride = step
        if self.labels_out and (self.flip or mode == "slide"):
            raise ConfigError(f"{backend.path}: the model outputs class labels (exported with --argmax); sliding "
                              "windows and flip average logits: export it without --argmax to score it this way")

    def describe(self, image_hw=None) -> str:
        """One line: how an image is run."""
        if self.mode == "whole" and self.fixed is None:
            how = "whole images at their own resolution"
        elif self.mode == "whole":
            how = (f"whole images at the model's fixed {self.fixed[0]}x{self.fixed[1]}; other sizes as "
                   f"{self.fixed[0]}x{self.fixed[1]} windows every {self.stride[0]}x{self.stride[1]}, never stretched")
        else:
            how = (f"sliding {self.window[0]}x{self.window[1]} windows every {self.stride[0]}x{self.stride[1]}")
        return how + (", averaged with the mirrored image" if self.flip else "")

    def _normalise(self, image):
        from runtime.preprocess import Preprocessor

        h, w = image.shape[:2]
        x, _ = Preprocessor(self.meta, (h, w))(np.ascontiguousarray(image[..., ::-1]))  # RGB -> the BGR it takes
        return x

    def _run(self, x):
        out = self.backend.infer(np.ascontiguousarray(x))
        if self.labels_out:
            return out
        if out.shape[-2:] != x.shape[-2:]:  # a head at stride: to input size, as the checkpoint's forward does
            out = np.stack([cv2.resize(c, (x.shape[3], x.shape[2]), interpolation=cv2.INTER_LINEAR)
                            for c in out[0]])[None]
        return out

    def _windows(self, x):
        """(1, C, H, W) logits of windows over x, averaged where they overlap (distill.evaluate.slide_logits)."""
        _, _, h, w = x.shape
        ph, pw = max(self.window[0] - h, 0), max(self.window[1] - w, 0)
        if ph or pw:  # zero after normalisation: the mean colour
            x = np.pad(x, ((0, 0), (0, 0), (0, ph), (0, pw)))
        H, W = x.shape[-2:]
        total = count = None
        for y1, y2, x1, x2 in window_grid(H, W, self.window, self.stride):
            out = self._run(x[:, :, y1:y2, x1:x2])
            if total is None:
                total = np.zeros((out.shape[1], H, W), np.float32)
                count = np.zeros((H, W), np.float32)
            total[:, y1:y2, x1:x2] += out[0]
            count[y1:y2, x1:x2] += 1
        return (total / count)[None, :, :h, :w]

    def _pass(self, x):
        if self.mode == "whole" and (self.fixed is None or tuple(x.shape[-2:]) == self.fixed):
            return self._run(x)
        if self.labels_out:
            raise ConfigError(f"{self.backend.path}: the model outputs class labels (exported with --argmax) at a "
                              f"fixed {self.fixed[0]}x{self.fixed[1]}; a {x.shape[2]}x{x.shape[3]} image needs "
                              "windows whose logits are averaged: export it without --argmax, or with --dynamic")
        return self._windows(x)

    def logits(self, image):
        """(1, C, H, W) logits (or (1, H, W) labels for a labels model) of an RGB image at its resolution."""
        x = self._normalise(image)
        out = self._pass(x)
        if self.flip:
            out = (out + self._pass(np.ascontiguousarray(x[..., ::-1]))[..., ::-1]) / 2
        return out

    def __call__(self, image):
        out = self.logits(image)
        labels = out[0] if self.labels_out else out[0].argmax(0)
        return labels.astype(np.int64)


def resize_pair(image, label, size):
    """EvalTransform(size=)'s resize, in numpy: image bilinear, label nearest."""
    if size is None or tuple(label.shape) == tuple(size):
        return image, label
    h, w = pair(size)
    return (cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR),
            cv2.resize(label, (w, h), interpolation=cv2.INTER_NEAREST))


def _too_small(image, min_size) -> bool:
    return bool(min_size) and (image.shape[0] < min_size[0] or image.shape[1] < min_size[1])


def score(predict, items, num_classes: int, size=None, max_images: int | None = None, ignore_index: int = 255,
          progress: bool = False, boundary: bool = True, connectivity: bool = True, on_item=None,
          min_size=None, what: str = "split") -> dict:
    """SegMetric's dict for `predict(HxWx3 uint8 RGB) -> HxW labels` over (image, label) items (a dataset
    without transforms, or any sequence or iterable of such pairs), one item in memory at a time.
    `on_item(pred, label)` is called for each image (per-image values; pred None for a skipped one).

    `min_size` (H, W; data.min_size) is applied here and only here, for every model file and the INT8 gate
    alike: an image smaller than it is too small to mean anything, skipped before resizing and counted in
    `skipped_images` (one line says so); `max_images` counts the images scored. A split with nothing left is
    a DatasetError."""
    metric = SegMetric(num_classes, ignore_index, boundary=boundary, connectivity=connectivity)
    min_size = pair(min_size)
    if hasattr(items, "__len__") and hasattr(items, "__getitem__"):
        total = len(items)
        it = (items[i] for i in range(total))
    else:
        total = max_images
        it = iter(items)
    if progress:
        from tqdm import tqdm
        it = tqdm(it, total=total, desc="score", unit="img", leave=False)
    seen = skipped = 0
    for image, label in it:
        if max_images is not None and seen - skipped >= max_images:
            break
        seen += 1
        image = np.asarray(image)
        if _too_small(image, min_size):
            skipped += 1
            if on_item is not None:  # per-image values stay one per item
                on_item(None, label)
            continue
        image, label = resize_pair(image, np.asarray(label), size)
        pred = np.asarray(predict(image))
        if pred.ndim == 3 and pred.shape[0] == 1:
            pred = pred[0]
        if pred.shape != label.shape:
            raise ValueError(f"predictor returned shape {pred.shape} for an image whose label is {label.shape}")
        metric.update(pred, label)
        if on_item is not None:
            on_item(pred, label)
    if skipped:
        print(f"data: skipped {skipped} of {seen} {what} images smaller than {min_size[0]}x{min_size[1]} "
              "(data.min_size)")
        if skipped == seen:
            from .data.base import DatasetError

            raise DatasetError(f"every one of the {seen} {what} images is smaller than {min_size[0]}x{min_size[1]} "
                               "(data.min_size): nothing left to score")
    results = metric.compute()
    results["skipped_images"] = skipped
    return results


def eval_settings(meta: dict) -> dict:
    """The evaluation settings a model was trained to be judged by: its config's eval section and
    data.min_size (kept in the metadata of a checkpoint and of every file exported from it), else the
    defaults (whole images, no flip, distill.config's min_size). What `distill.evaluate --model` uses
    without --cfg, and what the INT8 gate scores with."""
    from .config import DataCfg

    config = meta.get("config") or {}
    ev, data = config.get("eval") or {}, config.get("data") or {}
    return {"mode": ev.get("mode") or "whole", "crop_size": ev.get("crop_size"), "stride": ev.get("stride"),
            "flip": bool(ev.get("flip", False)), "size": ev.get("size"),
            "min_size": data.get("min_size", DataCfg().min_size)}


if __name__ == "__main__":  # the CLI is distill.evaluate's (--model)
    sys.exit("use: python -m distill.evaluate --model FILE ...")
