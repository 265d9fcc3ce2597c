"""The fault trial: every `python -m` entry point given what users and machines get wrong, each case judged by
the CLI contract (docs/results/fault_trial.md says how).

    python -m benchmarks.faults --out-dir docs/results                  # the whole trial, about 20 min on 2 cores
    python -m benchmarks.faults --only runtime.run export.onnx --jobs 1  # these entry points only
    python -m benchmarks.faults --list                                  # the cases, without running them

Fixtures (a 2-step training on synthetic data, its ONNX, OpenVINO and INT8 exports, videos, image folders) are
built once by the project's own commands in --work-dir; each case then runs in a folder of its own (its working
folder and TMPDIR), full and read-only disks are real tmpfs mounts (root needed, else those cases are not run),
signals go to real processes. The report lists the cases that were not clean first, then every case.
Exit 1 when a case was not clean or lost data (the report is written either way).
"""
from __future__ import annotations

import collections
import fnmatch
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from runtime.contract import (ArgumentParser, ConfigError, GateError, OutputError, check_folder, command,
                              positive_int)

from ..report import markdown_table, provenance, write_csv
from .case import CLEAN, DATA_LOST, NOT_CLEAN, classify, error_lines, interrupt_lines
from .cases import all_cases
from .fixtures import build
from .runner import Running, run_case

NOT_RUN = "not run"


def parse_args(argv=None):
    p = ArgumentParser(prog="python -m benchmarks.faults", description=__doc__.split("\n\n")[0], examples=(
        "python -m benchmarks.faults --out-dir docs/results",
        "python -m benchmarks.faults --only runtime.run export.onnx --jobs 1",
        "python -m benchmarks.faults --list"))
    p.add_argument("--out-dir", type=Path, help="write fault_trial.md and fault_trial.csv here (default: print only)")
    p.add_argument("--work-dir", type=Path, help="fixtures and case folders (default: a new folder under the "
                                                 "system's temporary folder, removed at the end)")
    p.add_argument("--keep-work", action="store_true", help="keep the work folder (each case's folder as it left it)")
    p.add_argument("--jobs", type=positive_int, default=2, help="cases run at a time (default 2)")
    p.add_argument("--only", nargs="+", metavar="PATTERN",
                   help="entry points (or module globs, e.g. 'export.*') whose cases run (default all)")
    p.add_argument("--list", action="store_true", help="print the cases and exit")
    return p.parse_args(argv)


def select(cases: list, patterns) -> list:
    if not patterns:
        return cases
    chosen = [c for c in cases if any(fnmatch.fnmatch(c.module, p) for p in patterns)]
    unknown = [p for p in patterns if not any(fnmatch.fnmatch(c.module, p) for c in cases)]
    if unknown:
        modules = sorted({c.module for c in cases})
        raise ConfigError(f"--only {' '.join(unknown)}: no such entry point (the trial's: {', '.join(modules)})")
    return chosen


def row(index: int, case, outcome, places=None) -> dict:
    """The case's line of the report; `places` ({path: name}): folders named as the commands show them
    ($CASE, $FX) in its error lines, not as this run's temporary paths."""
    verdict, reasons = (NOT_RUN, [outcome.note]) if outcome.note.startswith("not run") else classify(case, outcome)
    stderr = outcome.stderr
    for path, name in (places or {}).items():
        stderr = stderr.replace(path, name)
    lines = error_lines(stderr) + interrupt_lines(stderr)
    if not lines and outcome.rc not in (0, None):
        tail = [ln for ln in stderr.replace("\r", "\n").splitlines() if ln.strip()][-1:]
        lines = [f"(last line) {tail[0]}" if tail else "(nothing on stderr)"]
    return {"id": index, "module": case.module, "kind": case.kind, "fault": case.fault, "command": case.command,
            "setup": "; ".join(" ".join(map(_short, s)) for s in case.setup),
            "trigger": " -> ".join(" ".join(map(str, x)) for x in (case.trigger, case.action) if x),
            "expected": "/".join(map(str, case.expect)), "exit": "timeout" if outcome.rc is None else outcome.rc,
            "verdict": verdict, "reasons": "; ".join(reasons),
            "stderr_lines": " | ".join(ln[:300] for ln in lines[:3]),
            "traceback": "Traceback (most recent call last)" in stderr,
            "left_behind": ", ".join(outcome.new[:8]) + (" ..." if len(outcome.new) > 8 else ""),
            "seconds": outcome.seconds,
            # what a reader needs to see why a case was not clean (the CSV's last column)
            "stderr_tail": "" if verdict == CLEAN else stderr.replace("\r", "\n")[-1500:]}


