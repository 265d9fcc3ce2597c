"""The distillation-gain report: CSVs, Markdown with the paired comparison and its verdicts, charts and
the prediction panel (panel.py). Everything here is computed from the runs' numbers; nothing is typed by hand."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..report import bar_chart, markdown_table, provenance, write_csv
from .panel import prediction_panel
from .runs import label
from .stats import (HIGHER_IS_BETTER, METRICS, PAIRED, SHORT, THIN_BF1, interval, paired_table, pct, pm,
                    summarize)

TEACHER_LEAD = {"camvid": 10}  # points of mIoU a teacher must lead the plain student by (default 15)
CSV_KEYS = ("mIoU", "boundary_f1", "boundary_iou", "split_rate", "spurious_rate", "miss_rate", "aAcc")


def _csv_rows(runs, teacher_scores, teacher, classes, split=None, unscored=()) -> list[dict]:
    """One row per run (and the teacher); `split` adds the split column, `unscored` runs get blank numbers."""
    where = {"split": split} if split else {}
    per_run = [{"method": r["method"], "seed": r["seed"], **where, **{k: r[k] for k in CSV_KEYS},
                "setting": r["setting"], "iters": r["iters"],
                "train_s": None if r["train_s"] is None else round(r["train_s"], 1), "run": r["run"],
                "git_commit": r.get("git_commit") or "", **_per_class(r.get("IoU", []), classes),
                **_per_class(r.get("boundary_f1_per_class", []), classes, "bF1")}
               for r in runs]
    per_run += [{"method": u["method"], "seed": u["seed"], **where, "run": u["run"]} for u in unscored]
    if teacher_scores is not None:
        per_run.append({"method": "teacher", "seed": "", **where, **{k: float(teacher_scores[k]) for k in CSV_KEYS},
                        "setting": "", "iters": "", "train_s": None, "run": str(teacher), "git_commit": "",
                        **_per_class(teacher_scores.get("IoU", []), classes),
                        **_per_class(teacher_scores.get("boundary_f1_per_class", []), classes, "bF1")})
    return per_run


def _sections(result: dict, cfg) -> list[dict]:
    """Per report split (CamVid: val, then the held-out drive): its label, runs, summary, paired differences,
    teacher scores and the runs it has no score for; one unlabelled section (val) for a dataset without them.
    Runs and teacher get their thin classes' mean boundary F1 where the dataset names thin classes."""
    thin = _thin_classes(cfg)
    index = [_classes(cfg).index(c) for c in thin]

    def with_thin(scores):
        if scores is None or not index:
            return scores
        per_class = scores.get("boundary_f1_per_class") or []
        values = [per_class[i] for i in index if i < len(per_class) and per_class[i] is not None]
        return {**scores, THIN_BF1: sum(values) / len(values) if len(values) == len(index) else float("nan")}

    if not result.get("splits"):
        runs = [with_thin(r) for r in result["runs"]]
        return [{"split": None, "label": None, "runs": runs, "rows": summarize(runs), "paired": paired_table(runs),
                 "teacher": with_thin(result["teacher"]), "unscored": []}]
    out = []
    for sp in result["splits"]:
        runs = [with_thin(r) for r in result["by_split"][sp["split"]]]
        out.append({**sp, "runs": runs, "rows": summarize(runs), "paired": paired_table(runs),
                    "teacher": with_thin((result.get("teacher_by_split") or {}).get(sp["split"])),
                    "unscored": result["unscored"].get(sp["split"], [])})
    return out


