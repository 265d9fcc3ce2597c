"""benchmarks.distill_gain end to end on tiny synthetic data: real (3-step) runs through the runner, one
evaluation for students and teacher, the report files, reuse of finished runs, and the missing-teacher error."""
from __future__ import annotations

import csv
import math

import cv2
import pytest
import torch

from benchmarks.distill_gain import BenchmarkError, main, run_distill_gain
from distill import checkpoint
from distill.data import DATASETS, MEAN, STD
from distill.models import build_model

SIZE = [64, 128]


def _tiny_overrides(tmp_path):
    return [f"data.root={tmp_path / 'data'}", "data.crop_size=[64,128]",
            "data.kwargs={num_images: 4, size: [64, 128], seed: 0}",
            "data.val_kwargs={num_images: 3, size: [64, 128], seed: 0}",
            "train.iters=3", "train.batch_size=2", "train.ckpt_every=3", "train.val_every=100",
            "train.log_every=1", "train.threads=1", "eval.input_size=[64,128]"]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A real (random-weight) teacher checkpoint with the synthetic dataset's 11 classes."""
    info = DATASETS["synthetic"]
    torch.manual_seed(1)
    kwargs = {"width": 8, "head_channels": 32}
    model = build_model("deeplabv3_resnet10_w16", info.num_classes, **kwargs)
    meta = checkpoint.make_meta("deeplabv3_resnet10_w16", kwargs, info.num_classes, list(info.classes),
                                [list(c) for c in info.palette], MEAN, STD, SIZE, "synthetic")
    path = tmp_path_factory.mktemp("teacher") / "student.pt"
    checkpoint.save(path, model.eval(), meta)
    return path


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_report_from_real_runs_and_reuse(tmp_path, teacher):
    out, runs_dir = tmp_path / "report", tmp_path / "runs"
    kwargs = dict(methods=["plain", "brd"], seeds=[0, 1], out_dir=out, runs_dir=runs_dir,
                  overrides=_tiny_overrides(tmp_path), teacher_ckpt=teacher, panel_images=2, log=lambda *a: None)
    rows = run_distill_gain(**kwargs)

    # one row per method plus the teacher, in the order asked
    table = _read_csv(out / "results.csv")
    assert [r["method"] for r in table] == ["plain", "brd", "teacher"] == [r["method"] for r in rows]
    for r in table[:2]:
        assert r["seeds"] == "2"
        for stem in ("miou", "bf1", "biou"):
            mean, std = float(r[f"{stem}_mean"]), float(r[f"{stem}_std"])
            assert 0.0 <= mean <= 1.0 and 0.0 <= std <= 1.0, (r["method"], stem, mean, std)
        assert float(r["frag_mean"]) >= 0.0 and float(r["frag_std"]) >= 0.0
    assert float(table[0]["miou_delta"]) == 0.0  # plain against itself
    brd = table[1]
    assert float(brd["miou_delta"]) == pytest.approx(float(brd["miou_mean"]) - float(table[0]["miou_mean"]))
    assert math.isnan(float(table[2]["miou_std"])) and 0.0 <= float(table[2]["miou_mean"]) <= 1.0

    # the per-run table: mean over seeds is the mean of the runs
    per_run = _read_csv(out / "runs.csv")
    assert sorted((r["method"], r["seed"]) for r in per_run) == [("brd", "0"), ("brd", "1"), ("plain", "0"), ("plain", "1")]
    plain_runs = [float(r["mIoU"]) for r in per_run if r["method"] == "plain"]
    assert float(table[0]["miou_mean"]) == pytest.approx(sum(plain_runs) / 2)
    assert all(r["trained"] == "True" for r in per_run)

    # the students are the runner's: student format, synthetic classes, the seed they were asked for
    _, meta = checkpoint.load(runs_dir / "brd_s1" / "student.pt")
    assert meta["num_classes"] == 11 and meta["config"]["train"]["seed"] == 1
    assert meta["config"]["teacher"]["ckpt"] == str(teacher) and meta["config"]["distill"]["boundary"]["weight"] > 0

    md = (out / "results.md").read_text()
    assert "| teacher |" in md and "| BRD |" in md and "Δ mIoU" in md and "BRD vs plain" in md
    assert "panel.png" in md and "boundary F1" in md
    for name, min_w in (("metrics.png", 400), ("fragmentation.png", 400), ("panel.png", 400)):
        img = cv2.imread(str(out / name))
        assert img is not None, name
        assert img.shape[1] >= min_w and img.shape[0] >= 200, (name, img.shape)
    panel = cv2.imread(str(out / "panel.png"))
    assert panel.shape[1] > panel.shape[0]  # 5 columns (image, truth, plain, BRD, teacher) by 2 rows

    # second call: finished runs are reused, not retrained, and give the same numbers
    before = {p: p.stat().st_mtime_ns for p in runs_dir.glob("*/student.pt")}
    again = run_distill_gain(**kwargs)
    assert {p: p.stat().st_mtime_ns for p in runs_dir.glob("*/student.pt")} == before
    assert all(r["trained"] == "False" for r in _read_csv(out / "runs.csv"))
    assert [r["miou_mean"] for r in again] == pytest.approx([r["miou_mean"] for r in rows], nan_ok=True)

    # train=False reads what is there: a method and a seed never run are left out (and said so), not trained
    partial = run_distill_gain(**{**kwargs, "methods": ["plain", "kd", "brd"], "seeds": [0, 1, 2], "train": False})
    assert [r["method"] for r in partial] == ["plain", "brd", "teacher"] and partial[0]["seeds"] == 2
    assert not (runs_dir / "kd_s0").exists() and not (runs_dir / "plain_s2").exists()
    assert "Not run (left out of the means): kd_s0, kd_s1, plain_s2, kd_s2, brd_s2." in (out / "results.md").read_text()


def test_missing_teacher_is_a_clear_error(tmp_path, capsys):
    missing = tmp_path / "nowhere" / "student.pt"
    with pytest.raises(BenchmarkError, match="--train-teacher"):
        run_distill_gain(["plain", "brd"], [0], tmp_path / "out", overrides=_tiny_overrides(tmp_path),
                         teacher_ckpt=missing, log=lambda *a: None)
    assert not (tmp_path / "out" / "runs").exists()  # nothing trained before the check
    assert main(["--methods", "plain,brd", "--seeds", "0", "--teacher", str(missing), "--out", str(tmp_path / "o")]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert main(["--methods", "plain", "nonsense", "--out", str(tmp_path / "o")]) == 2
    assert "unknown method 'nonsense'" in capsys.readouterr().err
