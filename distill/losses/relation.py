"""Pixel-level self-relation distillation (the "R" of BRD) and its memory bound."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# Live (M x M) float32 matrices per image at the peak of forward + backward: student and teacher
# similarities, their log-softmaxes, the KL terms and the gradients flowing back. Measured with
# the torch profiler in tests/test_losses.py (peak <= this bound, see benchmarks/speed/loss_cost.py).
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


def token_mask(valid: torch.Tensor | None, size, max_tokens: int) -> torch.Tensor | None:
    """(N, H, W) bool pixel mask -> (N, M) bool: a pooled token is valid when every pixel under it is
    (padding and ignored pixels make no relations)."""
    if valid is None:
        return None
    from .boundary import cell_mask

    m = cell_mask(valid, size)
    s = pool_factor(size[0], size[1], max_tokens)
    if s > 1:
        m = -F.max_pool2d(-m, s, stride=s, ceil_mode=True)
    return m.flatten(1) > 0.5


def masked_kl_rows(log_pt: torch.Tensor, log_ps: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over valid rows of KL(p_T[i] || p_S[i]) for (N, M, M) row log-distributions whose invalid
    columns were already given -inf logits; (N, M) `mask` marks the valid rows/columns."""
    kl = torch.exp(log_pt) * (log_pt - log_ps)
    if mask is None:
        return kl.sum() / (kl.shape[0] * kl.shape[1])
    kl = kl.masked_fill(~mask[:, None, :], 0.0).sum(-1)
    rows = mask.sum()
    return (kl * mask).sum() / rows if rows > 0 else kl.sum() * 0.0


def relation_memory_bound(batch: int, max_tokens: int) -> int:
    """Bytes the relation loss may hold at its peak: a few M x M float32 matrices per image."""
    return RELATION_MATRICES_PER_IMAGE * batch * max_tokens * max_tokens * 4


class RelationLoss(nn.Module):
    """KL(teacher || student) between row-softmaxed pixel self-similarities.

    F: pooled pixel features (N, C, M), L2-normalised per pixel;  S = F^T F / tau  (N, M, M);
    P = softmax over each row;  L = mean over images and rows of KL(P_T[i] || P_S[i]).
    With `valid` (labels != ignore), tokens over padding or ignored pixels are left out as rows and
    columns. Computed in float32 with autocast off.
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

    def similarity(self, feat: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Row logits S = F^T F / tau in float32 (call outside autocast); columns of invalid tokens -inf."""
        f = F.normalize(pool_tokens(feat.float(), self.max_tokens), dim=1)
        sim = torch.bmm(f.transpose(1, 2), f) / self.temperature
        if mask is not None:
            sim = sim.masked_fill(~mask[:, None, :], float("-inf"))
        return sim

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        # float32 outside autocast: under autocast a bmm runs in bf16/fp16 whatever its inputs, and a softmax
        # over 2048 similarities / 0.1 needs more than bf16's 8 bits of mantissa
        with torch.autocast(student.device.type, enabled=False):
            if student.shape[-2:] != teacher.shape[-2:]:
                student = F.interpolate(student.float(), size=teacher.shape[-2:], mode="bilinear", align_corners=False)
            mask = token_mask(valid, teacher.shape[-2:], self.max_tokens)
            with torch.no_grad():
                log_pt = F.log_softmax(self.similarity(teacher.detach(), mask), dim=-1)
            log_ps = F.log_softmax(self.similarity(student, mask), dim=-1)
            if mask is not None:  # -inf - -inf in the masked columns: zero them before the product
                log_pt = log_pt.masked_fill(~mask[:, None, :], 0.0)
                log_ps = log_ps.masked_fill(~mask[:, None, :], 0.0)
            return masked_kl_rows(log_pt, log_ps, mask)
