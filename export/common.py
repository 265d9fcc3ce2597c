"""What every exporter shares: the one-line CLI error, atomic outputs, reading the metadata of
an ONNX file, and turning images into model input exactly as the runtime does.

Python 3.8 compatible and torch-free (export.trt imports it on JetPack).
"""
import contextlib
import functools
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from runtime import metadata
from runtime.cli import OutputError, clean_stale, finite_float, pid_tag, write_json_file
from runtime.contract import ExportError, command
from runtime.formats import format_for, lookup, require

MIN_OPSET, MAX_OPSET = 13, 20  # 13: per-channel Q/DQ (INT8); 20: the TorchScript exporter's last


def exporter(main):
    """An exporter's entry point: the CLI contract (runtime.contract.command; SIGTERM unwinds like
    Ctrl-C, so temporary files and folders go), after removing killed runs' work folders."""
    wrapped = command(main, interrupted="nothing written under the output name")

    @functools.wraps(main)
    def run(argv=None):
        for pattern in ("brd-export-*", "brd-quant-*", "brd-trt-*"):  # the last two: names of older versions
            clean_stale(tempfile.gettempdir(), pattern, max_age_without_pid=24 * 3600)
        return wrapped(argv)
    return run


def work_dir():
    """A temporary work folder whose name carries this process's pid (so a later run can tell a
    killed run's leftover from a live one's); removed when the block ends, however it ends."""
    return tempfile.TemporaryDirectory(prefix="brd-export-{}-".format(pid_tag()))