def write_report(result: dict, out: Path, prefix: str, cfg, teacher, runs_dir, methods, seeds, overrides, tune,
                 panel_images, argv, log=print) -> Path:
    runs, tuning = result.get("finished", result["runs"]), result["tuning"]
    out.mkdir(parents=True, exist_ok=True)
    classes = _classes(cfg)
    sections = _sections(result, cfg)
    write_csv([row for sec in sections for row in _csv_rows(sec["runs"], sec["teacher"], teacher, classes,
                                                              sec["split"], sec["unscored"])], out / f"{prefix}.csv")
    if tuning:
        write_csv(tuning, out / f"{prefix}_tuning.csv")
    paired = [{**({"split": sec["split"]} if sec["split"] else {}), **p} for sec in sections for p in sec["paired"]]
    if paired:
        write_csv(paired, out / f"{prefix}_paired.csv")
    for k, sec in enumerate(sections):
        charts(sec["rows"], sec["paired"], sec["teacher"], out, prefix, _suffix(sec, k),
               sec["label"].split(" (")[0] if sec["label"] else "Val")
    caption = None
    pair_seed = next((s for s in seeds if {("plain", s), ("brd", s)} <= {(r["method"], r["seed"]) for r in runs}), None)
    if pair_seed is not None and panel_images:
        from distill.checkpoint import run_model

        cols = {m: run_model(Path(runs_dir) / f"{m}_s{pair_seed}") for m in ("plain", "kd", "brd")
                if (m, pair_seed) in {(r["method"], r["seed"]) for r in runs}}
        if teacher is not None:
            cols["teacher"] = Path(teacher)
        gone = [str(p) for p in cols.values() if not p.is_file()]
        saved = out / f"{prefix}_panel.caption.txt"
        if not gone:
            caption = prediction_panel(cfg, cols, out / f"{prefix}_panel.png", panel_images, pair_seed)
            saved.write_text(caption + "\n")
        elif (out / f"{prefix}_panel.png").is_file() and saved.is_file():
            # numbers from the ledger: the checkpoints to draw are not on this machine; the panel drawn
            # when they were stays, with its caption
            log(f"prediction panel not redrawn ({', '.join(gone)} not found): keeping {out / f'{prefix}_panel.png'}")
            caption = saved.read_text().strip()
        else:
            log(f"no prediction panel: {', '.join(gone)} not found")
    text = markdown(result, sections, cfg, teacher, methods, seeds, overrides, tune, prefix, caption, argv)
    (out / f"{prefix}.md").write_text(text)
    log(f"wrote {out / f'{prefix}.md'} and its CSVs and charts")
    return out / f"{prefix}.md"


def _suffix(section: dict, k: int) -> str:
    """File-name suffix of a section's charts: none for the first (val), `_<split>` for the others."""
    return f"_{section['split']}" if k and section["split"] else ""


def _classes(cfg) -> list[str]:
    from distill.data import DATASETS

    return list(DATASETS[cfg.data.dataset].classes)


def _per_class(values, classes, what="IoU") -> dict:
    """Per-class columns (`IoU_pole`, `bF1_pole`); an empty list (an older run) gives none."""
    return {f"{what}_{c}": (float(v) if v is not None else float("nan")) for c, v in zip(classes, values or [])}


def _thin_classes(cfg) -> tuple[str, ...]:
    """The classes a dataset names as thin or small (CamVid: pole, sign, fence, pedestrian, bicyclist)."""
    import importlib

    try:
        return tuple(getattr(importlib.import_module(f"distill.data.{cfg.data.dataset}"), "THIN_CLASSES", ()))
    except ImportError:
        return ()


def per_class_table(runs, teacher_scores, classes, key="IoU", only=None) -> str:
    """Mean of a per-class metric per class and method over seeds (percent): where the methods differ, class
    by class. `only`: these classes."""
    import statistics

    rows = []
    keep = [(i, c) for i, c in enumerate(classes) if only is None or c in only]
    for method in dict.fromkeys(r["method"] for r in runs):
        mine = [r[key] for r in runs if r["method"] == method and r.get(key)]
        if not mine:
            continue
        row = {"method": label(method)}
        for i, c in keep:
            vals = [m[i] for m in mine if m[i] is not None and not math.isnan(m[i])]
            row[c] = pct(statistics.fmean(vals)) if vals else "–"
        rows.append(row)
    if teacher_scores is not None and teacher_scores.get(key):
        values = teacher_scores[key]
        rows.append({"method": "teacher", **{c: pct(values[i]) for i, c in keep}})
    return markdown_table(rows) if rows else ""


def _train_images(cfg) -> str:
    if "num_images" in cfg.data.kwargs:
        return str(cfg.data.kwargs["num_images"])
    try:
        from distill.data import build_dataset

        return f"{len(build_dataset(cfg.data.dataset, cfg.data.root, cfg.data.train_split, **cfg.data.kwargs))} " \
               f"(`{cfg.data.train_split}`)"
    except Exception:  # the data may not be on this machine when reporting from the ledger
        return f"`{cfg.data.train_split}`"


