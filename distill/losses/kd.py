"""Per-pixel logit distillation (Hinton et al. 2015, applied per pixel as in the segmentation KD literature)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class LogitKD(nn.Module):
    """L = T^2 * mean over pixels of KL(softmax(z_T / T) || softmax(z_S / T)) over classes.

    T^2 keeps the gradient scale independent of T (Hinton et al.). Logits at the head's stride;
    the student's are resized to the teacher's size when they differ.
    """

    def __init__(self, temperature: float = 1.0):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"LogitKD: temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        if student.shape[-2:] != teacher.shape[-2:]:
            student = F.interpolate(student, size=teacher.shape[-2:], mode="bilinear", align_corners=False)
        t = self.temperature
        log_ps = F.log_softmax(student.float() / t, dim=1)
        log_pt = F.log_softmax(teacher.detach().float() / t, dim=1)
        pixels = student.shape[0] * student.shape[2] * student.shape[3]
        return F.kl_div(log_ps, log_pt, reduction="sum", log_target=True) * t * t / pixels
