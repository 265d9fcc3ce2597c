"""One training step's losses: the (class-weighted) cross-entropy that stays 0, not NaN, on a crop without a
labelled pixel, and `StudentStep`, the student with its distillation terms in one module (what DDP wraps).
Also the CE class weights a config asks for, and the check that a step's loss is finite on every rank."""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from .config import Config
from .data.base import IGNORE_INDEX
from .losses import Distiller


def train_class_weights(cfg: Config, rank: int) -> list[float] | None:
    """The CE class weights `train.class_weights` asks for, from the train split's label files."""
    if cfg.train.class_weights == "none":
        return None
    from .data import DATASETS, build_dataset
    from .data.balance import class_weights

    d = cfg.data
    weights = class_weights(build_dataset(d.dataset, d.root, d.train_split, **d.kwargs), cfg.train.class_weights)
    if rank == 0:
        names = DATASETS[d.dataset].classes
        print(f"[{cfg.name}] CE class weights ({cfg.train.class_weights} over {d.train_split}): "
              + ", ".join(f"{n} {w:.2f}" for n, w in zip(names, weights)), flush=True)
    return weights


def safe_cross_entropy(logits, labels, weight=None):
    """Mean (class-weighted) cross-entropy over the labelled pixels; 0, not NaN, when a batch has none
    (an all-ignore crop: padding, or a frame without labels), so one such batch cannot end a run."""
    loss = F.cross_entropy(logits.float(), labels, weight=weight, ignore_index=IGNORE_INDEX, reduction="sum")
    valid = labels != IGNORE_INDEX
    if weight is None:
        denom = valid.sum()
    else:
        denom = weight[labels.clamp(max=weight.numel() - 1)][valid].sum()
    return loss / denom.clamp(min=1e-12)


class StudentStep(nn.Module):
    """Everything trained in one module (student + connectors), so DDP syncs all of it.

    forward(images, labels, teacher_out) -> (total loss, {term: unweighted value}).
    """

    def __init__(self, student: nn.Module, distiller: Distiller | None, aux_weight: float,
                 class_weights: list[float] | None = None):
        super().__init__()
        self.student, self.distiller, self.aux_weight = student, distiller, aux_weight
        # a buffer, so it moves with .to(device); not persistent: it is derived from the data, not trained
        self.register_buffer("class_weights", None if class_weights is None else torch.tensor(class_weights),
                             persistent=False)

    def forward(self, images, labels, teacher_out=None):
        out = self.student.forward_features(images)
        size = labels.shape[-2:]
        logits = F.interpolate(out["logits"], size=size, mode="bilinear", align_corners=False)
        terms = {"ce": safe_cross_entropy(logits, labels, self.class_weights)}
        total = terms["ce"]
        if out["aux"] is not None and self.aux_weight:
            aux = F.interpolate(out["aux"], size=size, mode="bilinear", align_corners=False)
            terms["aux"] = safe_cross_entropy(aux, labels, self.class_weights)
            total = total + self.aux_weight * terms["aux"]
        if teacher_out is not None and self.distiller:
            for name, value in self.distiller(out, teacher_out, labels != IGNORE_INDEX).items():
                terms[name] = value
                total = total + self.distiller.weights[name] * value
        return total, terms


def all_finite(total: torch.Tensor, world: int) -> bool:
    """Whether the loss is finite; under torchrun, whether it is on every rank (all skip the step together)."""
    ok = torch.isfinite(total.detach()).float()
    if world > 1:
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    return bool(ok.item())
