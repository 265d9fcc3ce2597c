"""The trial's inputs, built once in its work folder by the project's own commands: a tiny trained student on
synthetic data (its model.pt and its training checkpoint last.pt), the model's ONNX, OpenVINO IR and an
unchecked INT8 ONNX, and the videos and image folders the runtime's cases read (short, long, one with a
corrupt frame, one with no frame, a folder with a non-image)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from runtime.contract import DataError

ROOT = Path(__file__).resolve().parents[2]
FRAME_HW = (64, 128)
SIZE = "[32,64]"
BIG_VAL = 300  # images of the val split that evaluations interrupted mid-way read


def train_overrides(out_dir, data_root, iters=2) -> list[str]:
    """A training of `iters` steps on 8 synthetic 32x64 images, batch 2, one thread (seconds of CPU)."""
    return [f"out_dir={out_dir}", f"data.root={data_root}", f"data.crop_size={SIZE}",
            "data.kwargs={num_images: 8, size: [32, 64], seed: 0}",
            "data.val_kwargs={num_images: 4, size: [32, 64], seed: 0}", f"train.iters={iters}",
            "train.batch_size=2", f"train.ckpt_every={min(iters, 1000)}",
            f"train.val_every={iters}", "train.log_every=1", "train.threads=1", f"eval.input_size={SIZE}"]


def command_env(home: Path, tmp: Path | None = None) -> dict:
    """The environment every command of the trial runs in: one thread, the checkout importable from any folder,
    no display, a HOME of the trial's own (a write into it is seen), temporary files where the case looks."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT), HOME=str(home),
               MPLBACKEND="Agg")
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    if tmp is not None:
        env["TMPDIR"] = str(tmp)
    return env


def _project(args, cwd, env, timeout=600):
    r = subprocess.run([sys.executable, "-m", *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=timeout)
    if r.returncode:
        tail = [ln for ln in r.stderr.replace("\r", "\n").splitlines() if ln.strip()][-1:] or ["(no output)"]
        raise DataError(f"building the trial's fixtures: python -m {' '.join(map(str, args))} exited "
                        f"{r.returncode}: {tail[0]}")
    return r


def write_video(path: Path, frames: int, noise: bool = False) -> Path:
    rng = np.random.default_rng(0)
    h, w = FRAME_HW
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (w, h))
    for i in range(frames):
        if noise:
            frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        else:
            frame = np.full((h, w, 3), (i * 7) % 255, np.uint8)
            frame[h // 3: 2 * h // 3, (i % w):] = (40, 160, 220)
        writer.write(frame)
    writer.release()
    return path


def corrupt_middle(src: Path, dst: Path) -> Path:
    """A copy of a video with a run of junk bytes over the middle of its data (a frame or two damaged)."""
    data = bytearray(src.read_bytes())
    mid = len(data) // 2
    data[mid: mid + 4096] = np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    dst.write_bytes(bytes(data))
    return dst


def write_images(folder: Path, count: int, seed: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        cv2.imwrite(str(folder / f"img_{i}.png"), rng.integers(0, 256, (*FRAME_HW, 3), dtype=np.uint8))
    return folder


def media(fx: Path) -> None:
    """Videos and image folders."""
    write_video(fx / "short.avi", 30)
    write_video(fx / "long.avi", 4000)
    corrupt_middle(write_video(fx / "noisy.avi", 60, noise=True), fx / "corrupt.avi")
    write_video(fx / "zero.avi", 0)
    write_images(fx / "images", 4, 1)
    write_images(fx / "calib", 4, 2)
    mixed = write_images(fx / "mixed", 3, 4)
    (mixed / "notes.txt").write_text("not an image\n")
    (mixed / "broken.png").write_bytes(os.urandom(2048))
    (fx / "nonimages").mkdir()
    (fx / "nonimages" / "a.txt").write_text("text\n")
    (fx / "emptydir").mkdir()


def build(fx: Path, home: Path) -> dict:
    """Every fixture under `fx` (made here); returns what it made, by name."""
    fx.mkdir(parents=True)
    home.mkdir(parents=True, exist_ok=True)
    env = command_env(home, None)
    _project(["distill.run", "--cfg", "synthetic_plain.yaml", "--set",
              *train_overrides(fx / "run", fx / "data")], fx, env)
    _project(["export.onnx", fx / "run" / "model.pt", "-o", fx / "s.onnx"], fx, env)
    _project(["export.openvino", fx / "s.onnx", "-o", fx / "s.xml"], fx, env)
    media(fx)
    from distill.data.synthetic import generate  # no torch
    generate(fx / "big", "val", BIG_VAL, (32, 64), 0)
    _project(["export.quantize", fx / "s.onnx", "-o", fx / "s.int8.onnx", "--calib-dir", fx / "calib", "--no-gate"],
             fx, env)
    return {p.name: p for p in sorted(fx.iterdir())}
