"""The distillation-gain ledger: one JSON line per finished run (final or tuning) with the fingerprint of what
it learned from and every number the report needs. It lives in the report folder and is committed as runs
land, so a machine whose run folders are gone (a fresh one) takes a finished run's numbers from it instead
of training it again; a run whose config or teacher changed has another fingerprint and trains anew.

Several writers (two benchmarks on two cores) share a ledger: each record re-reads the file and rewrites it
atomically while it holds an exclusive lock (fcntl.flock) on the ledger's folder, so no entry is lost.

The fingerprint counts the teacher by its bytes, not by the path the config names it with: the same teacher
named from another folder (or copied elsewhere) is the same run. Rows recorded before this (their fingerprint
also hashed the teacher's path, as written from the repository's root) are still recognised: see
`legacy_fingerprint`.

Where a dataset's report gives several splits (CamVid: val and the held-out 0001TP drive), each final run's
scores on each split are cached in its entry (`scores`: {split: {"eval": what they were scored with, metrics}})
as they are made, and the teacher's in one `teacher` entry keyed by the file's bytes: a rerun, or a machine
without the run folders, does not score them again. A row recorded before that has no `scores`: the benchmark
fills it from the run's model.pt where it has it."""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
from pathlib import Path

from runtime.contract import atomic_path, sha256_file

from .runs import NOT_LEARNED, flatten_config

# where the data lives, not what it is: a ledger row stays valid on a machine with another data path
NOT_IDENTITY = NOT_LEARNED | {"data.root"}
KEYS = ("mIoU", "aAcc", "boundary_f1", "boundary_iou", "split_rate", "miss_rate", "spurious_rate", "IoU",
        "boundary_f1_per_class")


REPO = Path(__file__).resolve().parents[2]  # where the committed ledgers' rows were recorded from
DISTILLED_BY = ("kd", "cwd", "skd", "boundary", "relation")


def _learned(config: dict) -> tuple[dict, str | None]:
    """The learned settings of a resolved config that differ from today's defaults, without the teacher's path
    (and with the hash of `model.init_from`, not its path); and that path when a distillation term uses the
    teacher (else None)."""
    from distill.config import Config

    defaults = flatten_config(Config().to_dict())
    flat = {k: v for k, v in flatten_config(config).items()
            if k not in NOT_IDENTITY and (k not in defaults or defaults[k] != v)}
    teacher = flat.pop("teacher.ckpt", None)
    flat.pop("teacher.config", None)
    init = flat.pop("model.init_from", None)  # the model a run starts from counts by its bytes, as the teacher
    if init:
        flat["model.init_from.sha256"] = _teacher_sha256(init)
    distilled = any(flat.get(f"distill.{t}.weight") for t in DISTILLED_BY)
    return flat, (teacher if teacher and distilled else None)


def eval_key(cfg) -> str:
    """What a score depends on besides the weights: the dataset, its val kwargs and the eval settings
    `score_checkpoint` scores with (a score over eval.max_images=2 images is not the whole split's)."""
    e = cfg.eval
    return _digest({"dataset": cfg.data.dataset, "val_kwargs": cfg.data.val_kwargs,
                    "eval": {k: getattr(e, k) for k in ("mode", "crop_size", "stride", "flip", "max_images", "size")}})