def _short(x) -> str:
    text = repr(x) if isinstance(x, bytes) else str(x)
    return text if len(text) <= 60 else text[:57] + "..."


def run_all(cases: list, work: Path, fx: Path, home: Path, jobs: int) -> list:
    """One row per case, in the cases' order; a stopped trial (Ctrl-C, SIGTERM) kills every running command."""
    running, rows, lock, done = Running(), [None] * len(cases), threading.Lock(), [0]
    t0 = time.monotonic()

    def one(i):
        outcome = run_case(cases[i], i, work, fx, home, running)
        r = row(i, cases[i], outcome, {str(work / "cases" / f"{i:03d}"): "$CASE", str(fx): "$FX"})
        with lock:
            rows[i] = r
            done[0] += 1
            print(f"[{done[0]}/{len(cases)} {time.monotonic() - t0:5.0f} s] {r['verdict']:<9} exit {r['exit']!s:<7}"
                  f" {cases[i].module}: {cases[i].fault}" + (f"\n      {r['reasons']} [{r['stderr_lines']}]"
                                                              if r["verdict"] != CLEAN else ""), flush=True)
        return r

    pool, futures = ThreadPoolExecutor(jobs), []
    try:
        futures = [pool.submit(one, i) for i in range(len(cases))]
        for f in futures:
            f.result()
    except BaseException:
        running.stop()
        for f in futures:
            f.cancel()
        raise
    finally:
        pool.shutdown(wait=True)
    return rows


# ------------------------------------------------------------------------------------------ the report
JUDGED = """Each case is judged by the CLI contract (benchmarks/faults/case.py):
- **clean**: an exit code the case expects (0 ok, 1 a check failed, 2 bad input, 130/143 after SIGINT/SIGTERM);
  for 1 and 2 exactly one `error:` line, naming the file, key or flag where the case says which; for 130/143 the
  `interrupted by` line of that signal; no traceback; nothing left behind (no new file or folder, no temporary
  name) except what the case documents as kept (an interrupted training's resumable run folder, a closed video
  and its stats), and every kept file loads or plays.
- **not clean**: anything else: another exit code, a hang (killed at the case's timeout), a traceback, no or
  several `error:` lines, an error line that does not name what was wrong, something left behind.
- **data lost**: a file that existed before the command (an input, an earlier output, a fixture) changed or
  removed, or a file under a final name that does not load or play (an ONNX that does not parse, a video with no
  frame, an IR without its weights).

Each case is a real `python -m` process in a folder of its own (its working folder; TMPDIR inside it, so
temporary files count), with OMP_NUM_THREADS=1, no display and a HOME of the trial's own. Full and read-only
disks are real tmpfs mounts; "a disk another writer fills mid-run" fills the mount while the command writes.
SIGINT goes to the command's process group (as Ctrl-C in a terminal), SIGTERM to the process alone (as `kill` or
`docker stop`). Fixtures (one tiny training on synthetic data, its ONNX, IR and unchecked INT8 ONNX, videos,
image folders) are built by the project's own commands, read only by the cases (checked unchanged after each).
`$CASE` is the case's folder, `$FX` the fixtures'."""


def counts(rows: list) -> dict:
    by = collections.Counter(r["verdict"] for r in rows)
    tried = sum(by[v] for v in (CLEAN, NOT_CLEAN, DATA_LOST))
    return {"tried": tried, "clean": by[CLEAN], "not clean": by[NOT_CLEAN], "data lost": by[DATA_LOST],
            "not run": by[NOT_RUN]}


