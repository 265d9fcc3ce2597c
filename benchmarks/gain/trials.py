"""What else was tried, on the tune split only: variations of each method's tuned setting.

    python -m benchmarks.gain.trials --prefix camvid --out-dir docs/results --runs-dir runs/camvid_extra --jobs 2

The benchmark (`python -m benchmarks.gain`) gives every method the same small tuning budget; a trial asks a
question beside it: does BRD's boundary term pay on stages 2-4 only, does a longer schedule pay, and for which
method. Each trial is the method's setting as the benchmark chose it (`<prefix>_tuning.csv` in the report
folder: the data recipe, then the method's chosen candidate), plus the trial's change, trained at the tuning
seed and scored on the tune split, so it is compared with the benchmark's own tuning run of that setting
(the baseline). Val is never looked at. A trial "pays" when its tune mIoU is above the baseline's; one seed
each, so a small difference is noise, and the report says so.

Finished trials go into <out-dir>/<prefix>_trials_ledger.jsonl as they land (commit it): a machine without
the run folders takes their numbers from it. Run folders: <runs-dir>/<trial name>/; an interrupted one
resumes from its last.pt. Writes <out-dir>/<prefix>_trials.md and .csv.
"""
from __future__ import annotations

import csv
import os
import sys
import time
from pathlib import Path

from runtime.contract import ArgumentParser, add_overrides, command, non_negative_int, positive_int

from ..report import markdown_table, provenance, write_csv
from .ledger import Ledger
from .runs import (TUNE_SEED, TUNE_SPLIT, BenchmarkError, check_reuse, logged_train_s, make_run, resolve_teacher,
                   run_jobs, run_metrics)

# prefix -> (trial name, method, what it changes, its config overrides). The baseline is the method's tuned
# setting at the benchmark's schedule. Plain is "recipe": its baseline is the chosen data-recipe run.
TRIALS = {
    "camvid": [
        ("brd_stages234", "brd", "boundary term on stages 2-4 only", ["distill.boundary.stages=[2,3,4]"]),
        ("brd_1000", "brd", "1000 iterations instead of 500", ["train.iters=1000"]),
        ("kd_1000", "kd", "1000 iterations instead of 500", ["train.iters=1000"]),
        ("cwd_1000", "cwd", "1000 iterations instead of 500", ["train.iters=1000"]),
        ("plain_1000", "plain", "1000 iterations instead of 500", ["train.iters=1000"]),
    ],
}
METRICS = (("mIoU", "tune mIoU"), ("boundary_f1", "tune bF1"), ("split_rate", "tune split"))


def tuned_settings(tuning_csv: Path) -> dict[str, dict]:
    """{method: {"setting": [...overrides], "mIoU": ..., "boundary_f1": ..., "split_rate": ..., "run": ...}} of the
    chosen candidate per method in the benchmark's tuning table ("recipe" -> the plain student's)."""
    if not tuning_csv.is_file():
        raise BenchmarkError(f"{tuning_csv}: no tuning table; run `python -m benchmarks.gain` for this prefix first")
    chosen = {}
    with open(tuning_csv, newline="") as f:
        for row in csv.DictReader(f):
            if row["chosen"] == "True":
                words = f"{row['inherited']} {row['setting']}".split()
                chosen[row["method"]] = {"setting": words, "run": row["run"],
                                         **{k: float(row[f"tune_{k}"]) for k, _ in METRICS}}
    if "recipe" in chosen:
        chosen["plain"] = chosen.pop("recipe")
    return chosen


def plan(prefix: str, out_dir: Path, runs_dir: Path, configs_dir="configs", teacher=None, only=None, overrides=()):
    """[(trial name, method, change, Run, baseline numbers, baseline Run)], every run built as the benchmark builds
    its tuning runs; the baseline Run is the benchmark's tuning run of the method's chosen setting (its folder
    named in the tuning table), the trial's Run is the same plus the trial's change."""
    if prefix not in TRIALS:
        raise BenchmarkError(f"no trials for prefix {prefix!r}; defined for: {', '.join(TRIALS)}")
    chosen = tuned_settings(out_dir / f"{prefix}_tuning.csv")
    recipe = chosen.get("plain", {}).get("setting", [])
    out = []
    for name, method, change, extra in TRIALS[prefix]:
        if only and name not in only:
            continue
        if method not in chosen:
            raise BenchmarkError(f"trial {name}: {method} has no chosen setting in {out_dir / f'{prefix}_tuning.csv'}")
        setting = chosen[method]["setting"] if method != "plain" else []
        base = [*overrides, *recipe]
        run = make_run(method, TUNE_SEED, runs_dir / name, prefix, configs_dir, base, [*setting, *extra], teacher,
                       split=TUNE_SPLIT)
        baseline = make_run(method, TUNE_SEED, Path(chosen[method]["run"]), prefix, configs_dir, base, setting,
                            teacher, split=TUNE_SPLIT)
        out.append((name, method, change, run, chosen[method], baseline))
    return out


