"""Published means checked: a model is written under a hidden candidate name, checked there, and moved to
its final name together with the records that describe it (parity, gate), or kept as *.FAILED, or deleted.
Also the output folder made ready before any work (writable, room enough, killed runs' leftovers removed).

Python 3.8 compatible and torch-free (export.trt imports it on JetPack).
"""
import contextlib
import json
import os
import sys
from pathlib import Path

from runtime.contract import (ExportError, OutputError, check_folder, clean_stale, make_folder, pid_tag, sha256_file,
                              write_json_file)
from runtime.formats import format_for

from .gate import GATE_RECORD, seal_gate

# The records that describe a model file, next to it (<model>.parity.json, <model>.gate.json). They are written
# next to the file they checked (a candidate's under its hidden name) and move with it: published together
# with the model, kept with a *.FAILED.* model, deleted with a deleted one.
PARITY_RECORD = ".parity.json"
RECORDS = (PARITY_RECORD, GATE_RECORD)
EXPORT_SPACE_FACTOR = 3  # the candidate, the model it may replace, a work copy: checked up front


def space_needed(source):
    """Free space an export from `source` needs next to its output, checked before the work: the
    source's size (an FP32 model of the same weights, about what any export writes) times 3."""
    try:
        return EXPORT_SPACE_FACTOR * Path(source).stat().st_size
    except OSError:
        return 0


def check_writable(out, need_bytes=0):
    """Fail before any work if `out` cannot be written (missing permission, a folder in the way, less
    free space than `need_bytes` plus a margin)."""
    out = Path(out)
    if out.is_dir():
        raise ExportError("{}: output path is a directory".format(out))
    parent = out.parent if str(out.parent) else Path(".")
    try:
        make_folder(parent)  # removed again if the export fails while it is empty
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


def write_json(path, obj):
    """A side file (parity, gate, sidecar): sorted keys, written atomically."""
    return write_json_file(path, obj, sort_keys=True)


def sibling(path, suffix):
    """student.onnx + '.parity.json' -> student.onnx.parity.json (the convention for side files)."""
    return Path(str(path) + suffix)


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


def records_of(path):
    return [sibling(path, s) for s in RECORDS]


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
            gate_rec = sibling(candidate, GATE_RECORD)
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
