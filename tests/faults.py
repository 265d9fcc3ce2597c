"""What the fault-injection tests share (tests/test_faults_*.py): running the commands, reading their
one-line messages, real tmpfs mounts for full and read-only disks, writing a video. Their fixtures (a small
ONNX model, a long video, images, calibration images, tmpfs and read-only mounts) are in conftest.py."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest


ROOT = Path(__file__).parent.parent
FRAME_HW = (64, 128)
ENV = dict(os.environ, PYTHONUNBUFFERED="1")


# ------------------------------------------------------------------------------------------ helpers
def run(args, timeout=120, env=None):
    return subprocess.run([sys.executable, "-m", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env or ENV)


def last_line(text):
    """The last line a terminal would show (tqdm redraws with \\r)."""
    lines = [ln for ln in text.replace("\r", "\n").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def error_lines(text):
    return [ln for ln in text.strip().splitlines() if ln.strip()]


def cli_exit(main, argv, capsys):
    """(exit code, stderr) of an in-process CLI call that may return or sys.exit."""
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def frame_count(path):
    cap = cv2.VideoCapture(str(path))
    try:
        return int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else None
    finally:
        cap.release()


class Mounts:
    """Small tmpfs mounts, unmounted at the end of the test."""

    def __init__(self, base):
        self.base, self.points = base, []

    def __call__(self, name, size_kb, read_only=False):
        point = self.base / name
        point.mkdir(parents=True)
        opts = f"size={size_kb}k" + (",ro" if read_only else "")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(point)], capture_output=True, text=True)
        if r.returncode:
            pytest.skip(f"cannot mount a tmpfs here ({(r.stderr or r.stdout).strip() or 'mount failed'}): "
                        "full/read-only disk cases need root with CAP_SYS_ADMIN")
        self.points.append(point)
        return point

    def close(self):
        for p in reversed(self.points):
            subprocess.run(["umount", "-l", str(p)], capture_output=True)


def write_video(path, frames, noise=True):
    rng = np.random.default_rng(0)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (FRAME_HW[1], FRAME_HW[0]))
    for i in range(frames):
        f = rng.integers(0, 256, (*FRAME_HW, 3), dtype=np.uint8) if noise else np.full((*FRAME_HW, 3), i % 255, np.uint8)
        w.write(f)
    w.release()
    return path


def signal_when(proc, ready, sig, timeout=60):
    """Send `sig` once `ready()` is true (polling), then wait for the process; returns (rc, stdout, stderr)."""
    t0 = time.time()
    while not ready():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"ended before the signal (rc {proc.returncode}): {err[-2000:]}")
        assert time.time() - t0 < timeout, "never became ready"
        time.sleep(0.01)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


def overrides(tmp_path, out, iters=100000, extra=()):
    return [f"out_dir={out}", f"data.root={tmp_path / 'data'}", "data.crop_size=[32,64]",
            "data.kwargs={num_images: 4, size: [32, 64], seed: 0}",
            "data.val_kwargs={num_images: 2, size: [32, 64], seed: 0}", f"train.iters={iters}",
            "train.batch_size=2", "train.ckpt_every=1000", "train.val_every=100000", "train.log_every=1",
            "train.threads=1", "eval.input_size=[32,64]", *extra]


def train_args(tmp_path, out, iters=100000, extra=()):
    return ["distill.run", "--cfg", ROOT / "configs" / "synthetic_plain.yaml",
            "--set", *overrides(tmp_path, out, iters, extra)]


def logged_steps(run_dir):
    log = run_dir / "train_log.csv"
    return len(log.read_text().splitlines()) - 1 if log.is_file() else 0
