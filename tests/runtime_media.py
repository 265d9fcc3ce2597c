"""What the runtime tests run on: small students exported here to ONNX (fixed, dynamic, argmax) and to an
OpenVINO IR, short MJPG videos written here with OpenCV (one with frames whose JPEG data is lost), and a
camera stand-in for the live-source policies."""
from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from .conftest import write_student
from runtime import metadata
from runtime.backends import load_backend

H, W, FRAMES = 128, 256, 20  # the test videos
INPUT = (64, 128)            # the students' input size
DAMAGED = (5, 6, 12, 19)     # frames whose JPEG data the damaged video loses (19 is the last)


def export_students(root):
    """fixed/dynamic/argmax ONNX exports of one student and an OpenVINO IR of the fixed one, in `root`."""
    from export.onnx import torch_to_onnx
    ov = pytest.importorskip("openvino")

    ckpt = write_student(root / "student.pt", input_size=INPUT)
    out = {"fixed": torch_to_onnx(ckpt, root / "fixed.onnx", simplify=False),
           "dynamic": torch_to_onnx(ckpt, root / "dynamic.onnx", dynamic=True, simplify=False),
           "argmax": torch_to_onnx(ckpt, root / "argmax.onnx", argmax=True, simplify=False)}
    meta = load_backend(out["fixed"], device="cpu").meta
    ir = ov.convert_model(str(out["fixed"]))
    ir.set_rt_info(metadata.dumps(meta), metadata.META_KEY)
    ov.save_model(ir, str(root / "fixed.xml"), compress_to_fp16=False)
    out["openvino"] = root / "fixed.xml"
    return out


def write_video(path, frames=FRAMES, damaged=()):
    """An MJPG AVI of textured frames; `damaged` frames get their JPEG header zeroed in the file, so
    the decoder cannot read them (as with a truncated or bit-flipped recording)."""
    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (W, H))
    for i in range(frames):
        frame = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        frame[: H // 2, : W // 2] = (40 + 10 * i, 90, 160)
        writer.write(frame)
    writer.release()
    if damaged:
        data = bytearray(Path(path).read_bytes())
        starts = [i for i in range(len(data) - 2) if data[i:i + 3] == b"\xff\xd8\xff"]
        assert len(starts) == frames
        for k in damaged:
            data[starts[k]:starts[k] + 400] = bytes(400)
        Path(path).write_bytes(bytes(data))
    return path


def write_videos(root):
    """A good video and one with DAMAGED frames, in `root`."""
    return {"good": write_video(root / "good.avi"), "damaged": write_video(root / "damaged.avi", damaged=DAMAGED)}


def frames_of(path):
    cap = cv2.VideoCapture(str(path))
    count, size = 0, None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        count, size = count + 1, frame.shape[:2]
    cap.release()
    return count, size


class FakeCamera:
    """A cv2.VideoCapture stand-in for a camera: frames every `period` s carrying their number,
    `frames` of them, then failed reads (an unplugged device). The source is what is simulated."""

    def __init__(self, frames=10 ** 6, period=0.005, opened=True):
        self.frames, self.period, self.opened = frames, period, opened
        self.produced = 0

    def isOpened(self):
        return self.opened

    def get(self, prop):
        return {cv2.CAP_PROP_FRAME_WIDTH: 8, cv2.CAP_PROP_FRAME_HEIGHT: 4}.get(prop, 0)

    def read(self):
        time.sleep(self.period)
        if self.produced >= self.frames:
            return False, None
        image = np.full((4, 8, 3), self.produced % 256, np.uint8)
        self.produced += 1
        return True, image

    def release(self):
        self.opened = False
