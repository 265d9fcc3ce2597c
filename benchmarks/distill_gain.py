"""What BRD buys: train (or reuse) plain, KD, CWD, BRD and ablation students over several seeds, evaluate
them and the teacher the same way, and report mIoU, boundary F1 / IoU and fragmentation as mean ± std.

    python -m benchmarks.distill_gain                                  # synthetic configs, 6 methods x 3 seeds
    python -m benchmarks.distill_gain --methods plain brd --seeds 0 --set train.iters=60 --out runs/quick

Run folders are <runs-dir>/<method>_s<seed>/ (the runner's own layout): a finished one (student.pt) is
reused, an interrupted one resumes from its last.pt. Every student and the teacher are then scored by
`distill.evaluate` on the config's validation split with the config's eval settings, so all rows come
from one evaluation. Output in --out: results.md, results.csv (one row per method), runs.csv (one row
per run, with its training wall time), metrics.png, fragmentation.png and panel.png (validation images
where BRD and plain differ most in boundary F1).
"""
from __future__ import annotations

import argparse
import math
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from .report import bar_chart, markdown_table, write_csv

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
LABELS = {"plain": "plain (CE only)", "kd": "KD", "cwd": "CWD", "skd": "SKD", "brd": "BRD",
          "boundary": "boundary only (+KD)", "relation": "relation only (+KD)", "teacher": "teacher"}
DEFAULT_METHODS = ("plain", "kd", "cwd", "brd", "boundary", "relation")
DEFAULT_SEEDS = (0, 1, 2)
# (key in evaluate()'s dict, column stem); higher is better except fragmentation, best at 1.0
METRICS = (("mIoU", "miou"), ("boundary_f1", "bf1"), ("boundary_iou", "biou"), ("fragmentation", "frag"))
SHORT = {"miou": "mIoU", "bf1": "bF1", "biou": "bIoU", "frag": "frag"}


class BenchmarkError(RuntimeError):
    """A benchmark that cannot run as asked (missing config, missing teacher); the message says what to do."""


def config_path(method: str, prefix: str = "synthetic", configs_dir: str | Path = "configs") -> Path:
    if method not in METHODS:
        raise BenchmarkError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    path = Path(configs_dir) / METHODS[method].format(prefix=prefix)
    if not path.is_file():
        raise BenchmarkError(f"method {method!r}: config {path} does not exist (dataset prefix {prefix!r})")
    return path


def _load(method, prefix, configs_dir, overrides, extra=()):
    from distill.config import load_config

    return load_config(config_path(method, prefix, configs_dir), [*overrides, *extra])


# ---------------------------------------------------------------------------------------- training
def resolve_teacher(prefix: str, configs_dir, overrides, teacher_ckpt=None, train_teacher=False, log=print) -> Path | None:
    """The teacher checkpoint every distilled run uses: --teacher, else the BRD config's teacher.ckpt.
    Missing: trained with the config's teacher.config when `train_teacher`, else an error saying how."""
    from distill.config import load_config
    from distill.engine import train

    brd = _load("brd", prefix, configs_dir, overrides)
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
    cfg = load_config(brd.teacher.config, [*overrides, f"out_dir={path.parent}"])
    log(f"training the teacher: {brd.teacher.config} -> {path}")
    t = time.perf_counter()
    train(cfg)
    log(f"teacher trained in {time.perf_counter() - t:.0f} s")
    return path


