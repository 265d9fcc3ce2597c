"""What every exporter shares: the one-line CLI error, atomic outputs, reading the metadata of
an ONNX file, and turning images into model input exactly as the runtime does.

Python 3.8 compatible and torch-free (export.trt imports it on JetPack).
"""
import contextlib
import errno
import functools
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from runtime import metadata
from runtime.contract import (ExportError, OutputError, UserError, atomic_path, cause_line, check_folder, clean_stale,
                              command, finite_float, pid_tag, write_json_file)
from runtime.formats import default_output, format_for, lookup, require

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


@contextlib.contextmanager
def work_dir():
    """A temporary work folder whose name carries this process's pid (so a later run can tell a
    killed run's leftover from a live one's); removed when the block ends, however it ends."""
    path = tempfile.mkdtemp(prefix="brd-export-{}-".format(pid_tag()))
    try:
        yield path
    finally:
        try:
            shutil.rmtree(path, ignore_errors=True)
        except KeyboardInterrupt:  # the first Ctrl-C/SIGTERM raised half-way (TemporaryDirectory stops there);
            shutil.rmtree(path, ignore_errors=True)  # a later one is only recorded (Signals): this pass finishes
            raise


def check_writable(out, need_bytes=0):
    """Fail before any work if `out` cannot be written (missing permission, a folder in the way, less
    free space than `need_bytes` plus a margin)."""
    out = Path(out)
    if out.is_dir():
        raise ExportError("{}: output path is a directory".format(out))
    parent = out.parent if str(out.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ExportError("{}: cannot create output folder ({})".format(out, e.strerror or e)) from None
    try:
        check_folder(parent, need_bytes, "output folder", out)
    except OutputError as e:
        raise ExportError(str(e)) from None
    # temporary files and unchecked candidates of killed exports (their pid is in the name)
    clean_stale(parent, ".*.pid*.tmp*")
    clean_stale(parent, ".*.pid*.candidate*")
    clean_stale_records(parent)  # records of models that are not there (a killed run's, an older version's)
    return out


OUTPUT_KINDS = {"onnx": "an ONNX model path ending in .onnx", "openvino": "the IR's .xml path (its weights go beside "
                "it as .bin)", "tensorrt": "an engine path ending in .engine"}


def output_path(given, source, name, precision):
    """-o/--output (`given`), else the default next to `source`. A path without the format's suffix is refused
    here, naming the user's path: checked later, the error named the hidden candidate it is staged under."""
    if not given:
        return default_output(source, name, precision)
    out = Path(given)
    suffix = lookup(name, "fp32").suffix
    if out.suffix != suffix:
        raise ExportError("{}: -o/--output expected {}, e.g. {}".format(out, OUTPUT_KINDS[name],
                                                                        out.with_suffix(suffix)))
    return out


# The compute precision parity and the accuracy gate run an OpenVINO IR at, recorded in its metadata
# (export.inference_precision) so that the runtime compiles it at the same one by default
# (runtime/backends/openvino.py): a CPU with AVX512-BF16 would otherwise run bf16, which nobody checked.
CHECKED_PRECISION = "f32"
EXPORT_SPACE_FACTOR = 3  # the candidate, the model it may replace, a work copy: checked up front


def space_needed(source):
    """Free space an export from `source` needs next to its output, checked before the work: the
    source's size (an FP32 model of the same weights, about what any export writes) times 3."""
    try:
        return EXPORT_SPACE_FACTOR * Path(source).stat().st_size
    except OSError:
        return 0


# How third-party writers report a full disk without an errno: OpenVINO's C++ streams, protobuf, zip writers.
_IO_FAILURES = ("basic_ios", "iostream error", "no space left", "errno 28", "failed to write", "cannot write",
                "file write failed", "unexpected pos")
_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS)


