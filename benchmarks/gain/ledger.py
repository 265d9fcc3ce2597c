"""The distillation-gain ledger: one JSON line per finished run (final or tuning) with the fingerprint of what
it learned from and every number the report needs. It lives in the report folder and is committed as runs
land, so a machine whose run folders are gone (a fresh one) takes a finished run's numbers from it instead
of training it again; a run whose config or teacher changed has another fingerprint and trains anew."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from runtime.contract import atomic_path

from .runs import NOT_LEARNED, flatten_config

# where the data lives, not what it is: a ledger row stays valid on a machine with another data path
NOT_IDENTITY = NOT_LEARNED | {"data.root"}
KEYS = ("mIoU", "aAcc", "boundary_f1", "boundary_iou", "split_rate", "miss_rate", "spurious_rate", "IoU",
        "boundary_f1_per_class")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fingerprint(config: dict) -> str:
    """sha256 over the learned settings of a run's resolved config that differ from today's defaults, and the
    bytes of its teacher. Only non-default values count, so a setting added to Config later (with a default
    that reproduces the old behaviour) leaves the fingerprints of finished runs as they were; a changed
    default changes them, as it changes what a run learns."""
    from distill.config import Config

    defaults = flatten_config(Config().to_dict())
    flat = {k: v for k, v in flatten_config(config).items()
            if k not in NOT_IDENTITY and (k not in defaults or defaults[k] != v)}
    teacher = flat.get("teacher.ckpt")
    if teacher and any(flat.get(f"distill.{t}.weight") for t in ("kd", "cwd", "skd", "boundary", "relation")):
        flat["teacher.sha256"] = file_sha256(Path(teacher)) if Path(teacher).is_file() else "missing"
    else:
        flat.pop("teacher.ckpt", None)
        flat.pop("teacher.config", None)
    return hashlib.sha256(json.dumps(flat, sort_keys=True, default=str).encode()).hexdigest()[:16]


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
        if entry and entry["fingerprint"] == fingerprint(run.load().to_dict()):
            return entry
        return None

    def record(self, run, metrics: dict, train_s: float | None) -> dict:
        """Add (or replace) the run's entry and rewrite the file atomically, over what the file holds now: another
        process writing the same ledger (a second benchmark on the other core) keeps its entries."""
        entry = {"name": run.name, "method": run.method, "seed": run.seed, "candidate": run.candidate,
                 "split": run.split, "fingerprint": fingerprint(run.load().to_dict()),
                 "iters": run.load().train.iters, "train_s": None if train_s is None else round(train_s, 1),
                 "git_commit": metrics.get("git_commit"),
                 **{k: _plain(metrics[k]) for k in KEYS if k in metrics}}
        self._read()
        self.entries[run.name] = entry
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path) as tmp:
            Path(tmp).write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in self.entries.values()))
        return entry


def _plain(v):
    """JSON without NaN: a class absent from label and prediction has no value (null)."""
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    v = float(v)
    return None if v != v else v
