"""Per-pixel logit distillation (Hinton et al. 2015, applied per pixel as in the segmentation KD literature)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .boundary import cell_mask


class LogitKD(nn.Module):
    """L = T^2 * mean over pixels of KL(softmax(z_T / T) || softmax(z_S / T)) over classes.

    T^2 keeps the gradient scale independent of T (Hinton et al.). Logits at the head's stride;
    the student's are resized to the teacher's size when they differ. With `valid` (labels != ignore, at
    label size) the mean runs over the cells wholly inside labelled pixels, as the boundary and relation
    terms do, so padding and void do not count; a batch without such a cell gives 0.
    """

    def __init__(self, temperature: float = 1.0):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"LogitKD: temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        if student.shape[-2:] != teacher.shape[-2:]:
            student = F.interpolate(student, size=teacher.shape[-2:], mode="bilinear", align_corners=False)
        t = self.temperature
        log_ps = F.log_softmax(student.float() / t, dim=1)
        log_pt = F.log_softmax(teacher.detach().float() / t, dim=1)
        kl = F.kl_div(log_ps, log_pt, reduction="none", log_target=True).sum(1, keepdim=True)  # (N, 1, h, w)
        if valid is None:
            return kl.mean() * t * t
        m = cell_mask(valid, kl.shape[-2:])
        return (kl * m).sum() * t * t / m.sum().clamp(min=1.0)
