"""Pairwise (structured) distillation, SKD-style (Liu et al., CVPR 2019), a baseline."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .relation import pool_tokens


class PairwiseLoss(nn.Module):
    """MSE between teacher and student cosine-similarity matrices of pooled pixel "nodes".

    A = F^T F with F L2-normalised per node (N, M, M);  L = mean((A_S - A_T)^2).
    Unlike RelationLoss there is no softmax: every pair counts equally (SKD's pair-wise term).
    """

    def __init__(self, max_tokens: int = 512):
        super().__init__()
        self.max_tokens = max_tokens

    def affinity(self, feat: torch.Tensor) -> torch.Tensor:
        f = F.normalize(pool_tokens(feat.float(), self.max_tokens), dim=1)
        return torch.bmm(f.transpose(1, 2), f)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        if student.shape[-2:] != teacher.shape[-2:]:
            student = F.interpolate(student, size=teacher.shape[-2:], mode="bilinear", align_corners=False)
        with torch.no_grad():
            at = self.affinity(teacher.detach())
        return F.mse_loss(self.affinity(student), at)
