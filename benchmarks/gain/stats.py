"""Statistics and text of the distillation-gain report: per-method mean ± std over seeds, and BRD's paired
(same-seed) differences against every other method with 95% t-intervals."""
from __future__ import annotations

import math
import statistics

# (key in evaluate()'s dict, short name, higher is better)
METRICS = (("mIoU", "mIoU", True), ("boundary_f1", "bF1", True), ("boundary_iou", "bIoU", True),
           ("split_rate", "split", False), ("spurious_rate", "spurious", False), ("miss_rate", "miss", False))
# the mean boundary F1 over the dataset's thin and small classes (its THIN_CLASSES), which the report adds to
# each run from its per-class scores; a dataset that names none has no such column
THIN_BF1 = "thin_boundary_f1"
# the metrics BRD's paired differences are reported for (the five, and thin bF1 where there is one)
PAIRED = ("mIoU", "boundary_f1", "boundary_iou", "split_rate", "spurious_rate", THIN_BF1)
SHORT = {**{k: s for k, s, _ in METRICS}, THIN_BF1: "thin bF1"}
HIGHER_IS_BETTER = {**{k: h for k, _, h in METRICS}, THIN_BF1: True}

def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz; Numerical Recipes' betacf)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` degrees of freedom."""
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t (p in (0.5, 1)), by bisection on t_cdf: no scipy on a device-side install."""
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
        if hi - lo < 1e-12:
            break
    return 0.5 * (lo + hi)


def t975(df: int) -> float:
    """The two-sided 95% quantile of Student's t for exactly `df` degrees of freedom (NaN below 1)."""
    return t_quantile(0.975, df) if df >= 1 else float("nan")


def mean_std(values) -> tuple[float, float]:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else float("nan"))


def paired_difference(a: dict[int, float], b: dict[int, float]) -> dict:
    """a - b over the seeds both have: {n, mean, lo, hi} with a 95% t-interval (NaN bounds below 2 seeds)."""
    diffs = [a[s] - b[s] for s in sorted(set(a) & set(b)) if not (math.isnan(a[s]) or math.isnan(b[s]))]
    n = len(diffs)
    if n == 0:
        return {"n": 0, "mean": float("nan"), "lo": float("nan"), "hi": float("nan")}
    m = statistics.fmean(diffs)
    if n < 2:
        return {"n": 1, "mean": m, "lo": float("nan"), "hi": float("nan")}
    half = t975(n - 1) * statistics.stdev(diffs) / math.sqrt(n)
    return {"n": n, "mean": m, "lo": m - half, "hi": m + half}


def verdict(diff: dict, higher_is_better: bool) -> str:
    """'better' / 'worse' when the interval excludes zero (in the metric's good direction), else 'unclear'."""
    if diff["n"] < 2 or math.isnan(diff["lo"]):
        return "too few seeds"
    if diff["lo"] > 0:
        return "better" if higher_is_better else "worse"
    if diff["hi"] < 0:
        return "worse" if higher_is_better else "better"
    return "unclear"


def summarize(runs: list[dict]) -> list[dict]:
    """One row per method, in first-seen order: seeds and {key}_mean/{key}_std for every metric."""
    rows = []
    for method in dict.fromkeys(r["method"] for r in runs):
        mine = [r for r in runs if r["method"] == method]
        row = {"method": method, "seeds": len(mine)}
        for key in [k for k, _, _ in METRICS] + [THIN_BF1]:
            row[f"{key}_mean"], row[f"{key}_std"] = mean_std([r.get(key, math.nan) for r in mine])
        rows.append(row)
    return rows


def paired_table(runs: list[dict], reference: str = "brd") -> list[dict]:
    """For every method other than `reference`: {method, metric, n, mean, lo, hi, verdict} of reference - method."""
    by = {}
    for r in runs:
        by.setdefault(r["method"], {})[r["seed"]] = r
    if reference not in by:
        return []
    out = []
    keys = [k for k in PAIRED if any(not math.isnan(r.get(k, math.nan)) for r in runs)]
    for method, seeds in by.items():
        if method == reference:
            continue
        for key in keys:
            d = paired_difference({s: r.get(key, math.nan) for s, r in by[reference].items()},
                                  {s: r.get(key, math.nan) for s, r in seeds.items()})
            out.append({"method": method, "metric": key, **d, "verdict": verdict(d, HIGHER_IS_BETTER[key])})
    return out


def pct(v: float, digits: int = 1) -> str:
    return "–" if v is None or math.isnan(v) else f"{100 * v:.{digits}f}"


def pm(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "–"
    return pct(mean) if math.isnan(std) else f"{pct(mean)} ± {pct(std)}"


def interval(d: dict) -> str:
    if d["n"] == 0:
        return "–"
    if math.isnan(d["lo"]):
        return f"{100 * d['mean']:+.1f}"
    return f"{100 * d['mean']:+.1f} [{100 * d['lo']:+.1f}, {100 * d['hi']:+.1f}]"
