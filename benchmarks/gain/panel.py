"""The sample-prediction panel of the distillation-gain report: the validation images where BRD and KD (the
plain student when KD is not compared) differ most in boundary F1, with the ground truth and every compared model's prediction."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.overlay import palette_lut

from .runs import label
from .stats import pct


def _predict_all(ckpt, cfg, indices):
    import torch

    from distill import checkpoint
    from distill.data import DATASETS, build_dataset
    from distill.data.transforms import EvalTransform
    from distill.evaluate import predict_logits

    d, e = cfg.data, cfg.eval
    model, meta = checkpoint.load(ckpt, num_classes=DATASETS[d.dataset].num_classes)
    ds = build_dataset(d.dataset, d.root, d.val_split, transforms=EvalTransform(meta["mean"], meta["std"], e.size),
                       **d.val_kwargs)
    settings = dict(mode=e.mode, crop_size=tuple(e.crop_size) if e.crop_size else None,
                    stride=tuple(e.stride) if e.stride else None, flip=e.flip)
    out = []
    with torch.no_grad():
        for i in indices:
            image, _ = ds[i]
            out.append(predict_logits(model.eval(), image[None], **settings).argmax(1)[0].numpy().astype(np.uint8))
    return out, meta


def _per_image(preds, labels, num_classes, key):
    from distill.metrics import SegMetric

    out = []
    for p, t in zip(preds, labels):
        m = SegMetric(num_classes)
        m.update(p, t)
        out.append(m.compute()[key])
    return out


def prediction_panel(cfg, columns: dict[str, Path], path: Path, num_images: int, seed) -> str:
    """Rows: the val images where BRD's and plain's per-image boundary F1 differ most (either sign); columns:
    image, ground truth, one prediction per checkpoint. Returns the caption."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from distill.data import build_dataset
    from distill.data.transforms import EvalTransform

    d = cfg.data
    raw = build_dataset(d.dataset, d.root, d.val_split, transforms=EvalTransform([0, 0, 0], [1, 1, 1], cfg.eval.size),
                        **d.val_kwargs)
    n = len(raw) if cfg.eval.max_images is None else min(len(raw), cfg.eval.max_images)
    labels = [raw[i][1].numpy() for i in range(n)]
    # rows where BRD differs most from what it adds to: KD when KD is compared, else the plain student
    other = "kd" if "kd" in columns else "plain"
    preds, meta = {}, None
    for name in (other, "brd"):
        preds[name], meta = _predict_all(columns[name], cfg, range(n))
    f1 = {name: _per_image(preds[name], labels, meta["num_classes"], "boundary_f1") for name in preds}
    diff = np.nan_to_num(np.asarray(f1["brd"]) - np.asarray(f1[other]))
    chosen = [int(i) for i in np.argsort(-np.abs(diff), kind="stable")[:num_images]]
    shown = {name: [preds[name][i] for i in chosen] for name in preds}
    for name in columns:
        if name not in shown:
            shown[name] = _predict_all(columns[name], cfg, chosen)[0]
    lut = palette_lut(meta["palette"])
    titles = ["image", "ground truth"] + [label(c) for c in columns]
    h, w = labels[0].shape
    fig, axes = plt.subplots(len(chosen), len(titles), squeeze=False,
                             figsize=(2.8 * len(titles), (2.8 * h / w + 0.5) * len(chosen) + 0.4))
    for row, i in enumerate(chosen):
        image = raw[i][0].numpy().transpose(1, 2, 0).clip(0, 255).astype(np.uint8)
        cells = [image, lut[labels[i]]] + [lut[shown[c][row]] for c in columns]
        for col, (ax, cell) in enumerate(zip(axes[row], cells)):
            ax.imshow(cell, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            title = titles[col] if row == 0 else ""
            if col >= 2:
                score = _per_image([shown[list(columns)[col - 2]][row]], [labels[i]], meta["num_classes"], "boundary_f1")[0]
                title = f"{title}\nbF1 {pct(score)}".strip()
            elif col == 0:
                title = f"{title}\nval #{i}".strip()
            ax.set_title(title, fontsize=8)
    wins, losses = int((diff > 0).sum()), int((diff < 0).sum())
    fig.suptitle(f"Largest per-image boundary-F1 differences, BRD vs {label(other)}", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return (f"Val images where the seed-{seed} BRD and {label(other)} students differ most in per-image boundary F1 "
            f"(either sign); per-image bF1 (%) above each prediction. Over all {n} val images BRD's per-image "
            f"boundary F1 is higher on {wins}, lower on {losses}, equal on {n - wins - losses}.")
