"""Can the data pipeline feed a GPU? Images/s of the Cityscapes training pipeline, by worker count.

    python -m benchmarks.speed.loader --root data/cityscapes                       # 0, 2 and 4 workers
    python -m benchmarks.speed.loader --root data/cityscapes --step-its 2.5 --out-dir docs/results/loader

It runs the exact training input pipeline of a config (default `cityscapes.yaml`: PNG decode, label id
mapping, random scale 0.5-2, 512x1024 crop, flip, photometric jitter, normalisation, batching; built by
`distill.build.build_data`) for each worker count, and reports images/s after a warm-up. The GPU needs
`--batch` (default 16, the recipe's global batch) times `--step-its` images per second: `--step-its` is the
training speed you state for your GPU(s), in iterations/s at that batch (measure it with a short run's
train_log.csv sec_per_iter); the report says which worker counts keep up.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from runtime.contract import (add_overrides, ArgumentParser, command, non_negative_int, positive_float, positive_int,
                              size_arg, write_json_file)

DEFAULT_WORKERS = (0, 2, 4)


def measure(cfg_name: str, root: str, workers: int, batch: int, batches: int, crop=None, extra=()) -> dict:
    """Images/s of the config's training loader with `workers` processes, over `batches` batches.

    The clock starts when the iterator is created: starting the workers is counted (a small, conservative
    bias), while DataLoader's prefetching cannot hand over batches made before the clock started, which
    a warm-up followed by a short timed window would (they arrive in bursts, one per worker)."""
    from distill.config import load_config
    from distill.build import build_data
    from distill.data import MEAN, STD

    over = [f"data.root={root}", f"data.num_workers={workers}", f"train.batch_size={batch}", f"train.iters={batches}"]
    if crop:
        over.append(f"data.crop_size=[{crop[0]},{crop[1]}]")
    cfg = load_config(cfg_name, [*extra, *over])
    loader, _, _ = build_data(cfg, rank=0, world=1, start=0, mean=MEAN, std=STD)
    images, shape, t0 = 0, None, time.perf_counter()
    for x, _ in loader:
        images += x.shape[0]
        shape = list(x.shape)
    seconds = time.perf_counter() - t0
    return {"workers": workers, "images": images, "seconds": seconds, "images_per_s": images / seconds,
            "batch_shape": shape, "crop": list(cfg.data.crop_size)}


def verdict(rows: list[dict], batch: int, step_its: float) -> list[dict]:
    need = batch * step_its
    return [{**r, "needed_images_per_s": need, "share_of_need": r["images_per_s"] / need,
             "keeps_up": r["images_per_s"] >= need} for r in rows]


def report(rows: list[dict], cfg_name: str, batch: int, step_its: float) -> str:
    need = batch * step_its
    lines = [f"# Loader speed: {cfg_name} training pipeline, {rows[0]['crop'][0]}x{rows[0]['crop'][1]} crops",
             "", f"A GPU step at batch {batch} and {step_its:g} it/s needs {need:g} images/s.", "",
             "| workers | images/s | share of need | keeps up |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['workers']} | {r['images_per_s']:.2f} | {100 * r['share_of_need']:.0f}% | "
                     f"{'yes' if r['keeps_up'] else 'no'} |")
    enough = [r["workers"] for r in rows if r["keeps_up"]]
    lines += ["", f"Fewest workers that keep up: {min(enough)}." if enough else
              f"No worker count measured keeps up: {need / max(r['images_per_s'] for r in rows):.1f}x the best rate "
              "is needed (more CPU cores per GPU, or pre-decoded images)."]
    return "\n".join(lines) + "\n"


@command
def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m benchmarks.speed.loader", description=__doc__, examples=(
        "python -m benchmarks.speed.loader --root data/cityscapes",
        "python -m benchmarks.speed.loader --root data/cityscapes --workers 0 2 4 8 --batch 16 --step-its 2.0",
        "python -m benchmarks.speed.loader --root data/cityscapes --size 512x1024 --out-dir docs/results"))
    p.add_argument("--root", required=True, help="Cityscapes root (leftImg8bit/ and gtFine/ with train and val)")
    p.add_argument("--cfg", default="cityscapes.yaml", help="config whose training pipeline is measured")
    add_overrides(p)
    p.add_argument("--workers", type=non_negative_int, nargs="+", default=list(DEFAULT_WORKERS),
                   help="DataLoader worker counts to measure (default 0 2 4)")
    p.add_argument("--batch", type=positive_int, default=16, help="global batch of a GPU step (default 16)")
    p.add_argument("--step-its", type=positive_float, default=2.0,
                   help="stated GPU training speed at --batch, iterations/s (default 2.0)")
    p.add_argument("--batches", type=positive_int, default=10, help="batches per worker count (default 10)")
    size_arg(p, "--size", help="crop size HxW (default: the config's data.crop_size)")
    p.add_argument("--out-dir", help="folder for loader.md and loader.json (default: print only)")
    args = p.parse_args(argv)
    extra = args.overrides
    rows = [measure(args.cfg, args.root, w, args.batch, args.batches, args.size, extra) for w in args.workers]
    rows = verdict(rows, args.batch, args.step_its)
    text = report(rows, args.cfg, args.batch, args.step_its)
    print(text, end="")
    if args.out_dir:
        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "loader.md").write_text(text)
        write_json_file(out / "loader.json", {"cfg": args.cfg, "batch": args.batch, "step_its": args.step_its,
                                               "rows": rows, "command": sys.argv})
    return 0


if __name__ == "__main__":
    sys.exit(main())
