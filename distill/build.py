"""What a training run is built from: the data stream (train loader and val split), the frozen teacher and the
student, each network fed input normalised as its weights expect (`input_norm`, `renormalize_input`). The loop
that trains them is distill/engine.py."""
from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from runtime import contract

from . import checkpoint
from .config import Config, ConfigError
from .models import build_model
from .resume import SeededTransform, StepBatchSampler


class TeacherMissing(contract.CheckpointError, FileNotFoundError):
    """The config distils from a teacher checkpoint that does not exist (the message says how to make one)."""


def input_norm(model: nn.Module) -> tuple[list[float], list[float]]:
    """The (mean, std) on the 0-255 RGB scale that `model`'s backbone weights expect: the backbone's own (the
    EfficientNet-Lite weights were trained on (rgb - 127) / 128), else torchvision's ImageNet statistics."""
    from .data import MEAN, STD

    backbone = getattr(model, "backbone", None)
    return list(getattr(backbone, "mean", MEAN)), list(getattr(backbone, "std", STD))


def build_data(cfg: Config, rank: int, world: int, start: int, mean, std):
    """Train loader and val split, normalised with the student's (mean, std) (`input_norm`)."""
    from .data import DATASETS, build_dataset
    from .data.checks import check_crop, require_labels, scan
    from .data.transforms import EvalTransform, TrainTransform

    d = cfg.data
    if d.exposure is not None and not (len(d.exposure) == 2 and 0 < d.exposure[0] <= d.exposure[1]):
        raise ConfigError(f"data.exposure {d.exposure}: expected [low, high] with 0 < low <= high, e.g. [0.3, 1.2]")
    if world > 1 and rank != 0:
        dist.barrier()  # rank 0 builds the datasets first: only it writes (the synthetic data is generated)
    train_raw = build_dataset(d.dataset, d.root, d.train_split, **d.kwargs)
    if rank == 0 or world == 1:  # degenerate data is named before the work (distill/data/checks.py)
        seen = scan(train_raw, d.min_size, f"{d.train_split} split")
        check_crop(d.crop_size, d.scale_range, seen["largest"], f"{d.root} {d.train_split} split")
        require_labels(train_raw, f"{d.train_split} split")
    else:
        scan(train_raw, d.min_size, f"{d.train_split} split")  # the same images on every rank
    train_tf = TrainTransform(tuple(d.crop_size), mean, std, scale_range=tuple(d.scale_range), flip=d.flip, jitter=d.jitter,
                              exposure=d.exposure)
    if cfg.train.batch_size % world:
        raise ConfigError(f"train.batch_size {cfg.train.batch_size} is not divisible by {world} processes")
    sampler = StepBatchSampler(len(train_raw), cfg.train.batch_size // world, cfg.train.seed, start, cfg.train.iters, rank, world)
    loader = torch.utils.data.DataLoader(SeededTransform(train_raw, train_tf), batch_sampler=sampler,
                                         num_workers=d.num_workers, pin_memory=torch.cuda.is_available(),
                                         # its own generator: starting an iterator draws a base seed, which must
                                         # not come from the global RNG (a resumed run starts it at another step)
                                         generator=torch.Generator().manual_seed(cfg.train.seed))
    val = None
    if rank == 0:
        val = build_dataset(d.dataset, d.root, d.val_split, transforms=EvalTransform(mean, std, size=cfg.eval.size),
                            **d.val_kwargs)
        scan(val, d.min_size, f"{d.val_split} split")
        require_labels(val, f"{d.val_split} split")
        if world > 1:
            dist.barrier()  # the data is on disk: the other ranks may read it now
    return loader, val, DATASETS[d.dataset]


def load_teacher(cfg: Config, num_classes: int, device, mean=None, std=None) -> nn.Module | None:
    """The frozen teacher. Its input is the student's batch; a teacher trained with another (mean, std) gets
    it renormalised to its own (`renormalize_input`), so each network sees what its weights expect."""
    if not cfg.distill.active():
        return None
    path = checkpoint.model_file(cfg.teacher.ckpt)  # a teacher run of an earlier release: its student.pt
    if not path.is_file():
        how = (f"train it with `python -m distill.run --cfg {cfg.teacher.config}` (its run folder's model.pt)"
               if cfg.teacher.config else "train a teacher with the matching *_teacher.yaml config")
        raise TeacherMissing(f"teacher checkpoint {path} not found (teacher.ckpt of config {cfg.name!r}): {how}, "
                             f"or put a BRD Edge student-format checkpoint there, or pass --set teacher.ckpt=PATH")
    teacher, meta = checkpoint.load(path, num_classes=num_classes)
    teacher.requires_grad_(False)
    if mean is not None and (list(meta["mean"]), list(meta["std"])) != (list(mean), list(std)):
        renormalize_input(teacher.backbone, (mean, std), (meta["mean"], meta["std"]))
    return teacher.to(device).eval()


def teacher_features(teacher: nn.Module, images: torch.Tensor, scale: float = 1.0) -> dict:
    """The teacher's `forward_features` on the batch; with `scale` != 1 on the batch resized by it, each map
    resized back to the size it has at the batch's own size, so every loss compares at the resolution it always
    did. Why: a teacher can score best on another view than the student's (benchmarks.gain.inference_sizes: the
    CamVid teacher on the dusk drive at 0.8 of its input)."""
    if scale == 1.0:
        return teacher.forward_features(images)
    h, w = images.shape[-2:]
    out = teacher.forward_features(F.interpolate(images, scale_factor=scale, mode="bilinear", align_corners=False,
                                                 recompute_scale_factor=False))
    strides = list(teacher.backbone.strides)

    def back(m, stride):
        return F.interpolate(m, size=(math.ceil(h / stride), math.ceil(w / stride)), mode="bilinear",
                             align_corners=False)
    return {"stages": [back(m, s) for m, s in zip(out["stages"], strides)],
            "feat": back(out["feat"], teacher.head_stride), "logits": back(out["logits"], teacher.head_stride),
            "aux": None if out["aux"] is None else back(out["aux"], strides[2])}


def renormalize_input(module: nn.Module, have, want) -> None:
    """Make `module` take input normalised as `have` = (mean, std) when its weights expect `want`:
    x_want = (x_have * std_have + mean_have - mean_want) / std_want, as a forward pre-hook."""
    (m0, s0), (m1, s1) = ([torch.tensor(v, dtype=torch.float32).view(1, -1, 1, 1) for v in pair] for pair in (have, want))
    scale, shift = s0 / s1, (m0 - m1) / s1

    def hook(_module, args):
        x = args[0]
        return (x * scale.to(x.device, x.dtype) + shift.to(x.device, x.dtype),) + tuple(args[1:])

    module.register_forward_pre_hook(hook)


def build_student(cfg: Config, num_classes: int) -> nn.Module:
    """The student, with the ImageNet backbone file's variant (recorded in `model.arch_kwargs`) and weights, or
    every weight of the trained model `model.init_from` (read again on resume, as the ImageNet file and the
    teacher are: its architecture arguments are part of the model)."""
    if cfg.model.init_from:
        return init_student(cfg, num_classes)
    model = build_model(cfg.model.arch, num_classes, pretrained=cfg.model.pretrained,
                        pretrained_strict=cfg.model.pretrained_strict, **cfg.model.kwargs)
    if cfg.model.pretrained:
        print(f"pretrained backbone {cfg.model.pretrained} ({model.arch_kwargs}): {model.pretrained_report}")
    return model


def init_student(cfg: Config, num_classes: int) -> nn.Module:
    """The student started from a trained model file: its architecture and arguments (those the config gives
    must agree), every tensor loaded. No ImageNet file is read: the model file overwrites every weight."""
    path = cfg.model.init_from
    try:
        model, meta = checkpoint.load(path)  # strict: every tensor
    except contract.CheckpointError as e:
        raise ConfigError(f"model.init_from: {e}") from None
    if meta["arch"] != cfg.model.arch or meta["num_classes"] != num_classes:
        raise ConfigError(f"model.init_from: {path} holds a {meta['arch']} with {meta['num_classes']} classes; "
                          f"this run trains a {cfg.model.arch} with {num_classes}")
    differ = sorted(k for k, v in cfg.model.kwargs.items() if meta["arch_kwargs"].get(k) != v)
    if differ:
        raise ConfigError(f"model.init_from: {path} was built with " + ", ".join(
            f"{k}={meta['arch_kwargs'].get(k)!r}" for k in differ) + f", the config asks for model.kwargs "
            + ", ".join(f"{k}={cfg.model.kwargs[k]!r}" for k in differ))
    print(f"student initialised from {path} (every weight; model.pretrained is not read)")
    return model.train()
