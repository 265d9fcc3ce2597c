"""Frame <-> model tensor, driven by the model's metadata (no torch).

Preprocess: BGR uint8 frame -> resize (or letterbox) to the model size -> RGB -> (rgb - mean) / std
-> float32 NCHW. Postprocess: logits -> argmax -> undo the letterbox -> nearest resize to the frame.
The model size is decided once, at start-up, by `resolve_size`, so a model that cannot take the
stream is an error before the first frame is processed, not a crash mid-stream.
"""
from __future__ import annotations

from collections import namedtuple

import cv2
import numpy as np

from . import metadata
from .contract import ModelError

# Where the frame's pixels sit inside the model input: (top, left, height, width).
Geometry = namedtuple("Geometry", "frame_hw input_hw content")


class ShapeError(ModelError):
    """The model's input shape cannot take the frame or the requested size."""


def resolve_size(meta, input_shape, frame_hw, keep_size=False, size=None, source="model", batch=1):
    """The (H, W) the model runs at. A fixed-shape model runs at its own shape and nothing else;
    a dynamic one at `size`, at the frame size with keep_size, else at the metadata's input_size.
    `batch`: the images a call carries (a stream: 1)."""
    n, c = input_shape[0], input_shape[1]
    if c not in (None, 3):
        raise ShapeError("{}: model input has {} channels, expected 3 (RGB)".format(source, c))
    if n not in (None, batch):
        raise ShapeError("{}: model input has a fixed batch of {}, {} needs batch {}".format(
            source, n, "the stream" if batch == 1 else "the run", batch))
    fixed = tuple(input_shape[2:4])
    wanted = tuple(int(v) for v in size) if size else (tuple(frame_hw) if keep_size else None)
    if all(d is not None for d in fixed):
        if wanted is not None and wanted != fixed:
            why = "--size" if size else "--keep-size (frame size)"
            raise ShapeError("{}: model has a fixed input of {}x{} but {} asks for {}x{}; re-export it with "
                             "dynamic shapes (--dynamic) or drop {}".format(source, fixed[0], fixed[1], why,
                                                                             wanted[0], wanted[1], why))
        return fixed
    target = wanted or tuple(int(v) for v in meta["input_size"])
    for have, fix in zip(target, fixed):  # a partly dynamic model (e.g. fixed height)
        if fix is not None and fix != have:
            raise ShapeError("{}: model input is {} but the run needs {}x{}".format(source, list(input_shape), *target))
    return target


class Preprocessor:
    """BGR frame -> normalised float NCHW model input.

    `buffers=K` writes into a ring of K preallocated inputs (the pipeline sizes it to the frames that can
    be queued or in flight at once), so a stream allocates nothing per frame; None returns a new array
    each call. Resize, then per RGB plane one OpenCV pass x * (1/std) - mean/std straight into the NCHW
    buffer: no float HWC copy and no transpose, which the numpy formula makes.
    """

    def __init__(self, meta, input_hw, letterbox=False, dtype=np.float32, buffers=None):
        metadata.check(meta, "metadata")
        self.input_hw = tuple(int(v) for v in input_hw)
        self.letterbox = letterbox
        self.dtype = np.dtype(dtype)
        self.mean = np.asarray(meta["mean"], np.float32)
        self.inv_std = 1.0 / np.asarray(meta["std"], np.float32)
        self._scale = [float(v) for v in self.inv_std]
        self._shift = [float(v) for v in -self.mean * self.inv_std]
        self._ring = [np.zeros((1, 3) + self.input_hw, np.float32) for _ in range(buffers or 0)]
        self._ring_geo = [None] * len(self._ring)
        self._next = 0

    def geometry(self, frame_hw):
        h, w = frame_hw
        ih, iw = self.input_hw
        if not self.letterbox:
            return Geometry(tuple(frame_hw), self.input_hw, (0, 0, ih, iw))
        scale = min(ih / h, iw / w)
        ch, cw = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
        top, left = (ih - ch) // 2, (iw - cw) // 2
        return Geometry(tuple(frame_hw), self.input_hw, (top, left, ch, cw))

    def _buffer(self, geo):
        if not self._ring:
            return np.zeros((1, 3) + self.input_hw, np.float32)
        i = self._next
        self._next = (i + 1) % len(self._ring)
        buf = self._ring[i]
        if self._ring_geo[i] != geo.content:  # letterbox padding is the mean colour, i.e. exactly 0
            buf.fill(0.0)
            self._ring_geo[i] = geo.content
        return buf

    def __call__(self, frame_bgr):
        """BGR uint8 HxWx3 -> ((1, 3, H, W) array, Geometry)."""
        if frame_bgr.ndim == 2:
            frame_bgr = cv2.cvtColor(frame_bgr, cv2.COLOR_GRAY2BGR)
        geo = self.geometry(frame_bgr.shape[:2])
        top, left, ch, cw = geo.content
        img = frame_bgr if frame_bgr.shape[:2] == (ch, cw) else cv2.resize(
            frame_bgr, (cw, ch), interpolation=cv2.INTER_LINEAR)
        buf = self._buffer(geo)
        whole = (ch, cw) == self.input_hw
        for c, plane in enumerate(cv2.split(img)[::-1]):  # B, G, R planes -> R, G, B channels
            if whole:  # a contiguous plane of the buffer: OpenCV writes into it
                cv2.addWeighted(plane, self._scale[c], plane, 0.0, self._shift[c], dst=buf[0, c], dtype=cv2.CV_32F)
            else:
                buf[0, c, top:top + ch, left:left + cw] = cv2.addWeighted(
                    plane, self._scale[c], plane, 0.0, self._shift[c], dtype=cv2.CV_32F)
        return (buf if self.dtype == np.float32 else buf.astype(self.dtype)), geo


def argmax_labels(logits):
    """(C, H, W) float -> (H, W) uint8 argmax (first maximum wins, as np.argmax). One pass per class over
    contiguous planes, where np.argmax(axis=0) walks the class axis with a stride."""
    best = logits[0].copy()
    labels = np.zeros(best.shape, np.uint8)
    greater = np.empty(best.shape, bool)
    for c in range(1, logits.shape[0]):
        np.greater(logits[c], best, out=greater)
        np.maximum(best, logits[c], out=best)
        np.putmask(labels, greater, c)
    return labels


def postprocess(output, geo, output_kind=metadata.OUTPUT_LOGITS):
    """Model output for one image ((1, C, H, W) logits or (1, H, W) labels) -> uint8 HxW class map
    at the frame size (classes > 255 are not a segmentation model this runtime draws)."""
    out = output[0]
    labels = argmax_labels(out) if output_kind == metadata.OUTPUT_LOGITS else out.astype(np.uint8, copy=False)
    top, left, ch, cw = geo.content
    if labels.shape != tuple(geo.input_hw):  # a model that outputs at stride: map to input size first
        labels = cv2.resize(labels, (geo.input_hw[1], geo.input_hw[0]), interpolation=cv2.INTER_NEAREST)
    labels = labels[top:top + ch, left:left + cw]
    fh, fw = geo.frame_hw
    if labels.shape != (fh, fw):
        labels = cv2.resize(labels, (fw, fh), interpolation=cv2.INTER_NEAREST)
    return labels
