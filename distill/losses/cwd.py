"""Channel-wise distillation (Shu et al., ICCV 2021), a baseline the field compares against."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .boundary import cell_mask


class ChannelWiseDivergence(nn.Module):
    """Each channel is a distribution over spatial locations: softmax(z_c / T) over H*W.

    L = T^2 / (N * C) * sum over images and channels of KL(P_T,c || P_S,c).
    Needs matching channels: apply it to logits (the paper's default), or to features through
    a connector. The student map is resized to the teacher's size when they differ. With `valid`
    (labels != ignore, at label size) each channel's distribution runs over the cells wholly inside
    labelled pixels only (padding and void get no probability), and N counts the images that have one;
    a batch without any gives 0.
    """

    def __init__(self, temperature: float = 4.0):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"CWD: temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        if student.shape[1] != teacher.shape[1]:
            raise ValueError(f"CWD: {student.shape[1]} student vs {teacher.shape[1]} teacher channels (add a connector)")
        if student.shape[-2:] != teacher.shape[-2:]:
            student = F.interpolate(student, size=teacher.shape[-2:], mode="bilinear", align_corners=False)
        t = self.temperature
        n, c = student.shape[:2]
        zs, zt = student.float().flatten(2) / t, teacher.detach().float().flatten(2) / t
        if valid is None:
            log_ps, log_pt = F.log_softmax(zs, dim=-1), F.log_softmax(zt, dim=-1)
            return F.kl_div(log_ps, log_pt, reduction="sum", log_target=True) * t * t / (n * c)
        m = cell_mask(valid, student.shape[-2:]).flatten(2) > 0           # (N, 1, h*w)
        images = m.any(-1).squeeze(1)                                     # (N,) images with a valid cell
        if not images.any():
            return zs.sum() * 0.0                                         # keeps the graph, no NaN
        zs, zt, m = zs[images], zt[images], m[images]
        log_ps = F.log_softmax(zs.masked_fill(~m, float("-inf")), dim=-1)
        log_pt = F.log_softmax(zt.masked_fill(~m, float("-inf")), dim=-1)
        # invalid cells: p_T = 0 there, and 0 * (-inf - -inf) would be NaN: leave them out of the sum
        kl = (log_pt.exp() * (log_pt - log_ps)).masked_fill(~m, 0.0)
        return kl.sum() * t * t / (int(images.sum()) * c)
