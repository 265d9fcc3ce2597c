"""What every family's cases are made of: the builders of one file's, one output's and one command's flags'
faults and of its signal cases, and the pieces several families share (the case's folder, the synthetic data's
arguments, the training overrides, bad sizes, a checkpoint of the wrong kind, unchecked calibration).

Paths: `{c}` is the case's own folder (the command's working folder), `{fx}` the shared fixtures
(fixtures.py), which every case only reads (the runner checks they are unchanged).
"""
from __future__ import annotations

from pathlib import Path

from ..case import Case
from ..fixtures import train_overrides

C = "{c}"
DATA_KW = '{"num_images": 4, "size": [32, 64], "seed": 0}'
TRAIN = tuple(train_overrides("{c}/run", "{c}/data"))
DATA = (("copy", "data", "data"),)
PT_KINDS = [("wrong kind of model", "a training checkpoint (last.pt)", "run/last.pt", "last.pt")]
CALIB = ("--calib-dir", "{fx}/calib", "--no-gate")


def _sig(sig: str) -> dict:
    return {"action": ("signal", sig), "expect": (130 if sig == "SIGINT" else 143,)}


def file_faults(module, build, suffix, what, valid=None, cut=True, names=True, extra=(), expect=(2,),
                timeout=120.0) -> list:
    """The faults of one file a command reads; build(path) -> the command's arguments with that file."""
    out = []

    def add(kind, fault, rel, setup=()):
        out.append(Case(module, kind, f"{what}: {fault}", tuple(build(f"{C}/{rel}")), expect=expect,
                        names=Path(rel).name if names else "", setup=tuple(setup), timeout=timeout))
    add("missing file", "does not exist (in a missing folder)", f"no/such/missing{suffix}")
    add("empty file", "empty (0 bytes)", f"in/empty{suffix}", [("empty", f"in/empty{suffix}")])
    add("junk bytes", "4 KB of random bytes", f"in/junk{suffix}", [("bytes", f"in/junk{suffix}")])
    add("directory for a file", "a folder of that name", f"in/dir{suffix}", [("mkdir", f"in/dir{suffix}")])
    if valid:  # a checkpoint is known by its content (accepted, or refused in one line); a model file by its suffix
        out.append(Case(module, "wrong suffix", f"{what}: a valid {Path(valid).name} named .txt",
                        tuple(build(f"{C}/in/model.txt")), expect=(0, 2) if suffix == ".pt" else expect,
                        names="model.txt" if names else "", setup=(("copy", valid, "in/model.txt"),),
                        timeout=timeout))
    if valid and cut:
        add("truncated file", f"its first half only (from {Path(valid).name})", f"in/cut{suffix}",
            [("cut", valid, f"in/cut{suffix}")])
    for kind, fault, fixture, name in extra:
        add(kind, fault, f"in/{name}", [("copy", fixture, f"in/{name}")] if fixture else [])
    return out


def output_faults(module, build, name, what, setup=(), expect=(2,), folder=False, timeout=120.0) -> list:
    """The faults of one output a command writes; build(path) -> arguments. `name`: the output's file name
    (or folder name when `folder`)."""
    base = tuple(setup)
    cases = [
        Case(module, "read-only output", f"{what} on a read-only disk", tuple(build(f"{C}/ro/{name}")), expect,
             names="/ro", setup=base + (("mount", "ro", 256, True),), timeout=timeout),
        Case(module, "full disk", f"{what} on a full disk", tuple(build(f"{C}/full/{name}")), expect,
             names="/full", setup=base + (("mount", "full", 64), ("fill", "full")), keep=("full/filler",),
             timeout=timeout),
        Case(module, "output inside a file", f"{what} inside a file (a path under a regular file)",
             tuple(build(f"{C}/afile/{name}")), expect, names="afile", setup=base + (("text", "afile", "x\n"),),
             timeout=timeout),
    ]
    if not folder:
        cases.append(Case(module, "output is a folder", f"{what} names an existing folder",
                          tuple(build(f"{C}/out/{name}")), expect, names=name,
                          setup=base + (("mkdir", f"out/{name}"),), timeout=timeout))
    return cases


def flag_faults(module, base, bad, required_missing=None, setup=(), timeout=60.0) -> list:
    """Bad values of flags (`bad`: [(kind, flag, value, names)]), an unknown flag, a required one left out."""
    cases = [Case(module, kind, f"{flag} {value}", tuple(base) + (flag, value), names=names, setup=tuple(setup),
                  timeout=timeout) for kind, flag, value, names in bad]
    cases.append(Case(module, "unknown flag", "an unknown flag --frobnicate", tuple(base) + ("--frobnicate",),
                      names="--frobnicate", setup=tuple(setup), timeout=timeout))
    if required_missing is not None:
        args, names = required_missing
        cases.append(Case(module, "missing argument", f"{names} left out", tuple(args), names=names,
                          setup=tuple(setup), timeout=timeout))
    return cases


def signal_cases(module, args, moments, setup=(), keep=(), timeout=180.0, sigs=("SIGINT", "SIGTERM")) -> list:
    """SIGINT (Ctrl-C: the process group) and SIGTERM (the process) at each moment: [(words, trigger)]."""
    return [Case(module, "signal", f"{sig} {words}", tuple(args), setup=tuple(setup), trigger=trigger, keep=keep,
                 timeout=timeout, **_sig(sig)) for words, trigger in moments for sig in sigs]


SIZES = [("bad size", "--size", v, "--size") for v in ("64", "0x64", "axb", "-8x8", "64x")]