def _settings_text(cfg, teacher, seeds, overrides, tune, n_val) -> str:
    d = cfg.data
    return (f"Dataset {d.dataset} (`{d.root}`), {_train_images(cfg)} training images, val "
            f"{n_val} images at {cfg.eval.size or d.val_kwargs.get('size', 'native size')}; student "
            f"`{cfg.model.arch}`{f' {cfg.model.kwargs}' if cfg.model.kwargs else ''} trained {cfg.train.iters} iterations at batch "
            f"{cfg.train.batch_size}, {d.crop_size[0]}x{d.crop_size[1]} crops; teacher `{teacher}`; seeds "
            f"{', '.join(map(str, seeds))}; "
            + ("loss settings tuned on the held-out `tune` split (2 candidates per distilled method, seed 100, "
               "best tune mIoU kept)" if tune else "no tuning (each config file's own setting)")
            + (f"; overrides {' '.join(overrides)}" if overrides else "") + ".")


def _teacher_lead(teacher_scores, by: dict, dataset: str, where: str | None = None) -> list[str]:
    if teacher_scores is None or "plain" not in by:
        return []
    gap = 100 * (teacher_scores["mIoU"] - by["plain"]["mIoU_mean"])
    need = TEACHER_LEAD.get(dataset, 15)
    return [f"{f'On {where}: t' if where else 'T'}eacher {pct(teacher_scores['mIoU'])} mIoU, plain student "
            f"{pct(by['plain']['mIoU_mean'])}: the teacher leads by {gap:.1f} points "
            f"({'at least' if gap >= need else 'less than'} the {need} "
            f"points this benchmark asks of a teacher with something to transfer).", ""]


def _unscored_line(sec) -> list[str]:
    if not sec["unscored"]:
        return []
    return [f"Not scored on {sec['label']} (left out of its means and intervals: the run's model.pt is not on this "
            f"machine and its ledger row predates scoring on this split; nothing is retrained for it): "
            f"{', '.join(Path(u['run']).name for u in sec['unscored'])}.", ""]


def _results_section(rows, teacher_scores, where: str | None = None) -> list[str]:
    thin = any(not math.isnan(r[f"{THIN_BF1}_mean"]) for r in rows)
    keys = [k for k, _, _ in METRICS] + ([THIN_BF1] if thin else [])
    table = []
    for r in rows:
        t = {"method": label(r["method"]), "seeds": r["seeds"]}
        for key in keys:
            t[f"{SHORT[key]} %"] = pm(r[f"{key}_mean"], r[f"{key}_std"])
        table.append(t)
    if teacher_scores is not None:
        table.append({"method": "teacher", "seeds": 1,
                      **{f"{SHORT[key]} %": pct(teacher_scores.get(key, math.nan)) for key in keys}})
    return [f"## Results: {where}" if where else "## Results (val)", "",
            "Percent, mean ± sample std over seeds. split = share of ground-truth regions found in two or more "
            "pieces (of those found), spurious = share of predicted components that touch no region of their "
            "class, miss = share of regions not found at all: lower is better for these three."
            + (" thin bF1 = boundary F1 averaged over the thin and small classes (per class below)." if thin else ""),
            "", markdown_table(table).rstrip("\n"), ""]


def _paired_section(paired, where: str | None = None) -> list[str]:
    if not paired:
        return []
    ptab = []
    for method in dict.fromkeys(p["method"] for p in paired):
        row = {"BRD vs": label(method)}
        for key in _paired_keys(paired):
            d = next(p for p in paired if p["method"] == method and p["metric"] == key)
            row[SHORT[key]] = f"{interval(d)} {d['verdict']}"
        ptab.append(row)
    return ["## BRD against each method, seed by seed" + (f": {where}" if where else ""), "",
            "BRD minus the other method on the same seed, in points: mean [95% t-interval]. `better`/`worse` "
            "where the interval excludes zero (for split and spurious, lower is better), `unclear` where it "
            "does not.", "", markdown_table(ptab).rstrip("\n"), "", conclusion(paired), ""]


def _paired_keys(paired) -> list[str]:
    """The metrics the paired differences were computed for, in PAIRED's order."""
    return [k for k in PAIRED if any(p["metric"] == k for p in paired)]


def _per_class_sections(runs, teacher_scores, cfg, where: str | None = None) -> list[str]:
    lines = []
    table = per_class_table(runs, teacher_scores, _classes(cfg))
    if table:
        lines += [f"## IoU per class: {where} (mean over seeds, percent)" if where else
                  "## IoU per class (val, mean over seeds, percent)", "", table.rstrip("\n"), ""]
    thin = _thin_classes(cfg)
    table = per_class_table(runs, teacher_scores, _classes(cfg), "boundary_f1_per_class", thin)
    if thin and table:
        lines += [f"## Boundary F1 of the thin and small classes: {where} (mean over seeds, percent)" if where else
                  "## Boundary F1 of the thin and small classes (val, mean over seeds, percent)", "",
                  table.rstrip("\n"), ""]
    return lines


