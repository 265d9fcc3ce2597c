"""Shared fixtures: small real student checkpoints written by the tests themselves."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from runtime.contract import telemetry

from .faults import FRAME_HW, Mounts, write_video

telemetry.off()  # before any test imports OpenVINO or NNCF: the test process sends nothing either



def pytest_collection_modifyitems(config, items):
    """Tests marked slow first (a stable sort: the order within each group stays). .ci/run spreads whole files over
    two processes (pytest-xdist, --dist loadfile) in the order their first test comes: the longest files then start
    at once, instead of one of them running alone at the end while the other process idles."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


SMALL_STUDENTS = ("deeplabv3_resnet10_w16", "lraspp_mobilenetv2_w035")
CLASSES = ["road", "building", "vegetation", "car", "pole"]
PALETTE = [[128, 64, 128], [70, 70, 70], [107, 142, 35], [0, 0, 142], [153, 153, 153]]
MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


def write_student(path, arch="deeplabv3_resnet10_w16", input_size=(64, 128), seed=0):
    """A real student checkpoint with random (seeded) weights and non-trivial BN statistics."""
    from distill import checkpoint
    from distill.models import build_model

    torch.manual_seed(seed)
    model = build_model(arch, len(CLASSES))
    model.train()
    with torch.no_grad():  # populate BN running stats so eval mode is not an identity
        for _ in range(3):
            model(torch.randn(2, 3, *input_size))
    meta = checkpoint.make_meta(arch, {}, len(CLASSES), CLASSES, PALETTE, MEAN, STD, list(input_size), "synthetic")
    checkpoint.save(path, model.eval(), meta)
    return path


@pytest.fixture(scope="session")
def student_ckpt(tmp_path_factory):
    return write_student(tmp_path_factory.mktemp("ckpt") / "student.pt")


@pytest.fixture(scope="session")
def mobilenet_ckpt(tmp_path_factory):
    return write_student(tmp_path_factory.mktemp("ckpt") / "mbv2.pt", arch="lraspp_mobilenetv2_w035")


def write_synthetic_student(path, arch="deeplabv3_resnet10_w16", input_size=(32, 64), seed=0, arch_kwargs=None,
                            bn_passes=0):
    """A random-weight checkpoint with the synthetic dataset's 11 classes (for commands that read that data;
    also the tests' small teachers). `bn_passes`: training-mode forwards first, so BN statistics are not
    the identity."""
    from distill import checkpoint
    from distill.data import DATASETS
    from distill.models import build_model

    info = DATASETS["synthetic"]
    torch.manual_seed(seed)
    arch_kwargs = dict(arch_kwargs or {})
    model = build_model(arch, info.num_classes, **arch_kwargs)
    with torch.no_grad():
        for _ in range(bn_passes):
            model.train()(torch.randn(2, 3, *input_size))
    meta = checkpoint.make_meta(arch, arch_kwargs, info.num_classes, list(info.classes),
                                [list(c) for c in info.palette], MEAN, STD, list(input_size), "synthetic")
    checkpoint.save(path, model.eval(), meta)
    return path


TRAINED_SIZE = [64, 128]
TRAINED_ITERS = 40


def _tiny_overrides(data_root, out_dir, extra=()) -> list[str]:
    """A real training of TRAINED_ITERS steps on 64 synthetic 64x128 images (batch 4, one thread), validated
    once at its end (its best.pt: that last validation's weights, the run's final ones)."""
    return [f"out_dir={out_dir}", f"data.root={data_root}", "data.crop_size=[64,128]",
            "data.kwargs={num_images: 64, size: [64, 128], seed: 0}",
            "data.val_kwargs={num_images: 16, size: [64, 128], seed: 0}",
            f"train.iters={TRAINED_ITERS}", "train.batch_size=4", f"train.ckpt_every={TRAINED_ITERS}",
            f"train.val_every={TRAINED_ITERS}", "train.log_every=10", "train.threads=1", "eval.input_size=[64,128]",
            *extra]


