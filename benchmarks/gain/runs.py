"""The runs of the distillation-gain benchmark (benchmarks.gain): the protocol's constants, one run folder
(`Run`: config, overrides, finished or not, reusable or not), training runs N at a time in worker processes,
scoring checkpoints, and the teacher every distilled run uses."""
from __future__ import annotations

import contextlib
import csv
import os
import shutil
import signal
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from runtime.contract import ConfigError, Signals, make_folder

# method -> config file, from the dataset prefix ("synthetic" -> configs/synthetic_kd.yaml, BRD is configs/synthetic.yaml)
METHODS = {
    "plain": "{prefix}_plain.yaml",
    "kd": "{prefix}_kd.yaml",
    "cwd": "{prefix}_cwd.yaml",
    "skd": "{prefix}_skd.yaml",
    "brd": "{prefix}.yaml",
    "boundary": "{prefix}_boundary.yaml",
    "relation": "{prefix}_relation.yaml",
}
LABELS = {"recipe": "data recipe (plain student)", "plain": "plain (CE only)", "kd": "KD", "cwd": "CWD", "skd": "SKD (KD + pairwise)", "brd": "BRD",
          "boundary": "boundary only (+KD)", "relation": "relation only (+KD)", "teacher": "teacher"}
DEFAULT_METHODS = tuple(METHODS)
DEFAULT_SEEDS = (0, 1, 2, 3, 4)
TUNE_SEED = 100
TUNE_SPLIT = "tune"
# The same budget for every distilled method: two candidate settings (config overrides), the first being
# what its config file says. KD: temperature; CWD: the two settings mmrazor and the CWD paper use;
# SKD: its pairwise weight at 1 and 10 (an MSE of cosine similarities is small in scale); BRD and its
# ablations: their boundary/relation weights at the config's value and 3x it.
# SKD, BRD and the ablations contain the KD term: they are tuned after KD and use KD's chosen temperature, so
# that what they add to KD is what is compared, not a KD term worse than the KD baseline's.
TUNING = {
    "kd": [["distill.kd.temperature=1.0"], ["distill.kd.temperature=4.0"]],
    "cwd": [["distill.cwd.temperature=1.0", "distill.cwd.weight=5.0"],
            ["distill.cwd.temperature=4.0", "distill.cwd.weight=3.0"]],
    "skd": [["distill.skd.weight=1.0"], ["distill.skd.weight=10.0"]],
    "brd": [["distill.boundary.weight=10.0", "distill.relation.weight=1.0"],
            ["distill.boundary.weight=30.0", "distill.relation.weight=3.0"]],
    "boundary": [["distill.boundary.weight=10.0"], ["distill.boundary.weight=30.0"]],
    "relation": [["distill.relation.weight=1.0"], ["distill.relation.weight=3.0"]],
}
# Data-recipe candidates per dataset prefix, chosen once with the plain student on the tune split and applied
# to every method (distill_gain's phase 0). CamVid is badly imbalanced (pole 1.0% of pixels, bicyclist 0.3%).
RECIPE = {
    "camvid": [["train.class_weights=none"], ["train.class_weights=sqrt_median_freq"],
               ["train.class_weights=median_freq"]],
}
# settings that change nothing learned: a run trained with other values of these is still the same run
WITH_KD = ("skd", "brd", "boundary", "relation")
NOT_LEARNED = {"name", "out_dir", "teacher.config", "train.log_every", "train.ckpt_every", "train.val_every",
               "train.threads", "data.num_workers", "data.val_split", "eval.max_images"}


def label(method: str) -> str:
    return LABELS.get(method, method)


class BenchmarkError(ConfigError):
    """A benchmark that cannot run as asked (missing config or teacher, a changed run); the message says what to do."""


def config_path(method: str, prefix: str = "synthetic", configs_dir: str | Path = "configs") -> Path:
    if method not in METHODS:
        raise BenchmarkError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    from distill.configs import resolve

    path = Path(configs_dir) / METHODS[method].format(prefix=prefix)
    found = resolve(path)  # `configs/NAME.yaml` from outside a checkout: the shipped config (as --cfg reads it)
    if found is None and method == "brd":  # a family whose BRD config names its method (camvid_lite_brd.yaml)
        found = resolve(Path(configs_dir) / f"{prefix}_brd.yaml")
    if found is None:
        raise BenchmarkError(f"method {method!r}: config {path} does not exist (dataset prefix {prefix!r})")
    return found


