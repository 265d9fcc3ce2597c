"""What BRD buys: plain, KD, CWD, SKD, BRD and its two ablations, each tuned on a held-out split with the same
small budget, then trained over several seeds and compared on val with paired (same-seed) differences.

    python -m benchmarks.gain --out-dir docs/results                       # the full protocol (synthetic)
    python -m benchmarks.gain --methods plain brd --seeds 0 --no-tune      # a quick single-seed look
    python -m benchmarks.gain --no-train --out-dir docs/results            # report the finished runs only

Protocol:
0. The data recipe, where a dataset has one to choose (`RECIPE`; CamVid: no class weights, the square root of
   median-frequency weights, or median-frequency weights, SegNet's remedy): the plain student trained with
   each candidate at seed 100 and scored on the `tune` split; the best is applied to every method.
1. Tuning. Every distilled method has the same number of candidate settings (`TUNING`, 2 each), trained
   once at seed 100 and scored on the `tune` split (train-distribution images no training set contains);
   the candidate with the best tune mIoU is kept. Val is never looked at for a choice.
2. Final runs: every method with its chosen setting at every seed (default 0..4), scored on val by the
   runner's own end-of-training evaluation (`distill.evaluate`, the config's eval settings). A dataset that
   names the splits its reports give (`REPORT_SPLITS`; CamVid: val, which shares its drive 0016E5 with 204
   training frames, and the held-out drive 0001TP, the `tune` split, which no run trained on) has every final
   run and the teacher scored on each of them by `score_checkpoint` on the model file, whatever split the
   runner validated on; the scores are cached in the ledger (a rerun does not score again; a row recorded
   before is filled from its model.pt, else that split's column stays blank: nothing retrains for it).
3. Report: mean ± std per method, BRD minus every other method per seed with a 95% t-interval, the
   teacher's scores, charts and a prediction panel (per report split, where the dataset names several).

Every finished run's numbers also go into <out-dir>/<prefix>_ledger.jsonl (with a fingerprint of its config
and teacher) as it finishes: commit it as runs land, and a machine without the run folders takes those runs
from it rather than training them again.
Run folders: <runs-dir>/<method>_s<seed>/ and <runs-dir>/tune/<method>_c<k>/. A finished one is reused
only when its config equals the one asked for (else the benchmark stops and names the keys that differ;
`--retrain-changed` retrains it), an interrupted one resumes from last.pt: rerunning the same command
continues where it stopped. `--jobs N` trains N runs at a time, each on cores/N threads.
Output in --out-dir: <prefix>.md, <prefix>.csv (one row per method x seed, teacher included),
<prefix>_tuning.csv, <prefix>_paired.csv and the charts/panel PNGs.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from runtime.contract import add_overrides, ArgumentParser, check_folder, command, non_negative_int, positive_int

from .ledger import Ledger, eval_key
from .runs import (DEFAULT_METHODS, DEFAULT_SEEDS, RECIPE, TUNE_SEED, TUNE_SPLIT, TUNING, WITH_KD, BenchmarkError,
                   Run, check_reuse, config_path, make_run, report_splits, resolve_teacher, run_jobs, run_metrics,
                   score_checkpoint, split_label)


def _choose(method, cands: list[Run], tune: bool, train: bool, tuning: list[dict], inherited=(),
            log=print, metrics_of=None, settings=None) -> list[str] | None:
    """The tuned setting of one method (best tune-split mIoU of its candidates), recorded in `tuning`; the
    config file's own setting without tuning; None when its tuning runs are unfinished and nothing trains."""
    if not tune:
        return []
    metrics_of = metrics_of or (lambda r: run_metrics(r) if r.student.is_file() else None)
    scored = [(r, m) for r in cands for m in [metrics_of(r)] if m is not None]
    if len(scored) < len(cands):
        if train:
            raise BenchmarkError(f"tuning runs of {method} did not finish")
        log(f"[{method}] tuning unfinished: left out")
        return None
    settings = settings or TUNING[method]
    best = max(scored, key=lambda x: x[1]["mIoU"])[0]
    for r, metrics in scored:
        tuning.append({"method": method, "candidate": r.candidate, "setting": " ".join(settings[r.candidate]),
                       "inherited": " ".join(inherited),
                       "tune_mIoU": metrics["mIoU"], "tune_boundary_f1": metrics["boundary_f1"],
                       "tune_split_rate": metrics["split_rate"], "run": str(r.run_dir), "chosen": r is best})
    return settings[best.candidate]


