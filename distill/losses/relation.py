"""Pixel-level self-relation distillation (the "R" of BRD) and its memory bound."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# Live (M x M) float32 matrices per image at the peak of forward + backward: student and teacher
# similarities, their log-softmaxes, the KL terms and the gradients flowing back. Measured with
# the torch profiler in tests/test_losses.py (peak <= this bound, see benchmarks/loss_cost.py).
RELATION_MATRICES_PER_IMAGE = 8


def pool_factor(h: int, w: int, max_tokens: int) -> int:
    """Smallest integer stride s such that ceil(h/s) * ceil(w/s) <= max_tokens."""
    s = max(1, math.floor(math.sqrt(h * w / max_tokens)))
    while math.ceil(h / s) * math.ceil(w / s) > max_tokens:
        s += 1
    return s


def pool_tokens(feat: torch.Tensor, max_tokens: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, M) with M <= max_tokens, by average pooling s x s patches."""
    s = pool_factor(feat.shape[-2], feat.shape[-1], max_tokens)
    if s > 1:
        feat = F.avg_pool2d(feat, s, stride=s, ceil_mode=True, count_include_pad=False)
    return feat.flatten(2)


def relation_memory_bound(batch: int, max_tokens: int) -> int:
    """Bytes the relation loss may hold at its peak: a few M x M float32 matrices per image."""
    return RELATION_MATRICES_PER_IMAGE * batch * max_tokens * max_tokens * 4


class RelationLoss(nn.Module):
    """KL(teacher || student) between row-softmaxed pixel self-similarities.

    F: pooled pixel features (N, C, M), L2-normalised per pixel;  S = F^T F / tau  (N, M, M);
    P = softmax over each row;  L = mean over images and rows of KL(P_T[i] || P_S[i]).
    Self-similarity is (M x M) whatever C is, so teacher and student widths need not match.
    Features are pooled to at most `max_tokens` pixels first: an unpooled 512x1024 crop at
    stride 8 would be an 8192 x 8192 matrix (256 MiB) per image, per copy.
    """

    def __init__(self, temperature: float = 0.1, max_tokens: int = 2048):
        super().__init__()
        if temperature <= 0 or max_tokens < 2:
            raise ValueError(f"RelationLoss: temperature > 0 and max_tokens >= 2 required, got {temperature}, {max_tokens}")
        self.temperature = temperature
        self.max_tokens = max_tokens

    def similarity(self, feat: torch.Tensor) -> torch.Tensor:
        f = F.normalize(pool_tokens(feat.float(), self.max_tokens), dim=1)
        return torch.bmm(f.transpose(1, 2), f) / self.temperature

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        if student.shape[-2:] != teacher.shape[-2:]:
            student = F.interpolate(student, size=teacher.shape[-2:], mode="bilinear", align_corners=False)
        with torch.no_grad():
            log_pt = F.log_softmax(self.similarity(teacher.detach()), dim=-1)
        log_ps = F.log_softmax(self.similarity(student), dim=-1)
        rows = log_ps.shape[0] * log_ps.shape[1]
        return F.kl_div(log_ps, log_pt, reduction="sum", log_target=True) / rows