def run_trials(prefix="camvid", out_dir="docs/results", runs_dir="runs/extra", configs_dir="configs", only=None,
               train=True, jobs=1, threads=0, overrides=(), teacher_ckpt=None, argv=None, log=print) -> list[dict]:
    """Train the trials that are neither finished nor in the ledger (when `train`), then write the report;
    returns its rows. `overrides` go under every run, as benchmarks.gain's --set does."""
    out, runs_dir = Path(out_dir), Path(runs_dir)
    threads = threads or max(1, (os.cpu_count() or 1) // jobs)
    teacher = resolve_teacher(prefix, configs_dir, list(overrides), teacher_ckpt, log=log)
    trials = plan(prefix, out, runs_dir, configs_dir, teacher, only, overrides)
    ledger = Ledger(out / f"{prefix}_trials_ledger.jsonl")
    todo = []
    for name, _, _, run, _, _ in trials:
        state = check_reuse(run, retrain_changed=False, log=log)
        if state == "done" and ledger.get(run) is None:  # trained by hand, with the same config
            ledger.record(run, run_metrics(run), logged_train_s(run.run_dir))
        elif state != "done" and ledger.get(run) is None and train:
            todo.append(run)
    t0 = time.perf_counter()
    run_jobs(todo, jobs, threads, log, on_done=lambda r, s: ledger.record(r, run_metrics(r), s))
    rows = []
    for name, method, change, run, base, _ in trials:
        got = ledger.get(run)
        if got is None:
            log(f"[{name}] unfinished: left out")
            continue
        row = {"trial": name, "method": method, "change": change, "iters": got["iters"],
               "train_s": got.get("train_s")}
        for key, label in METRICS:
            row[f"{label} %"] = round(100 * got[key], 1)
            row[f"baseline {label} %"] = round(100 * base[key], 1)
        row["delta mIoU"] = round(100 * (got["mIoU"] - base["mIoU"]), 1)
        row["delta bF1"] = round(100 * (got["boundary_f1"] - base["boundary_f1"]), 1)
        row["pays"] = got["mIoU"] > base["mIoU"]
        row["baseline run"] = base["run"]
        row["git_commit"] = got.get("git_commit")
        rows.append(row)
    write_report(rows, out, prefix, runs_dir, argv)
    log(f"trials done in {time.perf_counter() - t0:.0f} s")
    return rows


def write_report(rows: list[dict], out: Path, prefix: str, runs_dir: Path, argv) -> Path:
    shown = ["trial", "change", "iters", "tune mIoU %", "baseline tune mIoU %", "delta mIoU", "tune bF1 %",
             "baseline tune bF1 %", "delta bF1", "tune split %", "baseline tune split %", "pays", "train_s"]
    text = [f"# {prefix}: what else was tried, on the tune split", "",
            f"Each trial is its method's setting as the benchmark chose it ([{prefix}_tuning.csv]({prefix}_tuning.csv)), "
            f"plus one change, trained at seed {TUNE_SEED} and scored on the `{TUNE_SPLIT}` split; the baseline is "
            "the benchmark's own tuning run of that setting (same seed, same split). One seed each: the "
            f"benchmark's seeds differ by several points of val mIoU ([{prefix}.md]({prefix}.md)), so only a "
            "large difference says anything. Val was not looked at.", "",
            markdown_table(rows, shown),
            f"Run folders: `{runs_dir}/<trial>`; every finished trial's numbers are in `{prefix}_trials_ledger.jsonl`.",
            "", provenance("benchmarks.gain.trials", argv), ""]
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out / f"{prefix}_trials.csv")
    path = out / f"{prefix}_trials.md"
    path.write_text("\n".join(text))
    return path


@command
def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m benchmarks.gain.trials", description=__doc__.split("\n\n")[0] + "\n\n"
                       + __doc__.split("\n\n", 2)[2], examples=(
        "python -m benchmarks.gain.trials --prefix camvid --out-dir docs/results --runs-dir runs/camvid_extra --jobs 2",
        "python -m benchmarks.gain.trials --prefix camvid --only brd_1000 kd_1000",
        "python -m benchmarks.gain.trials --prefix camvid --no-train"))
    p.add_argument("--prefix", default="camvid", help=f"dataset config prefix with trials: {', '.join(TRIALS)} "
                                                      "(default camvid)")
    p.add_argument("--out-dir", default="docs/results", help="the benchmark's report folder: its tuning table is read "
                                                             "there, the trials' report written (default docs/results)")
    p.add_argument("--runs-dir", default="runs/extra", help="trial run folders (default runs/extra)")
    p.add_argument("--configs-dir", default="configs", help="folder of the configs (default configs)")
    p.add_argument("--only", nargs="+", default=None, help="these trials only (default all of the prefix's)")
    add_overrides(p)
    p.add_argument("--teacher", default=None, help="teacher checkpoint (default: the BRD config's teacher.ckpt)")
    p.add_argument("--no-train", action="store_true", help="train nothing: report the finished trials")
    p.add_argument("--jobs", type=positive_int, default=1, help="trials trained at a time (default 1)")
    p.add_argument("--threads", type=non_negative_int, default=0, help="torch threads per run (default: cores / jobs)")
    args = p.parse_args(argv)
    known = {t[0] for t in TRIALS.get(args.prefix, [])}
    unknown = [n for n in args.only or [] if n not in known]
    if unknown:
        p.error(f"--only: unknown trial {unknown[0]!r}; {args.prefix} has {', '.join(sorted(known)) or 'none'}")
    run_trials(args.prefix, args.out_dir, args.runs_dir, args.configs_dir, args.only, not args.no_train, args.jobs,
               args.threads, args.overrides, args.teacher, sys.argv[1:] if argv is None else argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
