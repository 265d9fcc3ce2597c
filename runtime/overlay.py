"""Drawing a class map over a frame: palette blend, a legend of the classes present, FPS/latency."""
from __future__ import annotations

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
    def __init__(self, classes, palette_rgb, alpha=0.5, legend=True, max_legend=12):
        self.classes = list(classes)
        self.lut = palette_lut(palette_rgb, bgr=True)
        self._lut3 = np.ascontiguousarray(self.lut.reshape(256, 1, 3))
        self.alpha = float(alpha)
        self.legend = legend
        self.max_legend = max_legend

    def colorize(self, labels):
        """uint8 class map -> BGR image; cv2.LUT on the map copied to 3 channels is ~5x faster than lut[labels]."""
        return cv2.LUT(cv2.merge([labels, labels, labels]), self._lut3)

    def draw(self, frame, labels, fps=None, latency_ms=None):
        """A new BGR image: frame blended with the class colours, the legend and the text."""
        out = cv2.addWeighted(frame, 1.0 - self.alpha, self.colorize(labels), self.alpha, 0.0)
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
        counts = np.bincount(labels.ravel(), minlength=len(self.classes))
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
