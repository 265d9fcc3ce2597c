"""Datasets in their exact on-disk layouts, the built-in synthetic street dataset, and transforms (imported
on first use: they need torch, the readers do not).

    ds = build_dataset("cityscapes", root, "val")              # item: (HxWx3 uint8 RGB, HxW uint8, 255 = ignore)
    ds = build_dataset("synthetic", root, "train", num_images=300, size=(128, 256), seed=0)
    DATASETS["synthetic"].classes / .palette / .num_classes
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import ade20k, camvid, cityscapes, cocostuff, synthetic, voc
from .base import IGNORE_INDEX, DatasetError, SegmentationDataset

# ImageNet statistics on the 0-255 scale, the field's default for every dataset here.
MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    classes: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    build: Callable[..., SegmentationDataset]
    splits: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def _info(name, module, build, splits):
    return DatasetInfo(name, tuple(module.CLASSES), tuple(tuple(c) for c in module.PALETTE), build, splits)


DATASETS: dict[str, DatasetInfo] = {
    "cityscapes": _info("cityscapes", cityscapes, cityscapes.Cityscapes, ("train", "val", "test")),
    "voc": _info("voc", voc, voc.VOC, ("train", "train_aug", "val", "trainval")),
    "ade20k": _info("ade20k", ade20k, ade20k.ADE20K, ("train", "val")),
    "cocostuff10k": _info("cocostuff10k", cocostuff, cocostuff.COCOStuff10k, ("train", "val")),
    "camvid": _info("camvid", camvid, camvid.CamVid, camvid.SPLITS),
    "synthetic": _info("synthetic", synthetic, synthetic.Synthetic, ("train", "tune", "val", "test")),
}


def build_dataset(name: str, root, split: str, transforms=None, **kwargs) -> SegmentationDataset:
    """Build a dataset by name. Extra kwargs go to the dataset (e.g. synthetic: num_images, size, seed;
    cityscapes: label_type)."""
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    try:
        return DATASETS[name].build(root, split, transforms=transforms, **kwargs)
    except TypeError as e:
        if "unexpected keyword" in str(e):
            raise DatasetError(f"dataset {name!r}: {e}") from e
        raise


def __getattr__(name):
    """The transforms need torch; the readers do not (scoring an exported model runs where torch is absent)."""
    if name in ("EvalTransform", "TrainTransform"):
        from . import transforms
        return getattr(transforms, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DATASETS", "DatasetInfo", "DatasetError", "SegmentationDataset", "build_dataset", "MEAN", "STD",
           "IGNORE_INDEX", "TrainTransform", "EvalTransform"]