def _figures(prefix, sections, caption) -> list[str]:
    lines = []
    for k, sec in enumerate(sections):
        sfx, where = _suffix(sec, k), f", {sec['label']}" if sec["label"] else ""
        lines += [f"![metrics{where}]({prefix}_metrics{sfx}.png)", "",
                  f"![connectivity{where}]({prefix}_connectivity{sfx}.png)", ""]
        if sec["paired"]:
            lines += [f"![paired{where}]({prefix}_paired{sfx}.png)", ""]
    if caption:
        lines += [f"![panel]({prefix}_panel.png)", "", caption, ""]
    return lines


def _runs_table(result) -> list[dict]:
    """One row per finished run; with report splits, its mIoU, bF1 and split rate on each (blank: not scored)."""
    runs = result.get("finished", result["runs"])
    if not result.get("splits"):
        return [{"run": Path(r["run"]).name, "setting": r["setting"] or "config file", "iters": r["iters"],
                 **{f"{SHORT[k]} %": pct(r[k]) for k, _, _ in METRICS},
                 "train s": "reused" if r["train_s"] is None else f"{r['train_s']:.0f}"} for r in runs]
    by = {sp["split"]: {x["run"]: x for x in result["by_split"][sp["split"]]} for sp in result["splits"]}
    nan = float("nan")
    return [{"run": Path(r["run"]).name, "setting": r["setting"] or "config file", "iters": r["iters"],
             **{f"{sp} {SHORT[k]} %": pct(by[sp].get(r["run"], {}).get(k, nan))
                for sp in by for k in ("mIoU", "boundary_f1", "split_rate")},
             "train s": "reused" if r["train_s"] is None else f"{r['train_s']:.0f}"} for r in runs]


def _runs_sections(result, argv) -> list[str]:
    """The tuning candidates, every run, what was left out, and the commands and commits that made them."""
    runs, lines = result.get("finished", result["runs"]), []
    if result["tuning"]:
        lines += ["## Tuning (tune split, seed 100)", "", markdown_table([
            {"method": label(t["method"]), "setting": t["setting"], "inherited from KD": t.get("inherited") or "",
             # two decimals: the choice is made on the unrounded mIoU, and candidates often tie at one
             "tune mIoU %": pct(t["tune_mIoU"], 2),
             "tune bF1 %": pct(t["tune_boundary_f1"]), "tune split %": pct(t["tune_split_rate"]),
             "chosen": "yes" if t.get("chosen") else ""} for t in result["tuning"]]).rstrip("\n"), ""]
    lines += ["## Runs", "", markdown_table(_runs_table(result)).rstrip("\n"), ""]
    if result.get("splits"):
        lines += ["Columns by split: " + "; ".join(f"`{sp['split']}`: {sp['label']}" for sp in result["splits"])
                  + ".", ""]
    if result["missing"]:
        lines += [f"Not run (left out of the means): {', '.join(result['missing'])}.", ""]
    commits = sorted({r.get("git_commit") or "unknown" for r in runs})
    return lines + [provenance("benchmarks.gain", argv) + f" The runs were trained at commit(s) "
                    f"{', '.join(f'`{c[:12]}`' for c in commits)} (each run's model.pt records its own).", ""]


def _splits_text(sections) -> str:
    return ("Every final run and the teacher are scored on each of: "
            + "; ".join(f"**{sec['label']}** (`{sec['split']}`)" for sec in sections)
            + ", by `distill.evaluate` on its model file with the config's eval settings, whatever split its "
              "training validated on. Each has its own results, paired intervals and per-class tables below.")


def markdown(result, sections, cfg, teacher, methods, seeds, overrides, tune, prefix, caption, argv) -> str:
    """The report, section by section: settings, teacher lead, then per report split results, BRD paired and
    per class; figures, runs."""
    n_val = int(cfg.data.val_kwargs.get("num_images", 0)) or "all"
    lines = [f"# What BRD buys: distillation gain on {cfg.data.dataset}", "",
             _settings_text(cfg, teacher, seeds, overrides, tune, n_val), ""]
    if result.get("splits"):
        lines += [_splits_text(sections), ""]
    for sec in sections:
        lines += _teacher_lead(sec["teacher"], {r["method"]: r for r in sec["rows"]}, cfg.data.dataset, sec["label"])
    for sec in sections:
        lines += _results_section(sec["rows"], sec["teacher"], sec["label"])
        lines += _unscored_line(sec)
        lines += _paired_section(sec["paired"], sec["label"])
        lines += _per_class_sections(sec["runs"], sec["teacher"], cfg, sec["label"])
    lines += _figures(prefix, sections, caption)
    lines += _runs_sections(result, argv)
    return "\n".join(lines)


