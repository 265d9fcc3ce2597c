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


# Up to 85 classes, every (class, channel) pair has its own byte 3 * class + channel, so the colour image
# is one single-channel cv2.LUT over the 3-channel index image: about 1.3 ms of CPU per 720p frame
# against 1.9 for cv2.LUT with a 3-channel table (which OpenCV runs without SIMD) and 10 for lut[labels].
_FAST_CLASSES = 85
_BLACK = 255  # the index of ids past the palette: cv2.add saturates 3 * id + channel there


class Overlay:
    def __init__(self, classes, palette_rgb, alpha=0.5, legend=True, max_legend=12):
        self.classes = list(classes)
        self.lut = palette_lut(palette_rgb, bgr=True)
        self._lut3 = np.ascontiguousarray(self.lut.reshape(256, 1, 3))
        colours = np.asarray(palette_rgb, np.uint8).reshape(-1, 3)
        self._fast = len(colours) <= _FAST_CLASSES
        if self._fast:
            self._times3 = np.full((256, 1), _BLACK, np.uint8)  # id -> 3 * id (ids past the palette: black)
            self._times3[:len(colours), 0] = 3 * np.arange(len(colours))
            self._by_channel = np.zeros((256, 1), np.uint8)    # 3 * id + channel -> that channel's value
            self._by_channel[:3 * len(colours), 0] = self.lut[:len(colours)].reshape(-1)
        self.alpha = float(alpha)
        self.legend = legend
        self.max_legend = max_legend
        # OpenCV loads its fonts on the first putText (25 ms of CPU): at start-up, not in the first frame
        _text(np.zeros((24, 64, 3), np.uint8), "0", (2, 18))

    def colorize(self, labels):
        """uint8 class map -> BGR image, the palette's colours (ids past it black)."""
        if not self._fast:
            return cv2.LUT(cv2.cvtColor(labels, cv2.COLOR_GRAY2BGR), self._lut3)
        index = cv2.cvtColor(cv2.LUT(labels, self._times3), cv2.COLOR_GRAY2BGR)
        return cv2.LUT(cv2.add(index, (0, 1, 2, 0)), self._by_channel)

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
        # a histogram of the uint8 map: 0.3 ms per 720p frame, np.bincount 1 ms
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
