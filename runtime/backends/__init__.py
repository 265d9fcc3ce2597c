"""Backends: one file per runtime (ONNX Runtime, OpenVINO, TensorRT) behind one interface."""
from .base import Backend, Pending, load_backend

__all__ = ["Backend", "Pending", "load_backend"]