def train_run(method: str, seed: int, runs_dir, prefix="synthetic", configs_dir="configs", overrides=(),
              teacher: Path | None = None, reuse: bool = True, train: bool = True, log=print) -> dict | None:
    """Train one (method, seed) student into <runs_dir>/<method>_s<seed>/ unless it is already finished.
    Returns {method, seed, run_dir, config, trained, train_s, step_s, iters, differs}; None when the run
    is not finished and `train` is False."""
    from distill.checkpoint import load_meta
    from distill.engine import train as run_training

    run_dir = Path(runs_dir) / f"{method}_s{seed}"
    extra = [f"train.seed={seed}", f"out_dir={run_dir}", f"name={method}_s{seed}"]
    cfg = _load(method, prefix, configs_dir, overrides, extra)
    if teacher is not None and cfg.distill.active():
        cfg.teacher.ckpt = str(teacher)
    info = {"method": method, "seed": seed, "run_dir": str(run_dir),
            "config": str(config_path(method, prefix, configs_dir)), "trained": False, "train_s": None,
            "step_s": None, "iters": cfg.train.iters, "differs": ""}
    student = run_dir / "student.pt"
    if student.is_file() and (reuse or not train):
        changed = _config_changes(student, cfg.to_dict())
        note = f" (warning: trained with other settings: {', '.join(changed)})" if changed else ""
        log(f"[{method} seed {seed}] reusing {student}{note}")
        iters = load_meta(student).get("config", {}).get("train", {}).get("iters")
        return {**info, "step_s": logged_step_time(run_dir), "iters": iters, "differs": " ".join(changed)}
    if not train:
        log(f"[{method} seed {seed}] no finished run in {run_dir}: left out")
        return None
    if not reuse:  # a fresh run: the runner would otherwise resume (or just re-evaluate) the old one
        for name in ("student.pt", "last.pt", "best.pt"):
            (run_dir / name).unlink(missing_ok=True)
        shutil.rmtree(run_dir / "tb", ignore_errors=True)
    log(f"[{method} seed {seed}] training {info['config']} -> {run_dir}")
    t = time.perf_counter()
    run_training(cfg)
    info.update(trained=True, train_s=time.perf_counter() - t, step_s=logged_step_time(run_dir))
    log(f"[{method} seed {seed}] trained in {info['train_s']:.0f} s")
    return info


def logged_step_time(run_dir) -> float | None:
    """Seconds the run's training steps took by its train_log.csv (window mean x steps in the window;
    validation and checkpoint writing excluded), so reused runs have a time too."""
    import csv

    path = Path(run_dir) / "train_log.csv"
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        rows = sorted(((int(r["step"]), float(r["sec_per_iter"])) for r in csv.DictReader(f)))
    total, prev = 0.0, 0
    for step, sec in rows:
        total, prev = total + (step - prev) * sec, step
    return total if rows else None


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v and k not in ("kwargs", "val_kwargs"):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _config_changes(student: Path, wanted: dict) -> list[str]:
    """Keys whose values differ between the config a student was trained with and the one asked for now
    (log settings aside, which change nothing learned)."""
    from distill.checkpoint import load_meta

    old, new = _flatten(load_meta(student).get("config", {})), _flatten(wanted)
    skip = {"name", "out_dir", "train.log_every", "train.ckpt_every", "train.val_every", "train.threads", "data.num_workers"}
    return sorted(k for k in set(old) | set(new) if k not in skip and old.get(k) != new.get(k))


# ---------------------------------------------------------------------------------------- evaluation
class Validation:
    """The validation split and eval settings of one config: scores checkpoints and predicts single images."""

    def __init__(self, cfg):
        import torch

        from distill.data import build_dataset

        self.cfg = cfg
        d = cfg.data
        self.raw = build_dataset(d.dataset, d.root, d.val_split, **d.val_kwargs)
        if cfg.train.threads:  # as the runner does: the same CPU share for evaluation as for training
            torch.set_num_threads(cfg.train.threads)
        want = cfg.train.device
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if want == "auto" else want
        e = cfg.eval
        self.settings = dict(mode=e.mode, crop_size=tuple(e.crop_size) if e.crop_size else None,
                             stride=tuple(e.stride) if e.stride else None, flip=e.flip)
        self.max_images = e.max_images
        self.size = e.size

    def load(self, ckpt):
        from distill import checkpoint
        from distill.data import DATASETS

        model, meta = checkpoint.load(ckpt, num_classes=DATASETS[self.cfg.data.dataset].num_classes)
        return model.to(self.device), meta

    def transformed(self, meta):
        from distill.data import build_dataset
        from distill.data.transforms import EvalTransform

        d = self.cfg.data
        return build_dataset(d.dataset, d.root, d.val_split, transforms=EvalTransform(meta["mean"], meta["std"], self.size),
                             **d.val_kwargs)

    def score(self, ckpt) -> dict:
        """`distill.evaluate.evaluate` on the split, as the runner's validation does."""
        from distill.evaluate import evaluate

        model, meta = self.load(ckpt)
        return evaluate(model, self.transformed(meta), meta["num_classes"], device=self.device,
                        max_images=self.max_images, **self.settings)

    def predictions(self, ckpt, indices) -> list[np.ndarray]:
        import torch

        from distill.evaluate import predict_logits

        model, meta = self.load(ckpt)
        ds = self.transformed(meta)
        out = []
        with torch.no_grad():
            for i in indices:
                image, _ = ds[i]
                logits = predict_logits(model, image[None].to(self.device), **self.settings)
                out.append(logits.argmax(1)[0].cpu().numpy().astype(np.uint8))
        return out

    def image_and_label(self, i):
        import cv2

        image, label = self.raw[i]
        if self.size is not None and label.shape != tuple(self.size):
            h, w = self.size
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
            label = cv2.resize(label, (w, h), interpolation=cv2.INTER_NEAREST)
        return image, label

    def __len__(self):
        return len(self.raw) if self.max_images is None else min(len(self.raw), self.max_images)