@pytest.fixture(scope="session")
def trained_pair(tmp_path_factory):
    """Two real 40-step trainings on one synthetic dataset, side by side (one thread each, so one core each):
    - `plain`: synthetic_plain.yaml (cross-entropy only), trained here, about 8 s of CPU;
    - `brd`: synthetic.yaml (KD + boundary + relation, here with a relation connector, so that training holds
      a module the student must not carry), `python -m distill.run` in a subprocess, about 12 s of CPU. It
      distils from a random-weight teacher of another width: the run needs the teacher's outputs, not its
      accuracy.
    Each is its run's best.pt; `data` is the dataset (train and val splits), generated before either starts."""
    import subprocess
    import sys

    from distill.config import load_config
    from distill.data.synthetic import generate
    from distill.engine import train

    d = tmp_path_factory.mktemp("trained")
    generate(d / "data", "train", 64, (64, 128), 0)
    generate(d / "data", "val", 16, (64, 128), 0)
    teacher = write_synthetic_student(d / "teacher.pt", input_size=TRAINED_SIZE, seed=1,
                                      arch_kwargs={"width": 8, "head_channels": 32})
    brd = subprocess.Popen([sys.executable, "-m", "distill.run", "--cfg", "synthetic.yaml", "--set",
                            *_tiny_overrides(d / "data", d / "brd", [f"teacher.ckpt={teacher}",
                                                                    "distill.relation.connector=true"])],
                           cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
    try:  # a shipped config, by name
        train(load_config("synthetic_plain.yaml", _tiny_overrides(d / "data", d / "plain")))
        _, err = brd.communicate(timeout=600)
    finally:
        if brd.poll() is None:
            brd.kill()
    assert brd.returncode == 0, err[-3000:]
    return {"plain": d / "plain" / "best.pt", "brd": d / "brd" / "best.pt", "data": d / "data"}


@pytest.fixture(scope="session")
def trained_plain(trained_pair):
    """The plain student of `trained_pair` and its data: {"plain": best.pt, "data": folder}."""
    return {"plain": trained_pair["plain"], "data": trained_pair["data"]}


@pytest.fixture(scope="session")
def trained_brd(trained_pair):
    """The BRD student of `trained_pair`: its best.pt."""
    return trained_pair["brd"]


# ------------------------------------------------------------------------------------------ fault injection
# (tests/test_faults_*.py; their helpers are in tests/faults.py)
@pytest.fixture
def tmpfs(tmp_path):
    m = Mounts(tmp_path / "mnt")
    yield m
    m.close()


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from export.onnx import torch_to_onnx

    d = tmp_path_factory.mktemp("model")
    return torch_to_onnx(write_student(d / "s.pt", input_size=(32, 64)), d / "s.onnx", simplify=False)


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    """Long enough that a run is still going when the signal arrives (the test waits for the loop to start)."""
    return write_video(tmp_path_factory.mktemp("video") / "long.avi", 3000)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(1)
    for i in range(6):
        cv2.imwrite(str(d / f"img_{i}.png"), rng.integers(0, 256, (*FRAME_HW, 3), dtype=np.uint8))
    return d


@pytest.fixture
def readonly(tmpfs):
    return tmpfs("ro", 1024, read_only=True)


@pytest.fixture(scope="module")
def calib(tmp_path_factory):
    d = tmp_path_factory.mktemp("calib")
    rng = np.random.default_rng(2)
    for i in range(4):
        img = cv2.resize(rng.integers(0, 256, (4, 8, 3), dtype=np.uint8), (64, 32), interpolation=cv2.INTER_NEAREST)
        cv2.imwrite(str(d / f"c{i}.png"), img)
    return d


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The runtime tests' students: fixed, dynamic and argmax ONNX exports and an OpenVINO IR (runtime_media)."""
    from .runtime_media import export_students
    return export_students(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """A good video and one with damaged frames (runtime_media)."""
    from .runtime_media import write_videos
    return write_videos(tmp_path_factory.mktemp("videos"))