@contextlib.contextmanager
def writing(out, what="the model"):
    """Around the writing of `out`: a full (or read-only) disk, reported as an OSError or as a third
    party's RuntimeError that hides the errno (OpenVINO: `basic_ios::clear: iostream error`), becomes one
    OutputError naming the path and the free space there. Anything else propagates unchanged."""
    try:
        yield
    except (OSError, RuntimeError) as e:
        if isinstance(e, UserError):
            raise
        if isinstance(e, OSError):
            if e.errno not in _DISK_ERRNOS:
                raise
            reason = e.strerror or str(e)
        else:
            text = str(e).strip()
            if not any(marker in text.lower() for marker in _IO_FAILURES):
                raise
            reason = "a failed write, {}: {}".format(type(e).__name__, cause_line(text))
        folder = Path(out).parent if str(Path(out).parent) else Path(".")
        try:
            free = "; {:.1f} MB free there".format(shutil.disk_usage(str(folder)).free / 1e6)
        except OSError:
            free = ""
        raise OutputError("{}: cannot write {} ({}{})".format(out, what, reason, free)) from None


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


# The records that describe a model file, next to it (<model>.parity.json, <model>.gate.json). They are written
# next to the file they checked (a candidate's under its hidden name) and move with it: published together
# with the model, kept with a *.FAILED.* model, deleted with a deleted one.
RECORDS = (".parity.json", ".gate.json")


def records_of(path):
    return [sibling(path, s) for s in RECORDS]