def per_image_boundary_f1(preds: list[np.ndarray], labels: list[np.ndarray], num_classes: int) -> list[float]:
    from distill.metrics import SegMetric

    out = []
    for p, t in zip(preds, labels):
        m = SegMetric(num_classes, fragmentation=False)
        m.update(p, t)
        out.append(m.compute()["boundary_f1"])
    return out


# ---------------------------------------------------------------------------------------- summary
def _mean_std(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else float("nan"))


def summarize(runs: list[dict], teacher: dict | None) -> list[dict]:
    """One row per method (mean, sample std over seeds, Δ of the mean vs plain), then the teacher's."""
    rows = []
    for method in dict.fromkeys(r["method"] for r in runs):
        mine = [r for r in runs if r["method"] == method]
        row = {"method": method, "label": LABELS.get(method, method), "seeds": len(mine)}
        for key, stem in METRICS:
            row[f"{stem}_mean"], row[f"{stem}_std"] = _mean_std([r[key] for r in mine])
        rows.append(row)
    plain = next((r for r in rows if r["method"] == "plain"), None)
    for row in rows:
        for _, stem in METRICS:
            row[f"{stem}_delta"] = row[f"{stem}_mean"] - plain[f"{stem}_mean"] if plain else float("nan")
    if teacher is not None:
        row = {"method": "teacher", "label": LABELS["teacher"], "seeds": 1}
        for key, stem in METRICS:
            row[f"{stem}_mean"], row[f"{stem}_std"] = teacher[key], float("nan")
            row[f"{stem}_delta"] = teacher[key] - plain[f"{stem}_mean"] if plain else float("nan")
        rows.append(row)
    return rows


def _verdict(row: dict, plain: dict) -> str:
    """Per metric: + better than plain, − worse, ≈ within one std of either (noise at this seed count)."""
    parts = []
    for _, stem in METRICS:
        a, b = row[f"{stem}_mean"], plain[f"{stem}_mean"]
        noise = max([s for s in (row[f"{stem}_std"], plain[f"{stem}_std"]) if not math.isnan(s)], default=0.0)
        gain = (abs(b - 1) - abs(a - 1)) if stem == "frag" else (a - b)  # fragmentation: closer to 1 is better
        sign = "≈" if abs(gain) <= noise else ("+" if gain > 0 else "−")
        parts.append(f"{SHORT[stem]} {sign}")
    return ", ".join(parts)


def _pm(mean, std, scale=100.0, digits=1):
    if math.isnan(mean):
        return "–"
    s = f"{mean * scale:.{digits}f}"
    return s if math.isnan(std) else f"{s} ± {std * scale:.{digits}f}"


def _pm_n(row, stem):
    n = row["seeds"]
    return f"{_pm(row[f'{stem}_mean'], row[f'{stem}_std'])} ({n} seed{'s' if n != 1 else ''})"


def _signed(v, scale=100.0, digits=1):
    return "–" if math.isnan(v) else f"{v * scale:+.{digits}f}"


