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


def build_model(name: str, num_classes: int, **kwargs) -> nn.Module:
    """Build a registered model; `kwargs` are the architecture's own (stored as `arch_kwargs`)."""
    if name not in _MODELS:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(list_models())}")
    model = _MODELS[name](num_classes=num_classes, **kwargs)
    model.arch = name
    model.arch_kwargs = dict(kwargs)
    return model