def sha256_file(path):
    h = hashlib.sha256()
    with open(str(path), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_hashes(path):
    """What a record says about the bytes it describes: the model file's sha256, and its companions'
    (keyed by their name after the model's stem: ".bin", ".engine.json")."""
    path = Path(path)
    out = {"sha256": sha256_file(path)}
    comp = {c.name[len(path.stem):]: sha256_file(c) for c in companions(path) if c.is_file()}
    if comp:
        out["companions_sha256"] = comp
    return out


def clean_stale_records(folder):
    """Records whose model file does not exist (left by a killed or older export) are stale: removed.
    Hidden ones (a candidate's) carry a pid and go with clean_stale. Returns the removed paths."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for suffix in RECORDS:
        for rec in folder.glob("*" + suffix):
            if rec.name.startswith(".") or not rec.is_file():
                continue
            if not Path(str(rec)[:-len(suffix)]).exists():
                try:
                    rec.unlink()
                    removed.append(rec)
                except OSError:
                    pass
    return removed


def candidate_path(out):
    """Where a model is written before its checks: a hidden name next to `out` (same disk, same
    suffix), so that a failed check never leaves a model under the name the runtime would load."""
    out = Path(out)
    return out.with_name(".{}.{}.candidate{}".format(out.stem, pid_tag(), out.suffix))


def failed_path(out):
    out = Path(out)
    return out.with_name("{}.FAILED{}".format(out.stem, out.suffix))


def _remove(paths):
    for f in paths:
        if f.exists():
            f.unlink()


def publish(candidate, out, passed, keep_failed=False, why="its checks", gated=False):
    """Move a checked `candidate`, its companions and its records (parity, gate) to `out`; a failed one
    goes with its records to <name>.FAILED<suffix> with --keep-failed, else all of it is deleted. An
    existing model under `out` and its records are touched only by a candidate that passed. Returns the
    path the model now has (None if deleted) and prints one line for a failure.

    `gated`: an INT8 candidate judged by an accuracy gate. Before it moves, the gate's verdict is written
    into its metadata (seal_gate: passed true/false, naming the record it is kept with; passed false when
    the gate never ran because `why` failed first), and the records' hashes are those of the bytes that
    are kept (only the metadata changed since the checks).

    Order, so that a record on disk never describes another file than the one beside it (even after
    kill -9 between two steps): the target's old records go first, then the companions and the model
    (last: it appears only when complete), then the new records."""
    candidate, out = Path(candidate), Path(out)
    target = out if passed else failed_path(out) if keep_failed else None
    cand_records = [(r, s) for r, s in zip(records_of(candidate), RECORDS) if r.exists()]
    if target is None:
        _remove([candidate] + companions(candidate) + [r for r, _ in cand_records])
    else:
        hashes = None
        if gated:
            gate_rec = sibling(candidate, RECORDS[1])
            seal_gate(candidate, target, json.loads(gate_rec.read_text()) if gate_rec.exists() else None,
                      not_run="{} failed first".format(why))
            hashes = file_hashes(candidate)
        for rec, _ in cand_records:  # the record names the file it describes under its final name
            report = json.loads(rec.read_text())
            report["file"] = target.name
            report.update(hashes or {})
            write_json(rec, report)
        _remove(records_of(target))
        pairs = list(zip([candidate] + companions(candidate), [target] + companions(target)))
        for src, dst in reversed(pairs):
            if src.exists():
                os.replace(str(src), str(dst))
        for rec, suffix in cand_records:
            os.replace(str(rec), str(sibling(target, suffix)))
    if passed:  # a failed attempt kept earlier is stale now
        _remove(records_of(failed_path(out)) + [failed_path(out)] + companions(failed_path(out)))
    else:
        older = " (the older {} there is left untouched)".format(out.name) if out.exists() else ""
        kept = "kept as {} with its records".format(target.name) if target else \
            "deleted (--keep-failed keeps it as {})".format(failed_path(out).name)
        print("error: {} failed {}: not written under its name{}; {}".format(out.name, why, older, kept),
              file=sys.stderr)
    return target


@contextlib.contextmanager
def staged(out):
    """Yield the candidate path for `out`; whatever is left under it when the block ends (an
    exception, Ctrl-C, a check that failed and was not published), records included, is removed."""
    cand = candidate_path(out)
    try:
        yield cand
    except OutputError as e:  # a write that failed names the output the user asked for, not the hidden name
        text = str(e)
        if not text.startswith(str(cand)):
            raise
        raise OutputError(str(out) + text[len(str(cand)):]) from None
    finally:
        _remove([cand] + companions(cand) + records_of(cand))


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


def gate_record(args, out=None):
    """What an INT8 candidate's metadata says about its gate before the gate has run (export.gate): the
    limits it is judged by and `passed: null` (not judged yet); None with --no-gate (the runtime then warns
    on load). The verdict is written after the gate, under the name the model is kept as (seal_gate, from
    publish)."""
    if getattr(args, "no_gate", False):
        return None
    return {"max_drop": args.max_drop, "max_boundary_drop": args.max_boundary_drop, "split": "val", "passed": None}


# what the metadata's gate section copies from the gate's report
VERDICT_KEYS = ("passed", "max_drop", "max_boundary_drop", "drop", "boundary_f1_drop", "fp32_miou", "int8_miou",
                "images")


def seal_gate(path, final_name, report=None, not_run=None):
    """Write the gate's verdict into the metadata of the model file at `path`, after the gate: export.gate
    gets `passed` and the numbers of `report` (the gate's record, <model>.gate.json) and names the record
    the model is kept with (`final_name` + .gate.json); without a report (the gate never ran: `not_run`
    says why) it says passed: false. Only the metadata changes: an IR's weights (.bin) are checked to be
    byte-identical. Returns the gate section written."""
    meta = model_meta(path)
    export = meta.setdefault("export", {})
    gate = dict(export.get("gate") or {})
    if report is not None:
        gate.update({k: report[k] for k in VERDICT_KEYS if k in report})
        gate.update(passed=bool(report["passed"]), report=Path(str(final_name) + RECORDS[1]).name)
    else:
        gate.update(passed=False, report=None, not_run=not_run or "the gate did not run")
    export["gate"] = gate
    set_model_meta(path, meta)
    return gate


def set_model_meta(path, meta):
    """Replace the metadata of an exported model file in place (atomically): ONNX metadata_props, IR
    rt_info, engine sidecar. The graph and weights are left as they are."""
    path = Path(path)
    name = format_for(path).name
    if name == "tensorrt":
        from runtime.trt_sidecar import read_sidecar, sidecar_path

        sidecar = read_sidecar(path)
        sidecar["meta"] = meta
        write_json(sidecar_path(path), sidecar)
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
