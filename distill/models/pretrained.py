"""Load ImageNet backbone weights from a local file (never downloaded), by key mapping.

Understood layouts:
- torchvision ResNet (`conv1.weight` 7x7, `layer1.0.conv1.weight`, `fc.*`) and MobileNetV2 (`features.N...`);
- CIRKD's deep-stem ResNet (`conv1/bn1/conv2/bn2/conv3/bn3` then `layerN`);
- mmseg/mmcv (`state_dict` wrapper, optional `backbone.` prefix, ResNetV1c `stem.N`,
  MobileNetV2 `conv1.conv`, `layerK.J.conv.I.conv|bn`).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

import torch
import torch.nn as nn

_CIRKD_STEM = {"conv1": "stem.0", "bn1": "stem.1", "conv2": "stem.3", "bn2": "stem.4", "conv3": "stem.6", "bn3": "stem.7"}


@dataclass
class LoadReport:
    loaded: list[str]
    missing: list[str]
    unexpected: list[str]

    def __str__(self):
        return (f"loaded {len(self.loaded)} tensors; missing {len(self.missing)}"
                f"{': ' + ', '.join(self.missing[:8]) if self.missing else ''}; unexpected {len(self.unexpected)}"
                f"{': ' + ', '.join(self.unexpected[:8]) if self.unexpected else ''}")


def _unwrap(obj, path) -> dict[str, torch.Tensor]:
    for key in ("state_dict", "model", "net"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path}: not a weight file (expected a state dict of tensors)")
    out = {}
    for k, v in obj.items():
        for prefix in ("module.", "backbone."):
            if k.startswith(prefix):
                k = k[len(prefix):]
        out[k] = v
    return out


def _map_resnet(sd: dict, deep_stem: bool) -> dict:
    out = {}
    cirkd = "conv2.weight" in sd and "conv3.weight" in sd
    for k, v in sd.items():
        if k.startswith("fc."):
            continue
        head = k.split(".")[0]
        if cirkd and head in _CIRKD_STEM:
            k = _CIRKD_STEM[head] + k[len(head):]
        out[k] = v
    return out


def _mmseg_mbv2_to_torchvision(sd: dict, model_keys: list[str]) -> dict:
    """mmseg names MobileNetV2 modules differently but in the same order: map conv/bn units in order."""
    if not any(k.startswith("conv1.conv") for k in sd):
        return {k: v for k, v in sd.items() if not k.startswith("classifier.")}
    unit = re.compile(r"^(.*)\.(weight|bias|running_mean|running_var|num_batches_tracked)$")

    def units(keys):
        order, groups = [], {}
        for k in keys:
            m = unit.match(k)
            if not m:
                continue
            if m.group(1) not in groups:
                order.append(m.group(1))
                groups[m.group(1)] = []
            groups[m.group(1)].append(m.group(2))
        return order

    src_units = [u for u in units(sd) if not u.startswith("conv2")]  # mmseg's final 1x1 (1280) has no twin here
    dst_units = units(k for k in model_keys if k.startswith("features."))
    out = {}
    for s, d in zip(src_units, dst_units):
        for k, v in sd.items():
            if k.startswith(s + ".") and unit.match(k).group(1) == s:
                out[d + k[len(s):]] = v
    return out


def load_pretrained(model: nn.Module, path: str | os.PathLike) -> LoadReport:
    """Load backbone weights into `model.backbone`; return what loaded, was missing, was unexpected."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"pretrained weights not found: {path} (put an ImageNet backbone file there, e.g. "
            "resnet101_v1c from mmseg/CIRKD or torchvision's resnet/mobilenet_v2 .pth; nothing is downloaded)")
    sd = _unwrap(torch.load(path, map_location="cpu", weights_only=True), path)
    backbone = model.backbone
    own = backbone.state_dict()
    if hasattr(backbone, "layer1"):
        sd = _map_resnet(sd, getattr(backbone, "deep_stem", True))
    else:
        sd = _mmseg_mbv2_to_torchvision(sd, list(own))
    loadable = {k: v for k, v in sd.items() if k in own and own[k].shape == v.shape}
    shape_mismatch = [k for k, v in sd.items() if k in own and own[k].shape != v.shape]
    backbone.load_state_dict(loadable, strict=False)
    missing = [k for k in own if k not in loadable and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in own] + [f"{k} (shape)" for k in shape_mismatch]
    if not loadable:
        raise ValueError(f"{path}: no tensor matches the {type(backbone).__name__} backbone "
                         f"(first unexpected keys: {', '.join(unexpected[:5])})")
    return LoadReport(sorted(loadable), missing, unexpected)
