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

    `pretrained`: an ImageNet backbone file. The variant its layout needs (a ResNet's stem) is built and
    added to `arch_kwargs`, so a checkpoint of this model rebuilds without the file; every backbone tensor
    must load (`pretrained_strict=False` allows a partial load, with a warning). The load report is
    `model.pretrained_report`."""
    if name not in _MODELS:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(list_models())}")
    sd = None
    if pretrained:
        from .pretrained import PretrainedError, arch_kwargs_for, read_weights
        sd = read_weights(pretrained)
        for key, value in arch_kwargs_for(sd, str(pretrained)).items():
            if key in kwargs and kwargs[key] != value:
                raise PretrainedError(f"{pretrained}: the file needs {key}={value!r} but {key}={kwargs[key]!r} was "
                                      f"asked for; drop {key} from the model arguments (model.kwargs)")
            kwargs[key] = value
    model = _MODELS[name](num_classes=num_classes, **kwargs)
    model.arch = name
    model.arch_kwargs = dict(kwargs)
    if sd is not None:
        from .pretrained import load_backbone
        model.pretrained_report = load_backbone(model, sd, pretrained, strict=pretrained_strict)
    return model