def check_writable(out):
    """Fail before any work if `out` cannot be written (missing permission, a folder in the way)."""
    out = Path(out)
    if out.is_dir():
        raise ExportError("{}: output path is a directory".format(out))
    parent = out.parent if str(out.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ExportError("{}: cannot create output folder ({})".format(out, e.strerror or e)) from None
    from runtime.cli import check_folder

    try:
        check_folder(parent, 0, "output folder", out)
    except OutputError as e:
        raise ExportError(str(e)) from None
    # temporary files and unchecked candidates of killed exports (their pid is in the name)
    clean_stale(parent, ".*.pid*.tmp*")
    clean_stale(parent, ".*.pid*.candidate*")
    return out


def companions(path):
    """Files that belong to a model file and move with it: an IR's .bin, an engine's JSON sidecar."""
    path = Path(path)
    name = format_for(path).name
    if name == "openvino":
        return [path.with_suffix(".bin")]
    if name == "tensorrt":
        from runtime.trt_sidecar import sidecar_path

        return [sidecar_path(path)]
    return []


def candidate_path(out):
    """Where a model is written before its checks: a hidden name next to `out` (same disk, same
    suffix), so that a failed check never leaves a model under the name the runtime would load."""
    out = Path(out)
    return out.with_name(".{}.{}.candidate{}".format(out.stem, pid_tag(), out.suffix))


def failed_path(out):
    out = Path(out)
    return out.with_name("{}.FAILED{}".format(out.stem, out.suffix))


def publish(candidate, out, passed, keep_failed=False, why="its checks"):
    """Move a checked `candidate` (and its companions) to `out`; a failed one is deleted, or kept as
    <name>.FAILED<suffix> with --keep-failed. Returns the path it now has (None if deleted) and
    prints one line for a failure."""
    candidate, out = Path(candidate), Path(out)
    target = out if passed else failed_path(out) if keep_failed else None
    pairs = list(zip([candidate] + companions(candidate), [] if target is None else [target] + companions(target)))
    if target is None:
        for f in [candidate] + companions(candidate):
            if f.exists():
                f.unlink()
    else:
        for src, dst in reversed(pairs):  # the model file last: it appears only when complete
            if src.exists():
                os.replace(str(src), str(dst))
    if passed:  # a failed attempt kept earlier is stale now
        for f in [failed_path(out)] + companions(failed_path(out)):
            if f.exists():
                f.unlink()
    else:
        older = " (the older {} there is left untouched)".format(out.name) if out.exists() else ""
        kept = "kept as {}".format(target.name) if target else "deleted (--keep-failed keeps it as {})".format(
            failed_path(out).name)
        print("error: {} failed {}: not written under its name{}; {}".format(out.name, why, older, kept),
              file=sys.stderr)
    return target


@contextlib.contextmanager
def staged(out):
    """Yield the candidate path for `out`; whatever is left under it when the block ends (an
    exception, Ctrl-C, a check that failed and was not published) is removed."""
    cand = candidate_path(out)
    try:
        yield cand
    finally:
        for f in [cand] + companions(cand):
            if f.exists():
                f.unlink()


def record_file(report_path, kept):
    """Add where the checked model went to its JSON report (None: deleted after a failed check)."""
    path = Path(report_path)
    if path.is_file():
        report = json.loads(path.read_text())
        report["file"] = kept.name if kept else None
        write_json(path, report)


def write_json(path, obj):
    """A side file (parity, gate, sidecar): sorted keys, written atomically."""
    return write_json_file(path, obj, sort_keys=True)


def sibling(path, suffix):
    """student.onnx + '.parity.json' -> student.onnx.parity.json (the convention for side files)."""
    return Path(str(path) + suffix)


def onnx_meta(path):
    """The metadata dict stored in an ONNX file's metadata_props (ExportError if absent)."""
    onnx = require("onnx", "export", "reading ONNX models")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise ExportError("{}: not a readable ONNX model ({})".format(path, str(e).splitlines()[0][:200])) from None
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
        text = str(e).strip()
        raise ExportError("{}: OpenVINO cannot read it ({})".format(
            xml, text.splitlines()[0][:200] if text else type(e).__name__)) from None
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


def preprocess(images, meta):
    """uint8 RGB HxWx3 images -> float32 NCHW at meta input_size: the runtime's own Preprocessor, so
    calibration and parity see exactly what a deployed model sees."""
    from runtime.preprocess import Preprocessor

    prep = Preprocessor(meta, meta["input_size"])
    if not len(images):
        return np.empty((0, 3, *meta["input_size"]), np.float32)
    return np.concatenate([prep(np.ascontiguousarray(img[..., ::-1]))[0] for img in images])


def synthetic_images(n, size, seed=0):
    """Deterministic street-like test images: smooth colour regions with edges, not white noise
    (white noise makes every logit near-tied and argmax agreement meaningless)."""
    import cv2

    rng = np.random.default_rng(seed)
    h, w = size
    images = []
    for _ in range(n):
        coarse = rng.integers(0, 256, (max(2, h // 16), max(2, w // 16), 3), dtype=np.uint8)
        img = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_NEAREST)
        img = cv2.GaussianBlur(img, (0, 0), 1.5)
        noise = rng.normal(0, 6, img.shape)
        images.append(np.clip(img + noise, 0, 255).astype(np.uint8))
    return images


def is_checkpoint(path):
    return Path(path).suffix.lower() in (".pt", ".pth", ".ckpt")


def source_kind(path):
    """'checkpoint' or 'onnx' from the suffix; ExportError for anything else or a missing file."""
    path = Path(path)
    if not path.is_file():
        raise ExportError("{}: no such file".format(path))
    if is_checkpoint(path):
        return "checkpoint"
    if path.suffix.lower() == lookup("onnx", "fp32").suffix:  # any ONNX: its metadata says what it holds
        return "onnx"
    raise ExportError("{}: expected a student checkpoint (.pt) or an ONNX model (.onnx)".format(path))


# -- INT8 is published only after its accuracy gate ----------------------------------------------
NO_GATE = ("INT8 is published only after its accuracy gate on labelled validation data: pass --data-root DIR "
           "(the dataset the model was trained on; its val split is scored, --dataset NAME if the model does not "
           "say), or --no-gate to publish it unchecked")


def add_gate_args(p):
    """The INT8 gate's flags, the same in export.quantize, export.openvino and export.trt."""
    p.add_argument("--max-drop", type=finite_float, default=1.0,
                   help="accuracy gate: max mIoU drop in points (default 1.0; negative: INT8 must beat FP32 by that much)")
    p.add_argument("--max-boundary-drop", type=finite_float, default=1.0,
                   help="accuracy gate: max boundary-F1 drop in points (default 1.0)")
    p.add_argument("--no-gate", action="store_true",
                   help="publish INT8 without the accuracy gate (no labelled data): its metadata records "
                        "\"gate\": null and the runtime warns when it loads it")


def require_gate(args):
    """Before any work: INT8 needs labelled validation data (--data-root) unless --no-gate says otherwise."""
    if not getattr(args, "no_gate", False) and not getattr(args, "data_root", None):
        raise ExportError(NO_GATE)


def gate_record(args, out):
    """What an INT8 model's metadata says about its gate (export.gate): the limits it was published under
    and the report next to it, or None with --no-gate (the runtime then warns on load)."""
    if getattr(args, "no_gate", False):
        return None
    return {"max_drop": args.max_drop, "max_boundary_drop": args.max_boundary_drop, "split": "val",
            "report": Path(str(out) + ".gate.json").name}
