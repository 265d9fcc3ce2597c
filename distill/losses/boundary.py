"""Boundary distillation over the backbone's hierarchical stage features (the "B" of BRD)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def edge_strength(feat: torch.Tensor, kernel: int = 3) -> torch.Tensor:
    """(N, C, H, W) feature -> (N, 1, H, W): channel-mean magnitude of the feature minus its local average
    (a high-pass filter). Flat regions give ~0, places where the feature changes give large values."""
    local = F.avg_pool2d(feat, kernel, stride=1, padding=kernel // 2, count_include_pad=False)
    return (feat - local).abs().mean(dim=1, keepdim=True)


def cell_mask(valid: torch.Tensor | None, size, kernel: int = 1) -> torch.Tensor | None:
    """(N, H, W) bool pixel mask -> (N, 1, h, w) float cell mask at a feature's size: a cell is valid only
    when every pixel it covers is, and (kernel > 1) so is every cell of its kernel x kernel neighbourhood,
    whose features a high-pass filter mixes in."""
    if valid is None:
        return None
    invalid = (~valid).float()[:, None]
    invalid = F.adaptive_max_pool2d(invalid, tuple(size)) if invalid.shape[-2:] != tuple(size) else invalid
    if kernel > 1:
        invalid = F.max_pool2d(invalid, kernel, stride=1, padding=kernel // 2)
    return 1.0 - invalid


def boundary_map(feat: torch.Tensor, kernel: int = 3, mask: torch.Tensor | None = None,
                 quantile: float = 0.99, floor: float = 0.01) -> torch.Tensor:
    """(N, C, H, W) feature -> (N, 1, H, W) boundary map, ~[0, 1] (the strongest 1% of cells may exceed 1).

    `edge_strength` divided by a per-image scale: its `quantile` over the valid cells, detached, and never
    below `floor` x the mean feature magnitude. Dividing by the single largest cell would let one pixel set
    every map's scale, and on a nearly flat feature (an untrained or collapsed student) the gradient of
    E / max(E) grows without bound as E -> 0; with the floor, d(map)/d(feature) stays below
    1 / (floor * mean |F|). Detached: the scale is a measurement, not something to optimise.
    """
    e = edge_strength(feat, kernel)
    with torch.no_grad():
        n = e.shape[0]
        flat = e.flatten(1)
        if mask is not None:
            m = mask.flatten(1) > 0
            flat = torch.where(m, flat, torch.full_like(flat, float("nan")))
        scale = torch.nanquantile(flat, quantile, dim=1)
        scale = torch.nan_to_num(scale, nan=0.0)
        lower = floor * feat.detach().abs().mean(dim=(1, 2, 3))
        scale = torch.maximum(scale, lower).clamp_min(1e-12).view(n, 1, 1, 1)
    return e / scale


def fuse_maps(maps: list[torch.Tensor], size) -> torch.Tensor:
    """Average of per-stage boundary maps resized (bilinear) to one size."""
    return torch.stack([m if m.shape[-2:] == tuple(size) else
                        F.interpolate(m, size=tuple(size), mode="bilinear", align_corners=False)
                        for m in maps]).mean(0)


class BoundaryLoss(nn.Module):
    """Boundary-weighted MSE between teacher and student boundary maps.

    Per stage s:  w = m * (1 + edge_weight * B_T),   L_s = sum(w * (B_S - B_T)^2) / sum(w)
    where B = boundary_map(stage feature) and m masks out cells that touch padding or ignored pixels
    (`valid`, the labels' != ignore mask): a crop's border is no object boundary. The student's map is
    resized to the teacher's resolution when they differ. Pixels the teacher sees as edges weigh more,
    so the abundant flat interior cannot drown the thin boundary signal. `fuse=True` averages the stage
    maps at the first stage's resolution and compares one fused map instead of one per stage.
    """

    def __init__(self, kernel: int = 3, edge_weight: float = 4.0, fuse: bool = False, floor: float = 0.01):
        super().__init__()
        if kernel < 3 or kernel % 2 == 0:
            raise ValueError(f"boundary kernel must be an odd integer >= 3, got {kernel}")
        self.kernel, self.edge_weight, self.fuse, self.floor = kernel, edge_weight, fuse, floor

    def maps(self, feats: list[torch.Tensor], masks: dict) -> list[torch.Tensor]:
        return [boundary_map(f.float(), self.kernel, masks.get(tuple(f.shape[-2:])), floor=self.floor) for f in feats]

    def forward(self, student: list[torch.Tensor], teacher: list[torch.Tensor],
                valid: torch.Tensor | None = None) -> torch.Tensor:
        if len(student) != len(teacher) or not student:
            raise ValueError(f"BoundaryLoss: {len(student)} student vs {len(teacher)} teacher stages")
        with torch.autocast(student[0].device.type, enabled=False):
            # one cell mask per feature size, shared by the teacher's and student's maps and the weights
            sizes = {tuple(f.shape[-2:]) for f in (*teacher, *student)}
            masks = {} if valid is None else {hw: cell_mask(valid, hw, self.kernel) for hw in sizes}
            bt = self.maps([t.detach() for t in teacher], masks)
            bs = self.maps(student, masks)
            if self.fuse:
                size = bt[0].shape[-2:]
                bt, bs = [fuse_maps(bt, size)], [fuse_maps(bs, size)]
            total = student[0].new_zeros((), dtype=torch.float32)
            for s, t in zip(bs, bt):
                if s.shape[-2:] != t.shape[-2:]:
                    s = F.interpolate(s, size=t.shape[-2:], mode="bilinear", align_corners=False)
                w = 1.0 + self.edge_weight * t
                m = masks.get(tuple(t.shape[-2:])) if valid is not None else None
                if m is not None:
                    w = w * m
                total = total + (w * (s - t) ** 2).sum() / w.sum().clamp_min(1e-6)
        return total / len(bs)
