"""The metadata inside an exported model file, read and rewritten in place: ONNX `metadata_props`, an
OpenVINO IR's `rt_info`, a TensorRT engine's JSON sidecar (what the dict holds: runtime.metadata).

Python 3.8 compatible and torch-free (export.trt imports it on JetPack).
"""
from pathlib import Path

from runtime import metadata
from runtime.contract import ExportError, atomic_path, cause_line, sha256_file, write_json_file
from runtime.formats import format_for, require

from .work import writing

# The compute precision parity and the accuracy gate run an OpenVINO IR at, recorded in its metadata
# (export.inference_precision) so that the runtime compiles it at the same one by default
# (runtime/backends/openvino.py): a CPU with AVX512-BF16 would otherwise run bf16, which nobody checked.
# f32 by default; export.openvino --compute bf16 checks and records bf16 instead (COMPUTE_PRECISIONS), which the
# runtime runs on CPUs with native bf16 and replaces by f32 elsewhere.
CHECKED_PRECISION = "f32"
COMPUTE_PRECISIONS = ("f32", "bf16")


def onnx_meta(path):
    """The metadata dict stored in an ONNX file's metadata_props (ExportError if absent)."""
    onnx = require("onnx", "export", "reading ONNX models")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise ExportError("{}: not a readable ONNX model ({})".format(path, cause_line(e))) from None
    props = {p.key: p.value for p in model.metadata_props}
    if metadata.META_KEY not in props:
        raise ExportError("{}: no '{}' metadata; export it with `python -m export.onnx student.pt`".format(
            path, metadata.META_KEY))
    return metadata.loads(props[metadata.META_KEY], str(path))


def openvino_meta(xml):
    """The metadata dict stored in an OpenVINO IR's rt_info (ExportError if absent)."""
    ov = require("openvino", "openvino", "reading OpenVINO models")
    try:
        model = ov.Core().read_model(str(xml))
    except Exception as e:  # OpenVINO's RuntimeError/GeneralFailure for a missing .bin or broken XML
        raise ExportError("{}: OpenVINO cannot read it ({})".format(xml, cause_line(e))) from None
    if not model.has_rt_info([metadata.META_KEY]):
        raise ExportError("{}: no '{}' in rt_info; export it with `python -m export.openvino`".format(
            xml, metadata.META_KEY))
    return metadata.loads(model.get_rt_info([metadata.META_KEY]).astype(str), str(xml))


def model_meta(path):
    """The metadata of any exported model file: ONNX metadata_props, IR rt_info, engine sidecar."""
    name = format_for(path).name
    if name == "openvino":
        return openvino_meta(path)
    if name == "tensorrt":
        from runtime.trt_sidecar import read_sidecar

        return read_sidecar(path)["meta"]
    return onnx_meta(path)


def set_onnx_meta(model, meta):
    """Store `meta` as one JSON string under META_KEY, plus a few readable single-value props."""
    props = {metadata.META_KEY: metadata.dumps(meta), "brd_edge_arch": meta["arch"],
             "brd_edge_classes": ",".join(meta["classes"]),
             "brd_edge_input_size": "x".join(str(v) for v in meta["input_size"])}
    keep = [p for p in model.metadata_props if p.key not in props]
    del model.metadata_props[:]
    for p in keep:
        model.metadata_props.add(key=p.key, value=p.value)
    for k, v in props.items():
        model.metadata_props.add(key=k, value=v)
    return model


def set_model_meta(path, meta):
    """Replace the metadata of an exported model file in place (atomically): ONNX metadata_props, IR
    rt_info, engine sidecar. The graph and weights are left as they are."""
    path = Path(path)
    name = format_for(path).name
    if name == "tensorrt":
        from runtime.trt_sidecar import read_sidecar, sidecar_path

        sidecar = read_sidecar(path)
        sidecar["meta"] = meta
        write_json_file(sidecar_path(path), sidecar, sort_keys=True)
    elif name == "openvino":
        _set_ir_meta(path, meta)
    else:
        onnx = require("onnx", "export", "writing ONNX metadata")
        model = onnx.load(str(path))
        set_onnx_meta(model, meta)
        with writing(path, "the model's metadata"), atomic_path(path) as tmp:
            onnx.save(model, str(tmp))


def _set_ir_meta(xml, meta):
    """An IR's rt_info rewritten: OpenVINO reads and saves it again (the same graph and weights), to
    temporary names next to it, then .xml replaces .xml; the .bin must come out byte-identical."""
    ov = require("openvino", "openvino", "writing OpenVINO metadata")
    xml, bin_path = Path(xml), Path(xml).with_suffix(".bin")
    model = ov.Core().read_model(str(xml))
    model.set_rt_info(metadata.dumps(meta), [metadata.META_KEY])
    with writing(xml, "the model's metadata"), atomic_path(xml) as tmp:
        tmp_bin = Path(tmp).with_suffix(".bin")
        try:
            ov.save_model(model, str(tmp), compress_to_fp16=False)
            if sha256_file(tmp_bin) != sha256_file(bin_path):
                raise ExportError("{}: OpenVINO wrote other weights when only the metadata was to change; the "
                                  "model is left as it was".format(xml))
        finally:
            if tmp_bin.exists():
                tmp_bin.unlink()