def conclusion(paired: list[dict]) -> str:
    """Where BRD wins and where it does not, from the verdicts; then the benchmark's stated target."""
    def v(method, key):
        return next((p for p in paired if p["method"] == method and p["metric"] == key), None)

    wins, losses = [], []
    for p in paired:
        (wins if p["verdict"] == "better" else losses if p["verdict"] == "worse" else []).append(
            f"{SHORT[p['metric']]} vs {label(p['method'])}")
    out = [f"BRD is better with an interval excluding zero on: {', '.join(wins) or 'nothing'}.",
           f"BRD is worse with an interval excluding zero on: {', '.join(losses) or 'nothing'}."]
    target = [(m, k) for m in ("kd", "plain") for k in ("boundary_f1", "split_rate")]
    checks = [v(m, k) for m, k in target]
    if all(c is not None for c in checks):
        met = all(c["verdict"] == "better" for c in checks)
        detail = "; ".join(f"{SHORT[k]} vs {label(m)}: {interval(c)} ({c['verdict']})" for (m, k), c in zip(target, checks))
        out.append(f"Target (BRD above KD and plain on boundary F1 and split rate, intervals excluding zero): "
                   f"{'met' if met else 'not met'} — {detail}.")
    return " ".join(out)


def charts(rows, paired, teacher_scores, out: Path, prefix: str, suffix: str = "", what: str = "Val") -> None:
    def series(keys):
        vals = {label(r["method"]): [100 * r[f"{k}_mean"] for k in keys] for r in rows}
        errs = {label(r["method"]): [100 * np.nan_to_num(r[f"{k}_std"]) for k in keys] for r in rows}
        if teacher_scores is not None:
            vals["teacher"] = [100 * teacher_scores[k] for k in keys]
            errs["teacher"] = [0.0] * len(keys)
        return vals, errs

    quality = ("mIoU", "boundary_f1", "boundary_iou")
    vals, errs = series(quality)
    bar_chart([SHORT[k] for k in quality], vals, out / f"{prefix}_metrics{suffix}.png", "percent (higher is better)",
              f"{what} metrics (mean ± std over seeds)", errors=errs)
    conn = ("split_rate", "spurious_rate", "miss_rate")
    vals, errs = series(conn)
    bar_chart([SHORT[k] for k in conn], vals, out / f"{prefix}_connectivity{suffix}.png", "percent (lower is better)",
              "Connectivity per ground-truth region (mean ± std over seeds)" + (f", {what}" if suffix else ""),
              errors=errs)
    if paired:
        paired_chart(paired, out / f"{prefix}_paired{suffix}.png")


def paired_chart(paired: list[dict], path: Path) -> None:
    """One panel per metric: BRD − method with its 95% interval, oriented so right = BRD better."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(p["method"] for p in paired))
    keys = _paired_keys(paired)
    fig, axes = plt.subplots(1, len(keys), figsize=(3.0 * len(keys), 0.45 * len(methods) + 1.4), sharey=True)
    for ax, key in zip(axes, keys):
        sign = 1.0 if HIGHER_IS_BETTER[key] else -1.0
        for y, m in enumerate(methods):
            d = next(p for p in paired if p["method"] == m and p["metric"] == key)
            mean = sign * 100 * d["mean"]
            lo, hi = sorted((sign * 100 * d["lo"], sign * 100 * d["hi"])) if not math.isnan(d["lo"]) else (mean, mean)
            colour = {"better": "tab:green", "worse": "tab:red"}.get(d["verdict"], "tab:gray")
            ax.errorbar([mean], [y], xerr=[[mean - lo], [hi - mean]], fmt="o", color=colour, capsize=3)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_title(f"{SHORT[key]}" + ("" if HIGHER_IS_BETTER[key] else " (sign flipped)"), fontsize=9)
        ax.set_yticks(range(len(methods)), [label(m) for m in methods], fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle("BRD vs each method, same seed: difference in points, 95% interval (right of 0 = BRD better)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
