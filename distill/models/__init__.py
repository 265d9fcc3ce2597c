from . import segmentor  # noqa: F401  (registers the architectures)
from .pretrained import LoadReport, PretrainedError, load_pretrained
from .registry import build_model, list_models, register_model
from .segmentor import Segmentor

__all__ = ["build_model", "list_models", "register_model", "load_pretrained", "LoadReport", "PretrainedError", "Segmentor"]
