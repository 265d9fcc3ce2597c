"""The street-scene renderer of the synthetic dataset (distill/data/synthetic.py writes and reads the
tree): one image and its exact label map as a pure function of (seed, split, index).

A perspective street: sky, a skyline of buildings with windows, road with lane marks, sidewalks, trees
and hedges, cars and people at depth-dependent scale, and the thin structures small students get
wrong: poles (some carrying signs, some splitting a car in two), fences seen through, and overhead
wires. Appearance varies by texture, lighting (gain, colour cast, gradients, cast shadows), blur and
sensor noise; labels are exact (drawn with the same primitives, no interpolation).
"""
from __future__ import annotations

import zlib

import cv2
import numpy as np

CLASSES = ["road", "sidewalk", "building", "fence", "pole", "traffic sign", "vegetation", "sky", "person",
           "car", "wire"]
# Cityscapes colours for the shared classes; wire has none there.
PALETTE = [[128, 64, 128], [244, 35, 232], [70, 70, 70], [190, 153, 153], [153, 153, 153], [220, 220, 0],
           [107, 142, 35], [70, 130, 180], [220, 20, 60], [0, 0, 142], [0, 192, 192]]
ROAD, SIDEWALK, BUILDING, FENCE, POLE, SIGN, VEGETATION, SKY, PERSON, CAR, WIRE = range(len(CLASSES))

