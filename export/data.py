"""Images for calibration, parity and the accuracy gate: from the dataset the student was trained
on (distill.data.build_dataset), from a folder of image files, or deterministic synthetic images.

Images are uint8 RGB HxWx3; `preprocess` turns them into model input as the runtime does.
Every list here is lazy (`Items`, `FolderImages`): an image is read when it is used and dropped after, so
calibration and the accuracy gate hold one image at a time whatever the split's size or resolution (a
Cityscapes frame is 6 MB as uint8, 25 MB as model input).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.contract import DataError, ExportError, positive_int

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
DEFAULT_CALIB = {"synthetic": 32}  # anything else (real data): 300


def add_data_args(p, calibration=True):
    g = p.add_argument_group("data (calibration, parity images, accuracy gate)")
    g.add_argument("--data-root", help="dataset root; the dataset name defaults to the checkpoint's")
    g.add_argument("--dataset", help="dataset name for --data-root (cityscapes, voc, ade20k, cocostuff10k, synthetic)")
    if calibration:
        g.add_argument("--calib-dir", help="a folder of calibration images (png/jpg) instead of a dataset")
        g.add_argument("--num-calib", type=positive_int, help="calibration images (default 300; 32 for synthetic data)")


def default_num_calib(dataset: str | None) -> int:
    return DEFAULT_CALIB.get(dataset or "", 300)


def build(name: str, root, split: str, meta: dict):
    """distill.data.build_dataset without transforms: items (image uint8 HxWx3 RGB, label uint8 HxW)."""
    try:
        from distill.data import build_dataset
    except ImportError as e:
        raise ExportError(f"reading dataset {name!r} needs distill.data (the training install): {e}") from None
    root = Path(root)
    info = _dataset_info(name)
    if info is not None and info.num_classes != meta["num_classes"]:
        raise ExportError(f"{root}: the {name!r} dataset has {info.num_classes} classes, the model "
                          f"{meta['num_classes']}; pass the dataset the model was trained on (--dataset)")
    kw = {}
    if name == "synthetic":
        kw = _synthetic_settings(root, split, meta)
    elif not root.is_dir():
        raise ExportError(f"{root}: dataset folder not found")
    try:
        return build_dataset(name, str(root), split, **kw)
    except (KeyError, DataError, FileNotFoundError) as e:  # an unknown name, a tree that is not the dataset
        raise ExportError(f"{root}: cannot read the {name!r} {split} split ({str(e).splitlines()[0]})") from None


def _dataset_info(name):
    from distill.data import DATASETS

    return DATASETS.get(name)


def _synthetic_settings(root, split, meta) -> dict:
    """Read back the settings a synthetic split was generated with (the loader regenerates the split
    when asked for other settings, which must not happen to a training set); a new split is generated
    at the model's input size."""
    from distill.data.synthetic import generated_settings

    settings = generated_settings(root, split)
    if settings is not None:
        return settings
    return {"num_images": 32, "size": tuple(meta["input_size"]), "seed": 0 if split == "train" else 1}


class FolderImages:
    """The image files of a folder as a lazy sequence of uint8 RGB arrays (read on access)."""

    def __init__(self, files):
        self.files = list(files)

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        import cv2

        f = self.files[i]
        bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ExportError(f"{f}: not a readable image")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def __iter__(self):
        return (self[i] for i in range(len(self)))


def folder_images(folder, n: int) -> FolderImages:
    folder = Path(folder)
    if not folder.is_dir():
        raise ExportError(f"{folder}: calibration folder not found")
    files = sorted(f for f in folder.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ExportError(f"{folder}: no calibration images ({', '.join(IMAGE_SUFFIXES)}) found")
    return FolderImages(files[:n])


class Items:
    """Chosen items of a dataset as a lazy sequence: (image, label) pairs, or images only; each is read from
    disk when it is used, so a split of any size streams through in bounded memory."""

    def __init__(self, dataset, indices, with_labels=False):
        self.dataset, self.indices, self.with_labels = dataset, [int(i) for i in indices], with_labels

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        img, label = self.dataset[self.indices[i]]
        return (np.asarray(img), np.asarray(label)) if self.with_labels else np.asarray(img)

    def __iter__(self):
        return (self[i] for i in range(len(self)))


def dataset_images(dataset, n: int, desc: str = "", with_labels=False) -> Items:
    """n items of a dataset, evenly spread over it, read lazily (`desc`: kept for callers that named the use)."""
    idx = np.linspace(0, len(dataset) - 1, num=min(n, len(dataset))).round().astype(int) if len(dataset) else []
    return Items(dataset, idx, with_labels)


def calibration_images(meta: dict, data_root=None, dataset=None, calib_dir=None, num_calib=None) -> list:
    """Calibration images from --calib-dir or --data-root (train split); a clear error if neither."""
    name = dataset or meta.get("dataset")
    n = num_calib or default_num_calib(name)
    if calib_dir:
        return folder_images(calib_dir, n)
    if data_root:
        return dataset_images(build(name, data_root, "train", meta), n, "calibration")
    raise ExportError("INT8 needs calibration images: pass --data-root DIR (the training dataset) or --calib-dir DIR")


def parity_images(meta: dict, n: int, data_root=None, dataset=None, calib_dir=None) -> tuple[list, str]:
    """A few images for parity: the validation split or calibration folder if given, else synthetic."""
    if data_root:
        name = dataset or meta.get("dataset")
        return dataset_images(build(name, data_root, "val", meta), n, "parity"), f"{name} val"
    if calib_dir:
        return folder_images(calib_dir, n), f"folder {calib_dir}"
    return synthetic_images(n, meta["input_size"]), "synthetic (deterministic, seed 0)"


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


def preprocess(images, meta):
    """uint8 RGB HxWx3 images -> float32 NCHW at meta input_size: the runtime's own Preprocessor, so
    calibration and parity see exactly what a deployed model sees."""
    from runtime.preprocess import Preprocessor

    prep = Preprocessor(meta, meta["input_size"])
    if not len(images):
        return np.empty((0, 3, *meta["input_size"]), np.float32)
    return np.concatenate([prep(np.ascontiguousarray(img[..., ::-1]))[0] for img in images])
