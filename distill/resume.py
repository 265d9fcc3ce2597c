"""Exact resume: what makes a run killed at step k and rerun end with the same weights as one that
never stopped. Every sample's augmentation depends on its (index, seed) key only (`SeededTransform`),
batches are a pure function of the step (`StepBatchSampler`), the RNG states travel in last.pt
(`rng_state` / `set_rng_state`), the logs drop rows past the resumed step (`CSVLog`), `resume` loads last.pt
and names the settings that changed since, and a last.pt of
another model is refused in one line (`resume_state`).
"""
from __future__ import annotations

import csv
import random
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from . import checkpoint
from .config import Config, ConfigError


@contextmanager
def seeded(seed: int):
    """Run a block with python/numpy/torch RNGs seeded, then put the caller's states back."""
    py, npy, pt = random.getstate(), np.random.get_state(), torch.get_rng_state()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(npy)
        torch.set_rng_state(pt)


class SeededTransform(torch.utils.data.Dataset):
    """Dataset view whose keys are (index, seed): the augmentation of a sample depends on its seed only,
    not on which worker draws it or how many samples came before (what makes resume exact)."""

    def __init__(self, dataset, transform):
        self.dataset, self.transform = dataset, transform

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        index, seed = key
        image, label = self.dataset[index]
        with seeded(seed):
            return self.transform(image, label)


class StepBatchSampler(torch.utils.data.Sampler):
    """Yields this rank's batch of (index, seed) keys for steps start..iters-1.

    Epoch e is a permutation seeded by (seed, e); step k takes the k-th slice of batch*world
    indices (dropping the tail), and rank r takes every world-th of them (as DistributedSampler).
    """

    def __init__(self, num_items: int, batch_per_rank: int, seed: int, start: int, iters: int,
                 rank: int = 0, world: int = 1):
        self.global_batch = batch_per_rank * world
        if num_items < self.global_batch:
            raise ConfigError(f"the training set has {num_items} images, fewer than one batch ({self.global_batch})")
        self.n, self.seed, self.start, self.iters, self.rank, self.world = num_items, seed, start, iters, rank, world
        self.steps_per_epoch = num_items // self.global_batch

    def __len__(self):
        return max(0, self.iters - self.start)

    def __iter__(self):
        perm_epoch, perm = -1, None
        for step in range(self.start, self.iters):
            epoch, k = divmod(step, self.steps_per_epoch)
            if epoch != perm_epoch:
                g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
                perm, perm_epoch = torch.randperm(self.n, generator=g).tolist(), epoch
            chunk = perm[k * self.global_batch:(k + 1) * self.global_batch]
            yield [(chunk[j], (self.seed * 1_000_003 + step) * 1024 + j)
                   for j in range(self.rank, self.global_batch, self.world)]


def rng_state() -> dict:
    py = random.getstate()
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": [py[0], list(py[1]), py[2]],
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    v, keys, g = state["python"]
    random.setstate((v, tuple(keys), g))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class CSVLog:
    """Append rows to a CSV; on resume drop rows past the resumed step (they belong to a lost future)."""

    def __init__(self, path: Path, columns: list[str], resume_step: int | None):
        self.path, self.columns = path, columns
        rows = []
        if resume_step is not None and path.is_file():
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, columns, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)

    def write(self, row: dict):
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.columns, extrasaction="ignore").writerow(
                {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def resume_state(last_path: Path, cfg: Config, parts: dict) -> dict:
    """Load last.pt into `parts`; a training state of another model is a one-line error, not a traceback."""
    state = checkpoint.load_training(last_path)
    arch = state.get("config", {}).get("model", {}).get("arch")
    if arch is not None and arch != cfg.model.arch:
        raise checkpoint.CheckpointError(f"{last_path}: a training state of {arch!r}, but this config trains "
                                         f"{cfg.model.arch!r}; use another out_dir or remove it")
    try:
        for name, part in parts.items():
            part.load_state_dict(state[name])
    except (KeyError, RuntimeError, ValueError) as e:
        raise checkpoint.CheckpointError(f"{last_path}: cannot resume this config from it ({type(e).__name__}: "
                                         f"{str(e).splitlines()[0][:200]}); use another out_dir or remove it") from None
    return state


def config_diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dicts."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict) and k not in ("kwargs", "val_kwargs"):
            out += config_diff(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}")
    return out


def resume(cfg: Config, last_path: Path, parts: dict, rank: int) -> tuple[int, float]:
    """(step, best mIoU) of last.pt loaded into `parts`, or (0, -1) for a new run."""
    if not last_path.is_file():
        return 0, -1.0
    state = resume_state(last_path, cfg, parts)
    set_rng_state(state["rng"])
    start = int(state["step"])
    if rank == 0:
        print(f"resuming {last_path.parent} from step {start}/{cfg.train.iters}")
        changed = config_diff(state.get("config", {}), cfg.to_dict())
        if changed:
            print(f"warning: config differs from the one {last_path} was trained with: {', '.join(changed)}")
    return start, float(state["best_miou"])
