"""What BRD buys: plain, KD, CWD, SKD, BRD and its two ablations, each tuned on a held-out split with the same
small budget, then trained over several seeds and compared on val with paired (same-seed) differences.

    python -m benchmarks.distill_gain --out-dir docs/results                      # the full protocol (synthetic)
    python -m benchmarks.distill_gain --methods plain brd --seeds 0 --no-tune      # a quick single-seed look
    python -m benchmarks.distill_gain --no-train --out-dir docs/results            # report the finished runs only

Protocol:
1. Tuning. Every distilled method has the same number of candidate settings (`TUNING`, 2 each), trained
   once at seed 100 and scored on the `tune` split (train-distribution images no training set contains);
   the candidate with the best tune mIoU is kept. Val is never looked at for a choice.
2. Final runs: every method with its chosen setting at every seed (default 0..4), scored on val by the
   runner's own end-of-training evaluation (`distill.evaluate`, the config's eval settings).
3. Report: mean ± std per method, BRD minus every other method per seed with a 95% t-interval, the
   teacher's scores, charts and a prediction panel.

Run folders: <runs-dir>/<method>_s<seed>/ and <runs-dir>/tune/<method>_c<k>/. A finished one is reused
only when its config equals the one asked for (else the benchmark stops and names the keys that differ;
`--retrain-changed` retrains it), an interrupted one resumes from last.pt: rerunning the same command
continues where it stopped. `--jobs N` trains N runs at a time, each on cores/N threads.
Output in --out-dir: <prefix>.md, <prefix>.csv (one row per method x seed, teacher included),
<prefix>_tuning.csv, <prefix>_paired.csv and the charts/panel PNGs.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from runtime.cli import non_negative_int, positive_int
from runtime.contract import ArgumentParser, ConfigError, add_overrides, alias, command, overrides

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
LABELS = {"plain": "plain (CE only)", "kd": "KD", "cwd": "CWD", "skd": "SKD (KD + pairwise)", "brd": "BRD",
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
# settings that change nothing learned: a run trained with other values of these is still the same run
WITH_KD = ("skd", "brd", "boundary", "relation")
NOT_LEARNED = {"name", "out_dir", "teacher.config", "train.log_every", "train.ckpt_every", "train.val_every",
               "train.threads", "data.num_workers", "data.val_split", "eval.max_images"}


class BenchmarkError(ConfigError):
    """A benchmark that cannot run as asked (missing config or teacher, a changed run); the message says what to do."""


def config_path(method: str, prefix: str = "synthetic", configs_dir: str | Path = "configs") -> Path:
    if method not in METHODS:
        raise BenchmarkError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    path = Path(configs_dir) / METHODS[method].format(prefix=prefix)
    if not path.is_file():
        raise BenchmarkError(f"method {method!r}: config {path} does not exist (dataset prefix {prefix!r})")
    return path


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
        return self.run_dir / "student.pt"

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


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v and k not in ("kwargs", "val_kwargs"):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_changes(trained: dict, wanted: dict) -> list[str]:
    """Keys whose values differ between the config a run was trained with and the one asked for now
    (settings in NOT_LEARNED aside)."""
    from distill.config import Config

    # a key the trained config lacks (added to Config since) had its default value then
    old, new = {**_flatten(Config().to_dict()), **_flatten(trained)}, _flatten(wanted)
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
    for name in ("student.pt", "last.pt", "best.pt", "train_log.csv", "val_log.csv", "train.out"):
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
    Path(cfg.out_dir).mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    if quiet:
        with open(Path(cfg.out_dir) / "train.out", "a") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
            train(cfg)
    else:
        train(cfg)
    return time.perf_counter() - t


def run_jobs(runs: list[Run], jobs: int, threads: int, log=print) -> dict[str, float]:
    """Train every run (resuming unfinished ones), `jobs` at a time; {run name: wall seconds}."""
    times = {}
    if not runs:
        return times
    if jobs <= 1:
        for r in runs:
            log(f"[{r.name}] training {r.config} -> {r.run_dir}")
            times[r.name] = _train_job(str(r.config), r.overrides, threads, quiet=False)
            log(f"[{r.name}] trained in {times[r.name]:.0f} s")
        return times
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        futures = {}
        for r in runs:
            log(f"[{r.name}] training {r.config} -> {r.run_dir} (log: {r.run_dir / 'train.out'})")
            futures[r.name] = pool.submit(_train_job, str(r.config), r.overrides, threads, True)
        for name, fut in futures.items():
            times[name] = fut.result()
            log(f"[{name}] trained in {times[name]:.0f} s")
    return times


def run_metrics(run: Run) -> dict:
    """The runner's end-of-training evaluation stored in student.pt (on the run's val split)."""
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


def train_one(method: str, seed: int, runs_dir, overrides=(), teacher=None, prefix="synthetic",
              configs_dir="configs", setting=()) -> Path:
    """Train (or resume, or reuse) one run in the benchmark's layout, <runs_dir>/<method>_s<seed>; its student.pt."""
    run = make_run(method, seed, Path(runs_dir) / f"{method}_s{seed}", prefix, configs_dir, list(overrides), setting, teacher)
    if check_reuse(run, retrain_changed=False) != "done":
        run_jobs([run], 1, 0)
    return run.student