def markdown(rows: list[dict], runs: list[dict], settings: str, panel_caption: str | None) -> str:
    plain = next((r for r in rows if r["method"] == "plain"), None)
    table = []
    for r in rows:
        t = {"method": r["label"], "seeds": r["seeds"],
             "mIoU %": _pm(r["miou_mean"], r["miou_std"]), "boundary F1 %": _pm(r["bf1_mean"], r["bf1_std"]),
             "boundary IoU %": _pm(r["biou_mean"], r["biou_std"]),
             "fragmentation": _pm(r["frag_mean"], r["frag_std"], 1.0, 2)}
        if plain is not None:
            t["Δ mIoU"] = _signed(r["miou_delta"])
            t["Δ bF1"] = _signed(r["bf1_delta"])
            t["Δ frag"] = _signed(r["frag_delta"], 1.0, 2)
            t["vs plain"] = "" if r is plain or r["method"] == "teacher" else _verdict(r, plain)
        table.append(t)
    lines = ["# What BRD buys: distillation gain", "", settings, "",
             "Mean ± sample std over seeds (percent, except fragmentation). Δ = mean − plain's mean. "
             "vs plain: + better, − worse, ≈ difference within one std (noise at this many seeds); "
             "fragmentation = predicted / true connected components per (image, class), 1.00 ideal, "
             "so it is better when closer to 1. The teacher is one checkpoint (no std).", "",
             markdown_table(table).rstrip("\n")]
    if _conclusion(rows):
        lines += ["", _conclusion(rows)]
    lines += ["", "![metrics](metrics.png)", "", "![fragmentation](fragmentation.png)"]
    if panel_caption:
        lines += ["", "![panel](panel.png)", "", panel_caption]
    lines += ["", "## Runs", "", markdown_table([
        {"run": Path(r["run_dir"]).name, "config": r["config"], "iters": r["iters"], "mIoU %": f"{100 * r['mIoU']:.1f}",
         "bF1 %": f"{100 * r['boundary_f1']:.1f}", "bIoU %": f"{100 * r['boundary_iou']:.1f}",
         "frag": f"{r['fragmentation']:.2f}",
         "train wall s": "reused" if r["train_s"] is None else f"{r['train_s']:.1f}",
         "logged step s": "–" if r["step_s"] is None else f"{r['step_s']:.1f}",
         "config differs in": r["differs"] or "–"} for r in runs])]
    return "\n".join(lines) + "\n"


def _conclusion(rows: list[dict]) -> str:
    """Plain sentences on BRD against plain and against the best other student (by mean), both directions."""
    by = {r["method"]: r for r in rows}
    if "brd" not in by or "plain" not in by:
        return ""
    brd, plain = by["brd"], by["plain"]
    out = [f"BRD vs plain: {_verdict(brd, plain)} (mIoU {_signed(brd['miou_delta'])}, boundary F1 "
           f"{_signed(brd['bf1_delta'])}, boundary IoU {_signed(brd['biou_delta'])}, fragmentation "
           f"{_signed(brd['frag_delta'], 1.0, 2)})."]
    others = [r for r in rows if r["method"] not in ("brd", "teacher")]
    for _, stem, name in (("mIoU", "miou", "mIoU"), ("boundary_f1", "bf1", "boundary F1")):
        best = max(others, key=lambda r: r[f"{stem}_mean"])
        if best[f"{stem}_mean"] > brd[f"{stem}_mean"]:
            out.append(f"BRD is not the best student on {name}: {best['label']} has {_pm_n(best, stem)} "
                       f"vs BRD's {_pm_n(brd, stem)}.")
        else:
            out.append(f"BRD has the highest student {name} ({_pm_n(brd, stem)}; next {best['label']} {_pm_n(best, stem)}).")
    return " ".join(out)


# ---------------------------------------------------------------------------------------- pictures
def colourise(label: np.ndarray, palette) -> np.ndarray:
    """Class ids -> RGB with the dataset palette; ignore (and any id past the palette) in black."""
    lut = np.zeros((256, 3), np.uint8)
    lut[:len(palette)] = np.asarray(palette, np.uint8)
    return lut[label]


