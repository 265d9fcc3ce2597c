"""What models score at other inference sizes and with the mirrored image: a test-time probe of resolution.

Each model is scored by `distill.evaluate` (the command that scores every card) on each split, at its own
input size and at each `--sizes` HxW (the image resized before inference, the prediction scored at the labels'
native resolution), each also with `--flip` when asked, and the first model's lead over each other is given
per setting. It answers "would the teacher lead by more at another resolution?" without training anything;
a size chosen on one split must be confirmed on another, since choosing on a split flatters it.

    python -m benchmarks.gain.inference_sizes --model teacher=models/camvid_lite/teacher.pt \\
        --model student=models/camvid_lite/brd.pt --dataset camvid --root ../shared/camvid --splits val tune \\
        --sizes 240x320 288x384 432x576 --flip --name camvid_lite_sizes --out-dir docs/results
"""
from __future__ import annotations

import sys
from pathlib import Path

from runtime.contract import ArgumentParser, DataError, check_folder, command, size

from ..report import add_report_flags, labelled_paths, markdown_table, provenance, report_stem, write_csv

NATIVE = "own"  # the model's own input size (its metadata's eval size)
METRICS = ("mIoU", "boundary_f1", "split_rate")


def settings(sizes: list[tuple[int, int]], flip: bool) -> list[tuple[str, bool]]:
    """(size, flip) pairs in report order: the model's own size first, each with the flip after it if asked."""
    named = [NATIVE, *(f"{h}x{w}" for h, w in sizes)]
    return [(s, f) for s in named for f in ((False, True) if flip else (False,))]


def score(model: Path, dataset: str, root: str, split: str, size: str, flip: bool) -> dict:
    from distill import evaluate

    argv = ["--model", str(model), "--dataset", dataset, "--root", root, "--split", split]
    argv += [] if size == NATIVE else ["--size", size]
    argv += ["--flip"] if flip else []
    return evaluate.main(argv)


def split_name(dataset: str, split: str) -> str:
    """The dataset's report label for the split (CamVid: 'held-out drive 0001TP (no model trained on it)'), else
    the split's name."""
    from .runs import report_splits, split_label

    return next((split_label(spec) for spec in report_splits(dataset) if spec[0] == split), split)


def lead_rows(rows: list[dict], first: str) -> list[dict]:
    """Per split and setting: the first model's mIoU minus each other model's, in points."""
    out = []
    for r in rows:
        if r["model"] == first:
            continue
        [base] = [b for b in rows if b["model"] == first and (b["split"], b["size"], b["flip"]) ==
                  (r["split"], r["size"], r["flip"])]
        out.append({"split": r["split"], "size": r["size"], "flip": r["flip"], "lead_over": r["model"],
                    "mIoU_lead": round(base["mIoU"] - r["mIoU"], 2)})
    return out


def parse_args(argv=None):
    p = ArgumentParser(prog="python -m benchmarks.gain.inference_sizes", description=__doc__.split("\n\n")[0],
                       examples=(
                           "python -m benchmarks.gain.inference_sizes --model teacher=models/camvid_lite/teacher.pt "
                           "--model student=models/camvid_lite/brd.pt --dataset camvid --root ../shared/camvid "
                           "--splits val tune --sizes 288x384 --flip --name camvid_lite_sizes --out-dir docs/results",
                           "python -m benchmarks.gain.inference_sizes --model student=runs/synthetic/model.pt "
                           "--dataset synthetic --root data/synthetic --sizes 96x192"))
    p.add_argument("--model", action="append", required=True, metavar="LABEL=FILE",
                   help="a model with its label (repeat; the first is the one whose lead is given)")
    p.add_argument("--dataset", required=True, help="dataset name")
    p.add_argument("--root", required=True, help="dataset root")
    p.add_argument("--splits", nargs="+", default=["val"], help="splits to score (default val)")
    p.add_argument("--sizes", type=size, nargs="*", default=[], metavar="HxW",
                   help="inference sizes besides each model's own (the image resized to HxW)")
    p.add_argument("--flip", action="store_true", help="also score each size averaged with the mirrored image")
    add_report_flags(p, "inference_sizes", "NAME.md and NAME.csv")
    return p.parse_args(argv)


@command
def main(argv=None) -> int:
    args = parse_args(argv)
    report_stem(args.name, "NAME.md, NAME.csv")
    models = labelled_paths(args.model, "--model", "FILE", "teacher=models/camvid_lite/teacher.pt")
    for item, path in zip(args.model, models.values()):
        if not path.is_file():  # before the work: not after the other models' scores
            raise DataError(f"--model {item!r}: no such model file")
    if args.out_dir:  # before the work: a report that cannot be written is one line, not a traceback at the end
        check_folder(args.out_dir, 0, "--out-dir")
    rows = []
    for split in args.splits:
        for at, flip in settings(args.sizes, args.flip):
            for label, path in models.items():
                got = score(path, args.dataset, args.root, split, at, flip)
                rows.append({"model": label, "split": split, "size": at, "flip": flip,
                             **{key: round(100 * got[key], 2) for key in METRICS}, "images": got["num_images"]})
    leads = lead_rows(rows, next(iter(models))) if len(models) > 1 else []
    print(markdown_table(rows))
    if leads:
        print(markdown_table(leads))
    if args.out_dir:
        write_csv(rows, args.out_dir / f"{args.name}.csv")
        probe = args.sizes or args.flip
        how = ("at its own input size (`own`)" + (" and with the image resized to each size before inference (the "
               "prediction scored at the labels' native resolution)" if args.sizes else "")
               + (", each also averaged with the mirrored image (`flip`)" if args.flip else ""))
        md = [f"# Scores{' at other inference sizes' if probe else ''} ({args.dataset})", "",
              f"Each model scored by `distill.evaluate` {how}. Models: "
              + ", ".join(f"{label} (`{p}`)" for label, p in models.items()) + ". Percent; split is the split "
              "rate (lower is better).", ""]
        for split in args.splits:
            md += [f"## {split_name(args.dataset, split)}", "",
                   markdown_table([r for r in rows if r["split"] == split]), ""]
            if leads:
                md += [f"{next(iter(models))}'s mIoU lead, in points:", "",
                       markdown_table([r for r in leads if r["split"] == split]), ""]
        md += [provenance("benchmarks.gain.inference_sizes", argv)]
        (args.out_dir / f"{args.name}.md").write_text("\n".join(md) + "\n")
        print(f"wrote {args.out_dir / (args.name + '.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
