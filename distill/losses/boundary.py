"""Boundary distillation over the backbone's hierarchical stage features (the "B" of BRD)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def boundary_map(feat: torch.Tensor, kernel: int = 3, eps: float = 1e-6) -> torch.Tensor:
    """(N, C, H, W) feature -> (N, 1, H, W) boundary map in [0, 1].

    The channel-mean magnitude of the feature minus its local average (a high-pass filter):
    flat regions give ~0, edges give large values. Channel-agnostic, so teacher and student
    maps compare directly whatever their widths; divided by its per-image maximum so the
    maps of two networks with different feature scales are comparable.
    """
    local = F.avg_pool2d(feat, kernel, stride=1, padding=kernel // 2, count_include_pad=False)
    mag = (feat - local).abs().mean(dim=1, keepdim=True)
    peak = mag.flatten(1).amax(dim=1).view(-1, 1, 1, 1)
    return mag / (peak + eps)


class BoundaryLoss(nn.Module):
    """Boundary-weighted MSE between teacher and student boundary maps, averaged over stages.

    Per stage s:  w = 1 + edge_weight * B_T,   L_s = sum(w * (B_S - B_T)^2) / sum(w)
    where B = boundary_map(stage feature); the student's map is resized to the teacher's
    resolution when they differ. Pixels the teacher sees as edges weigh more, so the
    abundant flat interior cannot drown the thin boundary signal.
    """

    def __init__(self, kernel: int = 3, edge_weight: float = 4.0):
        super().__init__()
        if kernel < 3 or kernel % 2 == 0:
            raise ValueError(f"boundary kernel must be an odd integer >= 3, got {kernel}")
        self.kernel = kernel
        self.edge_weight = edge_weight

    def forward(self, student: list[torch.Tensor], teacher: list[torch.Tensor]) -> torch.Tensor:
        if len(student) != len(teacher) or not student:
            raise ValueError(f"BoundaryLoss: {len(student)} student vs {len(teacher)} teacher stages")
        total = student[0].new_zeros((), dtype=torch.float32)
        for fs, ft in zip(student, teacher):
            bt = boundary_map(ft.detach().float(), self.kernel)
            bs = boundary_map(fs.float(), self.kernel)
            if bs.shape[-2:] != bt.shape[-2:]:
                bs = F.interpolate(bs, size=bt.shape[-2:], mode="bilinear", align_corners=False)
            w = 1.0 + self.edge_weight * bt
            total = total + (w * (bs - bt) ** 2).sum() / w.sum()
        return total / len(student)
