"""The JSON sidecar of a TensorRT engine (`model.engine` -> `model.engine.json`), Python 3.8, no torch.

A serialised engine only runs on the TensorRT version that built it and on GPUs of the same compute
capability; the sidecar records both (plus the model metadata, precision, shapes and the ONNX
file's sha256) so the runtime can refuse a mismatched engine with a message instead of crashing.
"""
import json
from pathlib import Path

from . import metadata
from .contract import ModelError

SIDECAR_SUFFIX = ".json"
SIDECAR_FORMAT = "brd-edge/tensorrt-sidecar"
REQUIRED = ("format", "meta", "tensorrt_version", "compute_capability", "gpu", "precision", "inputs", "outputs")


class SidecarError(ModelError):
    """Missing or invalid sidecar, or an engine built for another GPU / TensorRT version."""


def sidecar_path(engine_path):
    return Path(str(engine_path) + SIDECAR_SUFFIX)


def read_sidecar(engine_path):
    """The sidecar dict of an engine; SidecarError naming the file if it is missing or malformed."""
    path = sidecar_path(engine_path)
    if not path.is_file():
        raise SidecarError("{}: no sidecar {} (engines are built by `python -m export.trt`, which writes it)".format(
            engine_path, path.name))
    try:
        sidecar = json.loads(path.read_text())
    except ValueError as e:
        raise SidecarError("{}: not valid JSON ({})".format(path, e)) from None
    if not isinstance(sidecar, dict) or sidecar.get("format") != SIDECAR_FORMAT:
        raise SidecarError("{}: not a BRD Edge TensorRT sidecar (format {!r})".format(
            path, sidecar.get("format") if isinstance(sidecar, dict) else None))
    missing = [k for k in REQUIRED if k not in sidecar]
    if missing:
        raise SidecarError("{}: sidecar lacks {}".format(path, ", ".join(missing)))
    metadata.check(sidecar["meta"], str(path))
    return sidecar


def _cc(value):
    """'8.7', (8, 7), [8, 7] or 87 -> '8.7'."""
    if isinstance(value, (tuple, list)):
        return "{}.{}".format(int(value[0]), int(value[1]))
    text = str(value).strip()
    if "." not in text and text.isdigit() and len(text) >= 2:
        return "{}.{}".format(text[:-1], text[-1])
    return text


def check_sidecar(sidecar, trt_version, compute_capability, source="engine"):
    """Raise SidecarError unless the engine was built with this TensorRT version for this GPU
    generation. TensorRT refuses plans from another version (a different patch release included,
    unless built version-compatible), and kernels are compiled per compute capability."""
    built_trt, built_cc = str(sidecar["tensorrt_version"]), _cc(sidecar["compute_capability"])
    here_trt, here_cc = str(trt_version), _cc(compute_capability)
    problems = []
    if built_trt != here_trt and not sidecar.get("version_compatible", False):
        problems.append("TensorRT {} (this machine has {})".format(built_trt, here_trt))
    if built_cc != here_cc and not sidecar.get("hardware_compatible", False):
        problems.append("compute capability {} / {} (this GPU is {})".format(built_cc, sidecar.get("gpu", "?"), here_cc))
    if problems:
        raise SidecarError("{}: engine was built for {}; rebuild it here with `python -m export.trt`".format(
            source, " and ".join(problems)))
    return sidecar
