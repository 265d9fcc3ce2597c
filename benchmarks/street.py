"""A synthetic street video, for what needs a camera's view of a drive: the demo's runtime loop and the
loop benchmark (benchmarks.speed.loop) both play it."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def street_video(path: Path, size=(128, 256), scenes=3, frames_per_scene=40, fps=15) -> Path:
    """A drive-by street video: each scene is rendered wide and panned across, so frames are continuous."""
    import cv2

    from distill.data.synthetic import render

    h, w = size
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(".tmp_" + path.name)
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for s in range(scenes):
        wide, _ = render(seed=1000 + s, split="video", index=0, size=(h, 3 * w))
        for x in np.linspace(0, 2 * w, frames_per_scene).astype(int):
            writer.write(cv2.cvtColor(np.ascontiguousarray(wide[:, x:x + w]), cv2.COLOR_RGB2BGR))
    writer.release()
    tmp.replace(path)
    return path
