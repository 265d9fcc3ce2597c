"""A built-in, procedurally generated street-scene dataset, so everything runs with no download.

The scenes come from synthetic_scene.render: every image is a pure function of (seed, split, index),
same arguments, byte-identical files. The tree is written in the Cityscapes layout with
`*_gtFine_labelTrainIds.png` labels and read back through `cityscapes_pairs`, the same code that reads
Cityscapes; `synthetic_<split>.json` records the settings a split was generated with.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

import cv2

from .base import DatasetError, SegmentationDataset, identity_lut
from .cityscapes import cityscapes_pairs
from .synthetic_scene import CLASSES, PALETTE, TUNE_OFFSET, TUNE_SPLIT, render  # noqa: F401  (the dataset's API)

CITY = "synthtown"
FORMAT_VERSION = 1  # bump when the generator's output changes, so cached trees are regenerated


def _manifest(root: Path, split: str) -> Path:
    return root / f"synthetic_{split}.json"


def generate(root: str | Path, split: str, num_images: int, size: tuple[int, int] = (128, 256), seed: int = 0) -> Path:
    """Write `num_images` scenes of `split` into a Cityscapes-like tree under root (replacing an earlier
    synthetic split: an explicit call; the dataset loader never replaces one). Returns root."""
    root = Path(root)
    if num_images < 1:
        raise ValueError(f"synthetic: num_images must be >= 1, got {num_images}")
    if root.exists() and not root.is_dir():
        raise DatasetError(f"{root}: a file, expected the folder to generate the synthetic data into (data.root)")
    img_dir = root / "leftImg8bit" / split / CITY
    gt_dir = root / "gtFine" / split / CITY
    for d in (img_dir.parent, gt_dir.parent):  # only ever delete a split this generator wrote
        if d.exists():
            if not _manifest(root, split).exists() and any(d.iterdir()):
                raise DatasetError(f"{d}: exists and was not written by the synthetic generator; refusing to overwrite")
            shutil.rmtree(d)
    try:
        img_dir.mkdir(parents=True)
        gt_dir.mkdir(parents=True)
        # Written first as incomplete: a tree whose manifest says so is an interrupted generation (ours to redo).
        _manifest(root, split).write_text(json.dumps({**_settings(num_images, size, seed), "complete": False}))
        png = [cv2.IMWRITE_PNG_COMPRESSION, 3]
        for i in range(num_images):
            img, lbl = render(seed, split, i, size)
            name = f"{split}_{i:06d}"
            # cv2.imwrite says False (no exception) when the disk is full: the manifest stays "incomplete"
            if not (cv2.imwrite(str(img_dir / f"{name}_leftImg8bit.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), png)
                    and cv2.imwrite(str(gt_dir / f"{name}_gtFine_labelTrainIds.png"), lbl, png)):
                raise OSError(f"cannot write {name}'s images (is the disk full?)")
        _manifest(root, split).write_text(json.dumps(_settings(num_images, size, seed)))
    except OSError as e:
        raise DatasetError(f"{root}: cannot generate the synthetic {split} split there "
                           f"({e.strerror or e})") from None
    return root


def generated_settings(root: str | Path, split: str) -> dict | None:
    """The settings (num_images, size, seed) a split under `root` was generated with, or None when
    there is none: what a reader must ask for to get that split back rather than a new one."""
    man = _manifest(Path(root), split)
    if not man.exists():
        return None
    s = json.loads(man.read_text())
    return {"num_images": s["num_images"], "size": tuple(s["size"]), "seed": s["seed"]}


@contextlib.contextmanager
def _generating(root: Path):
    """Holds an exclusive lock on root while a split is generated there. Processes that read one root at once
    (the gain benchmark's --jobs workers, torchrun's ranks) would otherwise generate it together, and the second
    deletes the first's half-written split. The lock is flock on the root folder: nothing is left beside it."""
    if root.exists() and not root.is_dir():
        raise DatasetError(f"{root}: a file, expected the folder to generate the synthetic data into (data.root)")
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(root, os.O_RDONLY)
    except OSError as e:
        raise DatasetError(f"{root}: cannot generate the synthetic data there ({e.strerror or e})") from None
    try:
        try:
            import fcntl
        except ImportError:  # not POSIX: readers of one fresh root must then start one after the other
            fcntl = None
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _read_manifest(man: Path) -> dict | None:
    try:
        return json.loads(man.read_text()) if man.exists() else None
    except ValueError:
        return None


def _settings(num_images, size, seed) -> dict:
    return {"version": FORMAT_VERSION, "num_images": int(num_images), "size": [int(size[0]), int(size[1])],
            "seed": int(seed)}


def Synthetic(root, split="train", transforms=None, num_images=200, size=(128, 256), seed=0, create=True):
    """The synthetic dataset: generated into root on first use (`create`; evaluation passes False and
    never writes), then read back with the Cityscapes loader. A split that exists with other settings
    is an error naming the differences, never silently regenerated: models and results were made on it."""
    root = Path(root)
    man = _manifest(root, split)
    current = _read_manifest(man)
    wanted = _settings(num_images, size, seed)
    if current is None or current.get("complete", True) is False:  # absent, or an interrupted generation
        if not create:
            raise DatasetError(f"{root}: no synthetic {split!r} split there (evaluation does not generate data); "
                               f"train on it first, or pass the root and settings it was generated with")
        with _generating(root):
            current = _read_manifest(man)  # another process may have generated it while this one waited
            if current is None or current.get("complete", True) is False:
                generate(root, split, num_images, size, seed)
                current = wanted
    if current != wanted:
        diff = ", ".join(f"{k} {current.get(k)} (asked: {wanted[k]})" for k in wanted if current.get(k) != wanted[k])
        raise DatasetError(f"{root}: the synthetic {split!r} split there was generated with other settings: {diff}; "
                           f"ask for the same settings, use another data.root, or delete {man.name} and the "
                           f"{split} folders under leftImg8bit/ and gtFine/ to regenerate it")
    pairs = cityscapes_pairs(root, split, "labelTrainIds")
    return SegmentationDataset(pairs, identity_lut(len(CLASSES)), len(CLASSES), transforms, "synthetic")
