"""Mixed precision through the real training step: bf16 autocast on CPU (train.amp_cpu), fp16 + GradScaler
on CUDA when there is one. Losses stay finite and the relation similarity matrices stay float32.

Which dtype each op computed in is read with a TorchDispatchMode, i.e. from the ops torch actually ran."""
from __future__ import annotations

import csv
import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from distill import checkpoint
from distill.config import load_config
from distill.engine import train
from tests.test_run import ROOT, _teacher, _tiny


class OpDtypes(TorchDispatchMode):
    """Records (op name, output dtype, output shape) of every op run inside the block."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if isinstance(out, torch.Tensor):
            self.seen.append((func.overloadpacket.__name__, out.dtype, tuple(out.shape)))
        return out


def _run(tmp_path, name, teacher, extra):
    cfg = load_config(ROOT / "configs" / "synthetic.yaml",
                      _tiny(tmp_path, tmp_path / name, teacher, ["train.iters=2", "train.ckpt_every=2", *extra]))
    with OpDtypes() as ops:
        train(cfg)
    with open(tmp_path / name / "train_log.csv") as f:
        rows = list(csv.DictReader(f))
    return ops.seen, rows


def _similarities(seen):
    """The relation loss's (N, M, M) similarity products."""
    return [(dt, shape) for op, dt, shape in seen if op == "bmm" and len(shape) == 3 and shape[1] == shape[2]]


@pytest.fixture(scope="module")
def teacher_file(tmp_path_factory):
    return _teacher(tmp_path_factory.mktemp("amp_teacher") / "teacher.pt")


def test_cpu_bf16_autocast_runs_the_distillation_step(tmp_path, teacher_file):
    seen, rows = _run(tmp_path, "bf16", teacher_file, ["train.amp_cpu=true", "train.device=cpu"])
    convs = [dt for op, dt, _ in seen if op == "convolution"]
    assert torch.bfloat16 in convs                               # the student and teacher ran under autocast
    sims = _similarities(seen)
    assert sims and all(dt == torch.float32 for dt, _ in sims), sims
    for r in rows:
        for term in ("total", "ce", "kd", "boundary", "relation"):
            assert math.isfinite(float(r[term])), (term, r)
    # bf16 keeps float32's exponent range: no loss scaling on CPU
    assert checkpoint.load_training(tmp_path / "bf16" / "last.pt")["scaler"] == {}


def test_cpu_default_stays_float32(tmp_path, teacher_file):
    seen, _ = _run(tmp_path, "fp32", teacher_file, ["train.device=cpu"])   # train.amp is true by default
    assert not any(dt in (torch.bfloat16, torch.float16) for _, dt, _ in seen)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16 autocast + GradScaler needs a CUDA device")
def test_cuda_fp16_autocast_with_grad_scaler(tmp_path, teacher_file):
    seen, rows = _run(tmp_path, "fp16", teacher_file, ["train.device=cuda", "train.amp=true"])
    assert torch.float16 in [dt for op, dt, _ in seen if op == "convolution"]
    sims = _similarities(seen)
    assert sims and all(dt == torch.float32 for dt, _ in sims), sims
    assert all(math.isfinite(float(r["total"])) for r in rows)
    scaler = checkpoint.load_training(tmp_path / "fp16" / "last.pt")["scaler"]
    assert scaler and scaler["scale"] > 0
