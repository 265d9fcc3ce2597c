"""Channel-wise distillation (Shu et al., ICCV 2021), a baseline the field compares against."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class ChannelWiseDivergence(nn.Module):
    """Each channel is a distribution over spatial locations: softmax(z_c / T) over H*W.

    L = T^2 / (N * C) * sum over images and channels of KL(P_T,c || P_S,c).
    Needs matching channels: apply it to logits (the paper's default), or to features through
    a connector. The student map is resized to the teacher's size when they differ.
    """

    def __init__(self, temperature: float = 4.0):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"CWD: temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        if student.shape[1] != teacher.shape[1]:
            raise ValueError(f"CWD: {student.shape[1]} student vs {teacher.shape[1]} teacher channels (add a connector)")
        if student.shape[-2:] != teacher.shape[-2:]:
            student = F.interpolate(student, size=teacher.shape[-2:], mode="bilinear", align_corners=False)
        t = self.temperature
        n, c = student.shape[:2]
        log_ps = F.log_softmax(student.float().flatten(2) / t, dim=-1)
        log_pt = F.log_softmax(teacher.detach().float().flatten(2) / t, dim=-1)
        return F.kl_div(log_ps, log_pt, reduction="sum", log_target=True) * t * t / (n * c)