def _choose(method, cands: list[Run], tune: bool, train: bool, tuning: list[dict], inherited=(),
            log=print) -> list[str] | None:
    """The tuned setting of one method (best tune-split mIoU of its candidates), recorded in `tuning`; the
    config file's own setting without tuning; None when its tuning runs are unfinished and nothing trains."""
    if not tune:
        return []
    scored = [(r, run_metrics(r)) for r in cands if r.student.is_file()]
    if len(scored) < len(cands):
        if train:
            raise BenchmarkError(f"tuning runs of {method} did not finish")
        log(f"[{method}] tuning unfinished: left out")
        return None
    best = max(scored, key=lambda x: x[1]["mIoU"])[0]
    for r, metrics in scored:
        tuning.append({"method": method, "candidate": r.candidate, "setting": " ".join(TUNING[method][r.candidate]),
                       "inherited": " ".join(inherited),
                       "tune_mIoU": metrics["mIoU"], "tune_boundary_f1": metrics["boundary_f1"],
                       "tune_split_rate": metrics["split_rate"], "run": str(r.run_dir), "chosen": r is best})
    return TUNING[method][best.candidate]


# ---------------------------------------------------------------------------------------- teacher
def resolve_teacher(prefix, configs_dir, overrides, teacher_ckpt=None, train_teacher=False, threads=0, log=print):
    """The teacher every distilled run uses: --teacher, else the BRD config's teacher.ckpt. Missing: trained
    with the config's teacher.config when `train_teacher` (resumable like any run), else an error saying how."""
    from distill.config import load_config

    brd = load_config(config_path("brd", prefix, configs_dir), overrides)
    path = Path(teacher_ckpt or brd.teacher.ckpt or "")
    if path.is_file():
        return path
    if not train_teacher:
        how = f"`python -m distill.run --cfg {brd.teacher.config}`" if brd.teacher.config else "a *_teacher.yaml config"
        raise BenchmarkError(f"teacher checkpoint {path} not found: train it with {how}, pass --train-teacher to "
                             f"train it here, or give an existing one with --teacher PATH")
    if not brd.teacher.config:
        raise BenchmarkError(f"teacher checkpoint {path} not found and {config_path('brd', prefix, configs_dir)} "
                             f"names no teacher.config to train it with")
    if path.name != "student.pt":
        raise BenchmarkError(f"--train-teacher writes <run folder>/student.pt; {path} is not such a path")
    log(f"training the teacher: {brd.teacher.config} -> {path}")
    t = time.perf_counter()
    _train_job(brd.teacher.config, [*overrides, f"out_dir={path.parent}"], threads or (os.cpu_count() or 1), quiet=False)
    log(f"teacher trained in {time.perf_counter() - t:.0f} s")
    return path


