"""What the overlay costs per frame, by part: CPU time on one OpenCV thread, the parts' calls interleaved.

    python -m benchmarks.speed.overlay --root ../shared/camvid --out-dir docs/results     # CamVid val labels
    python -m benchmarks.speed.overlay --size 720x1280                                    # a drawn class map

The overlay runs in the loop's writer thread for every frame of a video sink, so its CPU is part of the
work outside the model (benchmarks.speed.loop). Parts: `colour` (the class colours, three single-channel
cv2.LUT passes merged into the Overlay's reused buffers: what `draw` uses), `colour_fresh` (the same
passes into newly allocated images), `colour_index` (the method it replaced: one LUT over a 3-channel
index image), `blend` (frame and colours mixed into the new output image), `legend`, and `draw` (all of
it, with the FPS text). Writes overlay.md/.csv.
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from runtime.contract import ArgumentParser, check_folder, command, DataError, positive_int, size_arg
from runtime.overlay import Overlay

from ..report import markdown_table, provenance, write_csv

CAMVID_CLASSES = ("sky", "building", "pole", "road", "pavement", "tree", "sign", "fence", "car", "pedestrian",
                  "bicyclist")


def label_maps(root: Path | None, size, count: int) -> list[np.ndarray]:
    """`count` class maps at `size`: CamVid val labels (nearest-resized) under `root`, else a drawn street
    (bands of sky, building, road; blocks of the small classes)."""
    h, w = size
    if root is not None:
        files = sorted((Path(root) / "valannot").glob("*.png"))[:count]
        if not files:
            raise DataError(f"{Path(root) / 'valannot'}: no label images (CamVid in SegNet's layout expected)")
        maps = [cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files]
        return [cv2.resize(m, (w, h), interpolation=cv2.INTER_NEAREST) for m in maps]
    m = np.full((h, w), 3, np.uint8)                       # road
    m[: h // 3], m[h // 3: h // 2] = 0, 1                  # sky, building
    m[h // 2: 2 * h // 3, : w // 5] = 4                    # pavement
    for k, c in enumerate((2, 5, 6, 7, 8, 9, 10)):         # the rest as blocks
        m[h // 3 + 20 * k: h // 3 + 20 * k + 60, 100 + 150 * k: 160 + 150 * k] = c
    return [np.roll(m, 7 * i, axis=1) for i in range(count)]


def index_colour(lut_bgr: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The colouring the Overlay used before (kept here to measure against): id -> 3 * id by one LUT, a
    3-channel index image, + (0, 1, 2), then one single-channel LUT of (3 * id + channel) -> value."""
    n = 85
    times3 = np.full((256, 1), 255, np.uint8)
    times3[:n, 0] = 3 * np.arange(n)
    by_channel = np.zeros((256, 1), np.uint8)
    by_channel[:3 * n, 0] = lut_bgr[:n].reshape(-1)
    index = cv2.cvtColor(cv2.LUT(labels, times3), cv2.COLOR_GRAY2BGR)
    return cv2.LUT(cv2.add(index, (0, 1, 2, 0)), by_channel)


def measure(maps: list[np.ndarray], rounds: int) -> list[dict]:
    """Median CPU ms per call of each part, every part called once per map per round, in turn."""
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, maps[0].shape + (3,), np.uint8)
    overlay = Overlay(CAMVID_CLASSES, rng.integers(0, 256, (len(CAMVID_CLASSES), 3)).tolist())
    colour = overlay._colour(maps[0])
    out = frame.copy()
    parts = {
        "colour": lambda m: overlay._colour(m),
        "colour_fresh": lambda m: cv2.merge([cv2.LUT(m, table) for table in overlay._tables]),
        "colour_index": lambda m: index_colour(overlay.lut, m),
        "blend": lambda m: cv2.addWeighted(frame, 0.5, colour, 0.5, 0.0),
        "legend": lambda m: overlay._legend(out, m),
        "draw": lambda m: overlay.draw(frame, m, fps=30.0, latency_ms=12.0),
    }
    times = {name: [] for name in parts}
    for _ in range(rounds):
        for m in maps:
            for name, fn in parts.items():
                t0 = time.thread_time()
                fn(m)
                times[name].append(time.thread_time() - t0)
    return [{"part": name, "cpu_ms_p50": round(1000 * statistics.median(t), 3),
             "cpu_ms_mean": round(1000 * statistics.fmean(t), 3), "calls": len(t)} for name, t in times.items()]


def parse_args(argv=None):
    p = ArgumentParser(prog="python -m benchmarks.speed.overlay", description=__doc__.split("\n\n")[0], examples=(
        "python -m benchmarks.speed.overlay --root ../shared/camvid --out-dir docs/results",
        "python -m benchmarks.speed.overlay --size 720x1280 --rounds 10"))
    p.add_argument("--root", type=Path, help="CamVid root (SegNet's layout): its val labels as the class maps")
    size_arg(p, "--size", default=(720, 1280), help="frame size HxW (default 720x1280)")
    p.add_argument("--maps", type=positive_int, default=10, help="class maps (default 10)")
    p.add_argument("--rounds", type=positive_int, default=30, help="rounds over the maps (default 30)")
    p.add_argument("--out-dir", type=Path, help="write overlay.md and overlay.csv here")
    return p.parse_args(argv)


@command
def main(argv=None) -> int:
    args = parse_args(argv)
    if args.out_dir:  # before the work: a report folder that cannot be written is one line, not a traceback
        check_folder(args.out_dir, 0, "--out-dir")
    cv2.setNumThreads(1)  # the writer thread's share: one core's worth, as in the loop on 2 cores
    maps = label_maps(args.root, args.size, args.maps)
    rows = measure(maps, args.rounds)
    by = {r["part"]: r["cpu_ms_p50"] for r in rows}
    source = f"CamVid val labels from {args.root}" if args.root else "a drawn class map"
    summary = (f"Colouring: {by['colour']:.2f} ms into the Overlay's reused buffers, {by['colour_fresh']:.2f} ms "
               f"by the same passes into new images, {by['colour_index']:.2f} ms by the index-image method it "
               f"replaced. The whole draw: {by['draw']:.2f} ms.")
    print(markdown_table(rows))
    print(summary)
    if args.out_dir:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        write_csv(rows, args.out_dir / "overlay.csv")
        h, w = args.size
        md = ["# What the overlay costs per frame", "",
              f"{w}x{h} frames, {len(maps)} class maps ({source}), {args.rounds} rounds; CPU time of one "
              "OpenCV thread (the loop's writer thread), each part called in turn, medians per call. Each part "
              "is timed on its own, so the parts need not add up to `draw` (caches and the allocator are in "
              "another state in each).", "",
              markdown_table(rows), "", summary, "", provenance("benchmarks.speed.overlay", argv)]
        (args.out_dir / "overlay.md").write_text("\n".join(md) + "\n")
        print(f"wrote {args.out_dir / 'overlay.md'} and {args.out_dir / 'overlay.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