def _digest(flat: dict) -> str:
    return hashlib.sha256(json.dumps(flat, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _teacher_sha256(teacher: str) -> str:
    """A model file's sha256 (the teacher's, or the one a run starts from); 'missing' for no file."""
    path = Path(teacher)
    if not path.is_file():
        return "missing"
    st = path.stat()
    return _cached_sha256(str(path.resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _cached_sha256(path: str, size: int, mtime_ns: int) -> str:
    """A teacher's hash, once per file version (every get and record of a ledger asks for it)."""
    return sha256_file(path)


def fingerprint(config: dict) -> str:
    """sha256 over the learned settings of a run's resolved config that differ from today's defaults, and the
    bytes of its teacher (wherever it lies, however the config names it). Only non-default values count, so a
    setting added to Config later (with a default that reproduces the old behaviour) leaves the fingerprints of
    finished runs as they were; a changed default changes them, as it changes what a run learns."""
    flat, teacher = _learned(config)
    if teacher:
        flat["teacher.sha256"] = _teacher_sha256(teacher)
    return _digest(flat)


def legacy_fingerprint(config: dict) -> str:
    """The fingerprint rows recorded before the teacher counted by its bytes alone carry: it also hashed the
    teacher's path as the config gave it, which for the committed ledgers (written from the repository's root)
    is the path relative to the repository. Computed so from any folder."""
    flat, teacher = _learned(config)
    if teacher:
        path = Path(teacher).resolve()
        flat["teacher.ckpt"] = str(path.relative_to(REPO)) if path.is_relative_to(REPO) else teacher
        flat["teacher.sha256"] = _teacher_sha256(teacher)
    return _digest(flat)


@contextlib.contextmanager
def _locked(folder: Path):
    """An exclusive lock on `folder` (flock on the folder itself: no lock file is left beside the ledger)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: one writer at a time is the user's to ensure
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


class Ledger:
    """`<report folder>/<prefix>_ledger.jsonl`: {name: entry}; `get(run)` only when the fingerprint matches."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._read()

    def _read(self) -> None:
        self.entries: dict[str, dict] = {}
        if self.path.is_file():
            for n, line in enumerate(self.path.read_text().splitlines(), 1):
                if line.strip():
                    try:
                        entry = json.loads(line)
                    except json.JSONDecodeError as e:
                        from .runs import BenchmarkError
                        raise BenchmarkError(f"{self.path}:{n}: not a JSON line ({e}); fix or remove it") from None
                    self.entries[entry["name"]] = entry

    def get(self, run) -> dict | None:
        entry = self.entries.get(run.name)
        if entry is None:
            return None
        if entry["fingerprint"] in self._fingerprints(run):
            return entry
        return None

    @staticmethod
    def _fingerprints(run) -> tuple[str, str]:
        config = run.load().to_dict()
        return fingerprint(config), legacy_fingerprint(config)

    def scores(self, run, split: str, key: str) -> dict | None:
        """The run's cached scores on `split`, made with the eval settings `key` (`eval_key`); None if not cached."""
        return _cached(self.get(run), split, key)

    def add_scores(self, run, split: str, key: str, metrics: dict) -> None:
        """Cache the run's scores on `split` in its entry; a run the ledger does not hold (under its
        fingerprint) is left out."""
        want = self._fingerprints(run)
        self._cache(run.name, lambda e: e["fingerprint"] in want, None, split, key, metrics)

    def teacher_scores(self, teacher: Path, split: str, key: str) -> dict | None:
        entry = self.entries.get(TEACHER)
        ok = entry is not None and entry.get("fingerprint") == _teacher_sha256(str(teacher))[:16]
        return _cached(entry if ok else None, split, key)

    def add_teacher_scores(self, teacher: Path, split: str, key: str, metrics: dict) -> None:
        """Cache the teacher's scores on `split` (another teacher file replaces the entry and its scores)."""
        sha = _teacher_sha256(str(teacher))[:16]
        self._cache(TEACHER, lambda e: e.get("fingerprint") == sha,
                    {"name": TEACHER, "method": TEACHER, "path": str(teacher), "fingerprint": sha}, split, key, metrics)

    def _cache(self, name, matches, new_entry, split, key, metrics) -> None:
        with _locked(self._folder()):
            self._read()
            entry = self.entries.get(name)
            if entry is None or not matches(entry):
                if new_entry is None:
                    return
                entry = new_entry
            scored = {"eval": key, **{k: _plain(metrics[k]) for k in KEYS if k in metrics}}
            scores = {**entry.get("scores", {}), split: scored}
            self.entries[name] = {**entry, "scores": scores}
            self._write()

    def _folder(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return self.path.parent

    def _write(self) -> None:
        with atomic_path(self.path) as tmp:
            Path(tmp).write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in self.entries.values()))

    def record(self, run, metrics: dict, train_s: float | None) -> dict:
        """Add (or replace) the run's entry and rewrite the file atomically, over what the file holds now, under
        the folder's lock: another process writing the same ledger (a second benchmark on the other core) keeps
        its entries, however their writes interleave."""
        entry = {"name": run.name, "method": run.method, "seed": run.seed, "candidate": run.candidate,
                 "split": run.split, "fingerprint": fingerprint(run.load().to_dict()),
                 "iters": run.load().train.iters, "train_s": None if train_s is None else round(train_s, 1),
                 "git_commit": metrics.get("git_commit"),
                 **{k: _plain(metrics[k]) for k in KEYS if k in metrics}}
        with _locked(self._folder()):
            self._read()
            self.entries[run.name] = entry
            self._write()
        return entry


TEACHER = "teacher"  # the entry holding the teacher's scores (no run is named so)


def _cached(entry: dict | None, split: str, key: str) -> dict | None:
    got = ((entry or {}).get("scores") or {}).get(split)
    return got if got is not None and got.get("eval") == key else None


def _plain(v):
    """JSON without NaN: a class absent from label and prediction has no value (null)."""
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if v is None:
        return None
    v = float(v)
    return None if v != v else v