CITY = "synthtown"
# The tuning split (choosing loss weights without looking at val) is drawn from the train distribution:
# scenes TUNE_OFFSET.. of the train stream, which no training set of fewer images ever contains.
TUNE_SPLIT, TUNE_OFFSET = "tune", 1_000_000
FORMAT_VERSION = 1  # bump when the generator's output changes, so cached trees are regenerated
_CAR_COLOURS = np.array([[180, 20, 20], [20, 40, 140], [235, 235, 235], [25, 25, 28], [160, 160, 165],
                         [90, 100, 110], [200, 160, 40], [30, 90, 50], [120, 20, 30]], np.float32)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Value noise in [-1, 1]: a coarse random grid upsampled smoothly."""
    gh, gw = max(2, cells * h // max(h, w) + 1), max(2, cells * w // max(h, w) + 1)
    grid = rng.uniform(-1, 1, (gh, gw)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC).clip(-1, 1)


class _Canvas:
    """Draws each primitive into the label map and the (float RGB) image with the same pixels."""

    def __init__(self, h: int, w: int):
        self.h, self.w = h, w
        self.img = np.zeros((h, w, 3), np.float32)
        self.lbl = np.full((h, w), SKY, np.uint8)

    def poly(self, pts, cls, colour):
        pts = [np.round(np.asarray(pts, np.float64)).astype(np.int32)]
        cv2.fillPoly(self.lbl, pts, int(cls))
        cv2.fillPoly(self.img, pts, [float(c) for c in colour])

    def line(self, p, q, cls, colour, thickness):
        p = tuple(int(round(v)) for v in p)
        q = tuple(int(round(v)) for v in q)
        t = max(1, int(round(thickness)))
        cv2.line(self.lbl, p, q, int(cls), t)
        cv2.line(self.img, p, q, [float(c) for c in colour], t)

    def polyline(self, pts, cls, colour, thickness):
        pts = [np.round(np.asarray(pts, np.float64)).astype(np.int32)]
        t = max(1, int(round(thickness)))
        cv2.polylines(self.lbl, pts, False, int(cls), t)
        cv2.polylines(self.img, pts, False, [float(c) for c in colour], t)

    def ellipse(self, c, axes, cls, colour, angle=0.0):
        c = tuple(int(round(v)) for v in c)
        axes = tuple(max(1, int(round(v))) for v in axes)
        cv2.ellipse(self.lbl, c, axes, angle, 0, 360, int(cls), -1)
        cv2.ellipse(self.img, c, axes, angle, 0, 360, [float(v) for v in colour], -1)


class _Scene:
    """One street scene: perspective geometry shared by all the objects placed in it."""

    def __init__(self, rng: np.random.Generator, h: int, w: int):
        self.rng, self.h, self.w = rng, h, w
        self.cv = _Canvas(h, w)
        self.yh = h * rng.uniform(0.36, 0.5)                       # horizon
        self.xv = w * rng.uniform(0.35, 0.65)                      # vanishing point
        half = w * rng.uniform(0.01, 0.03)                         # road half-width at the horizon
        self.road_b = (w * rng.uniform(-0.35, 0.15), w * rng.uniform(0.85, 1.35))  # road at the bottom row
        walk = w * rng.uniform(0.12, 0.35), w * rng.uniform(0.12, 0.35)
        self.walk_b = (self.road_b[0] - walk[0], self.road_b[1] + walk[1])
        self.road_h = (self.xv - half, self.xv + half)
        self.walk_h = (self.xv - 1.8 * half, self.xv + 1.8 * half)

    def depth(self, y: float) -> float:
        """Scale factor of an object standing at row y: 0 at the horizon, 1 at the bottom row."""
        return max(0.0, (y - self.yh) / (self.h - self.yh))

    def _lerp(self, y, top, bottom):
        f = (np.asarray(y, np.float64) - self.yh) / (self.h - self.yh)
        return top + (bottom - top) * f

    def road_x(self, y):
        return self._lerp(y, self.road_h[0], self.road_b[0]), self._lerp(y, self.road_h[1], self.road_b[1])

    def walk_x(self, y):
        return self._lerp(y, self.walk_h[0], self.walk_b[0]), self._lerp(y, self.walk_h[1], self.walk_b[1])

    # -- background: sky, buildings, ground ------------------------------------------------------
    def background(self):
        """Sky, then the skyline's buildings, then the ground (the scene's RNG is drawn in that order)."""
        yy = np.arange(self.h, dtype=np.float32)[:, None]
        xx = np.arange(self.w, dtype=np.float32)[None, :]
        self.sky(yy)
        self.buildings(yy, xx)
        self.ground(yy)

    def sky(self, yy):
        rng, h, w, cv = self.rng, self.h, self.w, self.cv
        overcast = rng.random() < 0.35
        zenith = np.array([150, 160, 170] if overcast else [60, 110, 200], np.float32) + rng.uniform(-20, 20, 3)
        horizon = np.array([200, 200, 205] if overcast else [170, 200, 235], np.float32) + rng.uniform(-15, 15, 3)
        t = (yy / max(self.yh, 1)).clip(0, 1)[..., None]
        sky = zenith * (1 - t) + horizon * t
        clouds = _smooth_noise(rng, h, w, 6).clip(0, 1)[..., None] * rng.uniform(20, 70)
        cv.img[:] = np.broadcast_to(sky + clouds, (h, w, 3))

    def buildings(self, yy, xx):
        rng, h, w, cv = self.rng, self.h, self.w, self.cv
        # Ground boundary below each column: the outer sidewalk edges, extended past the image sides.
        left = self.walk_h[0] - xx
        bot = np.where(xx < self.walk_h[0], self.yh + (h - self.yh) * left / max(self.walk_h[0] - self.walk_b[0], 1),
                       np.where(xx > self.walk_h[1],
                                self.yh + (h - self.yh) * (xx - self.walk_h[1]) / max(self.walk_b[1] - self.walk_h[1], 1),
                                self.yh))
        bot = np.minimum(bot, h)

        # Skyline: blocks of random width; taller towards the image sides (closer in perspective).
        top = np.full(w, np.inf, np.float32)
        colour = np.zeros((w, 3), np.float32)
        period = np.ones((w, 2), np.float32)
        win = np.ones((w, 2), np.float32)
        x0s = np.zeros(w, np.float32)
        x = 0
        while x < w:
            bw = int(w * rng.uniform(0.06, 0.22))
            if rng.random() < 0.85:  # else a gap where sky (or trees) show through
                side = abs((x + bw / 2) - self.xv) / w
                top[x:x + bw] = self.yh - h * rng.uniform(0.08, 0.3) * (1 + 2.5 * side)
                colour[x:x + bw] = rng.choice([[120, 115, 110], [160, 140, 115], [95, 85, 80], [180, 175, 165],
                                               [130, 90, 70]]) + rng.uniform(-20, 20, 3)
                p = max(3.0, h * rng.uniform(0.03, 0.07) * (1 + side))
                period[x:x + bw] = (p * rng.uniform(0.8, 1.4), p)
                win[x:x + bw] = rng.uniform(0.35, 0.65, 2)
                x0s[x:x + bw] = x
            x += max(bw, 2)
        building = (yy >= top[None, :]) & (yy < bot)
        cv.lbl[building] = BUILDING
        px, py = period[:, 0], period[:, 1]
        top0 = np.where(np.isfinite(top), top, 0)  # gap columns have no facade (and inf % p is nan)
        windows = (((xx - x0s) % px < px * win[:, 0]) & ((yy - top0) % py < py * win[:, 1])
                   & (yy < bot - py) & (yy > top0 + 0.5 * py) & building)
        facade = np.broadcast_to(colour[None], (h, w, 3)).copy()
        facade[windows] = facade[windows] * 0.35 + np.array([40, 60, 80], np.float32)
        cv.img[building] = facade[building]

    def ground(self, yy):
        rng, h, w, cv = self.rng, self.h, self.w, self.cv
        # Ground: sidewalk trapezoid, then the road over it, then lane marks (road label, paint colour).
        asphalt = rng.uniform(70, 110)
        cv.poly([(self.walk_h[0], self.yh), (self.walk_h[1], self.yh), (self.walk_b[1], h), (self.walk_b[0], h)],
                SIDEWALK, np.array([175, 165, 160]) + rng.uniform(-25, 25, 3))
        walk = cv.lbl == SIDEWALK
        tiles = ((np.sqrt(np.maximum(yy - self.yh, 0)) * rng.uniform(2.5, 4)) % 1 < 0.18) & walk
        cv.img[tiles] *= 0.8
        cv.poly([(self.road_h[0], self.yh), (self.road_h[1], self.yh), (self.road_b[1], h), (self.road_b[0], h)],
                ROAD, np.array([asphalt, asphalt, asphalt + 5]) + rng.uniform(-6, 6, 3))
        n_dash = 8
        for i in range(n_dash):
            y0 = self.yh + (h - self.yh) * (i / n_dash) ** 1.6
            y1 = self.yh + (h - self.yh) * ((i + 0.5) / n_dash) ** 1.6
            c0, c1 = np.mean(self.road_x(y0)), np.mean(self.road_x(y1))
            d0, d1 = 0.012 * w * self.depth(y0), 0.012 * w * self.depth(y1)
            pts = np.round([(c0 - d0, y0), (c0 + d0, y0), (c1 + d1, y1), (c1 - d1, y1)]).astype(np.int32)
            cv2.fillPoly(cv.img, [pts], [225.0, 225.0, 215.0])

    # -- objects ---------------------------------------------------------------------------------
    def car(self, yb, xc):
        rng, cv = self.rng, self.cv
        f = self.depth(yb)
        ch = 0.42 * self.h * f * rng.uniform(0.85, 1.15)
        cw = ch * rng.uniform(1.5, 2.3)
        col = _CAR_COLOURS[rng.integers(len(_CAR_COLOURS))] + rng.uniform(-15, 15, 3)
        x0, x1 = xc - cw / 2, xc + cw / 2
        cv.poly([(x0, yb - 0.15 * ch), (x0 + 0.03 * cw, yb - 0.55 * ch), (x1 - 0.03 * cw, yb - 0.55 * ch),
                 (x1, yb - 0.15 * ch)], CAR, col)
        cv.poly([(x0 + 0.12 * cw, yb - 0.55 * ch), (xc - 0.28 * cw, yb - ch), (xc + 0.28 * cw, yb - ch),
                 (x1 - 0.12 * cw, yb - 0.55 * ch)], CAR, col * 0.9)
        cv.poly([(x0 + 0.18 * cw, yb - 0.57 * ch), (xc - 0.25 * cw, yb - 0.93 * ch), (xc + 0.25 * cw, yb - 0.93 * ch),
                 (x1 - 0.18 * cw, yb - 0.57 * ch)], CAR, (40, 50, 60))  # windows: dark, but still car
        for wx in (x0 + 0.2 * cw, x1 - 0.2 * cw):
            cv.ellipse((wx, yb - 0.14 * ch), (0.11 * cw, 0.14 * ch), CAR, (20, 20, 20))
        for lx in (x0 + 0.02 * cw, x1 - 0.1 * cw):  # lights
            cv.poly([(lx, yb - 0.45 * ch), (lx + 0.08 * cw, yb - 0.45 * ch), (lx + 0.08 * cw, yb - 0.37 * ch),
                     (lx, yb - 0.37 * ch)], CAR, (230, 200, 120) if rng.random() < 0.5 else (200, 30, 30))

    def person(self, yb, xc):
        rng, cv = self.rng, self.cv
        ph = 0.6 * self.h * self.depth(yb) * rng.uniform(0.85, 1.1)
        skin = np.array([225, 185, 150]) * rng.uniform(0.45, 1.05)
        shirt = rng.uniform(20, 230, 3)
        trousers = rng.uniform(20, 120, 3)
        t = max(1.0, 0.07 * ph)
        step = rng.uniform(-0.12, 0.12) * ph
        cv.line((xc, yb - 0.47 * ph), (xc - step, yb), PERSON, trousers, t)
        cv.line((xc, yb - 0.47 * ph), (xc + step, yb), PERSON, trousers, t)
        cv.poly([(xc - 0.12 * ph, yb - 0.82 * ph), (xc + 0.12 * ph, yb - 0.82 * ph), (xc + 0.09 * ph, yb - 0.45 * ph),
                 (xc - 0.09 * ph, yb - 0.45 * ph)], PERSON, shirt)
        swing = rng.uniform(-0.1, 0.1) * ph
        cv.line((xc - 0.11 * ph, yb - 0.8 * ph), (xc - 0.14 * ph + swing, yb - 0.5 * ph), PERSON, shirt, 0.6 * t)
        cv.line((xc + 0.11 * ph, yb - 0.8 * ph), (xc + 0.14 * ph - swing, yb - 0.5 * ph), PERSON, shirt, 0.6 * t)
        cv.ellipse((xc, yb - 0.9 * ph), (0.065 * ph, 0.08 * ph), PERSON, skin)

    def pole(self, yb, xc, sign_prob=0.5):
        rng, cv, h = self.rng, self.cv, self.h
        f = self.depth(yb)
        t = max(1.0, 0.012 * self.w * f)
        top = yb - h * f * rng.uniform(1.0, 1.8)
        col = np.array([110, 110, 105]) + rng.uniform(-30, 40)
        cv.line((xc, yb), (xc, top), POLE, col, t)
        if rng.random() < 0.3:  # street light arm reaching over the road
            arm = (self.xv - xc) * rng.uniform(0.15, 0.3)
            cv.line((xc, top), (xc + arm, top + 0.03 * h * f), POLE, col, max(1.0, 0.7 * t))
        if rng.random() < sign_prob:
            s = max(2.0, 0.07 * h * f * rng.uniform(0.8, 1.3))
            ys = top + (yb - top) * rng.uniform(0.1, 0.4)
            kind = rng.integers(3)
            colour = [(30, 70, 170), (200, 30, 30), (240, 240, 240), (230, 200, 20)][rng.integers(4)]
            if kind == 0:
                cv.poly([(xc - s, ys - s), (xc + s, ys - s), (xc + s, ys + s), (xc - s, ys + s)], SIGN, colour)
            elif kind == 1:
                cv.ellipse((xc, ys), (s, s), SIGN, colour)
            else:
                cv.poly([(xc - s, ys + s), (xc + s, ys + s), (xc, ys - s)], SIGN, colour)
        return top

    def tree(self, yb, xc):
        rng, cv = self.rng, self.cv
        f = self.depth(yb)
        th = self.h * f * rng.uniform(0.9, 1.6)
        green = np.array([60, 110, 40]) + rng.uniform(-25, 25, 3)
        cv.line((xc, yb), (xc, yb - 0.55 * th), VEGETATION, (80, 60, 45), max(1.0, 0.02 * self.w * f))
        for _ in range(rng.integers(4, 8)):
            r = th * rng.uniform(0.12, 0.22)
            cv.ellipse((xc + rng.normal(0, 0.15) * th, yb - th * rng.uniform(0.6, 0.95)), (r, r * rng.uniform(0.7, 1)),
                       VEGETATION, green * rng.uniform(0.8, 1.2))

    def hedge(self, side):
        """A bush band along the outer sidewalk edge of one side, with a ragged top."""
        rng, h = self.rng, self.h
        x_far, x_near = (self.walk_h[0], self.walk_b[0]) if side == 0 else (self.walk_h[1], self.walk_b[1])
        a, b = sorted(rng.uniform(0.2, 1.0, 2))
        ys = np.linspace(self.yh + (h - self.yh) * a, self.yh + (h - self.yh) * b, 24)
        xs = self._lerp(ys, x_far, x_near)
        height = 0.12 * h * np.array([self.depth(y) for y in ys]) * (1 + 0.3 * rng.uniform(-1, 1, len(ys)))
        pts = np.concatenate([np.stack([xs, ys], 1), np.stack([xs, ys - height], 1)[::-1]])
        self.cv.poly(pts, VEGETATION, np.array([50, 95, 35]) + rng.uniform(-20, 20, 3))

    def fence(self, side):
        """Posts and rails along the road edge of one side: thin, and the background shows through."""
        rng, h = self.rng, self.h
        x_far, x_near = (self.road_h[0], self.road_b[0]) if side == 0 else (self.road_h[1], self.road_b[1])
        a, b = sorted(rng.uniform(0.1, 1.0, 2))
        n = max(3, int((b - a) * 18))
        ys = np.linspace(self.yh + (h - self.yh) * a, self.yh + (h - self.yh) * b, n)
        xs = self._lerp(ys, x_far, x_near) + (-1 if side == 0 else 1) * 0.01 * self.w
        fh = 0.16 * h * np.array([self.depth(y) for y in ys])
        col = np.array([150, 140, 125]) + rng.uniform(-30, 30, 3)
        t = max(1.0, 0.006 * self.w)
        for x, y, hh in zip(xs, ys, fh):
            self.cv.line((x, y), (x, y - hh), FENCE, col, t * self.depth(y) + 0.5)
        for frac in (0.45, 0.95):
            self.cv.polyline(np.stack([xs, ys - frac * fh], 1), FENCE, col, t)

    def wire(self, p, q):
        sag = self.h * self.rng.uniform(0.02, 0.1)
        s = np.linspace(0, 1, 24)
        xs = p[0] + (q[0] - p[0]) * s
        ys = p[1] + (q[1] - p[1]) * s + sag * 4 * s * (1 - s)
        self.cv.polyline(np.stack([xs, ys], 1), WIRE, (35, 35, 35), max(1.0, self.h / 220))

    def populate(self):
        rng, h, w = self.rng, self.h, self.w
        objects = []  # (ground row, kind, x); drawn far to near so nearer objects occlude farther ones

        def ground_y(lo=0.02, hi=1.05):
            return self.yh + (h - self.yh) * rng.uniform(lo, hi) ** 1.5

        for _ in range(rng.integers(2, 7)):  # cars on the road, some tiny near the horizon
            y = ground_y()
            xl, xr = self.road_x(y)
            x = rng.uniform(xl, xr)
            objects.append((y, "car", x))
            if rng.random() < 0.35:  # a pole or a person right in front of it, splitting or touching it
                objects.append((y + 0.02 * h, "pole" if rng.random() < 0.5 else "person",
                                x + rng.uniform(-0.3, 0.3) * 0.42 * h * self.depth(y)))
        for _ in range(rng.integers(2, 8)):  # people on the sidewalks, sometimes in groups
            y = ground_y(0.05)
            side = rng.integers(2)
            wl, wr = self.walk_x(y)
            rl, rr = self.road_x(y)
            x = rng.uniform(wl, rl) if side == 0 else rng.uniform(rr, wr)
            for k in range(rng.integers(1, 4)):
                objects.append((y + k, "person", x + k * 0.1 * h * self.depth(y)))
        for _ in range(rng.integers(2, 7)):  # poles near the curb
            y = ground_y(0.03)
            rl, rr = self.road_x(y)
            side = rng.integers(2)
            objects.append((y, "pole", (rl if side == 0 else rr) + (-1 if side == 0 else 1) * rng.uniform(0.005, 0.04) * w))
        for _ in range(rng.integers(0, 4)):
            y = ground_y(0.05)
            wl, wr = self.walk_x(y)
            objects.append((y, "tree", wl + rng.uniform(0, 0.05 * w) if rng.random() < 0.5 else wr - rng.uniform(0, 0.05 * w)))

        for side in range(2):
            if rng.random() < 0.6:
                self.hedge(side)
        tops = []
        for y, kind, x in sorted(objects, key=lambda o: o[0]):
            if kind == "car":
                self.car(y, x)
            elif kind == "person":
                self.person(y, x)
            elif kind == "tree":
                self.tree(y, x)
            else:
                tops.append((x, self.pole(y, x)))
        for side in range(2):
            if rng.random() < 0.5:
                self.fence(side)
        # Overhead wires: between pole tops where there are two, else across the sky.
        for _ in range(rng.integers(0, 4)):
            if len(tops) >= 2 and rng.random() < 0.6:
                i, j = rng.choice(len(tops), 2, replace=False)
                p, q = tops[i], tops[j]
            else:
                p = (-5, self.yh * rng.uniform(0.05, 0.8))
                q = (w + 5, self.yh * rng.uniform(0.05, 0.8))
            self.wire(p, q)

    # -- camera: texture, light, blur, noise ---------------------------------------------------------
    def photograph(self) -> np.ndarray:
        rng, h, w = self.rng, self.h, self.w
        img = self.cv.img
        texture = 1 + 0.12 * _smooth_noise(rng, h, w, 24) + 0.06 * rng.standard_normal((h, w), np.float32)
        veg = self.cv.lbl == VEGETATION
        texture[veg] += 0.25 * rng.standard_normal(int(veg.sum()), np.float32)
        light = rng.uniform(0.55, 1.3) * (1 + rng.uniform(0.1, 0.4) * _smooth_noise(rng, h, w, 3))
        img = img * (texture * light)[..., None] * rng.uniform(0.88, 1.12, 3).astype(np.float32)
        for _ in range(rng.integers(0, 3)):  # cast shadows across the ground
            x0 = rng.uniform(-0.2, 1) * w
            pts = np.round([(x0, self.yh + 2), (x0 + rng.uniform(0.05, 0.4) * w, self.yh + 2),
                            (x0 + rng.uniform(0.1, 0.9) * w, h), (x0 - rng.uniform(0, 0.4) * w, h)]).astype(np.int32)
            mask = np.zeros((h, w), np.uint8)
            cv2.fillPoly(mask, [pts], 1)
            img[mask.astype(bool)] *= rng.uniform(0.45, 0.75)
        sigma = rng.uniform(0.0, 1.3)
        if sigma > 0.3:
            img = cv2.GaussianBlur(img, (0, 0), sigma)
        img = img + rng.normal(0, rng.uniform(1, 7), img.shape).astype(np.float32)
        return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def render(seed: int, split: str, index: int, size: tuple[int, int] = (128, 256)) -> tuple[np.ndarray, np.ndarray]:
    """One scene as (HxWx3 uint8 RGB, HxW uint8 train ids); a pure function of its arguments."""
    h, w = int(size[0]), int(size[1])
    if h < 16 or w < 16:
        raise ValueError(f"synthetic: size {h}x{w} too small (min 16x16)")
    if split == TUNE_SPLIT:  # held out from train: the train stream's scenes far past any training set's end
        split, index = "train", TUNE_OFFSET + int(index)
    rng = np.random.default_rng([int(seed), zlib.crc32(split.encode()), int(index)])
    scene = _Scene(rng, h, w)
    scene.background()
    scene.populate()
    return scene.photograph(), scene.cv.lbl.copy()
