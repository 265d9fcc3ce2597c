"""`teacher.input_scale`: the teacher is shown the batch resized, and every map it hands the losses comes back at
the size it has at the batch's own size, so the losses compare at the resolution they always did; the setting
reaches a real training's losses, and a scale that is no factor is one config error."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from distill.build import teacher_features
from distill.config import ConfigError, load_config
from distill.models import build_model

from .conftest import _tiny_overrides


@pytest.fixture(scope="module")
def teacher():
    torch.manual_seed(0)
    return build_model("deeplabv3_resnet10_w16", 11).eval()


def test_scale_one_is_the_teacher_itself(teacher):
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        want, got = teacher.forward_features(x), teacher_features(teacher, x, 1.0)
    for a, b in zip(want["stages"] + [want["feat"], want["logits"]], got["stages"] + [got["feat"], got["logits"]]):
        assert torch.equal(a, b)


def test_a_smaller_view_comes_back_at_the_full_size_maps(teacher):
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        full, half = teacher.forward_features(x), teacher_features(teacher, x, 0.5)
        small = teacher.forward_features(F.interpolate(x, size=(32, 48), mode="bilinear", align_corners=False))
    for name in ("feat", "logits"):
        assert half[name].shape == full[name].shape
        # what the teacher saw is the half-size batch: its own maps, enlarged, not the full-size ones
        assert torch.allclose(half[name], F.interpolate(small[name], size=full[name].shape[-2:], mode="bilinear",
                                                        align_corners=False), atol=1e-6)
        assert not torch.allclose(half[name], full[name], atol=1e-3)
    assert [m.shape for m in half["stages"]] == [m.shape for m in full["stages"]]


def test_a_scale_that_is_no_factor_is_one_config_error():
    with pytest.raises(ConfigError, match="teacher.input_scale"):
        load_config("synthetic.yaml", ["teacher.input_scale=0"])


def test_the_scale_reaches_a_real_trainings_losses(tmp_path):
    """Two 2-step BRD runs alike but for the teacher's view: their first logged distillation terms differ."""
    import csv

    from distill.data.synthetic import generate
    from distill.engine import train

    from .conftest import write_synthetic_student

    generate(tmp_path / "data", "train", 8, (64, 128), 0)
    generate(tmp_path / "data", "val", 2, (64, 128), 0)
    t = write_synthetic_student(tmp_path / "teacher.pt", input_size=(64, 128), seed=1,
                                arch_kwargs={"width": 8, "head_channels": 32})
    logs = {}
    for scale in (1.0, 0.5):
        out = tmp_path / f"run{scale}"
        train(load_config("synthetic.yaml", _tiny_overrides(tmp_path / "data", out, [
            f"teacher.ckpt={t}", f"teacher.input_scale={scale}", "train.iters=2", "train.log_every=1",
            "train.ckpt_every=2", "train.val_every=2", "data.kwargs={num_images: 8, size: [64, 128], seed: 0}",
            "data.val_kwargs={num_images: 2, size: [64, 128], seed: 0}"])))
        with open(out / "train_log.csv", newline="") as f:
            logs[scale] = list(csv.DictReader(f))[0]
    assert logs[1.0]["ce"] == logs[0.5]["ce"]  # same student, same batch: only the teacher's view changed
    assert logs[1.0]["kd"] != logs[0.5]["kd"]
