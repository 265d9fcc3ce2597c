"""Learning curves on the split each run validates on: mIoU, boundary F1 and split rate against iterations, read
from the runs' own val_log.csv (what `distill.run` scored every train.val_every steps).

The pretrained CamVid recipes (configs/camvid_lite_*.yaml) validate on `tune`, the 0001TP drive that no model
trains on, so these are held-out-drive curves: where the plain student's curve flattens is the schedule the
methods are compared at (issue 28), and the teacher's shows how far it leads there.

    python -m benchmarks.gain.curve --run teacher=runs/camvid_lite_teacher --run plain=runs/camvid_lite_plain \\
        --name camvid_lite_curve --out-dir docs/results
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

from runtime.contract import ArgumentParser, DataError, check_folder, command, one_line

from ..report import add_report_flags, labelled_paths, markdown_table, provenance, report_stem, write_csv

METRICS = ("mIoU", "boundary_f1", "split_rate")


def read_curve(run_dir: Path) -> list[dict]:
    """The rows of a run folder's val_log.csv as numbers; one error line when there is none."""
    log = run_dir / "val_log.csv"
    if not log.is_file():
        raise DataError(f"{run_dir}: no val_log.csv (not a distill.run folder, or it has not validated yet)")
    try:
        with open(log, newline="") as f:
            rows = [{"step": int(r["step"]), **{k: float(r[k]) for k in METRICS}} for r in csv.DictReader(f)]
    except (UnicodeDecodeError, csv.Error, KeyError, TypeError, ValueError) as e:
        raise DataError(f"{log}: not a val_log.csv as distill.run writes it (step, {', '.join(METRICS)}; "
                        f"{type(e).__name__}: {one_line(e)})") from None
    if not rows:
        raise DataError(f"{log}: no validation row yet")
    return rows


def val_split(run_dir: Path) -> str:
    """The split the run validated on, from its config.yaml (`data.val_split`)."""
    import yaml

    cfg = yaml.safe_load((run_dir / "config.yaml").read_text()) if (run_dir / "config.yaml").is_file() else {}
    return str((cfg.get("data") or {}).get("val_split", "unknown"))


def summary(label: str, rows: list[dict]) -> str:
    """Where the run stands: its best mIoU and at which step, and what the last interval added."""
    best = max(rows, key=lambda r: r["mIoU"])
    text = f"{label}: best {100 * best['mIoU']:.1f} mIoU at step {best['step']}"
    if len(rows) > 1:
        a, b = rows[-2], rows[-1]
        text += (f"; the last {b['step'] - a['step']} iterations (steps {a['step']}->{b['step']}) moved it "
                 f"{100 * (b['mIoU'] - a['mIoU']):+.1f} points")
    return text + "."


def chart(curves: dict[str, list[dict]], path: Path, split: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(METRICS), figsize=(5 * len(METRICS), 3.6))
    for ax, key in zip(axes, METRICS):
        for label, rows in curves.items():
            ax.plot([r["step"] for r in rows], [100 * r[key] for r in rows], marker="o", label=label)
        ax.set_xlabel("iteration")
        ax.set_title(f"{key} % ({split})")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse_args(argv=None):
    p = ArgumentParser(prog="python -m benchmarks.gain.curve", description=__doc__.split("\n\n")[0], examples=(
        "python -m benchmarks.gain.curve --run teacher=runs/camvid_lite_teacher --run plain=runs/camvid_lite_plain "
        "--name camvid_lite_curve --out-dir docs/results",
        "python -m benchmarks.gain.curve --run plain=runs/camvid_lite_plain"))
    p.add_argument("--run", action="append", required=True, metavar="LABEL=DIR",
                   help="a run folder with its label (repeat for each run)")
    add_report_flags(p, "curve", "NAME.md, NAME.csv and NAME.png")
    return p.parse_args(argv)


@command
def main(argv=None) -> int:
    args = parse_args(argv)
    report_stem(args.name, "NAME.md, NAME.csv, NAME.png")
    if args.out_dir:  # before the work: a report that cannot be written is one line, not a traceback at the end
        check_folder(args.out_dir, 0, "--out-dir")
    runs = labelled_paths(args.run, "--run", "DIR", "plain=runs/camvid_lite_plain")
    curves = {label: read_curve(d) for label, d in runs.items()}
    splits = sorted({val_split(d) for d in runs.values()})
    split = ", ".join(splits)
    rows = [{"run": label, "step": r["step"], **{f"{k}_pct": round(100 * r[k], 2) for k in METRICS}}
            for label, rs in curves.items() for r in rs]
    lines = [summary(label, rs) for label, rs in curves.items()]
    print(markdown_table(rows))
    print("\n".join(lines))
    if args.out_dir:
        write_csv(rows, args.out_dir / f"{args.name}.csv")
        chart(curves, args.out_dir / f"{args.name}.png", split)
        md = [f"# Learning curves on {split}", "",
              f"Each run's own validation (`val_log.csv`, written by `distill.run` every train.val_every "
              f"iterations) on the `{split}` split; runs: "
              + ", ".join(f"{label} (`{d}`)" for label, d in runs.items()) + ".", "",
              *[f"- {s}" for s in lines], "", f"![curves]({args.name}.png)", "", markdown_table(rows), "",
              provenance("benchmarks.gain.curve", argv)]
        (args.out_dir / f"{args.name}.md").write_text("\n".join(md) + "\n")
        print(f"wrote {args.out_dir / (args.name + '.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