# ---------------------------------------------------------------------------------------- the benchmark
class _Session:
    """What every phase of one benchmark shares: where its runs live, whether they train (N at a time), the
    ledger that remembers finished runs, and what the phases found (states, timings, tuning, choices)."""

    def __init__(self, prefix, configs_dir, runs_dir: Path, overrides: list[str], teacher, ledger: Ledger,
                 tune: bool, train: bool, retrain_changed: bool, jobs: int, threads: int, log):
        self.prefix, self.configs_dir, self.runs_dir, self.overrides = prefix, configs_dir, runs_dir, overrides
        self.teacher, self.ledger, self.tune, self.train = teacher, ledger, tune, train
        self.retrain_changed, self.jobs, self.threads, self.log = retrain_changed, jobs, threads, log
        self.states: dict[str, str] = {}
        self.times: dict[str, float] = {}
        self.tuning: list[dict] = []
        self.chosen: dict[str, list[str]] = {}

    def run(self, method, seed, run_dir, setting=(), candidate=None, split="val", teacher=True) -> Run:
        return make_run(method, seed, run_dir, self.prefix, self.configs_dir, self.overrides, setting,
                        self.teacher if teacher else None, candidate=candidate, split=split)

    def metrics_of(self, r: Run) -> dict | None:
        """A finished run's numbers: its model.pt, else its ledger entry (run folders gone)."""
        return run_metrics(r) if r.student.is_file() else self.ledger.get(r)

    def state_of(self, r: Run) -> str:
        state = check_reuse(r, self.retrain_changed and self.train, self.log)
        if state == "done" and self.ledger.get(r) is None:
            self.ledger.record(r, run_metrics(r), None)  # finished before the ledger knew it
        if state == "new" and self.ledger.get(r) is not None:
            self.log(f"[{r.name}] finished earlier: its numbers come from {self.ledger.path}")
            return "ledger"
        return state

    def record(self, r: Run, seconds: float) -> None:
        self.ledger.record(r, run_metrics(r), seconds)

    def settle(self, runs: list[Run], recheck: bool = True) -> None:
        """Each run's state (done, resumable, in the ledger, new), then train those that need it. recheck=False
        (the final runs): a state found by an earlier phase stands, and a run with its model.pt is not trained
        again (the plain finals trained with the tuning)."""
        for r in runs:
            if recheck or r.name not in self.states:
                self.states[r.name] = self.state_of(r)
        if self.train:
            todo = [r for r in runs if self.states[r.name] not in ("done", "ledger")
                    and (recheck or not r.student.is_file())]
            self.times.update(run_jobs(todo, self.jobs, self.threads, self.log, on_done=self.record))

    def choose(self, method, cands: list[Run], inherited=(), settings=None) -> list[str] | None:
        return _choose(method, cands, self.tune, self.train, self.tuning, inherited, self.log, self.metrics_of,
                       settings)


def _check_request(methods, seeds, overrides, prefix, configs_dir, jobs) -> tuple[list, list, list]:
    """Methods and seeds without repeats; every config exists and takes the overrides before hours of training."""
    from distill.config import load_config

    methods, seeds, overrides = list(dict.fromkeys(methods)), list(dict.fromkeys(int(s) for s in seeds)), list(overrides)
    if not methods or not seeds:
        raise BenchmarkError("need at least one method and one seed")
    for m in methods:
        load_config(config_path(m, prefix, configs_dir), overrides)
    if jobs < 1:
        raise BenchmarkError(f"--jobs must be >= 1, got {jobs}")
    return methods, seeds, overrides


