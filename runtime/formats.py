"""The one FORMATS table: model file suffix -> exporter module, runtime backend, extra to install.

Used by the export CLIs, the runtime loader, the benchmarks and the tests. Everything here is a
string so that reading the table imports no backend. Python 3.8 compatible (runs on JetPack 5).
"""
from collections import namedtuple
import importlib
from pathlib import Path

Format = namedtuple("Format", "name suffix exporter backend extra requires")

FORMATS = (
    Format("onnx", ".onnx", "export.onnx", "runtime.backends.onnxruntime:OnnxRuntimeBackend", "export", "onnxruntime"),
    Format("openvino", ".xml", "export.openvino", "runtime.backends.openvino:OpenVINOBackend", "openvino", "openvino"),
    Format("tensorrt", ".engine", "export.trt", "runtime.backends.tensorrt:TensorRTBackend", "tensorrt", "tensorrt"),
)


class MissingDependency(ImportError):
    """An optional dependency is absent; the message names the extra that installs it."""


def require(module, extra, purpose=""):
    """Import an optional module or raise one clear line naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        what = " for " + purpose if purpose else ""
        raise MissingDependency(
            "{} is not installed{}: pip install 'brd-edge[{}]' ({})".format(module, what, extra, e)) from None


def format_for(path):
    """The Format of a model file, from its suffix; a clear error for an unknown one."""
    suffix = Path(str(path)).suffix.lower()
    for fmt in FORMATS:
        if fmt.suffix == suffix:
            return fmt
    known = ", ".join("{} ({})".format(f.suffix, f.name) for f in FORMATS)
    raise ValueError("{}: unknown model format {!r}; expected one of {}".format(path, suffix or "(no suffix)", known))


def backend_class(fmt):
    module, _, cls = fmt.backend.partition(":")
    return getattr(importlib.import_module(module), cls)