def prediction_panel(val: Validation, columns: dict[str, Path], path: Path, num_images: int = 4) -> str:
    """Rows: the validation images where BRD's and plain's per-image boundary F1 differ most (either sign);
    columns: image, ground truth, then one prediction per checkpoint in `columns` (must hold plain and brd).
    Returns the caption."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from distill.checkpoint import load_meta

    meta = load_meta(columns["brd"])
    n = len(val)
    labels = [val.image_and_label(i)[1] for i in range(n)]
    f1 = {name: per_image_boundary_f1(val.predictions(ckpt, range(n)), labels, meta["num_classes"])
          for name, ckpt in columns.items() if name in ("plain", "brd")}
    diff = np.nan_to_num(np.asarray(f1["brd"]) - np.asarray(f1["plain"]))
    chosen = [int(i) for i in np.argsort(-np.abs(diff), kind="stable")[:num_images]]
    preds = {name: val.predictions(ckpt, chosen) for name, ckpt in columns.items()}
    shown = {name: dict(zip(chosen, per_image_boundary_f1(p, [labels[i] for i in chosen], meta["num_classes"])))
             for name, p in preds.items()}
    titles = ["image", "ground truth"] + [LABELS.get(name, name) for name in columns]
    h, w = labels[0].shape
    fig, axes = plt.subplots(len(chosen), len(titles), squeeze=False,
                             figsize=(2.8 * len(titles), (2.8 * h / w + 0.5) * len(chosen) + 0.4))
    for row, i in enumerate(chosen):
        image, label = val.image_and_label(i)
        cells = [image, colourise(label, meta["palette"])] + [colourise(preds[c][row], meta["palette"]) for c in columns]
        for col, (ax, cell) in enumerate(zip(axes[row], cells)):
            ax.imshow(cell, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            title = titles[col] if row == 0 else ""
            name = list(columns)[col - 2] if col >= 2 else None
            if name is not None:
                title = f"{title}\nbF1 {100 * shown[name][i]:.1f}" if title else f"bF1 {100 * shown[name][i]:.1f}"
            elif col == 0:
                title = f"{title}\nval #{i}" if title else f"val #{i}"
            ax.set_title(title, fontsize=8)
    wins = int((diff > 0).sum())
    losses = int((diff < 0).sum())
    caption = (f"Validation images where BRD and plain differ most in per-image boundary F1 (|Δ|, either sign), "
               f"from the seed-{_seed_of(columns['brd'])} students; per-image bF1 (%) above each prediction. Over all {n} "
               f"validation images BRD's per-image boundary F1 is higher on {wins}, lower on {losses}, "
               f"equal on {n - wins - losses}. Colours: the dataset palette (black = ignore).")
    fig.suptitle("Sample predictions: largest per-image boundary-F1 difference, BRD vs plain", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return caption


def _seed_of(ckpt: Path) -> str:
    return Path(ckpt).parent.name.rsplit("_s", 1)[-1]


def charts(rows: list[dict], out: Path) -> None:
    methods = [r["label"] for r in rows]
    stems = (("miou", "mIoU"), ("bf1", "boundary F1"), ("biou", "boundary IoU"))
    bar_chart([name for _, name in stems], {r["label"]: [100 * r[f"{s}_mean"] for s, _ in stems] for r in rows},
              out / "metrics.png", "percent", "Validation metrics (mean ± std over seeds)",
              errors={r["label"]: [100 * np.nan_to_num(r[f"{s}_std"]) for s, _ in stems] for r in rows})
    bar_chart(methods, {"fragmentation": [r["frag_mean"] for r in rows]}, out / "fragmentation.png",
              "predicted / true components (1 = ideal)", "Fragmentation (mean ± std over seeds)",
              errors={"fragmentation": [np.nan_to_num(r["frag_std"]) for r in rows]})


# ---------------------------------------------------------------------------------------- the benchmark
def run_distill_gain(methods=DEFAULT_METHODS, seeds=DEFAULT_SEEDS, out_dir="runs/distill_gain", runs_dir=None,
                     overrides=(), teacher_ckpt=None, reuse=True, prefix="synthetic", configs_dir="configs",
                     train_teacher=False, panel_images=4, train=True, log=print) -> list[dict]:
    """Train or reuse every (method, seed) run, evaluate all of them and the teacher, write the report.
    train=False: report the finished runs that are there (others are listed as left out), train nothing.

    Returns the per-method rows of results.csv (method, label, seeds, {miou,bf1,biou,frag}_{mean,std,delta};
    fractions, fragmentation a ratio; std NaN with one seed; delta vs plain's mean, NaN without plain).
    """
    methods, seeds, overrides = list(dict.fromkeys(methods)), list(dict.fromkeys(int(s) for s in seeds)), list(overrides)
    if not methods or not seeds:
        raise BenchmarkError("need at least one method and one seed")
    for m in methods:
        config_path(m, prefix, configs_dir)  # every config exists before hours of training start
    out = Path(out_dir)
    runs_dir = Path(runs_dir) if runs_dir is not None else out / "runs"
    needs_teacher = any(_load(m, prefix, configs_dir, overrides, ["teacher.ckpt=x"]).distill.active() for m in methods)
    teacher = None
    if train and (needs_teacher or teacher_ckpt or train_teacher):
        teacher = resolve_teacher(prefix, configs_dir, overrides, teacher_ckpt, train_teacher, log)
    else:  # nothing to distil: the teacher row when its checkpoint is there
        default = Path(teacher_ckpt or _load("brd", prefix, configs_dir, overrides).teacher.ckpt or "")
        teacher = default if default.is_file() else None

    t_all = time.perf_counter()
    runs, missing = [], []
    for s in seeds:  # seed-major: an interrupted benchmark has every method at the first seeds
        for m in methods:
            r = train_run(m, s, runs_dir, prefix, configs_dir, overrides, teacher, reuse, train, log)
            runs.append(r) if r is not None else missing.append(f"{m}_s{s}")
    if not runs:
        raise BenchmarkError(f"no finished runs under {runs_dir} for methods {methods} and seeds {seeds}")

    val = Validation(_load(methods[0], prefix, configs_dir, overrides))
    log(f"evaluating {len(runs)} students{' and the teacher' if teacher else ''} on "
        f"{val.cfg.data.dataset}/{val.cfg.data.val_split} ({len(val)} images)")
    for r in runs:
        scores = val.score(Path(r["run_dir"]) / "student.pt")
        r.update({k: float(scores[k]) for k, _ in METRICS})
    teacher_scores = None
    if teacher is not None:
        teacher_scores = {k: float(v) for k, v in val.score(teacher).items() if k in dict(METRICS)}
    rows = summarize(runs, teacher_scores)

    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out / "results.csv")
    write_csv([{k: r[k] for k in ("method", "seed", "run_dir", "config", "iters", "trained", "train_s", "step_s",
                                  *dict(METRICS), "differs")}
               for r in runs], out / "runs.csv")
    charts(rows, out)
    caption = None
    both = [s for s in seeds if {("plain", s), ("brd", s)} <= {(r["method"], r["seed"]) for r in runs}]
    if both:
        seed = both[0]
        cols = {"plain": runs_dir / f"plain_s{seed}" / "student.pt", "brd": runs_dir / f"brd_s{seed}" / "student.pt"}
        if teacher is not None:
            cols["teacher"] = teacher
        caption = prediction_panel(val, cols, out / "panel.png", panel_images)
    settings = (f"Dataset configs `{configs_dir}/{prefix}*.yaml`, seeds {seeds}, overrides "
                f"{' '.join(overrides) if overrides else '(none)'}; "
                + (f"teacher `{teacher}`" if teacher else "no teacher row (no teacher checkpoint found)") + "; validation "
                f"{val.cfg.data.dataset}/{val.cfg.data.val_split}, {len(val)} images, {val.settings['mode']} inference"
                f"{' + flip' if val.settings['flip'] else ''}. Run folders under `{runs_dir}`."
                + (f" Not run (left out of the means): {', '.join(missing)}." if missing else ""))
    (out / "results.md").write_text(markdown(rows, runs, settings, caption))
    log(f"wrote {out / 'results.md'}, results.csv, runs.csv, metrics.png, fragmentation.png"
        f"{', panel.png' if caption else ''} ({time.perf_counter() - t_all:.0f} s)")
    return rows


def _words(values) -> list[str]:
    return [w for v in values for w in v.split(",") if w]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.distill_gain", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS),
                   help=f"methods to compare (of {', '.join(METHODS)}; default: {' '.join(DEFAULT_METHODS)})")
    p.add_argument("--seeds", nargs="+", default=[str(s) for s in DEFAULT_SEEDS], help="train.seed values (default 0 1 2)")
    p.add_argument("--prefix", default="synthetic",
                   help="dataset config prefix: configs/<prefix>_plain.yaml, <prefix>.yaml (BRD), ... (default synthetic)")
    p.add_argument("--configs-dir", default="configs")
    p.add_argument("--out", default="runs/distill_gain", help="report folder (default runs/distill_gain)")
    p.add_argument("--runs-dir", default=None, help="run folders <runs-dir>/<method>_s<seed> (default <out>/runs)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for every run, e.g. --set train.iters=60 (repeatable)")
    p.add_argument("--teacher", default=None, help="teacher checkpoint (default: the BRD config's teacher.ckpt)")
    p.add_argument("--train-teacher", action="store_true", help="train the teacher with its config if it is missing")
    p.add_argument("--no-reuse", action="store_true", help="retrain runs that already finished")
    p.add_argument("--no-train", action="store_true",
                   help="train nothing: report the finished runs found (missing ones are listed as left out)")
    p.add_argument("--panel-images", type=int, default=4, help="rows of the sample-prediction panel (default 4)")
    args = p.parse_args(argv)
    try:
        seeds = [int(s) for s in _words(args.seeds)]
    except ValueError:
        p.error(f"--seeds: expected integers, got {' '.join(args.seeds)}")
    from distill.checkpoint import CheckpointError
    from distill.config import ConfigError
    try:
        run_distill_gain(_words(args.methods), seeds, args.out, args.runs_dir, args.overrides, args.teacher,
                         reuse=not args.no_reuse, prefix=args.prefix, configs_dir=args.configs_dir,
                         train_teacher=args.train_teacher, panel_images=args.panel_images, train=not args.no_train)
    except (BenchmarkError, ConfigError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
