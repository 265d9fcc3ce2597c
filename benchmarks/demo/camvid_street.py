"""A real street through the runtime: CamVid's val drive (0016E5, frames 1 s apart) made into a video in frame
order, run through `runtime.run` with the overlay, and a picture of what it wrote for the docs.

    python -m benchmarks.demo.camvid_street --root ../shared/camvid --out-dir docs/results     # the shipped model
    python -m benchmarks.demo.camvid_street --model models/camvid_lite/brd.int8.xml --fps 5
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np

from runtime.contract import ArgumentParser, command, DataError, positive_int


def drive_frames(root: Path, split: str = "val", drive: str = "0016E5") -> list[Path]:
    frames = sorted((Path(root) / split).glob(f"{drive}_*.png"))
    if not frames:
        raise DataError(f"{Path(root) / split}: no {drive}_*.png frames (CamVid in SegNet's layout expected)")
    return frames


def drive_video(frames: list[Path], path: Path, fps: float = 5.0) -> Path:
    """The frames, in name order (= time order), as an MP4 at their own size; written under a temporary
    name and renamed, so a half-written video never sits under the final name."""
    first = cv2.imread(str(frames[0]), cv2.IMREAD_COLOR)
    if first is None:
        raise DataError(f"{frames[0]}: cannot read image")
    h, w = first.shape[:2]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(".tmp_" + path.name)
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    try:
        for f in frames:
            img = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if img is None or img.shape[:2] != (h, w):
                raise DataError(f"{f}: unreadable or not {w}x{h} like the drive's first frame")
            writer.write(img)
    finally:
        writer.release()
    tmp.replace(path)
    return path


def read_frames(video: Path, indices: list[int]) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(video))
    out, i = {}, 0
    while len(out) < len(indices):
        ok, frame = cap.read()
        if not ok:
            break
        if i in indices:
            out[i] = frame
        i += 1
    cap.release()
    return [out[i] for i in indices if i in out]


def picture(source: Path, overlaid: Path, path: Path, picks: int = 3) -> Path:
    """`picks` moments of the drive, spread over it: the input frame above, the runtime's overlay below."""
    n = int(cv2.VideoCapture(str(overlaid)).get(cv2.CAP_PROP_FRAME_COUNT)) or 1
    idx = [int(round(x)) for x in np.linspace(0, n - 1, picks + 2)[1:-1]]
    top, bottom = read_frames(source, idx), read_frames(overlaid, idx)
    if len(top) != len(idx) or len(bottom) != len(idx):
        raise DataError(f"{overlaid}: could not read frames {idx} back")
    bottom = [cv2.resize(b, (t.shape[1], t.shape[0])) for t, b in zip(top, bottom)]
    grid = np.vstack([np.hstack(top), np.hstack(bottom)])
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), grid, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return path


def run_street(root, out_dir, model=None, fps=5.0, work="runs/camvid_street") -> dict:
    from runtime import run as runtime_run

    work, out_dir = Path(work), Path(out_dir)
    made = [p for p in (work, *work.parents) if not p.exists()]  # removed again if the run fails
    video, overlaid, stats = work / "0016E5_val.mp4", work / "0016E5_val_overlay.mp4", work / "stats.json"
    try:
        drive_video(drive_frames(Path(root)), video, fps)
        argv = ["--source", str(video), "--sink", str(overlaid), "-o", str(stats)] + (
            ["--model", str(model)] if model else [])
        # the runtime's own function, not its command: its error is this command's one line, not a second one
        code = runtime_run.main.__wrapped__(argv)
        if code:
            raise DataError(f"runtime.run {' '.join(argv)} exited {code}")
    except BaseException:
        for f in (video, overlaid, stats):
            if f.is_file():
                f.unlink()
        for p in made:
            try:
                p.rmdir()
            except OSError:
                pass
        raise
    pic = picture(video, overlaid, out_dir / "camvid_street.jpg")
    print(f"wrote {pic}")
    return json.loads(stats.read_text())


@command(interrupted="the picture is written only at the end")
def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m benchmarks.demo.camvid_street", description=__doc__, examples=(
        "python -m benchmarks.demo.camvid_street --root ../shared/camvid --out-dir docs/results",))
    p.add_argument("--root", default="../shared/camvid", help="CamVid in SegNet's layout (default ../shared/camvid)")
    p.add_argument("--model", default=None, help="model file (default: the runtime's shipped model)")
    p.add_argument("--out-dir", default="docs/results", help="folder of the picture (default docs/results)")
    p.add_argument("--fps", type=positive_int, default=5, help="frame rate of the video (default 5)")
    a = p.parse_args(argv)
    run_street(a.root, a.out_dir, a.model, a.fps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
