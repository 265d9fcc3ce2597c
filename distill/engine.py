"""Training: the loop as named steps (`_Run`: build, one step, validate, checkpoint) with exact resume. What it
trains (the data stream, the teacher and the student) is built by distill/build.py; one step's losses are
`StudentStep` (distill/step.py); several processes, distill/ddp.py.

A teacher run, a plain student and a distilled student are the same loop; what differs is the
config (no `teacher`, no `distill` weights => plain supervised training).

Resume is exact: the batch of step k and the augmentation of every sample are functions of
(seed, k) only (distill/resume.py), and `last.pt` holds model, connectors,
optimizer, scheduler, scaler, step and the global RNG states, so killing a run and rerunning the
same command reaches the same weights as an uninterrupted run.
"""
from __future__ import annotations

import random
import time
import warnings
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from tqdm import tqdm

from . import checkpoint, ddp
from .build import build_data, build_student, input_norm, load_teacher, teacher_features
from .config import Config, save_config
from .losses import Distiller
from .resume import CSVLog, resume, rng_state
from .runlock import RunLock
from .signals import Interrupted, StopRequest
from .step import Diverged, StudentStep, all_finite, check_batch_statistics, train_class_weights

MAX_BAD_STEPS = 20  # consecutive non-finite losses that end a run (one is a bad batch, twenty are divergence)
VAL_KEYS = ("mIoU", "aAcc", "boundary_iou", "boundary_f1", "split_rate", "miss_rate", "spurious_rate")


# ---------------------------------------------------------------------------------------- logs
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
    try:  # one training per run folder: a second one into it is refused (distill/runlock.py)
        with StopRequest() as stop, RunLock(out_dir, prepare=checkpoint.prepare_run_folder):
            return _train(cfg, stop_at, stop)
    except BaseException:
        if not existed:  # a run that failed before writing anything leaves no empty run folder behind
            try:
                out_dir.rmdir()
            except OSError:  # not empty (or already gone): it holds what the run wrote
                pass
        raise


def _train(cfg: Config, stop_at: int | None, stop: StopRequest) -> dict | None:
    """The loop over the named steps of `_Run`: one step, its log, validation, the checkpoint."""
    run = _Run(cfg)
    stop.deferring = True  # from here a signal ends the current step, then last.pt is saved
    for images, labels in run.loader:
        run.one_step(images, labels)
        if run.step % cfg.train.val_every == 0 or run.step == run.iters:
            run.validate()
        # none while the loss is non-finite (a forward there may have spoilt the BatchNorm statistics): a run
        # that diverges keeps the last good last.pt
        saved = (run.rank == 0 and (run.step % cfg.train.ckpt_every == 0 or run.step == run.iters)
                 and not run.skips.in_a_row)
        if saved:
            run.save_last()
        if stop.requested and run.step < run.iters:
            if run.rank == 0 and not saved:
                run.save_last()
            run.bar.close()
            raise Interrupted(stop.signum, run.step, run.last_path if run.rank == 0 else None)
        if stop_at is not None and run.step >= stop_at and run.step < run.iters:
            run.bar.close()
            return None
    run.bar.close()
    stop.deferring = False
    return run.finish()


