"""One training step's losses: the (class-weighted) cross-entropy that stays 0, not NaN, on a crop without a
labelled pixel, and `StudentStep`, the student with its distillation terms in one module (what DDP wraps).
Also the CE class weights a config asks for, the check that a step's loss is finite on every rank (and
`Diverged`, when it is not for too long), and the check that a batch of one image can train the network."""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from runtime.contract import EXIT_FAILED, UserError

from .config import Config, ConfigError
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


class Diverged(UserError, FloatingPointError):
    """The loss stayed non-finite for too many steps in a row: one line saying where, what was kept and what to
    try. Exit 1, not 2: every input was valid, and the run failed the check its own steps are held to (a finite
    loss), as a gate fails."""
    exit_code = EXIT_FAILED

    def __init__(self, first: int, step: int, cfg: Config, last_path, saved_at: int | None):
        self.first, self.step = first, step
        kept = (f"the last good checkpoint {last_path} (step {saved_at}) is kept" if saved_at is not None else
                f"no checkpoint was saved before it (train.ckpt_every {cfg.train.ckpt_every})")
        super().__init__(f"{cfg.out_dir}: the run diverged at step {first}: the loss was non-finite for "
                         f"{step - first + 1} steps in a row (to step {step}); {kept}; lower train.lr "
                         f"(now {cfg.train.lr:g}) or check the data")


def check_batch_statistics(student: nn.Module, cfg: Config, world: int, device) -> None:
    """Before the work: a BatchNorm in training mode needs more than one value per channel, so with one image
    per step a BatchNorm after global pooling (DeepLabV3's image pooling: 1x1 per channel) made the first step
    fail with torch's "Expected more than 1 value per channel when training". One no-grad forward of a 1-image
    batch at the crop size in eval mode (no statistics updated, no random numbers drawn) finds such layers."""
    sync = world > 1 and cfg.train.sync_bn and torch.device(device).type == "cuda"
    per_step = cfg.train.batch_size if sync else cfg.train.batch_size // world  # what one BatchNorm sees
    if per_step > 1:
        return
    starved = []
    handles = [m.register_forward_pre_hook(lambda m, args, name=name: starved.append(name)
                                           if args[0].numel() <= args[0].shape[1] else None)
               for name, m in student.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    was_training = student.training
    try:
        with torch.no_grad():
            student.eval().forward_features(torch.zeros(1, 3, *cfg.data.crop_size, device=device))
    finally:
        for h in handles:
            h.remove()
        student.train(was_training)
    if starved:
        per = " per process" if world > 1 else ""
        raise ConfigError(f"train.batch_size={cfg.train.batch_size}: {per_step} image per step{per} is too few for "
                          f"{cfg.model.arch}: its BatchNorm after global pooling ({starved[0]}) would see one value "
                          f"per channel, and training needs more; use train.batch_size >= {2 * world}")