# ---------------------------------------------------------------------------------------- the benchmark
def run_distill_gain(methods=DEFAULT_METHODS, seeds=DEFAULT_SEEDS, out_dir="runs/distill_gain", runs_dir=None,
                     overrides=(), teacher_ckpt=None, tune=True, prefix="synthetic", configs_dir="configs",
                     train_teacher=False, panel_images=4, train=True, retrain_changed=False, jobs=1,
                     threads=0, argv=None, log=print) -> dict:
    """Tune, train (or reuse) and evaluate; write the report. Returns {"runs": [...], "rows": [...],
    "paired": [...], "tuning": [...], "teacher": {...} or None}. train=False reports the finished runs only."""
    from .gain_report import write_report

    methods, seeds, overrides = list(dict.fromkeys(methods)), list(dict.fromkeys(int(s) for s in seeds)), list(overrides)
    if not methods or not seeds:
        raise BenchmarkError("need at least one method and one seed")
    from distill.config import load_config

    for m in methods:  # every config exists and takes the overrides before hours of training start
        load_config(config_path(m, prefix, configs_dir), overrides)
    if jobs < 1:
        raise BenchmarkError(f"--jobs must be >= 1, got {jobs}")
    threads = threads or max(1, (os.cpu_count() or 1) // jobs)
    out = Path(out_dir)
    runs_dir = Path(runs_dir) if runs_dir is not None else out / "runs"
    distilled = [m for m in methods if m != "plain"]
    teacher = None
    if train and distilled:
        teacher = resolve_teacher(prefix, configs_dir, overrides, teacher_ckpt, train_teacher, threads * jobs, log)
    else:
        default = Path(teacher_ckpt or load_config(config_path("brd", prefix, configs_dir), overrides).teacher.ckpt or "")
        teacher = default if default.is_file() else None
    if tune and distilled:
        from distill.data import DATASETS
        dataset = make_run("plain", 0, runs_dir / "x", prefix, configs_dir, overrides).load().data.dataset
        if TUNE_SPLIT not in DATASETS[dataset].splits:
            raise BenchmarkError(f"dataset {dataset!r} has no {TUNE_SPLIT!r} split to tune on; pass --no-tune")
    t_all = time.perf_counter()

    # 1. tuning: KD and CWD (and the plain runs, which have nothing to tune) together, then the methods that
    # contain the KD term, with KD's chosen temperature
    finals = {(m, s): make_run(m, s, runs_dir / f"{m}_s{s}", prefix, configs_dir, overrides, teacher=teacher)
              for s in seeds for m in methods if m == "plain"}
    tuning, chosen, states, times = [], {}, {}, {}
    first = [m for m in distilled if m not in WITH_KD]
    if tune and any(m in WITH_KD for m in distilled) and "kd" not in first:
        first.append("kd")  # its temperature is needed even when KD itself is not compared
    for phase, group in enumerate((first, [m for m in distilled if m in WITH_KD])):
        inherit = chosen.get("kd", []) if phase else []
        runs_now = [make_run(m, TUNE_SEED, runs_dir / "tune" / f"{m}_c{k}", prefix, configs_dir, overrides,
                             [*inherit, *setting], teacher, candidate=k, split=TUNE_SPLIT)
                    for m in group if tune for k, setting in enumerate(TUNING.get(m, [[]]))]
        todo = [*runs_now, *(finals.values() if phase == 0 else [])]
        states.update({r.name: check_reuse(r, retrain_changed and train, log) for r in todo})
        if train:
            times.update(run_jobs([r for r in todo if states[r.name] != "done"], jobs, threads, log))
        for m in group:
            pick = _choose(m, [r for r in runs_now if r.method == m], tune, train, tuning, inherit, log)
            if pick is not None:
                chosen[m] = [*inherit, *pick] if m in WITH_KD else pick

    # 2. final runs, seed-major: an interrupted benchmark has every method at the first seeds
    for s in seeds:
        for m in distilled:
            if m in chosen and m in methods:
                finals[(m, s)] = make_run(m, s, runs_dir / f"{m}_s{s}", prefix, configs_dir, overrides, chosen[m], teacher)
    order = [finals[(m, s)] for s in seeds for m in methods if (m, s) in finals]
    for r in order:
        if r.name not in states:
            states[r.name] = check_reuse(r, retrain_changed and train, log)
    if train:
        times.update(run_jobs([r for r in order if states[r.name] != "done" and not r.student.is_file()], jobs, threads, log))

    # 3. results
    runs, missing = [], []
    for r in order:
        if not r.student.is_file():
            missing.append(r.name)
            continue
        metrics = run_metrics(r)
        runs.append({"method": r.method, "seed": r.seed, "run": str(r.run_dir), "setting": " ".join(chosen.get(r.method, [])),
                     "iters": r.load().train.iters, "train_s": times.get(r.name),
                     "git_commit": metrics.get("git_commit"), "IoU": list(metrics.get("IoU", [])),
                     **{k: float(metrics[k]) for k in ("mIoU", "aAcc", "boundary_f1", "boundary_iou", "split_rate",
                                                       "miss_rate", "spurious_rate")}})
    if not runs:
        raise BenchmarkError(f"no finished runs under {runs_dir} for methods {methods} and seeds {seeds}")
    base_cfg = order[0].load()
    teacher_scores = None
    if teacher is not None:
        cfg = base_cfg
        cfg.train.threads = threads * jobs
        log(f"evaluating the teacher {teacher} on {cfg.data.dataset}/{cfg.data.val_split}")
        teacher_scores = score_checkpoint(teacher, cfg, cfg.data.val_split)
    result = {"runs": runs, "tuning": tuning, "teacher": teacher_scores, "missing": missing}
    write_report(result, out, prefix, base_cfg, teacher, runs_dir, methods, seeds, overrides, tune, panel_images,
                 argv, log)
    log(f"benchmark done in {time.perf_counter() - t_all:.0f} s")
    return result


def _words(values) -> list[str]:
    return [w for v in values for w in v.split(",") if w]


@command
def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m benchmarks.distill_gain", description=__doc__, examples=(
        "python -m benchmarks.distill_gain --out-dir docs/results --jobs 2",
        "python -m benchmarks.distill_gain --methods plain brd --seeds 0 --no-tune --set train.iters=60",
        "python -m benchmarks.distill_gain --no-train --out-dir docs/results"))
    p.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS),
                   help=f"methods to compare (default all: {' '.join(DEFAULT_METHODS)})")
    p.add_argument("--seeds", nargs="+", default=[str(s) for s in DEFAULT_SEEDS], help="train.seed values (default 0 1 2 3 4)")
    p.add_argument("--no-tune", action="store_true", help="skip tuning: every method runs its config file's setting")
    p.add_argument("--prefix", default="synthetic",
                   help="dataset config prefix: configs/<prefix>_plain.yaml, <prefix>.yaml (BRD), ... (default synthetic)")
    p.add_argument("--configs-dir", default="configs", help="folder of the configs (default configs)")
    p.add_argument("--out-dir", default="runs/distill_gain", help="report folder (default runs/distill_gain)")
    alias(p, "--out", "out_dir", "--out-dir")
    p.add_argument("--runs-dir", default=None, help="run folders (default <out-dir>/runs)")
    add_overrides(p)
    p.add_argument("--teacher", default=None, help="teacher checkpoint (default: the BRD config's teacher.ckpt)")
    p.add_argument("--train-teacher", action="store_true", help="train the teacher with its config if it is missing")
    p.add_argument("--retrain-changed", action="store_true",
                   help="retrain run folders trained with another config (default: stop and name the keys)")
    p.add_argument("--no-train", action="store_true",
                   help="train nothing: report the finished runs found (missing ones are listed as left out)")
    p.add_argument("--jobs", type=positive_int, default=1, help="runs trained at a time (default 1)")
    p.add_argument("--threads", type=non_negative_int, default=0, help="torch threads per run (default: cores / jobs)")
    p.add_argument("--panel-images", type=non_negative_int, default=4,
                   help="rows of the sample-prediction panel (default 4)")
    args = p.parse_args(argv)
    try:
        seeds = [int(s) for s in _words(args.seeds)]
    except ValueError:
        p.error(f"argument --seeds: expected integers, got {' '.join(args.seeds)}")
    run_distill_gain(_words(args.methods), seeds, args.out_dir, args.runs_dir, overrides(args), args.teacher,
                     tune=not args.no_tune, prefix=args.prefix, configs_dir=args.configs_dir,
                     train_teacher=args.train_teacher, panel_images=args.panel_images, train=not args.no_train,
                     retrain_changed=args.retrain_changed, jobs=args.jobs, threads=args.threads,
                     argv=sys.argv[1:] if argv is None else argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