def breakdown(rows: list, key: str) -> list:
    groups = {}
    for r in rows:
        groups.setdefault(r[key], []).append(r)
    return [{key: k, **{n: v for n, v in counts(g).items() if n != "not run"}} for k, g in groups.items()]


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def report(rows: list, argv, seconds: float, fixtures_s: float, home_writes: list, jobs: int = 2) -> str:
    n = counts(rows)
    bad = [r for r in rows if r["verdict"] in (NOT_CLEAN, DATA_LOST)]
    md = ["# Fault trial", "", provenance("benchmarks.faults", argv), "",
          f"**{n['tried']} cases tried: {n['clean']} clean, {n['not clean']} not clean, {n['data lost']} with data "
          f"lost**" + (f" ({n['not run']} not run: no tmpfs mount)" if n["not run"] else "") +
          f", across {len({r['module'] for r in rows})} entry points and {len({r['kind'] for r in rows})} kinds of "
          f"fault; {seconds / 60:.1f} min wall (fixtures {fixtures_s:.0f} s), {jobs} cases at a time.", "", JUDGED, "",
          "## Not clean, and data lost", ""]
    cols = ["id", "module", "fault", "expected", "exit", "verdict", "reasons", "stderr_lines"]
    md += [markdown_table([{c: _cell(r[c]) for c in cols} for r in bad], cols) if bad else "None.", ""]
    md += ["## By entry point", "", markdown_table(breakdown(rows, "module")), "",
           "## By kind of fault", "", markdown_table(breakdown(rows, "kind")), ""]
    if home_writes:
        md += ["Written into the commands' HOME during the trial (by some case): " + ", ".join(home_writes[:20]), ""]
    md += ["## Every case", "", "The exact command, its setup and trigger are in fault_trial.csv.", ""]
    cols = ["id", "module", "kind", "fault", "command", "expected", "exit", "verdict", "stderr_lines"]
    md.append(markdown_table([{c: _cell(r[c]) for c in cols} for r in rows], cols))
    return "\n".join(md)


def publish(rows: list, text: str, out_dir: Path) -> list:
    """fault_trial.md and .csv, each written whole under a temporary name and renamed."""
    from runtime.contract import atomic_path

    md, csv = out_dir / "fault_trial.md", out_dir / "fault_trial.csv"
    with atomic_path(csv) as tmp:
        write_csv(rows, tmp)
    with atomic_path(md) as tmp:
        tmp.write_text(text)
    return [md, csv]


# ------------------------------------------------------------------------------------------ the command
def _work_folder(given: Path | None) -> Path:
    if given is None:
        return Path(tempfile.mkdtemp(prefix="brd-fault-trial-"))
    if given.exists() and (not given.is_dir() or any(given.iterdir())):
        raise ConfigError(f"{given}: --work-dir must be a new or empty folder (the trial removes it at the end)")
    try:
        given.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{given}: --work-dir cannot be made ({e.strerror or e})") from None
    return given


def _remove(work: Path):
    """The work folder, once nothing is mounted under it any more."""
    import subprocess
    mounted = [ln.split()[1] for ln in Path("/proc/mounts").read_text().splitlines()
               if ln.split()[1].startswith(str(work) + "/")] if Path("/proc/mounts").exists() else []
    for point in sorted(mounted, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)
    shutil.rmtree(work, ignore_errors=True)


def _home_writes(home: Path) -> list:
    return sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file())


@command(interrupted="every running case was killed, its mounts removed; no report written")
def main(argv=None) -> int:
    args = parse_args(argv)
    cases = select(all_cases(), args.only)
    if args.list:
        for i, c in enumerate(cases):
            print(f"{i:3d} {c.module:<32} {c.kind:<22} {c.fault}\n      {c.command}")
        print(f"{len(cases)} cases")
        return 0
    if args.out_dir:
        check_folder(args.out_dir, 0, "--out-dir")
    t0 = time.monotonic()
    work = _work_folder(args.work_dir)
    try:
        fx, home = work / "fx", work / "home"
        print(f"building the fixtures in {fx}", flush=True)
        build(fx, home)
        fixtures_s = time.monotonic() - t0
        rows = run_all(cases, work, fx, home, args.jobs)
        home_writes = _home_writes(home)
    finally:
        if not args.keep_work:
            _remove(work)
    text = report(rows, argv, time.monotonic() - t0, fixtures_s, home_writes, args.jobs)
    n = counts(rows)
    print(f"{n['tried']} tried: {n['clean']} clean, {n['not clean']} not clean, {n['data lost']} data lost"
          + (f", {n['not run']} not run" if n["not run"] else ""))
    if args.out_dir:
        for p in publish(rows, text, args.out_dir):
            print(f"wrote {p}")
    else:
        print(text)
    if n["not clean"] or n["data lost"]:
        raise GateError(f"{n['not clean']} of {n['tried']} cases not clean, {n['data lost']} with data lost"
                        + (f": see {args.out_dir / 'fault_trial.md'}" if args.out_dir else ""))
    return 0