class _Run:
    """One training run as named steps. Built once (`__init__`: devices, models, optimiser, the resumed state,
    data, logs; in that order, which fixes what the seeded RNGs are drawn for), then per batch `one_step`
    (forward, backward, optimiser, scheduler, train log), `validate` (val log, best.pt) and `save_last`
    (last.pt, the resumable state); `finish` writes model.pt."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self._devices()
        self.out_dir = Path(cfg.out_dir)
        self.last_path = self.out_dir / "last.pt"
        if self.rank == 0:
            checkpoint.prepare_run_folder(self.out_dir)
        self._models()
        check_batch_statistics(self.student, cfg, self.world, self.device)  # batch_size 1 vs BatchNorm: before the work
        self._optimiser()
        parts = {"student": self.stepper.student, "optimizer": self.optimizer, "scheduler": self.scheduler,
                 "scaler": self.scaler}
        if self.distiller is not None:
            parts["connectors"] = self.stepper.distiller
        self.start, self.best = resume(cfg, self.last_path, parts, self.rank)
        self.model = ddp.wrap(self.stepper, cfg, self.device, self.rank, self.world)
        self.loader, self.val, self.info = build_data(cfg, self.rank, self.world, self.start, self.mean, self.std)
        self._logs()
        self.metrics: dict = {}
        self.window: dict[str, float] = {}
        self.n_window, self.t0 = 0, time.perf_counter()
        self.bar = tqdm(total=self.iters, initial=self.start, desc=cfg.name, disable=self.rank != 0, dynamic_ncols=True)
        self.step = self.start
        self.skips = _Skips(cfg, self.last_path, self.start or None)

    def _devices(self) -> None:
        cfg = self.cfg
        self.rank, self.world, self.device = ddp.setup_distributed(cfg)
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        # CUDA: fp16 autocast with a GradScaler. CPU: bf16 autocast only when asked (train.amp_cpu), since
        # without bf16 hardware (AMX/AVX512-BF16) it is slower than float32; bf16 keeps fp32's range, no scaler.
        self.use_amp = cfg.train.amp and (self.device.type == "cuda" or cfg.train.amp_cpu)
        self.amp_dtype = torch.float16 if self.device.type == "cuda" else torch.bfloat16
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True

    def _models(self) -> None:
        """Teacher (if distilling), then the seeded student, its distiller and the step module."""
        from .data import DATASETS

        cfg = self.cfg
        self.num_classes = DATASETS[cfg.data.dataset].num_classes
        torch.manual_seed(cfg.train.seed)
        random.seed(cfg.train.seed)
        np.random.seed(cfg.train.seed)
        self.student = build_student(cfg, self.num_classes)
        self.mean, self.std = input_norm(self.student)
        with torch.random.fork_rng():  # building the teacher draws no number the connectors' init would see
            self.teacher = load_teacher(cfg, self.num_classes, self.device, self.mean, self.std)
        # plain: CE only
        self.distiller = Distiller(cfg.distill, self.student, self.teacher) if self.teacher is not None else None
        self.stepper = StudentStep(self.student, self.distiller, cfg.train.aux_weight,
                                   train_class_weights(cfg, self.rank)).to(self.device).train()

    def _optimiser(self) -> None:
        cfg = self.cfg
        self.optimizer = torch.optim.SGD(self.stepper.parameters(), lr=cfg.train.lr, momentum=cfg.train.momentum,
                                         weight_decay=cfg.train.weight_decay)
        if self.rank == 0:
            checkpoint.check_room(self.out_dir, self.student, self.distiller)
        self.iters = cfg.train.iters
        iters, power = self.iters, cfg.train.poly_power
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: max(0.0, 1 - s / iters) ** power)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.use_amp and self.amp_dtype == torch.float16)

    def _logs(self) -> None:
        """config.yaml, train_log.csv, val_log.csv and tensorboard, on rank 0 (logs cut back to a resumed step)."""
        cfg, student, distiller = self.cfg, self.student, self.distiller
        terms_cols = ["ce"] + (["aux"] if student.aux_head is not None and cfg.train.aux_weight else []) + (list(distiller.losses) if distiller is not None else [])
        self.log = self.val_log = self.tb = None
        if self.rank == 0:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            save_config(cfg, self.out_dir / "config.yaml")
            resume_step = self.start if self.start else None
            self.log = CSVLog(self.out_dir / "train_log.csv", ["step", "lr", "total"] + terms_cols + ["sec_per_iter"], resume_step)
            self.val_log = CSVLog(self.out_dir / "val_log.csv", ["step", *VAL_KEYS], resume_step)
            self.tb = _tensorboard(self.out_dir)

    def meta(self, metrics: dict) -> dict:
        cfg, info = self.cfg, self.info
        return checkpoint.make_meta(cfg.model.arch, self.student.arch_kwargs, self.num_classes, list(info.classes),
                                    [list(c) for c in info.palette], list(self.mean), list(self.std),
                                    cfg.eval.input_size or cfg.data.crop_size, cfg.data.dataset,
                                    config=cfg.to_dict(), metrics=metrics)

    def one_step(self, images, labels) -> None:
        """Forward (teacher's features first), backward and optimiser step, scheduler step, the train log."""
        images = images.to(self.device, non_blocking=True)
        labels = labels.to(self.device, non_blocking=True)
        autocast = torch.autocast(self.device.type, dtype=self.amp_dtype) if self.use_amp else nullcontext()
        with autocast:
            t_out = None
            if self.teacher is not None:
                with torch.no_grad():
                    t_out = teacher_features(self.teacher, images, self.cfg.teacher.input_scale)
            total, terms = self.model(images, labels, t_out)
        self.optimizer.zero_grad(set_to_none=True)
        # A non-finite loss is checked before the optimiser steps: the step is skipped (weights untouched)
        # and logged; only a run of them means divergence. Under torchrun every rank sees the same verdict.
        finite = all_finite(total, self.world)
        if finite:
            self.scaler.scale(total).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.skips.count(finite, self.step + 1, terms, self.rank == 0)
        lr = self.optimizer.param_groups[0]["lr"]
        if finite:
            self.scheduler.step()
        else:  # a skipped step still advances the schedule, which follows the iteration count (resume relies on
            # it); PyTorch's warning about the order is for a loop that forgot optimizer.step, not for a skip
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before")
                self.scheduler.step()
        self.step += 1
        if finite:  # the log averages the steps that trained
            for k, v in [("total", total), *terms.items()]:
                self.window[k] = self.window.get(k, 0.0) + v.detach().item()
            self.n_window += 1
        self.bar.update(1)
        self._log_train(lr)

    def _log_train(self, lr: float) -> None:
        step = self.step
        if self.rank == 0 and self.n_window and (step % self.cfg.train.log_every == 0 or step == self.iters):
            row = {"step": step, "lr": lr, **{k: v / self.n_window for k, v in self.window.items()},
                   "sec_per_iter": (time.perf_counter() - self.t0) / self.n_window}
            self.log.write(row)
            self.bar.set_postfix(loss=f"{row['total']:.3f}")
            if self.tb:
                for k, v in row.items():
                    if k != "step":
                        self.tb.add_scalar(f"train/{k}", v, step)
            self.window, self.n_window, self.t0 = {}, 0, time.perf_counter()

    def validate(self) -> None:
        """Rank 0 scores the student on the val split, logs it and keeps the best as best.pt; the others wait."""
        cfg, step = self.cfg, self.step
        if self.rank == 0:
            metrics = self.metrics = _plain(validate(cfg, self.student, self.val, self.num_classes, self.device))
            self.val_log.write({"step": step, **metrics})
            if self.tb:
                for k in VAL_KEYS:
                    if k in metrics:
                        self.tb.add_scalar(f"val/{k}", metrics[k], step)
            tqdm.write(f"[{cfg.name}] step {step}: " + ", ".join(f"{k} {metrics[k]:.4f}" for k in VAL_KEYS if k in metrics))
            if metrics.get("mIoU", -1.0) > self.best:
                self.best = metrics["mIoU"]
                checkpoint.save(self.out_dir / "best.pt", self.student, self.meta({**metrics, "step": step}))
        if self.world > 1:
            dist.barrier()

    def save_last(self) -> None:
        """last.pt: everything an exact resume needs (distill/resume.py)."""
        distiller = self.distiller
        checkpoint.save_training(self.last_path, {
            "student": self.student.state_dict(), "connectors": distiller.state_dict() if distiller is not None else {},
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(), "step": self.step, "best_miou": self.best, "rng": rng_state(),
            "config": self.cfg.to_dict()})
        self.skips.saved_at = self.step  # what a diverging run keeps

    def finish(self) -> dict:
        """The final checkpoint (model.pt) with the last validation's metrics; under DDP, the weight check."""
        cfg, out_dir, student, step, best = self.cfg, self.out_dir, self.student, self.step, self.best
        if self.rank == 0:
            if not self.metrics:  # resumed a finished run: evaluate the final weights again
                self.metrics = _plain(validate(cfg, student, self.val, self.num_classes, self.device))
            metrics, meta = self.metrics, self.meta
            checkpoint.save(out_dir / checkpoint.MODEL_FILE, student, meta({**metrics, "step": step}))
            print(f"[{cfg.name}] done: {out_dir / checkpoint.MODEL_FILE} (mIoU {metrics.get('mIoU', float('nan')):.4f}, best {best:.4f})")
            if self.tb:
                self.tb.close()
        if self.world > 1:
            ddp.check_same_weights(cfg, student, self.rank, self.world)
        return self.metrics


class _Skips:
    """Steps skipped for a non-finite loss (checked before the optimiser steps, so the weights are untouched):
    each is logged; only a run of MAX_BAD_STEPS of them means divergence and ends the run."""

    def __init__(self, cfg: Config, last_path: Path, saved_at: int | None):
        self.cfg, self.name, self.total, self.in_a_row = cfg, cfg.name, 0, 0
        self.last_path, self.saved_at = last_path, saved_at  # last.pt and its step (weights before any skip)

    def count(self, finite: bool, step: int, terms: dict, log: bool) -> None:
        if finite:
            self.in_a_row = 0
            return
        self.total, self.in_a_row = self.total + 1, self.in_a_row + 1
        if log:
            tqdm.write(f"[{self.name}] step {step}: non-finite loss ({ {k: round(v.item(), 4) for k, v in terms.items()} }); "
                       f"step skipped ({self.total} so far)")
        if self.in_a_row >= MAX_BAD_STEPS:
            raise Diverged(step - self.in_a_row + 1, step, self.cfg, self.last_path, self.saved_at)