# ---------------------------------------------------------------------------------------- run specs
class Run:
    """One training run: its folder, config file and overrides; `load()` gives the typed config."""

    def __init__(self, method, seed, run_dir, config, overrides, candidate=None, split="val"):
        self.method, self.seed, self.run_dir, self.config = method, seed, Path(run_dir), Path(config)
        self.overrides, self.candidate, self.split = list(overrides), candidate, split

    def load(self):
        from distill.config import load_config

        return load_config(self.config, self.overrides)

    @property
    def student(self) -> Path:
        from distill.checkpoint import run_model

        return run_model(self.run_dir)  # model.pt; student.pt in a run folder of an earlier release

    @property
    def name(self) -> str:
        return self.run_dir.name


def make_run(method, seed, run_dir, prefix, configs_dir, overrides, setting=(), teacher=None, candidate=None,
             split="val") -> Run:
    extra = [f"train.seed={seed}", f"out_dir={run_dir}", f"name={Path(run_dir).name}", *setting]
    if split != "val":
        extra.append(f"data.val_split={split}")
    if teacher is not None and method != "plain":
        extra.append(f"teacher.ckpt={teacher}")
    return Run(method, seed, run_dir, config_path(method, prefix, configs_dir), [*overrides, *extra], candidate, split)


def flatten_config(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v and k not in ("kwargs", "val_kwargs"):
            out.update(flatten_config(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_changes(trained: dict, wanted: dict) -> list[str]:
    """Keys whose values differ between the config a run was trained with and the one asked for now
    (settings in NOT_LEARNED aside)."""
    from distill.config import Config

    # a key the trained config lacks (added to Config since) had its default value then
    old, new = {**flatten_config(Config().to_dict()), **flatten_config(trained)}, flatten_config(wanted)
    return sorted(k for k in set(old) | set(new) if k not in NOT_LEARNED and old.get(k) != new.get(k))


def check_reuse(run: Run, retrain_changed: bool, log=print) -> str:
    """'done' (finished, same config), 'resume' (last.pt of the same config), 'new'. A run folder trained
    with another config is an error naming the keys, or is cleared with `retrain_changed`."""
    from distill import checkpoint

    wanted = run.load().to_dict()
    found = None
    if run.student.is_file():
        found, state = run.student, "done"
        trained = checkpoint.load_meta(run.student).get("config", {})
    elif (run.run_dir / "last.pt").is_file():
        found, state = run.run_dir / "last.pt", "resume"
        trained = checkpoint.load_training(found).get("config", {})
    else:
        return "new"
    changed = config_changes(trained, wanted)
    if not changed:
        return state
    if not retrain_changed:
        raise BenchmarkError(f"{found} was trained with another config ({', '.join(changed[:6])}"
                             f"{' ...' if len(changed) > 6 else ''} differ): pass --retrain-changed to retrain it, "
                             f"or use another --runs-dir")
    log(f"[{run.name}] config changed ({', '.join(changed[:6])}): retraining")
    from distill.checkpoint import BEST_FILE, LAST_FILE, MODEL_FILE, OLD_MODEL_FILE

    for name in (MODEL_FILE, OLD_MODEL_FILE, LAST_FILE, BEST_FILE, "train_log.csv", "val_log.csv", "train.out"):
        (run.run_dir / name).unlink(missing_ok=True)
    shutil.rmtree(run.run_dir / "tb", ignore_errors=True)
    return "new"


# ---------------------------------------------------------------------------------------- jobs
def _train_job(config: str, overrides: list[str], threads: int, quiet: bool) -> float:
    """Train one run (in this process or a pool worker); returns wall seconds. Output goes to the run's train.out
    when quiet (several runs at once would interleave their progress bars)."""
    from distill.config import load_config
    from distill.engine import train

    cfg = load_config(config, [*overrides, *([f"train.threads={threads}"] if threads else [])])
    if quiet and _stopped():  # a pool worker after a signal: the queued runs do not start
        raise BenchmarkError(f"{cfg.out_dir}: not started (the benchmark was interrupted)")
    make_folder(cfg.out_dir)  # removed again, while empty, if the benchmark fails (a teacher that cannot be read)
    t = time.perf_counter()
    if quiet:  # a pool worker (run_jobs)
        try:
            with open(Path(cfg.out_dir) / "train.out", "a") as f, contextlib.redirect_stdout(f), \
                    contextlib.redirect_stderr(f):
                try:
                    train(cfg)
                except KeyboardInterrupt as e:  # Interrupted: last.pt saved (else the previous one is intact)
                    _STOPPED.append(getattr(e, "signum", signal.SIGINT))
                    print(e if str(e) else f"interrupted by {signal.Signals(_STOPPED[-1]).name}", flush=True)
                    raise
        except BaseException:
            _drop_if_only_log(Path(cfg.out_dir))
            raise
    else:
        train(cfg)
    return time.perf_counter() - t


def _drop_if_only_log(run_dir: Path) -> None:
    """A run that failed before it wrote anything but its log (train.out) leaves no run folder, as one trained
    without --jobs leaves none (its folder is removed while empty): a rerun finds no half-made run. The error
    reaches the benchmark's own error line. A run that wrote more (logs, last.pt) stays, to resume."""
    try:
        if [p.name for p in run_dir.iterdir()] == ["train.out"]:
            (run_dir / "train.out").unlink()
            run_dir.rmdir()
    except OSError:  # gone, or not ours to remove
        pass


def run_jobs(runs: list[Run], jobs: int, threads: int, log=print, on_done=None) -> dict[str, float]:
    """Train every run (resuming unfinished ones), `jobs` at a time; {run name: wall seconds}.
    `on_done(run, seconds)` is called as each one finishes (the ledger records it there)."""
    from concurrent.futures import as_completed

    times = {}
    if not runs:
        return times
    if jobs <= 1:
        for r in runs:
            log(f"[{r.name}] training {r.config} -> {r.run_dir}")
            times[r.name] = _train_job(str(r.config), r.overrides, threads, quiet=False)
            log(f"[{r.name}] trained in {times[r.name]:.0f} s")
            if on_done:
                on_done(r, times[r.name])
        return times
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"), initializer=_worker_init) as pool:
        futures = {}
        try:
            for r in runs:
                log(f"[{r.name}] training {r.config} -> {r.run_dir} (log: {r.run_dir / 'train.out'})")
                make_folder(r.run_dir.parent)  # made here, it goes while empty if the benchmark fails (as with 1 job)
                futures[pool.submit(_train_job, str(r.config), r.overrides, threads, True)] = r
            for fut in as_completed(futures):
                r = futures[fut]
                times[r.name] = fut.result()
                log(f"[{r.name}] trained in {times[r.name]:.0f} s")
                if on_done:
                    on_done(r, times[r.name])
        except KeyboardInterrupt as e:
            _stop_workers(pool, futures, e)
            raise
    return times


# Ctrl-C or SIGTERM with --jobs > 1: a worker that trains finishes its step, saves last.pt and ends its run
# (distill's own handler); one that waits, or that is done, only notes it (_worker_init: the one handler,
# holding), and from then on every queued run it is handed ends at once (_train_job). The workers stay up
# until the pool shuts down: one that died would make the pool terminate the others, maybe while they save.
_STOPPED: list[int] = []  # in a pool worker: the signal that stopped the benchmark (noted by _train_job)
_IDLE_SIGNALS: list[Signals] = []  # in a pool worker: the handler that notes a signal between runs


def _worker_init() -> None:
    idle = Signals().__enter__()  # for the worker's life; training installs its own above it, then restores it
    idle.hold()
    _IDLE_SIGNALS.append(idle)


def _stopped() -> bool:
    return bool(_STOPPED or any(s.received for s in _IDLE_SIGNALS))


def _stop_workers(pool: ProcessPoolExecutor, futures, e: KeyboardInterrupt) -> None:
    """The benchmark was interrupted while its workers train: a SIGTERM sent to it alone (systemd, docker,
    kill PID) is passed on to them (a terminal's Ctrl-C reaches the whole process group itself, and a second
    SIGINT would cut their saving short); then this waits until every run has saved and ended, or was never
    started. A second signal stops the waiting."""
    from concurrent.futures import wait

    if getattr(e, "signum", None) == signal.SIGTERM:
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            try:
                proc.terminate()  # SIGTERM
            except (OSError, ValueError):  # already gone
                pass
    wait(list(futures))


def logged_train_s(run_dir: Path | None) -> float | None:
    """Seconds of training in a run folder's train_log.csv (each row: sec_per_iter over the steps since the last
    row), for a run trained outside the benchmark; None without one."""
    log = Path(run_dir) / "train_log.csv" if run_dir else None
    if not log or not log.is_file():
        return None
    total, last = 0.0, 0
    with open(log, newline="") as f:
        for row in csv.DictReader(f):
            step = int(row["step"])
            total += float(row["sec_per_iter"]) * (step - last)
            last = step
    return total


def run_metrics(run: Run) -> dict:
    """The runner's end-of-training evaluation stored in the run's model.pt (on the run's val split)."""
    from distill import checkpoint

    meta = checkpoint.load_meta(run.student)
    metrics = meta.get("metrics", {})
    missing = [k for k in ("mIoU", "boundary_f1", "split_rate") if k not in metrics]
    if missing:
        raise BenchmarkError(f"{run.student} holds no {', '.join(missing)} (trained by an older version): "
                             f"pass --retrain-changed or delete the run folder")
    return {**metrics, "git_commit": meta.get("git_commit")}


def score_checkpoint(ckpt: Path, cfg, split: str) -> dict:
    """`distill.evaluate` on `split` with the config's eval settings (the runner's own validation)."""
    import torch

    from distill import checkpoint
    from distill.data import DATASETS, build_dataset
    from distill.data.transforms import EvalTransform
    from distill.evaluate import evaluate

    d, e = cfg.data, cfg.eval
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    model, meta = checkpoint.load(ckpt, num_classes=DATASETS[d.dataset].num_classes)
    ds = build_dataset(d.dataset, d.root, split, transforms=EvalTransform(meta["mean"], meta["std"], e.size),
                       **d.val_kwargs)
    return evaluate(model, ds, meta["num_classes"], mode=e.mode, crop_size=tuple(e.crop_size) if e.crop_size else None,
                    stride=tuple(e.stride) if e.stride else None, flip=e.flip, max_images=e.max_images)


def report_splits(dataset: str) -> tuple:
    """The splits a dataset's tables and cards report, each `(split, name, note, training splits it is held out
    of)`: its reader's REPORT_SPLITS (CamVid: val, which shares its drive with training, and the held-out 0001TP
    drive); () where it names none (one section: the runs' own val)."""
    import importlib

    try:
        return tuple(getattr(importlib.import_module(f"distill.data.{dataset}"), "REPORT_SPLITS", ()))
    except ImportError:
        return ()


def split_label(spec, train_split: str | None = None) -> str:
    """'held-out drive 0001TP (no model trained on it)'; a split held out only of some training splits, under
    another one (CamVid's 0001TP drive under `train`), says that its number does not count as held-out."""
    _, name, note, held_out_of = spec
    if held_out_of is not None and train_split is not None and train_split not in held_out_of:
        return f"{name} (`{train_split}` contains it: this does not count as held-out)"
    return f"{name} ({note})"


def train_one(method: str, seed: int, runs_dir, overrides=(), teacher=None, prefix="synthetic",
              configs_dir="configs", setting=()) -> Path:
    """Train (or resume, or reuse) one run in the benchmark's layout, <runs_dir>/<method>_s<seed>; its model.pt."""
    run = make_run(method, seed, Path(runs_dir) / f"{method}_s{seed}", prefix, configs_dir, list(overrides), setting, teacher)
    if check_reuse(run, retrain_changed=False) != "done":
        run_jobs([run], 1, 0)
    return run.student


# ---------------------------------------------------------------------------------------- teacher
def resolve_teacher(prefix, configs_dir, overrides, teacher_ckpt=None, train_teacher=False, threads=0, log=print):
    """The teacher every distilled run uses: --teacher, else the BRD config's teacher.ckpt. Missing: trained
    with the config's teacher.config when `train_teacher` (resumable like any run), else an error saying how."""
    from distill.checkpoint import MODEL_FILE, OLD_MODEL_FILE, model_file, run_model
    from distill.config import load_config

    brd = load_config(config_path("brd", prefix, configs_dir), overrides)
    path = model_file(teacher_ckpt or brd.teacher.ckpt or "")  # a teacher run of an earlier release: student.pt
    if path.is_file():
        return path
    if not train_teacher:
        how = f"`python -m distill.run --cfg {brd.teacher.config}`" if brd.teacher.config else "a *_teacher.yaml config"
        raise BenchmarkError(f"teacher checkpoint {path} not found: train it with {how}, pass --train-teacher to "
                             f"train it here, or give an existing one with --teacher PATH")
    if not brd.teacher.config:
        raise BenchmarkError(f"teacher checkpoint {path} not found and {config_path('brd', prefix, configs_dir)} "
                             f"names no teacher.config to train it with")
    if path.name not in (MODEL_FILE, OLD_MODEL_FILE):
        raise BenchmarkError(f"--train-teacher writes <run folder>/{MODEL_FILE}; {path} is not such a path")
    log(f"training the teacher: {brd.teacher.config} -> {path}")
    t = time.perf_counter()
    _train_job(brd.teacher.config, [*overrides, f"out_dir={path.parent}"], threads or (os.cpu_count() or 1), quiet=False)
    log(f"teacher trained in {time.perf_counter() - t:.0f} s")
    return run_model(path.parent)
