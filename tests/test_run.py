"""The runner end to end on tiny synthetic data (CPU): run folder contents, student checkpoint format,
exact resume, and the missing-teacher error."""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from distill import checkpoint
from distill.config import load_config
from distill.data import DATASETS
from distill.engine import train

from .cli_driver import run_in_one_process
from .conftest import write_synthetic_student

ROOT = Path(__file__).parent.parent
SIZE = [64, 128]


def _teacher(path):
    """A small real teacher checkpoint for the synthetic classes (random weights: the runner only needs its outputs)."""
    return write_synthetic_student(path, input_size=SIZE, seed=1, arch_kwargs={"width": 8, "head_channels": 32})


def _tiny(tmp_path, out, teacher=None, extra=()):
    over = [f"out_dir={out}", f"data.root={tmp_path / 'data'}", "data.crop_size=[64,128]",
            "data.kwargs={num_images: 6, size: [64, 128], seed: 0}",
            "data.val_kwargs={num_images: 2, size: [64, 128], seed: 0}",
            "train.iters=6", "train.batch_size=2", "train.ckpt_every=3", "train.val_every=100", "train.log_every=1",
            "train.threads=1", "eval.input_size=[64,128]", *extra]
    if teacher:
        over.append(f"teacher.ckpt={teacher}")
    return over


@pytest.fixture(scope="module")
def teacher_file(tmp_path_factory):
    return _teacher(tmp_path_factory.mktemp("teacher") / "teacher.pt")


def test_brd_run_folder_and_exact_resume(tmp_path, teacher_file):
    cfg_path = ROOT / "configs" / "synthetic.yaml"
    # with a relation connector, so its training, resume and absence from model.pt are covered
    with_connector = ["distill.relation.connector=true"]
    straight = load_config(cfg_path, _tiny(tmp_path, tmp_path / "straight", teacher_file) + with_connector)
    metrics = train(straight)

    run = tmp_path / "straight"
    for name in ("config.yaml", "train_log.csv", "val_log.csv", "last.pt", "best.pt", "model.pt"):
        assert (run / name).is_file(), name
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["iters"] == 6
    with open(run / "train_log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    for term in ("total", "ce", "aux", "kd", "boundary", "relation", "lr"):
        assert all(float(r[term]) >= 0 for r in rows), term
    assert float(rows[0]["lr"]) == pytest.approx(0.02) and float(rows[-1]["lr"]) < 0.02  # poly decay
    with open(run / "val_log.csv") as f:
        assert [r["step"] for r in csv.DictReader(f)] == ["6"]

    # model.pt: the project's student format, synthetic meta, final metrics, no connector weights
    model, meta = checkpoint.load(run / "model.pt")
    assert meta["arch"] == straight.model.arch and meta["classes"] == list(DATASETS["synthetic"].classes)
    assert meta["input_size"] == SIZE and meta["metrics"]["mIoU"] == pytest.approx(metrics["mIoU"])
    assert not any("connector" in k for k in model.state_dict())
    training = checkpoint.load_training(run / "last.pt")
    assert training["step"] == 6 and any(k.startswith("connectors.") for k in training["connectors"])

    # kill after step 3 (the checkpoint), rerun the same config: same weights as the straight run
    resumed_cfg = load_config(cfg_path, _tiny(tmp_path, tmp_path / "resumed", teacher_file) + with_connector)
    assert train(resumed_cfg, stop_at=3) is None
    assert checkpoint.load_training(tmp_path / "resumed" / "last.pt")["step"] == 3
    assert not (tmp_path / "resumed" / "model.pt").exists()
    train(load_config(cfg_path, _tiny(tmp_path, tmp_path / "resumed", teacher_file) + with_connector))
    a = checkpoint.load_training(run / "last.pt")
    b = checkpoint.load_training(tmp_path / "resumed" / "last.pt")
    for part in ("student", "connectors"):
        for k, v in a[part].items():
            assert torch.allclose(v.float(), b[part][k].float(), atol=1e-6), f"{part}.{k} differs after resume"
    with open(tmp_path / "resumed" / "train_log.csv") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [1, 2, 3, 4, 5, 6]


def test_cli_plain_student_and_missing_teacher_error(tmp_path):
    cmd = [sys.executable, "-m", "distill.run", "--cfg", str(ROOT / "configs" / "synthetic_plain.yaml"),
           "--set", *_tiny(tmp_path, tmp_path / "plain", extra=["train.iters=2"])]
    plain = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # meanwhile, on the other core, two runs that must fail before any work (own data folder: no race)
    missing = tmp_path / "no_teacher.pt"
    no_teacher, bad = run_in_one_process([
        ("distill.run", ["--cfg", ROOT / "configs" / "synthetic.yaml", "--set",
                         *_tiny(tmp_path / "b", tmp_path / "brd", teacher=missing)]),
        ("distill.run", ["--cfg", ROOT / "configs" / "synthetic.yaml", "--set", "train.lrr=1"])])
    _, err = plain.communicate(timeout=120)
    assert plain.returncode == 0, err[-2000:]
    _, meta = checkpoint.load(tmp_path / "plain" / "model.pt")
    assert "mIoU" in meta["metrics"] and meta["config"]["distill"]["kd"]["weight"] == 0

    assert no_teacher.returncode == 2, no_teacher.stderr[-2000:]
    assert str(missing) in no_teacher.stderr
    assert "python -m distill.run --cfg configs/synthetic_teacher.yaml" in no_teacher.stderr
    assert bad.returncode == 2 and "train.lrr" in bad.stderr


def test_init_from_starts_from_every_weight(tmp_path):
    """model.init_from: the run (stopped and resumed) starts from the file's weights (lr ~0: the conv weights
    at the end are the file's, where a fresh init would differ), and a file of another architecture or no
    file is one error naming the key."""
    from distill.build import build_student
    from distill.config import ConfigError

    cfg_path = ROOT / "configs" / "synthetic_plain.yaml"
    init = write_synthetic_student(tmp_path / "init.pt", arch="deeplabv3_resnet10_w8", seed=7, bn_passes=1)
    start, _ = checkpoint.load(init)
    convs = [k for k, v in start.state_dict().items() if v.dim() == 4]
    over = _tiny(tmp_path, tmp_path / "ft", extra=[f"model.init_from={init}", "train.lr=1e-30", "train.weight_decay=0"])
    assert train(load_config(cfg_path, over), stop_at=3) is None
    train(load_config(cfg_path, over))
    end, _ = checkpoint.load(tmp_path / "ft" / "model.pt")
    assert all(torch.allclose(end.state_dict()[k], start.state_dict()[k], rtol=0, atol=1e-12) for k in convs)
    fresh = build_student(load_config(cfg_path, _tiny(tmp_path, tmp_path / "x")), 11)
    assert not all(torch.equal(fresh.state_dict()[k], start.state_dict()[k]) for k in convs)

    other = write_synthetic_student(tmp_path / "other.pt", arch="deeplabv3_resnet10_w16")
    for path, words in ((other, "deeplabv3_resnet10_w16"), (tmp_path / "gone.pt", "no such checkpoint")):
        with pytest.raises(ConfigError, match="model.init_from") as e:
            build_student(load_config(cfg_path, _tiny(tmp_path, tmp_path / "y", extra=[f"model.init_from={path}"])), 11)
        assert words in str(e.value) and str(path) in str(e.value)
