"""Do the boundary maps BRD distils mark real object boundaries? Scored per backbone stage of a trained model.

    python -m benchmarks.gain.boundary_maps --model runs/synthetic_teacher/model.pt --cfg configs/synthetic.yaml
    python -m benchmarks.gain.boundary_maps --model T.pt --cfg C.yaml --split val --images 50 --out-dir out/

For each stage (and the stages fused at stage 1's stride, as `distill.boundary.fuse` distils them) the map
`distill.losses.boundary.boundary_map` is compared with the ground-truth boundaries at the map's own
resolution: a cell is a boundary cell when any label pixel in it has a 4-neighbour of another class
(ignored pixels are never boundaries and cells holding one are left out). A map cell thresholded at t is
a hit when a boundary cell lies within `--tolerance` cells, a boundary cell is recalled when a
thresholded cell does (the BSDS protocol at cell level). Reported over the split: the best-threshold
F-score (ODS) and the average precision (area under the precision-recall curve, 100 thresholds), next
to a uniformly random map's scores. Stages 2-4 are also scored resized (bilinear) to stage 1's stride, so
that every map is compared on the same cells and the share of cells that hold a boundary (what "all cells" would
score as precision). The default split is `tune`, where design choices are made; never val.
Output in --out-dir: <name>.md, <name>.csv, <name>.png (--name, default boundary_maps).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from distill.config import load_config
from runtime.contract import add_overrides, ArgumentParser, check_folder, command, non_negative_int, positive_int

from ..report import markdown_table, provenance, write_csv

THRESHOLDS = np.linspace(0.0, 1.0, 101)[1:]  # maps are scaled to ~[0, 1] (values above 1 count as 1)


def label_boundaries(label: np.ndarray, ignore_index: int = 255) -> tuple[np.ndarray, np.ndarray]:
    """(boundary pixels, valid pixels): a labelled pixel with a 4-neighbour of another labelled class."""
    valid = label != ignore_index
    edge = np.zeros(label.shape, bool)
    for a, b in (((slice(None), slice(1, None)), (slice(None), slice(None, -1))),
                 ((slice(1, None), slice(None)), (slice(None, -1), slice(None)))):
        differ = (label[a] != label[b]) & valid[a] & valid[b]
        edge[a] |= differ
        edge[b] |= differ
    return edge, valid


def to_cells(mask: np.ndarray, size: tuple[int, int], reduce: str) -> np.ndarray:
    """Pixel mask -> cell mask of `size` (h, w) by any (max) or all (min) over the pixels each cell covers."""
    h, w = mask.shape
    ch, cw = size
    ys = np.linspace(0, h, ch + 1).round().astype(int)
    xs = np.linspace(0, w, cw + 1).round().astype(int)
    op = np.logical_or.reduceat if reduce == "any" else np.logical_and.reduceat
    rows = op(mask, ys[:-1], axis=0)
    return op(rows, xs[:-1], axis=1)


class PRCounter:
    """Tolerance-matched precision/recall counts at every threshold, summed over images."""

    def __init__(self, tolerance: int):
        self.k = np.ones((2 * tolerance + 1,) * 2, np.uint8)
        self.counts = np.zeros((len(THRESHOLDS), 4), np.int64)  # hits, predicted, recalled, boundary cells

    def update(self, score: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> None:
        import cv2

        near_gt = cv2.dilate(gt.astype(np.uint8), self.k).astype(bool)
        for i, t in enumerate(THRESHOLDS):
            pred = (score >= t) & valid
            near_pred = cv2.dilate(pred.astype(np.uint8), self.k).astype(bool)
            self.counts[i] += (np.count_nonzero(pred & near_gt), np.count_nonzero(pred),
                               np.count_nonzero(gt & near_pred), np.count_nonzero(gt))

    def scores(self) -> dict:
        hits, pred, rec, gt = self.counts.T.astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(pred > 0, hits / pred, np.nan)
            recall = np.where(gt > 0, rec / gt, 0.0)
            f = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        f = np.nan_to_num(f)
        best = int(np.argmax(f))
        # AP: precision integrated over recall, thresholds from high (low recall) to low
        order = np.argsort(recall)
        r, p = recall[order], np.nan_to_num(precision[order], nan=1.0)
        ap = float(np.sum(np.diff(np.concatenate([[0.0], r])) * p))
        return {"best_f": float(f[best]), "best_threshold": float(THRESHOLDS[best]), "ap": ap,
                "precision_at_best": float(np.nan_to_num(precision[best])), "recall_at_best": float(recall[best])}


def measure(model, dataset, num_images: int, tolerance: int = 1, kernel: int = 3, seed: int = 0, device="cpu"):
    """Per stage and fused: {name: {stride, size, edge_share, best_f, ap, random_f, random_ap, ...}}, and the
    maps of the first images for the picture."""
    import torch

    from distill.losses.boundary import boundary_map, cell_mask, fuse_maps

    rng = np.random.default_rng(seed)
    counters, rand_counters, shares, meta, examples = {}, {}, {}, {}, []
    model.eval()
    with torch.no_grad():
        for i in range(min(num_images, len(dataset))):
            image, label = dataset[i]
            label = np.asarray(label)
            x = torch.as_tensor(image)[None].to(device)
            stages = model.forward_features(x)["stages"]
            valid_px = torch.from_numpy(label != 255)[None].to(device)
            maps = [boundary_map(f.float(), kernel, cell_mask(valid_px, f.shape[-2:], kernel)) for f in stages]
            named = {f"stage {k + 1}": m for k, m in enumerate(maps)}
            # the same maps at stage 1's resolution, so stages compare on equal cells
            for k, m in enumerate(maps[1:], start=2):
                named[f"stage {k} at stride 4"] = fuse_maps([m], maps[0].shape[-2:])
            named["fused (stride 4)"] = fuse_maps(maps, maps[0].shape[-2:])
            edge, valid = label_boundaries(label)
            shown = {}
            for name, m in named.items():
                score = m[0, 0].clamp(max=1.0).cpu().numpy()
                size = score.shape
                gt = to_cells(edge, size, "any")
                ok = to_cells(valid, size, "all")
                gt &= ok
                counters.setdefault(name, PRCounter(tolerance)).update(score, gt, ok)
                rand_counters.setdefault(name, PRCounter(tolerance)).update(rng.random(size), gt, ok)
                shares.setdefault(name, []).append((np.count_nonzero(gt), np.count_nonzero(ok)))
                meta[name] = {"stride": label.shape[0] // size[0], "size": f"{size[0]}x{size[1]}"}
                if "at stride" not in name:
                    shown[name] = score
            if len(examples) < 3:
                examples.append((i, edge, shown))
    rows = []
    for name, c in counters.items():
        s, r = c.scores(), rand_counters[name].scores()
        gt_cells, ok_cells = np.sum(shares[name], axis=0)
        rows.append({"map": name, **meta[name], "boundary cell share": gt_cells / max(ok_cells, 1),
                     "best F": s["best_f"], "threshold": s["best_threshold"], "P at best": s["precision_at_best"],
                     "R at best": s["recall_at_best"], "AP": s["ap"], "random best F": r["best_f"],
                     "random AP": r["ap"]})
    return rows, examples


def picture(dataset, examples, path: Path, raw=None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(examples[0][2])
    cols = 2 + len(names)
    fig, axes = plt.subplots(len(examples), cols, squeeze=False, figsize=(2.6 * cols, 1.6 * len(examples) + 0.6))
    for row, (i, edge, shown) in enumerate(examples):
        cells = [(raw[i][0] if raw is not None else None, "image"), (edge, "label boundaries")]
        cells += [(shown[n], n) for n in names]
        for col, (ax, (img, title)) in enumerate(zip(axes[row], cells)):
            if img is not None:
                ax.imshow(img, cmap=None if img.ndim == 3 else "magma", interpolation="nearest",
                          vmin=None if img.ndim == 3 else 0, vmax=None if img.ndim == 3 else 1)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=8)
    fig.suptitle("Boundary maps of the model's stages (brighter = stronger edge) against label boundaries", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


@command
def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m benchmarks.gain.boundary_maps", description=__doc__, examples=(
        "python -m benchmarks.gain.boundary_maps --model runs/synthetic_teacher/model.pt --cfg synthetic.yaml",
        "python -m benchmarks.gain.boundary_maps --model teacher.pt --cfg synthetic.yaml --images 20 --tolerance 0 1 2",
        "python -m benchmarks.gain.boundary_maps --model models/camvid_lite/teacher.pt --cfg camvid_lite_teacher.yaml "
        "--name boundary_maps_camvid_lite --out-dir docs/results"))
    p.add_argument("--model", required=True, help="trained model checkpoint (student format), e.g. the teacher")
    p.add_argument("--cfg", required=True, help="config whose dataset is read (data.* and its val_kwargs)")
    add_overrides(p)
    p.add_argument("--split", default="tune", help="dataset split (default tune: design choices never look at val)")
    p.add_argument("--images", type=positive_int, default=100, help="images scored (default 100)")
    p.add_argument("--tolerance", type=non_negative_int, nargs="+", default=[0, 1],
                   help="match distance(s) in map cells, one table block each (default 0 1)")
    p.add_argument("--threads", type=non_negative_int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--out-dir", default="runs/boundary_maps", help="output folder (default runs/boundary_maps)")
    p.add_argument("--name", default="boundary_maps", help="output file stem (default boundary_maps)")
    args = p.parse_args(argv)
    cfg = load_config(args.cfg, args.overrides)  # before torch is imported: a bad config is one line at once
    check_folder(args.out_dir, 0, "--out-dir")  # before the work: the maps must have somewhere to go

    import torch

    from distill import checkpoint
    from distill.data import DATASETS, DatasetError, build_dataset
    from distill.data.transforms import EvalTransform

    d = cfg.data
    info = DATASETS[d.dataset]
    model, meta = checkpoint.load(args.model, num_classes=info.num_classes)
    if args.split not in info.splits:
        raise DatasetError(f"--split {args.split!r}: {d.dataset} has splits {', '.join(info.splits)}")
    kwargs = d.val_kwargs if args.split != d.train_split else d.kwargs
    ds = build_dataset(d.dataset, d.root, args.split, transforms=EvalTransform(meta["mean"], meta["std"], cfg.eval.size),
                       **kwargs)
    raw = build_dataset(d.dataset, d.root, args.split, **kwargs)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows, examples = [], None
    for tol in args.tolerance:
        found, shown = measure(model, ds, args.images, tol)
        rows += [{"tolerance": tol, **r} for r in found]
        examples = examples or shown
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out / f"{args.name}.csv")
    picture(ds, examples, out / f"{args.name}.png", raw)
    n = min(args.images, len(ds))
    table = markdown_table(rows)
    text = ["# Boundary maps against label boundaries", "",
            f"Model `{args.model}` ({meta['arch']}, input {meta['input_size'][0]}x{meta['input_size'][1]}), "
            f"{d.dataset}/{args.split}, {n} images, tolerance in map cells. Scores are fractions; "
            f"`boundary cell share` is the share of valid cells holding a label boundary.", "",
            table.rstrip("\n"), "", f"![maps]({args.name}.png)", "", provenance("benchmarks.gain.boundary_maps", argv)]
    (out / f"{args.name}.md").write_text("\n".join(text) + "\n")
    print(table)
    print(f"wrote {out / args.name}.md, .csv, .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