def _find_teacher(distilled, prefix, configs_dir, overrides, teacher_ckpt, train_teacher, train, threads, log):
    """The teacher file every distilled run learns from: trained first when asked (and training), else the
    given or configured file where it exists."""
    from distill.config import load_config

    if train and distilled:
        return resolve_teacher(prefix, configs_dir, overrides, teacher_ckpt, train_teacher, threads, log)
    default = Path(teacher_ckpt or load_config(config_path("brd", prefix, configs_dir), overrides).teacher.ckpt or "")
    return default if default.is_file() else None


def _check_tune_split(prefix, configs_dir, overrides, runs_dir: Path) -> None:
    from distill.data import DATASETS

    dataset = make_run("plain", 0, runs_dir / "x", prefix, configs_dir, overrides).load().data.dataset
    if TUNE_SPLIT not in DATASETS[dataset].splits:
        raise BenchmarkError(f"dataset {dataset!r} has no {TUNE_SPLIT!r} split to tune on; pass --no-tune")


def _choose_recipe(s: _Session) -> None:
    """Phase 0: the data recipe (CamVid: the class-balancing remedy), chosen with the plain student on the tune
    split, then applied to every method alike, so no method is compared under another recipe."""
    cands = [s.run("plain", TUNE_SEED, s.runs_dir / "tune" / f"recipe_c{k}", setting, candidate=k, split=TUNE_SPLIT,
                   teacher=False) for k, setting in enumerate(RECIPE[s.prefix])]
    s.settle(cands)
    pick = s.choose("recipe", cands, (), RECIPE[s.prefix])
    if pick is None:
        raise BenchmarkError(f"the {s.prefix} recipe's tuning runs are unfinished: run with training first")
    s.overrides = [*s.overrides, *pick]
    s.log(f"[recipe] chosen on {TUNE_SPLIT}: {' '.join(pick) or 'the config file'}")


def _tune_methods(s: _Session, distilled: list[str], plain_finals: list[Run]) -> None:
    """Phase 1: KD and CWD (and the plain final runs, which have nothing to tune) together, then the methods
    that contain the KD term, with KD's chosen temperature."""
    first = [m for m in distilled if m not in WITH_KD]
    if s.tune and any(m in WITH_KD for m in distilled) and "kd" not in first:
        first.append("kd")  # its temperature is needed even when KD itself is not compared
    for phase, group in enumerate((first, [m for m in distilled if m in WITH_KD])):
        inherit = s.chosen.get("kd", []) if phase else []
        runs_now = [s.run(m, TUNE_SEED, s.runs_dir / "tune" / f"{m}_c{k}", [*inherit, *setting], candidate=k,
                          split=TUNE_SPLIT)
                    for m in group if s.tune for k, setting in enumerate(TUNING.get(m, [[]]))]
        s.settle([*runs_now, *(plain_finals if phase == 0 else [])])
        for m in group:
            pick = s.choose(m, [r for r in runs_now if r.method == m], inherit)
            if pick is not None:
                s.chosen[m] = [*inherit, *pick] if m in WITH_KD else pick


def _run_row(s: _Session, r: Run, metrics: dict) -> dict:
    return {"method": r.method, "seed": r.seed, "run": str(r.run_dir), "setting": " ".join(s.chosen.get(r.method, [])),
            "iters": r.load().train.iters, "train_s": s.times.get(r.name, metrics.get("train_s")),
            "git_commit": metrics.get("git_commit"), "IoU": list(metrics.get("IoU", [])),
            "boundary_f1_per_class": list(metrics.get("boundary_f1_per_class") or []),
            "from_ledger": not r.student.is_file(),
            **{k: float("nan") if metrics[k] is None else float(metrics[k])
               for k in ("mIoU", "aAcc", "boundary_f1", "boundary_iou", "split_rate", "miss_rate", "spurious_rate")}}


