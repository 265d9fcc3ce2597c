"""Training: one step (`StudentStep`), the data stream, and the loop with checkpoints and resume.

A teacher run, a plain student and a distilled student are the same loop; what differs is the
config (no `teacher`, no `distill` weights => plain supervised training).

Resume is exact: the batch of step k and the augmentation of every sample are functions of
(seed, k) only (distill/resume.py), and `last.pt` holds model, connectors,
optimizer, scheduler, scaler, step and the global RNG states, so killing a run and rerunning the
same command reaches the same weights as an uninterrupted run.
"""
from __future__ import annotations

import hashlib
import os
import random
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from tqdm import tqdm

from runtime import contract

from . import checkpoint
from .config import Config, ConfigError, save_config
from .losses import Distiller
from .models import build_model
from .resume import CSVLog, SeededTransform, StepBatchSampler, resume, rng_state
from .signals import Interrupted, StopRequest
from .step import StudentStep, all_finite, train_class_weights

MAX_BAD_STEPS = 20  # consecutive non-finite losses that end a run (one is a bad batch, twenty are divergence)
VAL_KEYS = ("mIoU", "aAcc", "boundary_iou", "boundary_f1", "split_rate", "miss_rate", "spurious_rate")


class TeacherMissing(contract.CheckpointError, FileNotFoundError):
    """The config distils from a teacher checkpoint that does not exist (the message says how to make one)."""


# ---------------------------------------------------------------------------------------- data, models
def build_data(cfg: Config, rank: int, world: int, start: int):
    from .data import DATASETS, MEAN, STD, build_dataset
    from .data.checks import check_crop, require_labels, scan
    from .data.transforms import EvalTransform, TrainTransform

    d = cfg.data
    if world > 1 and rank != 0:
        dist.barrier()  # rank 0 builds the datasets first: only it writes (the synthetic data is generated)
    train_raw = build_dataset(d.dataset, d.root, d.train_split, **d.kwargs)
    if rank == 0 or world == 1:  # degenerate data is named before the work (distill/data/checks.py)
        seen = scan(train_raw, d.min_size, f"{d.train_split} split")
        check_crop(d.crop_size, d.scale_range, seen["largest"], f"{d.root} {d.train_split} split")
        require_labels(train_raw, f"{d.train_split} split")
    else:
        scan(train_raw, d.min_size, f"{d.train_split} split")  # the same images on every rank
    train_tf = TrainTransform(tuple(d.crop_size), MEAN, STD, scale_range=tuple(d.scale_range), flip=d.flip, jitter=d.jitter)
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
        val = build_dataset(d.dataset, d.root, d.val_split, transforms=EvalTransform(MEAN, STD, size=cfg.eval.size),
                            **d.val_kwargs)
        scan(val, d.min_size, f"{d.val_split} split")
        require_labels(val, f"{d.val_split} split")
        if world > 1:
            dist.barrier()  # the data is on disk: the other ranks may read it now
    return loader, val, DATASETS[d.dataset], MEAN, STD


def load_teacher(cfg: Config, num_classes: int, device) -> nn.Module | None:
    if not cfg.distill.active():
        return None
    path = checkpoint.model_file(cfg.teacher.ckpt)  # a teacher run of an earlier release: its student.pt
    if not path.is_file():
        how = (f"train it with `python -m distill.run --cfg {cfg.teacher.config}` (its run folder's model.pt)"
               if cfg.teacher.config else "train a teacher with the matching *_teacher.yaml config")
        raise TeacherMissing(f"teacher checkpoint {path} not found (teacher.ckpt of config {cfg.name!r}): {how}, "
                             f"or put a BRD Edge student-format checkpoint there, or pass teacher.ckpt=PATH")
    teacher, _ = checkpoint.load(path, num_classes=num_classes)
    teacher.requires_grad_(False)
    return teacher.to(device).eval()


