"""The weighted set of distillation losses of one run, with the connectors they need.

Which losses run, with what weights, is configuration (`distill:` in a config file); a loss with
weight 0 is not built. Connectors (student width -> teacher width) are built only where a loss
needs matching channels (CWD on features) or its config asks for one; they are trained with the
student and live here, so the student checkpoint never contains them.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .boundary import BoundaryLoss
from .connectors import Connector
from .cwd import ChannelWiseDivergence
from .kd import LogitKD
from .pairwise import PairwiseLoss
from .relation import RelationLoss

TAPS = ("logits", "feat", "stage1", "stage2", "stage3", "stage4")


def tap(out: dict, name: str) -> torch.Tensor:
    """One tensor of a `forward_features` dict by tap name."""
    if name.startswith("stage"):
        return out["stages"][int(name[5:]) - 1]
    return out[name]


def tap_channels(model: nn.Module, name: str) -> int:
    if name == "feat":
        return model.feat_channels
    if name == "logits":
        return model.head.cls.out_channels if hasattr(model.head, "cls") else -1
    return model.stage_channels[int(name[5:]) - 1]


class Distiller(nn.Module):
    """`distiller(student_out, teacher_out)` -> {term name: unweighted loss}; `weights[name]` scales it."""

    def __init__(self, cfg, student: nn.Module, teacher: nn.Module):
        super().__init__()
        self.losses = nn.ModuleDict()
        self.connectors = nn.ModuleDict()
        self.taps: dict[str, str] = {}
        self.weights: dict[str, float] = {}
        if cfg.kd.weight:
            self._add("kd", LogitKD(cfg.kd.temperature), cfg.kd.weight, "logits")
        if cfg.cwd.weight:
            self._add("cwd", ChannelWiseDivergence(cfg.cwd.temperature), cfg.cwd.weight, cfg.cwd.tap)
        if cfg.skd.weight:
            self._add("skd", PairwiseLoss(cfg.skd.max_tokens), cfg.skd.weight, cfg.skd.tap)
        if cfg.relation.weight:
            self._add("relation", RelationLoss(cfg.relation.temperature, cfg.relation.max_tokens),
                      cfg.relation.weight, cfg.relation.tap)
        if cfg.boundary.weight:
            self.boundary_stages = [int(s) for s in cfg.boundary.stages]
            self._add("boundary", BoundaryLoss(cfg.boundary.kernel, cfg.boundary.edge_weight, cfg.boundary.fuse),
                      cfg.boundary.weight, "stages")
        # connectors: CWD on features needs channel correspondence; relation/skd only when asked
        wants = {"cwd": cfg.cwd.tap != "logits", "skd": cfg.skd.connector, "relation": cfg.relation.connector}
        for name, want in wants.items():
            if name in self.losses and want:
                cs, ct = tap_channels(student, self.taps[name]), tap_channels(teacher, self.taps[name])
                if cs != ct or name != "cwd":
                    self.connectors[name] = Connector(cs, ct)

    def _add(self, name, loss, weight, tap_name):
        if tap_name != "stages" and tap_name not in TAPS:
            raise ValueError(f"distill.{name}.tap: expected one of {', '.join(TAPS)}, got {tap_name!r}")
        self.losses[name] = loss
        self.weights[name] = float(weight)
        self.taps[name] = tap_name

    def __bool__(self) -> bool:
        return len(self.losses) > 0

    def forward(self, s_out: dict, t_out: dict, valid: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """`valid`: (N, H, W) bool, the pixels with a label (not padding, not ignore); every term (KD, CWD,
        boundary, relation, skd) leaves the rest out, so the methods compare like for like."""
        terms = {}
        for name, loss in self.losses.items():
            if name == "boundary":
                idx = [s - 1 for s in self.boundary_stages]
                terms[name] = loss([s_out["stages"][i] for i in idx], [t_out["stages"][i] for i in idx], valid)
                continue
            s, t = tap(s_out, self.taps[name]), tap(t_out, self.taps[name])
            if name in self.connectors:
                s = self.connectors[name](s)
            terms[name] = loss(s, t, valid)
        return terms