def _split_scores(s: _Session, r: Run, split: str, threads: int) -> dict | None:
    """One final run's scores on `split` (`score_checkpoint` on its model.pt, whatever split its runner validated
    on): cached in its ledger entry, else scored now and cached; without its model.pt (run folders gone), the
    runner's own evaluation from the ledger where the runner validated on `split` (the same settings), else None."""
    cfg = r.load()
    cfg.train.threads = threads
    key = eval_key(cfg)
    got = s.ledger.scores(r, split, key)
    if got is not None:
        return got
    if r.student.is_file():
        s.log(f"[{r.name}] scoring {r.student} on {cfg.data.dataset}/{split}")
        got = score_checkpoint(r.student, cfg, split)
        s.ledger.add_scores(r, split, key, got)
        return got
    entry = s.ledger.get(r)
    return entry if entry is not None and cfg.data.val_split == split else None


def _teacher_scores(s: _Session, teacher: Path, cfg, split: str) -> dict:
    key = eval_key(cfg)
    got = s.ledger.teacher_scores(teacher, split, key)
    if got is None:
        s.log(f"evaluating the teacher {teacher} on {cfg.data.dataset}/{split}")
        got = score_checkpoint(teacher, cfg, split)
        s.ledger.add_teacher_scores(teacher, split, key, got)
    return got


def _score_splits(s: _Session, scored: list, splits: tuple, cfg, teacher) -> dict:
    """Every finished final run and the teacher on each report split; per split the runs scored there and the
    runs that could not be (no model.pt and no cached score): their column stays blank."""
    by_split, teacher_by, unscored = {}, {}, {}
    for split, *_ in splits:
        by_split[split], unscored[split] = [], []
        for r, metrics in scored:
            if metrics is None:
                continue
            got = _split_scores(s, r, split, cfg.train.threads)
            if got is None:
                unscored[split].append({"method": r.method, "seed": r.seed, "run": str(r.run_dir)})
            else:
                by_split[split].append(_run_row(s, r, {**metrics, **got}))
        if teacher is not None:
            teacher_by[split] = _teacher_scores(s, teacher, cfg, split)
    first = splits[0][0]
    return {"runs": by_split[first], "teacher": teacher_by.get(first),
            "splits": [{"split": spec[0], "label": split_label(spec, cfg.data.train_split)} for spec in splits],
            "by_split": by_split, "teacher_by_split": teacher_by if teacher is not None else None,
            "unscored": unscored}