def build_student(cfg: Config, num_classes: int) -> nn.Module:
    """The student, with the ImageNet backbone file's variant (recorded in `model.arch_kwargs`) and weights."""
    model = build_model(cfg.model.arch, num_classes, pretrained=cfg.model.pretrained,
                        pretrained_strict=cfg.model.pretrained_strict, **cfg.model.kwargs)
    if cfg.model.pretrained:
        print(f"pretrained backbone {cfg.model.pretrained} ({model.arch_kwargs}): {model.pretrained_report}")
    return model


def setup_distributed(cfg: Config):
    """(rank, world, device). Process groups only under torchrun with WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    want = cfg.train.device
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    if world > 1:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if want.startswith("cuda"):
            torch.cuda.set_device(local)
            device = torch.device("cuda", local)
        else:
            device = torch.device("cpu")
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return dist.get_rank(), world, device
    return 0, 1, torch.device(want)


def _tensorboard(out_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter  # optional: needs the tensorboard package
    except Exception:
        return None
    return SummaryWriter(str(out_dir / "tb"))


# ---------------------------------------------------------------------------------------- loop
def validate(cfg: Config, model: nn.Module, val, num_classes: int, device) -> dict:
    from .evaluate import evaluate

    was_training = model.training
    metrics = evaluate(model.eval(), val, num_classes, mode=cfg.eval.mode,
                       crop_size=tuple(cfg.eval.crop_size) if cfg.eval.crop_size else None,
                       stride=tuple(cfg.eval.stride) if cfg.eval.stride else None,
                       flip=cfg.eval.flip, device=device, max_images=cfg.eval.max_images)
    model.train(was_training)
    return metrics


def _plain(metrics: dict) -> dict:
    """Scalars only (the per-class IoU list stays out of the CSV but goes into meta)."""
    out = {}
    for k, v in metrics.items():
        if isinstance(v, (int, float, np.floating, np.integer)):
            out[k] = float(v)
        elif isinstance(v, (list, tuple, np.ndarray)):
            out[k] = [float(x) for x in np.asarray(v).ravel()]
    return out


def train(cfg: Config, stop_at: int | None = None) -> dict | None:
    """Run (or resume) the training the config describes; return the final validation metrics.

    `stop_at`: return after that step's checkpoint as if the process had been killed there
    (for tests and time-sliced jobs; rerunning resumes). SIGINT/SIGTERM during the loop finish the
    step, save last.pt and raise `Interrupted`; before the loop they raise KeyboardInterrupt."""
    out_dir = Path(cfg.out_dir)
    existed = out_dir.exists()
    try:
        with StopRequest() as stop:
            return _train(cfg, stop_at, stop)
    except BaseException:
        if not existed:  # a run that failed before writing anything leaves no empty run folder behind
            try:
                out_dir.rmdir()
            except OSError:  # not empty (or already gone): it holds what the run wrote
                pass
        raise


def _train(cfg: Config, stop_at: int | None, stop: StopRequest) -> dict | None:
    rank, world, device = setup_distributed(cfg)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    # CUDA: fp16 autocast with a GradScaler. CPU: bf16 autocast only when asked (train.amp_cpu), since
    # without bf16 hardware (AMX/AVX512-BF16) it is slower than float32; bf16 keeps fp32's range, no scaler.
    use_amp = cfg.train.amp and (device.type == "cuda" or cfg.train.amp_cpu)
    amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    out_dir = Path(cfg.out_dir)
    last_path = out_dir / "last.pt"
    if rank == 0:
        checkpoint.prepare_run_folder(out_dir)

    from .data import DATASETS
    info = DATASETS[cfg.data.dataset]
    num_classes = info.num_classes
    teacher = load_teacher(cfg, num_classes, device)

    torch.manual_seed(cfg.train.seed)
    random.seed(cfg.train.seed)
    np.random.seed(cfg.train.seed)
    student = build_student(cfg, num_classes)
    distiller = Distiller(cfg.distill, student, teacher) if teacher is not None else None  # plain: CE only
    stepper = StudentStep(student, distiller, cfg.train.aux_weight, train_class_weights(cfg, rank)).to(device).train()
    optimizer = torch.optim.SGD(stepper.parameters(), lr=cfg.train.lr, momentum=cfg.train.momentum,
                                weight_decay=cfg.train.weight_decay)
    if rank == 0:
        checkpoint.check_room(out_dir, student, distiller)
    iters, power = cfg.train.iters, cfg.train.poly_power
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.0, 1 - s / iters) ** power)
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp and amp_dtype == torch.float16)

    parts = {"student": stepper.student, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler}
    if distiller is not None:
        parts["connectors"] = stepper.distiller
    start, best = resume(cfg, last_path, parts, rank)
    model = _parallel(stepper, cfg, device, rank, world)

    loader, val, info, mean, std = build_data(cfg, rank, world, start)
    terms_cols = ["ce"] + (["aux"] if student.aux_head is not None and cfg.train.aux_weight else []) + (list(distiller.losses) if distiller is not None else [])
    log = val_log = tb = None
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out_dir / "config.yaml")
        resume_step = start if start else None
        log = CSVLog(out_dir / "train_log.csv", ["step", "lr", "total"] + terms_cols + ["sec_per_iter"], resume_step)
        val_log = CSVLog(out_dir / "val_log.csv", ["step", *VAL_KEYS], resume_step)
        tb = _tensorboard(out_dir)

    def meta(metrics):
        return checkpoint.make_meta(cfg.model.arch, student.arch_kwargs, num_classes, list(info.classes),
                                    [list(c) for c in info.palette], list(mean), list(std),
                                    cfg.eval.input_size or cfg.data.crop_size, cfg.data.dataset,
                                    config=cfg.to_dict(), metrics=metrics)

    metrics: dict = {}
    window: dict[str, float] = {}
    n_window, t0 = 0, time.perf_counter()
    bar = tqdm(total=iters, initial=start, desc=cfg.name, disable=rank != 0, dynamic_ncols=True)
    step = start

    def save_last():
        checkpoint.save_training(last_path, {
            "student": student.state_dict(), "connectors": distiller.state_dict() if distiller is not None else {},
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(), "step": step, "best_miou": best, "rng": rng_state(),
            "config": cfg.to_dict()})

    skips = _Skips(cfg.name)
    stop.deferring = True  # from here a signal ends the current step, then last.pt is saved
    for images, labels in loader:
        images = images.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        autocast = torch.autocast(device.type, dtype=amp_dtype) if use_amp else nullcontext()
        with autocast:
            t_out = None
            if teacher is not None:
                with torch.no_grad():
                    t_out = teacher.forward_features(images)
            total, terms = model(images, labels, t_out)
        optimizer.zero_grad(set_to_none=True)
        # A non-finite loss is checked before the optimiser steps: the step is skipped (weights untouched)
        # and logged; only a run of them means divergence. Under torchrun every rank sees the same verdict.
        finite = all_finite(total, world)
        if finite:
            scaler.scale(total).backward()
            scaler.step(optimizer)
            scaler.update()
        skips.count(finite, step + 1, terms, rank == 0)
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        step += 1
        if finite:  # the log averages the steps that trained
            for k, v in [("total", total), *terms.items()]:
                window[k] = window.get(k, 0.0) + v.detach().item()
            n_window += 1
        bar.update(1)
        if rank == 0 and n_window and (step % cfg.train.log_every == 0 or step == iters):
            row = {"step": step, "lr": lr, **{k: v / n_window for k, v in window.items()},
                   "sec_per_iter": (time.perf_counter() - t0) / n_window}
            log.write(row)
            bar.set_postfix(loss=f"{row['total']:.3f}")
            if tb:
                for k, v in row.items():
                    if k != "step":
                        tb.add_scalar(f"train/{k}", v, step)
            window, n_window, t0 = {}, 0, time.perf_counter()

        if step % cfg.train.val_every == 0 or step == iters:
            if rank == 0:
                metrics = _plain(validate(cfg, student, val, num_classes, device))
                val_log.write({"step": step, **metrics})
                if tb:
                    for k in VAL_KEYS:
                        if k in metrics:
                            tb.add_scalar(f"val/{k}", metrics[k], step)
                tqdm.write(f"[{cfg.name}] step {step}: " + ", ".join(f"{k} {metrics[k]:.4f}" for k in VAL_KEYS if k in metrics))
                if metrics.get("mIoU", -1.0) > best:
                    best = metrics["mIoU"]
                    checkpoint.save(out_dir / "best.pt", student, meta({**metrics, "step": step}))
            if world > 1:
                dist.barrier()
        saved = rank == 0 and (step % cfg.train.ckpt_every == 0 or step == iters)
        if saved:
            save_last()
        if stop.requested and step < iters:
            if rank == 0 and not saved:
                save_last()
            bar.close()
            raise Interrupted(stop.signum, step, last_path if rank == 0 else None)
        if stop_at is not None and step >= stop_at and step < iters:
            bar.close()
            return None
    bar.close()
    stop.deferring = False

    if rank == 0:
        if not metrics:  # resumed a finished run: evaluate the final weights again
            metrics = _plain(validate(cfg, student, val, num_classes, device))
        checkpoint.save(out_dir / checkpoint.MODEL_FILE, student, meta({**metrics, "step": step}))
        print(f"[{cfg.name}] done: {out_dir / checkpoint.MODEL_FILE} (mIoU {metrics.get('mIoU', float('nan')):.4f}, best {best:.4f})")
        if tb:
            tb.close()
    if world > 1:
        _same_weights_everywhere(cfg, student, rank, world)
    return metrics


def _parallel(stepper: nn.Module, cfg: Config, device, rank: int, world: int) -> nn.Module:
    """The step module, under DDP when there are several processes."""
    if world == 1:
        return stepper
    # torch's SyncBatchNorm runs on GPUs only: on CPU (gloo) each process normalises with its own batch
    # statistics, and DDP broadcasts rank 0's running statistics to every rank at each step
    sync_bn = cfg.train.sync_bn and device.type == "cuda"
    model = nn.SyncBatchNorm.convert_sync_batchnorm(stepper) if sync_bn else stepper
    model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if rank == 0:
        why = ("" if sync_bn else " (train.sync_bn=false)" if not cfg.train.sync_bn else
               " (train.sync_bn=true, but torch's SyncBatchNorm needs CUDA; running statistics come from rank 0)")
        print(f"[{cfg.name}] {world} processes on {device.type}; BatchNorm: "
              f"{'SyncBatchNorm' if sync_bn else 'per process'}{why}", flush=True)
    return model


class _Skips:
    """Steps skipped for a non-finite loss (checked before the optimiser steps, so the weights are untouched):
    each is logged; only a run of MAX_BAD_STEPS of them means divergence and ends the run."""

    def __init__(self, name: str):
        self.name, self.total, self.in_a_row = name, 0, 0

    def count(self, finite: bool, step: int, terms: dict, log: bool) -> None:
        if finite:
            self.in_a_row = 0
            return
        self.total, self.in_a_row = self.total + 1, self.in_a_row + 1
        if log:
            tqdm.write(f"[{self.name}] step {step}: non-finite loss ({ {k: round(v.item(), 4) for k, v in terms.items()} }); "
                       f"step skipped ({self.total} so far)")
        if self.in_a_row >= MAX_BAD_STEPS:
            raise FloatingPointError(f"step {step}: the loss was non-finite for {self.in_a_row} steps in a row "
                                     f"(the run diverged; lower train.lr or check the data)")


def _same_weights_everywhere(cfg: Config, student: nn.Module, rank: int, world: int) -> None:
    """Under DDP every process must end with the same weights (else the run is a bug, not a result)."""
    digests = [None] * world
    dist.all_gather_object(digests, weights_digest(student))
    if rank == 0:
        if len(set(digests)) > 1:
            raise RuntimeError(f"the {world} processes ended with different weights: {digests}")
        print(f"[{cfg.name}] all {world} processes hold the same weights (sha256 {digests[0]})", flush=True)
    dist.barrier()
    dist.destroy_process_group()


def weights_digest(model: nn.Module) -> str:
    """sha256 over the trained parameters, in order: equal on every rank when DDP kept them in step."""
    h = hashlib.sha256()
    for name, p in model.named_parameters():
        h.update(name.encode())
        h.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]
