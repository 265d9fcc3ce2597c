"""Writing benchmark tables: Markdown, CSV and PNG charts from one list of row dicts."""
from __future__ import annotations

import csv
from pathlib import Path


def add_report_flags(parser, default: str, files: str) -> None:
    """`--name` (the report's file stem) and `--out-dir` (where its `files` go), as every named report takes them."""
    parser.add_argument("--name", default=default, help=f"file stem of the report (default {default})")
    parser.add_argument("--out-dir", type=Path, help=f"write {files} here")


def report_stem(name: str, files: str) -> str:
    """`--name`: a file stem the report's files are named by (`files` says which), never a path."""
    from runtime.contract import ConfigError

    if Path(name).name != name or name in ("", ".", ".."):
        raise ConfigError(f"--name {name!r}: a file stem ({files}), not a path")
    return name


def labelled_paths(items: list[str], flag: str, what: str, example: str) -> dict[str, Path]:
    """Repeated `FLAG LABEL=PATH` values -> {label: path} in the order given; a value without its label or path,
    or a label given twice, is one line naming the value."""
    from runtime.contract import ConfigError, DataError

    out = {}
    for item in items:
        label, sep, path = item.partition("=")
        if not sep or not label or not path:
            raise DataError(f"{flag} {item!r}: expected LABEL={what}, e.g. {example}")
        if label in out:
            raise ConfigError(f"{flag} {item!r}: the label {label!r} is given twice")
        out[label] = Path(path)
    return out


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    return "" if v is None else str(v)


def markdown_table(rows: list[dict], columns: list[str] | None = None) -> str:
    if not rows:
        return "(no rows)\n"
    columns = columns or list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_csv(rows: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def bar_chart(groups: list[str], series: dict[str, list[float]], path: Path, ylabel: str, title: str,
              errors: dict[str, list[float]] | None = None) -> Path:
    """Grouped bars: one group per label in `groups`, one bar per series."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    x = np.arange(len(groups))
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(groups) + 2), 4))
    for i, (name, values) in enumerate(series.items()):
        err = errors.get(name) if errors else None
        ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=name, yerr=err, capsize=3)
    ax.set_xticks(x, groups, rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def provenance(module: str, argv: list[str] | None) -> str:
    """One Markdown line: the exact command, the commit it ran at (and whether the tree had changes), the date
    and the machine, so a result in docs/results/ says what made it."""
    import datetime
    import os
    import platform
    import shlex
    import subprocess
    import sys

    args = sys.argv[1:] if argv is None else list(argv)
    root = Path(__file__).resolve().parent.parent

    def git(*a):
        try:
            return subprocess.run(["git", *a], cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    commit = git("rev-parse", "--short=12", "HEAD") or "unknown"
    # the code's state: results and prose under docs/ (which this very run may be rewriting) do not count
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)docs")
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    cmd = f"python -m {module} {shlex.join(args)}".strip()
    return (f"Made by `{cmd}` at commit `{commit}`{' (with uncommitted changes)' if dirty else ''}, "
            f"{datetime.date.today().isoformat()}, {cpu}, {os.cpu_count()} cores.")