def run_distill_gain(methods=DEFAULT_METHODS, seeds=DEFAULT_SEEDS, out_dir="runs/distill_gain", runs_dir=None,
                     overrides=(), teacher_ckpt=None, tune=True, prefix="synthetic", configs_dir="configs",
                     train_teacher=False, panel_images=4, train=True, retrain_changed=False, jobs=1,
                     threads=0, argv=None, log=print) -> dict:
    """Tune, train (or reuse) and evaluate; write the report. Returns {"runs": [...], "tuning": [...],
    "teacher": {...} or None, "missing": [...]}; with report splits (CamVid), "runs" and "teacher" are the first
    split's (val), and "splits", "by_split", "teacher_by_split", "unscored" and "finished" (the runner's own
    numbers) come too. train=False reports the finished runs only."""
    from .report import write_report

    methods, seeds, overrides = _check_request(methods, seeds, overrides, prefix, configs_dir, jobs)
    threads = threads or max(1, (os.cpu_count() or 1) // jobs)
    out = Path(out_dir)
    runs_dir = Path(runs_dir) if runs_dir is not None else out / "runs"
    distilled = [m for m in methods if m != "plain"]
    teacher = _find_teacher(distilled, prefix, configs_dir, overrides, teacher_ckpt, train_teacher, train,
                            threads * jobs, log)
    if tune and distilled:
        _check_tune_split(prefix, configs_dir, overrides, runs_dir)
    t_all = time.perf_counter()
    s = _Session(prefix, configs_dir, runs_dir, overrides, teacher, Ledger(out / f"{prefix}_ledger.jsonl"), tune,
                 train, retrain_changed, jobs, threads, log)
    if tune and RECIPE.get(prefix):
        _choose_recipe(s)
    finals = {(m, sd): s.run(m, sd, runs_dir / f"{m}_s{sd}") for sd in seeds for m in methods if m == "plain"}
    _tune_methods(s, distilled, list(finals.values()))
    # phase 2: the final runs, seed-major: an interrupted benchmark has every method at the first seeds
    for sd in seeds:
        for m in distilled:
            if m in s.chosen and m in methods:
                finals[(m, sd)] = s.run(m, sd, runs_dir / f"{m}_s{sd}", s.chosen[m])
    order = [finals[(m, sd)] for sd in seeds for m in methods if (m, sd) in finals]
    s.settle(order, recheck=False)
    # phase 3: the results
    scored = [(r, s.metrics_of(r)) for r in order]
    runs = [_run_row(s, r, metrics) for r, metrics in scored if metrics is not None]
    if not runs:
        raise BenchmarkError(f"no finished runs under {runs_dir} for methods {methods} and seeds {seeds}")
    base_cfg = order[0].load()
    splits = report_splits(base_cfg.data.dataset)
    if splits:  # e.g. CamVid: val and the held-out drive, each scored explicitly
        base_cfg.train.threads = threads * jobs
        result = {**_score_splits(s, scored, splits, base_cfg, teacher), "finished": runs}
    else:
        teacher_scores = None
        if teacher is not None:
            base_cfg.train.threads = threads * jobs
            log(f"evaluating the teacher {teacher} on {base_cfg.data.dataset}/{base_cfg.data.val_split}")
            teacher_scores = score_checkpoint(teacher, base_cfg, base_cfg.data.val_split)
        result = {"runs": runs, "teacher": teacher_scores}
    result.update(tuning=s.tuning, missing=[r.name for r, metrics in scored if metrics is None])
    write_report(result, out, prefix, base_cfg, teacher, runs_dir, methods, seeds, s.overrides, tune, panel_images,
                 argv, log)
    log(f"benchmark done in {time.perf_counter() - t_all:.0f} s")
    return result


def _words(values) -> list[str]:
    return [w for v in values for w in v.split(",") if w]


@command(interrupted="finished runs are kept, runs in training saved their last.pt; rerun the same command to resume")
def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m benchmarks.gain", description=__doc__, examples=(
        "python -m benchmarks.gain --out-dir docs/results --jobs 2",
        "python -m benchmarks.gain --methods plain brd --seeds 0 --no-tune --set train.iters=60",
        "python -m benchmarks.gain --no-train --out-dir docs/results"))
    p.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS),
                   help=f"methods to compare (default all: {' '.join(DEFAULT_METHODS)})")
    p.add_argument("--seeds", nargs="+", default=[str(s) for s in DEFAULT_SEEDS], help="train.seed values (default 0 1 2 3 4)")
    p.add_argument("--no-tune", action="store_true", help="skip tuning: every method runs its config file's setting")
    p.add_argument("--prefix", default="synthetic",
                   help="dataset config prefix: configs/<prefix>_plain.yaml, <prefix>.yaml (BRD), ... (default synthetic)")
    p.add_argument("--configs-dir", default="configs", help="folder of the configs (default configs)")
    p.add_argument("--out-dir", default="runs/distill_gain", help="report folder (default runs/distill_gain)")
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
    check_folder(args.out_dir, 0, "--out-dir")  # before any training: the report must have somewhere to go
    run_distill_gain(_words(args.methods), seeds, args.out_dir, args.runs_dir, args.overrides, args.teacher,
                     tune=not args.no_tune, prefix=args.prefix, configs_dir=args.configs_dir,
                     train_teacher=args.train_teacher, panel_images=args.panel_images, train=not args.no_train,
                     retrain_changed=args.retrain_changed, jobs=args.jobs, threads=args.threads,
                     argv=sys.argv[1:] if argv is None else argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
