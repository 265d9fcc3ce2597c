"""Reading and checking the metadata that every exported model carries (Python 3.8 compatible).

The same dict everywhere: a checkpoint's `meta`, one JSON string under META_KEY in ONNX
`metadata_props` and OpenVINO `rt_info`, and the `meta` field of a TensorRT engine's JSON sidecar.
mean/std are on the 0-255 RGB scale: the model input is (rgb - mean) / std, NCHW float32.
"""
import json

from .contract import ModelError, finite_json

META_KEY = "brd_edge_meta"
REQUIRED = ("arch", "num_classes", "classes", "palette", "mean", "std", "input_size")
INPUT_NAME = "image"
OUTPUT_LOGITS = "logits"
OUTPUT_LABELS = "labels"


class MetadataError(ModelError):
    """A model file's metadata is missing, not JSON, or inconsistent."""


def check(meta, source):
    """Validate a metadata dict; `source` (a file name) goes into every error."""
    if not isinstance(meta, dict):
        raise MetadataError("{}: metadata is not a JSON object".format(source))
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise MetadataError("{}: metadata lacks {}".format(source, ", ".join(missing)))
    n = meta["num_classes"]
    if len(meta["classes"]) != n or len(meta["palette"]) != n:
        raise MetadataError("{}: metadata has {} classes but {} names and {} colours".format(
            source, n, len(meta["classes"]), len(meta["palette"])))
    if len(meta["mean"]) != 3 or len(meta["std"]) != 3 or len(meta["input_size"]) != 2:
        raise MetadataError("{}: metadata mean/std need 3 values and input_size 2 ([H, W])".format(source))
    # ranges: a value out of them would fail deep inside an exporter or a backend, far from its cause
    if not _is_int(n) or n < 1:
        raise MetadataError("{}: metadata num_classes must be an integer >= 1, got {!r}".format(source, n))
    if not all(_is_int(v) and v >= 1 for v in meta["input_size"]):
        raise MetadataError("{}: metadata input_size must be [H, W] with H, W >= 1, got {}".format(
            source, meta["input_size"]))
    if not all(_is_number(v) and v > 0 for v in meta["std"]) or not all(_is_number(v) for v in meta["mean"]):
        raise MetadataError("{}: metadata mean must be 3 finite numbers and std 3 positive ones, got mean {} "
                            "std {}".format(source, meta["mean"], meta["std"]))
    return meta


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")


def loads(text, source):
    try:
        meta = json.loads(text)
    except ValueError as e:
        raise MetadataError("{}: metadata is not valid JSON ({})".format(source, e)) from None
    return check(meta, source)


def dumps(meta):
    """Strict JSON (a checkpoint's metrics may hold NaN: written as null with the reason beside it)."""
    return json.dumps(finite_json(meta), sort_keys=True, allow_nan=False)


def quantization_target(meta):
    """'ort' or 'trt' for a Q/DQ INT8 ONNX (export.quantize TARGETS), None for anything else. Files from
    before targets existed were symmetric int8, i.e. the TensorRT form."""
    export = meta.get("export") if isinstance(meta.get("export"), dict) else {}
    if export.get("precision") != "int8":
        return None
    quant = export.get("quantization") or {}
    if quant.get("format") != "QDQ":  # e.g. NNCF's OpenVINO IR
        return None
    return quant.get("target") or ("trt" if quant.get("symmetric") else "ort")
