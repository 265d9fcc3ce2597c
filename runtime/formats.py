"""The one FORMATS table: format x precision -> file suffix, exporter function, runtime backend,
extra to install.

Used by the export CLIs (default output names), the runtime loader, the benchmarks, the demo and
the tests. Everything here is a string ("module:name") so that reading the table imports no
backend. Python 3.8 compatible (runs on JetPack 5).
"""
from collections import namedtuple
import importlib
from pathlib import Path

from .contract import ConfigError, MissingDependency, ModelError  # noqa: F401  (MissingDependency: re-exported)
from .contract import telemetry

Format = namedtuple("Format", "name precision suffix exporter backend extra")

_ONNX = "runtime.backends.onnxruntime:OnnxRuntimeBackend"
_OPENVINO = "runtime.backends.openvino:OpenVINOBackend"
_TENSORRT = "runtime.backends.tensorrt:TensorRTBackend"

FORMATS = (
    Format("onnx", "fp32", ".onnx", "export.onnx:torch_to_onnx", _ONNX, "export"),
    Format("onnx", "int8", ".int8.onnx", "export.quantize:quantize_onnx_int8", _ONNX, "export"),
    Format("openvino", "fp32", ".xml", "export.openvino:onnx_to_openvino", _OPENVINO, "openvino"),
    Format("openvino", "fp16", ".fp16.xml", "export.openvino:onnx_to_openvino", _OPENVINO, "openvino"),
    Format("openvino", "int8", ".int8.xml", "export.openvino:onnx_to_openvino", _OPENVINO, "openvino"),
    Format("tensorrt", "fp32", ".engine", "export.trt:onnx_to_trt", _TENSORRT, "tensorrt"),
    Format("tensorrt", "fp16", ".fp16.engine", "export.trt:onnx_to_trt", _TENSORRT, "tensorrt"),
    Format("tensorrt", "int8", ".int8.engine", "export.trt:onnx_to_trt", _TENSORRT, "tensorrt"),
)
MODEL_SUFFIXES = tuple(f.suffix for f in FORMATS if f.precision == "fp32")  # what decides the backend
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")  # a student checkpoint: runs in PyTorch, exported from


def is_checkpoint(path):
    return Path(str(path)).suffix.lower() in CHECKPOINT_SUFFIXES


# how to get an extra where pip is not the whole answer: on a Jetson, TensorRT comes with JetPack (apt), not PyPI
INSTALL = {"tensorrt": "on x86 pip install 'brd-edge[tensorrt]'; on a Jetson it comes with JetPack "
                       "(sudo apt install python3-libnvinfer): use the system python3 or a venv made with "
                       "--system-site-packages"}


def require(module, extra, purpose=""):
    """Import an optional module or raise one clear line naming the extra to install (`INSTALL` where pip is
    not the whole answer). OpenVINO, NNCF and ONNX Runtime come with their usage telemetry off
    (runtime/contract/telemetry.py)."""
    telemetry.off()
    try:
        return importlib.import_module(module)
    except ImportError as e:
        interrupt = e.__cause__ or e.__context__
        if isinstance(interrupt, KeyboardInterrupt):  # Ctrl-C or SIGTERM landed inside the import: a pybind11
            raise interrupt  # module reports it as ImportError('initialization failed'); it is not a missing package
        what = " for " + purpose if purpose else ""
        how = INSTALL.get(extra, "pip install 'brd-edge[{}]'".format(extra))
        raise MissingDependency("{} is not installed{} ({}): {}".format(module, what, e, how)) from None


def lookup(name, precision):
    """The row for a format and precision; a ConfigError naming what exists otherwise."""
    for fmt in FORMATS:
        if fmt.name == name and fmt.precision == precision:
            return fmt
    known = ", ".join(f.precision for f in FORMATS if f.name == name)
    raise ConfigError("{} has no {} export{}".format(name, precision, "; it has " + known if known else ""))


def format_for(path):
    """The Format of a model file from its name: the longest suffix of the table it ends with
    (student.int8.xml -> openvino int8; any other *.xml -> openvino fp32). The file's metadata,
    not its name, says the precision it was exported at; the name decides the backend."""
    name = Path(str(path)).name.lower()
    rows = sorted((f for f in FORMATS if name.endswith(f.suffix)), key=lambda f: -len(f.suffix))
    if rows:
        return rows[0]
    known = ", ".join(MODEL_SUFFIXES)
    raise ModelError("{}: unknown model format {!r}; expected one of {}".format(
        path, Path(str(path)).suffix or "(no suffix)", known))


def default_output(source, name, precision):
    """Where an export of `source` goes by default: next to it, its last suffix replaced by the
    table's (student.pt -> student.int8.onnx, student.onnx -> student.fp16.xml)."""
    return Path(source).with_suffix(lookup(name, precision).suffix)


def backend_class(fmt):
    return _attr(fmt.backend)


def exporter(fmt):
    """The export function of a row (imports export/, so torch where the row's exporter needs it)."""
    return _attr(fmt.exporter)


def _attr(spec):
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)
