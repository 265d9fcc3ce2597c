"""Drawing a class map over a frame: palette blend, a legend of the classes present, FPS/latency."""
from __future__ import annotations

import threading

import cv2
import numpy as np


def palette_lut(palette_rgb, bgr=False):
    """The one palette colouring: a (256, 3) uint8 lookup table indexed by class id, `lut[labels]` is
    the colour image (RGB, or BGR for OpenCV); ids past the palette (should not happen) draw black."""
    lut = np.zeros((256, 3), np.uint8)
    colours = np.asarray(palette_rgb, np.uint8).reshape(-1, 3)
    lut[:len(colours)] = colours[:, ::-1] if bgr else colours
    return lut


class Overlay:
    """Draws with buffers of its own, kept per thread (a pipeline draws in one thread; two threads sharing
    an Overlay each get theirs)."""

    def __init__(self, classes, palette_rgb, alpha=0.5, legend=True, max_legend=12):
        self.classes = list(classes)
        self.lut = palette_lut(palette_rgb, bgr=True)
        # one single-channel table per BGR channel: cv2.LUT runs those with SIMD, not a 3-channel table
        self._tables = [np.ascontiguousarray(self.lut[:, c]) for c in range(3)]
        self._buffers = threading.local()
        self.alpha = float(alpha)
        self.legend = legend
        self.max_legend = max_legend
        _text(np.zeros((24, 64, 3), np.uint8), "0", (2, 18))

    def _colour(self, labels):
        """The colour image of `labels` in this thread's buffers (overwritten by its next call): three
        single-channel lookups merged, into buffers reused rather than allocated each frame, about a third of
        the CPU of the index-image lookup it replaced (docs/results/overlay.md, `benchmarks.speed.overlay`)."""
        planes = getattr(self._buffers, "planes", None)
        if planes is None or planes[0].shape != labels.shape:
            planes = [np.empty(labels.shape, np.uint8) for _ in range(3)] + [np.empty(labels.shape + (3,), np.uint8)]
            self._buffers.planes = planes
        for table, plane in zip(self._tables, planes):
            cv2.LUT(labels, table, dst=plane)
        return cv2.merge(planes[:3], dst=planes[3])

    def colorize(self, labels):
        """uint8 class map -> a new BGR image, the palette's colours (ids past it black)."""
        return self._colour(labels).copy()

    def draw(self, frame, labels, fps=None, latency_ms=None):
        """A new BGR image: frame blended with the class colours, the legend and the text."""
        out = cv2.addWeighted(frame, 1.0 - self.alpha, self._colour(labels), self.alpha, 0.0)
        if self.legend:
            self._legend(out, labels)
        text = []
        if fps is not None:
            text.append("{:.1f} FPS".format(fps))
        if latency_ms is not None:
            text.append("{:.1f} ms".format(latency_ms))
        if text:
            _text(out, "  ".join(text), (6, 18))
        return out

    def _legend(self, out, labels):
        # a histogram of the uint8 map: cheaper than np.bincount (benchmarks.speed.overlay times the legend)
        counts = cv2.calcHist([labels], [0], None, [256], [0, 256]).ravel().astype(np.int64)
        present = [i for i in np.argsort(-counts) if counts[i] > 0 and i < len(self.classes)][:self.max_legend]
        scale = 0.4
        width = max([cv2.getTextSize(self.classes[i], cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0]
                     for i in present] or [0]) + 22
        x0 = out.shape[1] - width - 4
        for row, i in enumerate(present):
            y = 6 + row * 14
            if y + 12 > out.shape[0] or x0 < 0:
                break
            cv2.rectangle(out, (x0, y), (x0 + 12, y + 10), tuple(int(v) for v in self.lut[i]), -1)
            _text(out, self.classes[i], (x0 + 16, y + 9), scale)


def _text(img, text, org, scale=0.5):
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
