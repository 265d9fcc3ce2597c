"""The two checkpoint formats of BRD Edge, and the names of a run folder's checkpoints.

- **student** (`save`/`load`): the model's weights and its `meta`, nothing else; what `export` reads. The
  format keeps its historical name; it holds any trained model, a teacher too.
- **training** (`save_training`/`load_training`): everything a resumed run needs (student,
  connectors, optimizer, scheduler, scaler, step, RNG states), for `distill.run` only.

A training run (`distill.run`) writes `model.pt` (the trained model, teacher or student), `best.pt` (the best
by val mIoU) and `last.pt` (the resumable state). Runs of earlier releases wrote `student.pt` for the model;
`model_file` still finds it (for one release).

Both are plain `torch.save` dicts of tensors and plain types, loaded with `weights_only=True`,
and written atomically (temp file in the same folder, then rename).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from runtime import contract, metadata
from runtime.contract import atomic_path, cause_line, check_folder, clean_stale

from . import __version__
from .models import build_model

# The files of a run folder. OLD_MODEL_FILE: the model's name before this release, still read.
MODEL_FILE, BEST_FILE, LAST_FILE = "model.pt", "best.pt", "last.pt"
OLD_MODEL_FILE = "student.pt"

STUDENT_FORMAT = "brd-edge/student"
TRAINING_FORMAT = "brd-edge/training"
FORMAT_VERSION = 1

# The metadata contract shared with export/ and runtime/ (docs/contracts.md, "Metadata").
META_KEYS = ("arch", "arch_kwargs", "num_classes", "classes", "palette", "mean", "std", "input_size",
             "dataset", "version")


class CheckpointError(contract.CheckpointError):
    """A file that is not the checkpoint the caller needs; the message names the file."""


class CheckpointWriteError(contract.OutputError):
    """A checkpoint that could not be written (disk full, read-only); the message names the file."""


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def make_meta(arch: str, arch_kwargs: dict, num_classes: int, classes: list[str], palette: list[list[int]],
              mean: list[float], std: list[float], input_size: list[int], dataset: str,
              config: dict | None = None, metrics: dict | None = None) -> dict:
    """Build the metadata dict. mean/std are on the 0-255 RGB scale: x = (rgb - mean) / std."""
    if len(classes) != num_classes or len(palette) != num_classes:
        raise ValueError(f"meta: {num_classes} classes but {len(classes)} names and {len(palette)} colours")
    return {
        "arch": arch, "arch_kwargs": dict(arch_kwargs), "num_classes": int(num_classes),
        "classes": [str(c) for c in classes], "palette": [[int(v) for v in c] for c in palette],
        "mean": [float(v) for v in mean], "std": [float(v) for v in std],
        "input_size": [int(v) for v in input_size], "dataset": dataset, "version": __version__,
        "git_commit": git_commit(), "config": config or {}, "metrics": metrics or {},
    }


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """Write through a temporary file (its name carries the pid, so a later run can remove a killed
    run's leftover: `clean_stale_temps`) and rename it into place; the old file stays intact on failure."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, suffix="") as tmp:
            with open(tmp, "wb") as f:  # a file object: torch reports a full disk through it as an OSError
                torch.save(obj, f)
    except BaseException as e:
        # torch.save reports a full disk as a RuntimeError of its zip writer raised while handling the OSError
        os_error = _os_error_in(e)
        if os_error is not None or (isinstance(e, RuntimeError) and "writ" in str(e)):
            free = shutil.disk_usage(path.parent).free / 1e6 if path.parent.is_dir() else float("nan")
            reason = (os_error.strerror if os_error is not None else None) or str(e).splitlines()[0][:120]
            raise CheckpointWriteError(f"{path}: cannot write the checkpoint ({reason}; {free:.1f} MB free there)") from e
        raise


def _os_error_in(e: BaseException | None) -> OSError | None:
    seen = 0
    while e is not None and seen < 10:
        if isinstance(e, OSError):
            return e
        e, seen = e.__cause__ or e.__context__, seen + 1
    return None


def clean_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Remove temporary checkpoint files of killed runs in `folder` (the current run's are left alone)."""
    return clean_stale(folder, ".*.pid*.tmp*")


def model_file(path: str | os.PathLike) -> Path:
    """`path`; or, if it does not exist and names a run folder's model (model.pt, or student.pt of earlier
    releases), the same folder's model under the other name: a run of an earlier release named by a new
    config or command, or an old config naming a new run's model, load with no error."""
    path = Path(path)
    if not path.exists() and path.name in (MODEL_FILE, OLD_MODEL_FILE):
        other = path.with_name(OLD_MODEL_FILE if path.name == MODEL_FILE else MODEL_FILE)
        if other.is_file():
            return other
    return path


def run_model(run_dir: str | os.PathLike) -> Path:
    """The trained model of a run folder: model.pt (student.pt in a run of an earlier release)."""
    return model_file(Path(run_dir) / MODEL_FILE)


def _read(path: str | os.PathLike, expected: str) -> dict:
    path = model_file(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, pickle of foreign objects, random bytes...
        raise CheckpointError(f"{path}: not a readable BRD Edge checkpoint ({_load_error(e)})") from None
    fmt = obj.get("format") if isinstance(obj, dict) else None
    if fmt != expected:
        hint = {TRAINING_FORMAT: " (a training checkpoint: use the run folder's model.pt or best.pt)",
                STUDENT_FORMAT: " (a student checkpoint, not a resumable training state)"}.get(fmt, "")
        raise CheckpointError(f"{path}: expected a {expected!r} checkpoint, found {fmt or 'an unknown file'}{hint}")
    if obj.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: format version {obj['format_version']} is newer than this BRD Edge ({FORMAT_VERSION})")
    if expected == STUDENT_FORMAT:  # its metadata is what export and the runtime build on: ranges checked here
        try:
            metadata.check(obj.get("meta"), str(path))
        except metadata.MetadataError as e:
            raise CheckpointError(str(e).replace(": metadata ", ": meta ", 1)) from None
    return obj


def _load_error(e: Exception) -> str:
    """torch.load's failure, as the cause only: for a file with pickled objects other than tensors and plain
    types (weights_only=True refuses them: such a file can run code when unpickled) torch's message goes on
    with advice to retry with weights_only=False, which is not advice to give about an untrusted file."""
    text = str(e)
    if "weights_only" in text or "Weights only load failed" in text:
        m = re.search(r"unsupported GLOBAL ([\w.]+)|Unsupported global: GLOBAL ([\w.]+)", text, re.I)
        what = f"it references {m.group(1) or m.group(2)}" if m else "it holds objects other than tensors and plain types"
        return f"{what}; refused, since unpickling it could run code (a BRD Edge checkpoint holds tensors only)"
    return f"{type(e).__name__}: {cause_line(e)}"


def save(path: str | os.PathLike, model: nn.Module, meta: dict) -> None:
    """Write a student checkpoint: weights + meta, nothing else."""
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise ValueError(f"meta for {path} lacks {', '.join(missing)}")
    model = getattr(model, "module", model)  # DDP
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_save({"format": STUDENT_FORMAT, "format_version": FORMAT_VERSION, "meta": meta, "state_dict": state}, path)


def load(path: str | os.PathLike, num_classes: int | None = None) -> tuple[nn.Module, dict]:
    """Rebuild the model from the checkpoint's meta alone and load its weights (eval mode)."""
    obj = _read(path, STUDENT_FORMAT)
    meta = obj["meta"]
    if num_classes is not None and meta["num_classes"] != num_classes:
        raise CheckpointError(f"{path}: model has {meta['num_classes']} classes, expected {num_classes}")
    try:
        model = build_model(meta["arch"], meta["num_classes"], **meta["arch_kwargs"])
        model.load_state_dict(obj["state_dict"])
    except (KeyError, RuntimeError) as e:
        raise CheckpointError(f"{path}: weights do not fit {meta.get('arch')!r}: {str(e)[:300]}") from e
    return model.eval(), meta


def load_meta(path: str | os.PathLike) -> dict:
    return _read(path, STUDENT_FORMAT)["meta"]


def save_training(path: str | os.PathLike, state: dict) -> None:
    atomic_save({"format": TRAINING_FORMAT, "format_version": FORMAT_VERSION, **state}, path)


def load_training(path: str | os.PathLike) -> dict:
    return _read(path, TRAINING_FORMAT)


def checkpoint_bytes(modules) -> int:
    """The bytes of the tensors of `modules` as a checkpoint holds them."""
    return sum(t.numel() * t.element_size() for m in modules if m is not None for t in m.state_dict().values()
               if torch.is_tensor(t))


def check_room(out_dir: Path, student: nn.Module, connectors: nn.Module | None) -> None:
    """Before the work: room for twice what the run folder will hold (last.pt: weights, connectors and one
    momentum buffer per parameter; best.pt and model.pt: the student), since each is rewritten through a
    temporary copy."""
    weights = checkpoint_bytes([student])
    last = 2 * checkpoint_bytes([student, connectors])
    check_folder(out_dir, 2 * (last + 2 * weights), "the run folder (out_dir)")


def prepare_run_folder(out_dir: Path) -> None:
    """Before any work: the run folder must be writable (root ignores permission bits: probe it); half-written
    checkpoints of killed runs are removed."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".probe.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise CheckpointWriteError(f"{out_dir}: the run folder (out_dir) cannot be written "
                                   f"({e.strerror or e})") from None
    clean_stale_temps(out_dir)
