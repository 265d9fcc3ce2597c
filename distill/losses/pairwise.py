"""Pairwise (structured) distillation, SKD-style (Liu et al., CVPR 2019), a baseline."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .relation import pool_tokens, token_mask


class PairwiseLoss(nn.Module):
    """MSE between teacher and student cosine-similarity matrices of pooled pixel "nodes".

    A = F^T F with F L2-normalised per node (N, M, M);  L = mean((A_S - A_T)^2).
    Unlike RelationLoss there is no softmax: every pair counts equally (SKD's pair-wise term). Pairs with
    a token over padding or ignored pixels are left out; float32 with autocast off.
    """

    def __init__(self, max_tokens: int = 512):
        super().__init__()
        self.max_tokens = max_tokens

    def affinity(self, feat: torch.Tensor) -> torch.Tensor:
        f = F.normalize(pool_tokens(feat.float(), self.max_tokens), dim=1)
        return torch.bmm(f.transpose(1, 2), f)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        with torch.autocast(student.device.type, enabled=False):  # float32 similarities (see RelationLoss)
            if student.shape[-2:] != teacher.shape[-2:]:
                student = F.interpolate(student.float(), size=teacher.shape[-2:], mode="bilinear", align_corners=False)
            with torch.no_grad():
                at = self.affinity(teacher.detach())
            diff = (self.affinity(student) - at) ** 2
            mask = token_mask(valid, teacher.shape[-2:], self.max_tokens)
            if mask is None:
                return diff.mean()
            pair = (mask[:, :, None] & mask[:, None, :]).float()
            return (diff * pair).sum() / pair.sum().clamp_min(1.0)
