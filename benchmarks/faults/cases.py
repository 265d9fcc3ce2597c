"""The trial's cases, generated: every `python -m` entry point x the faults a user or a machine can cause.

Families (Case.kind): missing file, empty file, junk bytes, directory for a file, wrong suffix, truncated file,
wrong kind of model, config (key, value, type, range, duplicate key, binary, syntax), unknown flag, missing
argument, bad value (sizes, numbers, choices), read-only output, full disk, output inside a file, output is a
folder, existing output, busy run folder, source (corrupt frame, no frame, non-image, unreachable camera or
stream), missing library, signal (SIGINT as Ctrl-C sends it to the process group, SIGTERM to the process, at
a few moments), control (the same command without a fault, so a fault case's failure is the fault's).

Paths: `{c}` is the case's own folder (the command's working folder), `{fx}` the shared fixtures
(fixtures.py), which every case only reads (the runner checks they are unchanged).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from .case import Case
from .fixtures import BIG_VAL, train_overrides

C = "{c}"
DATA_KW = '{"num_images": 4, "size": [32, 64], "seed": 0}'
BIG_KW = '{"num_images": %d, "size": [32, 64], "seed": 0}' % BIG_VAL
TRAIN = tuple(train_overrides("{c}/run", "{c}/data"))
EVAL = ("--root", "{fx}/data", "--data-kwargs", DATA_KW)
CAMVID = Path(__file__).resolve().parents[3] / "shared" / "camvid"  # the real CamVid beside the checkout, if any


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


# ------------------------------------------------------------------------------------------ distill.run
def _train(cfg="synthetic_plain.yaml", extra=()):
    return ("--cfg", cfg, "--set") + TRAIN + tuple(extra)


DATA = (("copy", "data", "data"),)
NO_KW = ("data.kwargs={}", "data.val_kwargs={}")  # CamVid takes none of the synthetic data's arguments
CONFIG_FILES = [  # (fault, file text, expected exits, what the line names)
    ("binary config", "a YAML file saved as UTF-16", "\ufeffbase: synthetic_plain.yaml\n".encode("utf-16"), (2,), ""),
    ("config syntax", "a YAML syntax error", "base: synthetic_plain.yaml\ntrain: {iters: 2\n", (2,), ""),
    ("config syntax", "a list, not a mapping", "- base\n- train\n", (2,), ""),
    ("config syntax", "a plain string, not a mapping", "hello\n", (2,), ""),
    ("duplicate key", "a section given twice", "base: synthetic_plain.yaml\ntrain:\n  iters: 2\ntrain:\n  lr: 0.1\n",
     (2,), "train"),
    ("duplicate key", "a key given twice in a section", "base: synthetic_plain.yaml\ntrain:\n  lr: 0.1\n  lr: 0.2\n",
     (2,), "train.lr"),
    ("config key", "an unknown key", "base: synthetic_plain.yaml\ntrain:\n  lrr: 0.1\n", (2,), "train.lrr"),
    ("config key", "an unknown section", "base: synthetic_plain.yaml\ntrainer:\n  lr: 0.1\n", (2,), "trainer"),
    ("config type", "a word for a number", "base: synthetic_plain.yaml\ntrain:\n  iters: many\n", (2,), "train.iters"),
    ("config range", "a negative learning rate", "base: synthetic_plain.yaml\ntrain:\n  lr: -0.5\n", (2,), "train.lr"),
    ("config key", "a base that does not exist", "base: nonesuch_base.yaml\n", (2,), "nonesuch_base.yaml"),
    ("config key", "a base that is the file itself", "base: self.yaml\n", (2,), "self.yaml"),
    ("config syntax", "an empty section (train: with nothing under it)", "base: synthetic_plain.yaml\ntrain:\n",
     (0, 2), ""),
    ("config syntax", "a UTF-8 byte-order mark", "\ufeffbase: synthetic_plain.yaml\n".encode("utf-8"), (0, 2), ""),
]
SETS = [  # (kind, override, expected exits, what the line names)
    ("config key", "train.lrr=0.1", (2,), "train.lrr"),
    ("config key", "nope.x=1", (2,), "nope"),
    ("config key", "model.kwargs.bogus=1", (2,), "model.kwargs.bogus"),
    ("config type", "train.iters=abc", (2,), "train.iters"),
    ("config type", "train.iters=[1,2]", (2,), "train.iters"),
    ("config type", "data.crop_size=big", (2,), "data.crop_size"),
    ("config type", "train.lr=1e-3", (0,), ""),
    ("config range", "train.iters=-3", (2,), "train.iters"),
    ("config range", "train.iters=0", (2,), "train.iters"),
    ("config range", "train.lr=.nan", (2,), "train.lr"),
    ("config range", "train.lr=.inf", (2,), "train.lr"),
    ("config range", "train.batch_size=0", (2,), "train.batch_size"),
    ("config range", "train.batch_size=1", (2,), "train.batch_size"),
    ("config range", "data.crop_size=[0,64]", (2,), "data.crop_size"),
    ("config range", "data.crop_size=[512,1024]", (2,), "data.crop_size"),
    ("config range", "data.num_workers=-1", (2,), "data.num_workers"),
    ("config range", "model.kwargs.width=0", (2,), "model.kwargs.width"),
    ("config key", "data.dataset=nonesuch", (2,), "nonesuch"),
    ("config key", "model.arch=nonesuch", (2,), "nonesuch"),
    ("config value", "train.device=gpu", (2,), "train.device"),
    ("config syntax", "train.iters", (2,), "train.iters"),
    ("config syntax", "=3", (2,), "=3"),
    ("config syntax", "train.iters={", (2,), "train.iters"),
]


def distill_run() -> list:
    m = "distill.run"
    cases = file_faults(m, lambda p: ("--cfg", p, "--set") + TRAIN, ".yaml", "--cfg", names=True)
    for kind, fault, text, expect, names in CONFIG_FILES:
        write = ("text", "in/c.yaml", text) if isinstance(text, str) else ("raw", "in/c.yaml", text)
        cases.append(Case(m, kind, f"--cfg file: {fault}", ("--cfg", f"{C}/in/c.yaml", "--set") + TRAIN, expect,
                          names=names or ("c.yaml" if expect == (2,) else ""), setup=DATA + (write,)))
    cases.append(Case(m, "config key", "--cfg file: two files naming each other as base",
                      ("--cfg", f"{C}/in/a.yaml", "--set") + TRAIN, names="yaml",
                      setup=(("text", "in/a.yaml", "base: b.yaml\n"), ("text", "in/b.yaml", "base: a.yaml\n"))))
    cases.append(Case(m, "config key", "--cfg: a shipped config's name misspelt", ("--cfg", "synthetic_plian.yaml"),
                      names="synthetic_plian.yaml"))
    for kind, override, expect, names in SETS:
        cases.append(Case(m, kind, f"--set {override}", _train(extra=(override,)), expect, names=names,
                          setup=DATA, timeout=180))
    cases.append(Case(m, "config range", "a diverging run (--set train.lr=1e30)",
                      _train(extra=("train.lr=1e30", "train.iters=40", "train.ckpt_every=1", "train.val_every=40")),
                      (1,), names="train.lr", setup=DATA, keep=("run/*",), timeout=240))
    return cases + _run_inputs(m) + _run_outputs(m) + _run_flags_and_signals(m)


def _run_inputs(m) -> list:
    teacher = lambda p: _train("synthetic.yaml", (f"teacher.ckpt={p}",))  # noqa: E731
    cases = file_faults(m, teacher, ".pt", "teacher.ckpt", valid="run/model.pt", extra=[
        ("wrong kind of model", "a training checkpoint (last.pt)", "run/last.pt", "last.pt"),
        ("wrong kind of model", "an ONNX model", "s.onnx", "teacher.onnx")])
    cases = [replace(c, setup=DATA + c.setup) for c in cases]
    cases += [
        Case(m, "missing file", "data.root: a CamVid root that does not exist",
             _train(extra=("data.dataset=camvid", f"data.root={C}/no/camvid") + NO_KW), names="no/camvid"),
        Case(m, "directory for a file", "data.root: a regular file, not a folder",
             _train(extra=(f"data.root={C}/afile",)), names="afile", setup=(("text", "afile", "x\n"),)),
        Case(m, "missing file", "data.root: an empty CamVid folder",
             _train(extra=("data.dataset=camvid", f"data.root={C}/camvid") + NO_KW), names="camvid",
             setup=(("mkdir", "camvid"),)),
    ]
    return cases


def _run_outputs(m) -> list:
    out = [replace(c, setup=DATA + c.setup)
           for c in output_faults(m, lambda p: _train(extra=(f"out_dir={p}",)), "run", "out_dir", folder=True)]
    out += [
        Case(m, "busy run folder", "out_dir held by another training (its lock)", _train(), names="run",
             setup=DATA + (("lock", "run"),)),
        Case(m, "junk bytes", "out_dir holds a last.pt of random bytes (resume)", _train(), names="last.pt",
             setup=DATA + (("bytes", "run/last.pt"),)),
        Case(m, "truncated file", "out_dir holds a truncated last.pt (resume)", _train(), names="last.pt",
             setup=DATA + (("cut", "run/last.pt", "run/last.pt"),)),
        Case(m, "wrong kind of model", "out_dir's last.pt is a student checkpoint (resume)", _train(),
             names="last.pt", setup=DATA + (("copy", "run/model.pt", "run/last.pt"),)),
        Case(m, "existing output", "out_dir holds a finished run (the same command again: it resumes at the end)",
             _train(), (0,), setup=DATA + (("copy", "run", "run"),), may_change=("run/*",), timeout=180),
    ]
    return out


def _run_flags_and_signals(m) -> list:
    cases = flag_faults(m, _train(), [], required_missing=(("--set",) + TRAIN, "--cfg"), setup=DATA)
    cases += [Case(m, "missing argument", "--cfg with no value", ("--cfg",), names="--cfg"),
              Case(m, "missing argument", "--set with no value", ("--cfg", "synthetic_plain.yaml", "--set"),
                   names="--set"),
              Case(m, "control", "no fault (2 steps)", _train(), (0,), setup=DATA, timeout=180)]
    long = _train(extra=("train.iters=100000", "train.ckpt_every=1000", "train.val_every=100000"))
    cases += signal_cases(m, long, [("at start (0.3 s: importing)", ("after", 0.3)),
                                    ("before the first step (the run folder made)", ("file", "run/config.yaml")),
                                    ("mid-training (3 steps logged)", ("lines", "run/train_log.csv", 4))],
                          setup=DATA, keep=("run/*",), timeout=240)
    return cases


# ------------------------------------------------------------------------------------------ distill.evaluate
def _ev(model="{fx}/s.onnx", extra=()):
    return ("--model", model) + EVAL + tuple(extra)


def distill_evaluate() -> list:
    m = "distill.evaluate"
    cases = file_faults(m, lambda p: _ev(p), ".pt", "--model (checkpoint)", valid="run/model.pt", extra=[
        ("wrong kind of model", "a training checkpoint (last.pt)", "run/last.pt", "last.pt")])
    cases += file_faults(m, lambda p: _ev(p), ".onnx", "--model (ONNX)", valid="s.onnx")
    cases += file_faults(m, lambda p: _ev(p), ".xml", "--model (OpenVINO IR)", valid="s.xml", extra=[
        ("missing file", "an IR without its .bin", "s.xml", "nobin.xml")])
    cases.append(Case(m, "truncated file", "--model (OpenVINO IR): its .bin cut in half", _ev(f"{C}/in/s.xml"),
                      names="s.", setup=(("copy", "s.xml", "in/s.xml"), ("cut", "s.bin", "in/s.bin"))))
    cases += [
        Case(m, "missing file", "--cfg does not exist", _ev(extra=("--cfg", f"{C}/no/such/c.yaml")), names="c.yaml"),
        Case(m, "binary config", "--cfg of random bytes", _ev(extra=("--cfg", f"{C}/in/c.yaml")), names="c.yaml",
             setup=(("bytes", "in/c.yaml"),)),
        Case(m, "config key", "--set eval.nope=1", _ev(extra=("--cfg", "synthetic_plain.yaml", "--set", "eval.nope=1")),
             names="eval.nope"),
        Case(m, "config type", "--set eval.flip=sometimes",
             _ev(extra=("--cfg", "synthetic_plain.yaml", "--set", "eval.flip=sometimes")), names="eval.flip"),
        Case(m, "missing file", "--root: a CamVid root that does not exist",
             ("--model", "{fx}/s.onnx", "--dataset", "camvid", "--root", f"{C}/no/camvid"), names="no/camvid"),
        Case(m, "directory for a file", "--root: a regular file", ("--model", "{fx}/s.onnx", "--dataset", "camvid",
                                                                   "--root", f"{C}/afile"),
             names="afile", setup=(("text", "afile", "x\n"),)),
        Case(m, "bad value", "--dataset nonesuch", ("--model", "{fx}/s.onnx", "--dataset", "nonesuch", "--root",
                                                    "{fx}/data"), names="nonesuch"),
        Case(m, "bad value", "--split nonesuch", _ev(extra=("--split", "nonesuch")), names="nonesuch"),
        Case(m, "bad value", "--data-kwargs that is not JSON", ("--model", "{fx}/s.onnx", "--root", "{fx}/data",
                                                                "--data-kwargs", "{num_images: 4"),
             names="--data-kwargs"),
        Case(m, "bad value", "--data-kwargs a list", ("--model", "{fx}/s.onnx", "--root", "{fx}/data",
                                                      "--data-kwargs", "[1, 2]"), names="--data-kwargs"),
        Case(m, "bad value", "--data-kwargs with an unknown key", ("--model", "{fx}/s.onnx", "--root", "{fx}/data",
                                                                   "--data-kwargs", '{"nope": 1}'), names="nope"),
        Case(m, "control", "no fault (ONNX)", _ev(), (0,)),
        Case(m, "control", "no fault (checkpoint)", _ev("{fx}/run/model.pt"), (0,)),
    ]
    bad = SIZES[:3] + [("bad size", "--window", "0x64", "--window"), ("bad size", "--stride", "axb", "--stride"),
                       ("bad value", "--max-images", "0", "--max-images"), ("bad value", "--threads", "0", "--threads"),
                       ("bad value", "--device", "tpu", "tpu"), ("bad value", "--mode", "tiles", "--mode"),
                       ("bad value", "--precision-hint", "int4", "--precision-hint")]
    cases += flag_faults(m, _ev(), bad, required_missing=(EVAL, "--model"))
    cases += output_faults(m, lambda p: _ev(extra=("-o", p)), "m.json", "-o")
    cases.append(Case(m, "existing output", "-o names an existing result and the model is missing: kept as it was",
                      _ev(f"{C}/no/such/s.onnx", ("-o", f"{C}/out/m.json")), names="s.onnx",
                      setup=(("text", "out/m.json", '{"mIoU": 1.0}\n'),)))
    long = ("--model", "{fx}/run/model.pt", "--root", "{fx}/big", "--data-kwargs", BIG_KW, "--flip", "--size",
            "512x1024")
    cases += signal_cases(m, long, [("while it starts (1 s)", ("after", 1.0)),
                                    ("mid-evaluation (after 8 s)", ("after", 8.0))])
    return cases


# ------------------------------------------------------------------------------------------ exporters
PT_KINDS = [("wrong kind of model", "a training checkpoint (last.pt)", "run/last.pt", "last.pt")]
CALIB = ("--calib-dir", "{fx}/calib", "--no-gate")


def _export_signals(m, args, setup, during="out/.s*") -> list:
    return signal_cases(m, args, [("at start (0.3 s: importing)", ("after", 0.3)),
                                  ("during the export (its candidate file exists)", ("file", during))],
                        setup=setup, timeout=240)


def export_onnx() -> list:
    m = "export.onnx"
    build = lambda p: (p, "-o", f"{C}/out/s.onnx")  # noqa: E731
    cases = file_faults(m, build, ".pt", "checkpoint", valid="run/model.pt", extra=PT_KINDS + [
        ("wrong kind of model", "an ONNX model", "s.onnx", "model.onnx")])
    src = (("copy", "run/model.pt", "in/s.pt"),)
    ok = lambda *extra: (f"{C}/in/s.pt", "-o", f"{C}/out/s.onnx") + extra  # noqa: E731
    bad = [(k, f, v, n) for k, f, v, n in SIZES] + [
        ("bad size", "--size", "60x64", "multiple of 8"), ("bad value", "--opset", "7", "7"),
        ("bad value", "--opset", "abc", "--opset"), ("bad value", "--min-agreement", "2", "--min-agreement"),
        ("bad value", "--parity-images", "0", "--parity-images")]
    cases += flag_faults(m, ok(), bad, required_missing=(("-o", f"{C}/out/s.onnx"), "checkpoint"), setup=src)
    cases += output_faults(m, lambda p: (f"{C}/in/s.pt", "-o", p), "s.onnx", "-o", setup=src)
    cases += [
        Case(m, "wrong suffix", "-o out.xml (an ONNX exporter)", ok()[:2] + (f"{C}/out/s.xml",), names="s.xml",
             setup=src),
        Case(m, "existing output", "-o names an existing model and the checkpoint is junk: the model kept",
             (f"{C}/in/junk.pt", "-o", f"{C}/out/s.onnx"), names="junk.pt",
             setup=(("bytes", "in/junk.pt"), ("copy", "s.onnx", "out/s.onnx"))),
        Case(m, "control", "no fault (default output next to the checkpoint)", (f"{C}/in/s.pt",), (0,), setup=src,
             timeout=180),
    ]
    return cases + _export_signals(m, ok(), src)


def export_openvino() -> list:
    m = "export.openvino"
    build = lambda p: (p, "-o", f"{C}/out/s.xml")  # noqa: E731
    cases = file_faults(m, build, ".onnx", "source (ONNX)", valid="s.onnx", extra=[
        ("wrong kind of model", "an INT8 ONNX where FP32 is expected", "s.int8.onnx", "q.int8.onnx"),
        ("wrong kind of model", "an OpenVINO IR as the source", "s.xml", "s.xml")])
    cases += file_faults(m, build, ".pt", "source (checkpoint)", valid="run/model.pt", cut=False, extra=PT_KINDS)
    src = (("copy", "s.onnx", "in/s.onnx"),)
    ok = lambda *extra: (f"{C}/in/s.onnx", "-o", f"{C}/out/s.xml") + extra  # noqa: E731
    int8 = ok("--precision", "int8", "--num-calib", "4")
    bad = [("bad value", "--precision", "int4", "--precision"), ("bad value", "--num-calib", "0", "--num-calib"),
           ("bad value", "--max-drop", "nan", "--max-drop"), ("bad value", "--opset", "99", "--opset")]
    cases += flag_faults(m, ok(), bad, required_missing=(("-o", f"{C}/out/s.xml"), "source"), setup=src)
    cases += output_faults(m, lambda p: (f"{C}/in/s.onnx", "-o", p), "s.xml", "-o", setup=src)
    cases += [
        Case(m, "wrong suffix", "-o s.bin (the weights' name, not the IR's)", ok()[:2] + (f"{C}/out/s.bin",),
             names="s.bin", setup=src),
        Case(m, "missing argument", "--precision int8 with no data and no --no-gate", int8, names="--no-gate",
             setup=src),
        Case(m, "missing file", "--calib-dir does not exist", int8 + ("--calib-dir", f"{C}/no/calib", "--no-gate"),
             names="no/calib", setup=src),
        Case(m, "empty file", "--calib-dir is an empty folder", int8 + ("--calib-dir", "{fx}/emptydir", "--no-gate"),
             names="emptydir", setup=src),
        Case(m, "non-image", "--calib-dir holds no image", int8 + ("--calib-dir", "{fx}/nonimages", "--no-gate"),
             names="nonimages", setup=src),
        Case(m, "directory for a file", "--calib-dir is a file", int8 + ("--calib-dir", f"{C}/afile", "--no-gate"),
             names="afile", setup=src + (("text", "afile", "x\n"),)),
        Case(m, "missing file", "--data-root: a CamVid root that does not exist",
             int8 + ("--dataset", "camvid", "--data-root", f"{C}/no/camvid"), names="no/camvid", setup=src),
        Case(m, "control", "no fault (FP32)", ok(), (0,), setup=src, timeout=180),
        Case(m, "control", "no fault (INT8, unchecked)", int8 + CALIB, (0,), setup=src, timeout=240),
    ]
    cases += _export_signals(m, ok(), src)
    cases += signal_cases(m, int8 + CALIB, [("during an INT8 export (its candidate file exists)",
                                            ("file", "out/.s*"))], setup=src, timeout=240, sigs=("SIGTERM",))
    return cases


def export_quantize() -> list:
    m = "export.quantize"
    build = lambda p: (p, "-o", f"{C}/out/s.int8.onnx") + CALIB  # noqa: E731
    cases = file_faults(m, build, ".onnx", "source (ONNX)", valid="s.onnx", extra=[
        ("wrong kind of model", "an INT8 ONNX (already quantised)", "s.int8.onnx", "q.int8.onnx"),
        ("wrong kind of model", "an OpenVINO IR as the source", "s.xml", "s.xml")])
    cases += file_faults(m, build, ".pt", "source (checkpoint)", valid="run/model.pt", cut=False, extra=PT_KINDS)
    src = (("copy", "s.onnx", "in/s.onnx"),)
    ok = lambda *extra: (f"{C}/in/s.onnx", "-o", f"{C}/out/s.int8.onnx") + extra  # noqa: E731
    bad = [("bad value", "--target", "tpu", "--target"), ("bad value", "--num-calib", "0", "--num-calib"),
           ("bad value", "--min-agreement", "1.5", "--min-agreement"), ("bad value", "--max-drop", "inf", "--max-drop")]
    cases += flag_faults(m, ok(*CALIB), bad, required_missing=(("-o", f"{C}/out/s.int8.onnx") + CALIB, "source"),
                         setup=src)
    cases += output_faults(m, lambda p: (f"{C}/in/s.onnx", "-o", p) + CALIB, "s.int8.onnx", "-o", setup=src)
    cases += [
        Case(m, "wrong suffix", "-o q.xml (a Q/DQ ONNX exporter)", ok("--calib-dir", "{fx}/calib", "--no-gate")[:2]
             + (f"{C}/out/q.xml",) + CALIB, names="q.xml", setup=src),
        Case(m, "missing argument", "no labelled data and no --no-gate", ok("--calib-dir", "{fx}/calib"),
             names="--no-gate", setup=src),
        Case(m, "missing file", "--calib-dir does not exist", ok("--calib-dir", f"{C}/no/calib", "--no-gate"),
             names="no/calib", setup=src),
        Case(m, "empty file", "--calib-dir is an empty folder", ok("--calib-dir", "{fx}/emptydir", "--no-gate"),
             names="emptydir", setup=src),
        Case(m, "non-image", "--calib-dir holds no image", ok("--calib-dir", "{fx}/nonimages", "--no-gate"),
             names="nonimages", setup=src),
        Case(m, "non-image", "--calib-dir mixes images, a text file and a broken PNG",
             ok("--calib-dir", "{fx}/mixed", "--no-gate"), (0, 2), setup=src, timeout=180),
        Case(m, "missing file", "--data-root: a CamVid root that does not exist",
             ok("--dataset", "camvid", "--data-root", f"{C}/no/camvid"), names="no/camvid", setup=src),
        Case(m, "control", "no fault (unchecked INT8)", ok(*CALIB), (0,), setup=src, timeout=180),
    ]
    return cases + _export_signals(m, ok(*CALIB), src)


def export_trt() -> list:
    m = "export.trt"
    build = lambda p: (p, "-o", f"{C}/out/s.engine")  # noqa: E731
    cases = file_faults(m, build, ".onnx", "source (ONNX)", valid="s.onnx", names=False, extra=[
        ("wrong kind of model", "an INT8 ONNX for ONNX Runtime (target ort)", "s.int8.onnx", "q.int8.onnx")])
    src = (("copy", "s.onnx", "in/s.onnx"),)
    ok = lambda *extra: (f"{C}/in/s.onnx", "-o", f"{C}/out/s.engine") + extra  # noqa: E731
    bad = [("bad value", "--workspace", "-1", "--workspace"), ("bad size", "--min-shape", "1x3", "--min-shape"),
           ("bad size", "--opt-shape", "abc", "--opt-shape"), ("bad value", "--precision", "int4", "--precision")]
    cases += flag_faults(m, ok(), bad, required_missing=(("-o", f"{C}/out/s.engine"), "source"), setup=src)
    cases += [
        Case(m, "missing library", "a valid ONNX on a machine without TensorRT", ok(), names="tensorrt", setup=src),
        Case(m, "missing library", "INT8 with calibration images, without TensorRT", ok(*CALIB, "--precision",
                                                                                         "int8"),
             names="tensorrt", setup=src),
        Case(m, "wrong suffix", "-o s.onnx (an engine exporter)", ok()[:2] + (f"{C}/out/e.onnx",), names="e.onnx",
             setup=src),
        Case(m, "read-only output", "-o on a read-only disk", (f"{C}/in/s.onnx", "-o", f"{C}/ro/s.engine"),
             setup=src + (("mount", "ro", 256, True),)),
        Case(m, "output inside a file", "-o inside a file", (f"{C}/in/s.onnx", "-o", f"{C}/afile/s.engine"),
             setup=src + (("text", "afile", "x\n"),)),
    ]
    return cases


# ------------------------------------------------------------------------------------------ runtime
def _rr(model="{fx}/s.onnx", source="{fx}/short.avi", sink="none", extra=()):
    return ("--model", model, "--source", source, "--sink", sink, "-q") + tuple(extra)


SOURCES = [  # (kind, fault, source, setup, expected exits, what the line names)
    ("missing file", "a video that does not exist", f"{C}/no/such/v.mp4", (), (2,), "v.mp4"),
    ("source", "a video with a corrupt frame (4 KB of junk mid-file)", "{fx}/corrupt.avi", (), (0, 2), ""),
    ("source", "a video with no frame", "{fx}/zero.avi", (), (2,), "zero.avi"),
    ("non-image", "a folder of images, a text file and a broken PNG", "{fx}/mixed", (), (0,), ""),
    ("non-image", "a folder with no image", "{fx}/nonimages", (), (2,), "nonimages"),
    ("empty file", "an empty folder", "{fx}/emptydir", (), (2,), "emptydir"),
    ("missing file", "a glob that matches nothing", f"{C}/none/*.png", (), (2,), "*.png"),
    ("junk bytes", "a .mp4 of random bytes", f"{C}/in/junk.mp4", (("bytes", "in/junk.mp4"),), (2,), "junk.mp4"),
    ("empty file", "an empty .mp4", f"{C}/in/empty.mp4", (("empty", "in/empty.mp4"),), (2,), "empty.mp4"),
    ("wrong suffix", "a text file as a video", f"{C}/in/notes.txt", (("text", "in/notes.txt", "hello\n"),), (2,),
     "notes.txt"),
    ("non-image", "a broken PNG as an image", f"{C}/in/broken.png", (("bytes", "in/broken.png"),), (2,),
     "broken.png"),
    ("unreachable source", "an RTSP URL nobody serves (--no-reconnect)", "rtsp://127.0.0.1:9/live", (), (2,),
     "rtsp://127.0.0.1:9/live"),
    ("unreachable source", "an HTTP MJPEG URL nobody serves (--no-reconnect)", "http://127.0.0.1:9/video.mjpg", (),
     (2,), "127.0.0.1:9"),
    ("unreachable source", "a camera index with no camera (7)", "7", (), (2,), "7"),
    ("unreachable source", "csi://3 (no CSI camera, no GStreamer)", "csi://3", (), (2,), "csi://3"),
    ("unreachable source", "a GStreamer pipeline (OpenCV without GStreamer)", "videotestsrc ! appsink", (), (2,),
     "videotestsrc"),
    ("control", "no fault (a single image)", "{fx}/images/img_0.png", (), (0,), ""),
    ("control", "no fault (a video)", "{fx}/short.avi", (), (0,), ""),
]


def runtime_run() -> list:
    m = "runtime.run"
    model = lambda p: _rr(p)  # noqa: E731
    cases = file_faults(m, model, ".onnx", "--model (ONNX)", valid="s.onnx", extra=[
        ("wrong kind of model", "a checkpoint (.pt) given to the runtime", "run/model.pt", "model.pt")])
    cases += file_faults(m, model, ".xml", "--model (OpenVINO IR)", valid="s.xml", cut=True, extra=[
        ("missing file", "an IR without its .bin", "s.xml", "nobin.xml")])
    cases += file_faults(m, model, ".engine", "--model (TensorRT engine)", names=False)
    cases += [Case(m, kind, f"--source: {fault}", _rr(source=src, extra=("--no-reconnect",)), expect, names=names,
                   setup=setup, timeout=90) for kind, fault, src, setup, expect, names in SOURCES]
    cases.append(Case(m, "unreachable source", "--source an RTSP URL nobody serves, reconnecting (the default)",
                      _rr(source="rtsp://127.0.0.1:9/live"), (2,), names="rtsp://127.0.0.1:9/live", timeout=90))
    bad = SIZES[:3] + [("bad value", "--alpha", "2", "--alpha"), ("bad value", "--max-frames", "0", "--max-frames"),
                       ("bad value", "--threads", "0", "--threads"), ("bad value", "--device", "tpu", "tpu"),
                       ("bad value", "--hint", "fast", "--hint"), ("bad value", "--writer-nice", "50", "--writer-nice"),
                       ("bad value", "--stats-every", "0", "--stats-every"),
                       ("bad value", "--precision-hint", "int8", "--precision-hint")]
    cases += flag_faults(m, _rr(), bad)
    cases += _runtime_outputs(m) + _runtime_signals(m)
    return cases


def _runtime_outputs(m) -> list:
    video = lambda p: _rr(source="{fx}/long.avi", sink=p)  # noqa: E731
    cases = output_faults(m, video, "out.mp4", "--sink video")
    cases += output_faults(m, lambda p: _rr(sink=p + "/"), "frames", "--sink frame folder", folder=True)
    cases += output_faults(m, lambda p: _rr(extra=("-o", p)), "stats.json", "-o")
    cases += [
        Case(m, "wrong suffix", "--sink out.xyz (no such container)", _rr(sink=f"{C}/out/out.xyz"), names="out.xyz"),
        Case(m, "existing output", "-o names an earlier summary and the model is missing: kept as it was",
             _rr(f"{C}/no/such/s.onnx", extra=("-o", f"{C}/out/stats.json")), names="s.onnx",
             setup=(("text", "out/stats.json", '{"frames": 1}\n'),)),
        Case(m, "existing output", "--sink names an earlier video and the source is missing: kept as it was",
             _rr(source=f"{C}/no/such/v.mp4", sink=f"{C}/out/out.avi"), names="v.mp4",
             setup=(("copy", "short.avi", "out/out.avi"),)),
        Case(m, "full disk", "--sink video on a disk another writer fills mid-run",
             _rr(source="{fx}/long.avi", sink=f"{C}/disk/out.mp4", extra=("-o", f"{C}/stats.json")),
             names="out.mp4", setup=(("mount", "disk", 8192),), trigger=("size", "disk/*", 200_000),
             action=("fill", "disk"), keep=("disk/filler", "disk/out.mp4", "stats.json"), timeout=180),
    ]
    return cases


def _runtime_signals(m) -> list:
    args = _rr(source="{fx}/long.avi", sink=f"{C}/out/out.mp4", extra=("-o", f"{C}/out/stats.json",
                                                                     "--stats-every", "0.05"))
    cases = signal_cases(m, args, [("at start (0.3 s: importing)", ("after", 0.3)),
                                   ("mid-run (the first summary printed)", ("text", "last "))],
                         keep=("out/out.mp4", "out/stats.json"))
    stalled = _rr(source="http://127.0.0.1:{port}/video.mjpg", sink=f"{C}/out/out.mp4")
    cases += signal_cases(m, stalled, [("before the first frame (a camera URL that answers and sends nothing)",
                                        ("after", 4.0))], setup=(("stalled stream",),), timeout=60)
    cases.append(Case(m, "unreachable source", "--source a camera URL that answers and never sends a frame",
                      stalled, (2,), names="video.mjpg", setup=(("stalled stream",),), timeout=60))
    cases += signal_cases(m, _rr(source="{fx}/long.avi", sink=f"{C}/frames/"),
                          [("mid-run, writing a frame folder", ("file", "frames/*"))], keep=("frames/*",),
                          sigs=("SIGTERM",))
    return cases


def runtime_bench() -> list:
    m = "runtime.bench"
    base = lambda p="{fx}/s.onnx", *extra: ("--model", p, "--iters", "5", "--warmup", "1") + extra  # noqa: E731
    cases = file_faults(m, lambda p: base(p), ".onnx", "--model (ONNX)", valid="s.onnx", extra=[
        ("wrong kind of model", "a checkpoint (.pt)", "run/model.pt", "model.pt")])
    cases += file_faults(m, lambda p: base(p), ".xml", "--model (OpenVINO IR)", valid="s.xml", extra=[
        ("missing file", "an IR without its .bin", "s.xml", "nobin.xml")])
    bad = SIZES[:3] + [("bad value", "--iters", "0", "--iters"), ("bad value", "--warmup", "-1", "--warmup"),
                       ("bad value", "--batch", "0", "--batch"), ("bad value", "--requests", "0", "--requests"),
                       ("bad value", "--threads", "0", "--threads"), ("bad value", "--device", "tpu", "tpu")]
    cases += flag_faults(m, base(), bad)
    cases += output_faults(m, lambda p: base("{fx}/s.onnx", "-o", p), "bench.json", "-o")
    cases.append(Case(m, "control", "no fault", base(), (0,)))
    long = ("--model", "{fx}/s.onnx", "--iters", "1000000", "--warmup", "1", "-o", f"{C}/out/bench.json")
    cases += signal_cases(m, long, [("mid-timing (after 4 s)", ("after", 4.0))], keep=("out/bench.json",))
    return cases


# ------------------------------------------------------------------------------------------ benchmarks
GAIN_SETS = tuple(s for s in TRAIN if not s.startswith("out_dir="))


def benchmarks_gain() -> list:
    m = "benchmarks.gain"
    base = ("--methods", "plain", "--seeds", "0", "--no-tune", "--out-dir", f"{C}/gain", "--set") + GAIN_SETS
    brd = ("--methods", "brd", "--seeds", "0", "--no-tune", "--out-dir", f"{C}/gain")
    bad = [("bad value", "--jobs", "0", "--jobs"), ("bad value", "--seeds", "abc", "--seeds"),
           ("bad value", "--methods", "nonesuch", "nonesuch"), ("bad value", "--prefix", "nonesuch", "nonesuch"),
           ("bad value", "--panel-images", "-1", "--panel-images")]
    cases = flag_faults(m, base, bad, setup=DATA)
    cases += [replace(c, setup=DATA + c.setup) for c in file_faults(
        m, lambda p: brd + ("--teacher", p, "--set") + GAIN_SETS, ".pt", "--teacher", valid="run/model.pt", cut=False,
        extra=PT_KINDS)]
    cases += [
        Case(m, "config key", "--set train.nope=1", base + ("train.nope=1",), names="train.nope", setup=DATA),
        Case(m, "missing file", "--configs-dir does not exist", base + ("--configs-dir", f"{C}/no/configs"),
             names="no/configs", setup=DATA),
    ]
    cases += output_faults(m, lambda p: ("--methods", "plain", "--seeds", "0", "--no-tune", "--out-dir", p,
                                         "--set") + GAIN_SETS, "gain", "--out-dir", setup=DATA, folder=True)
    long = ("--methods", "plain", "--seeds", "0", "--no-tune", "--out-dir", f"{C}/gain", "--set") + tuple(
        s for s in GAIN_SETS if not s.startswith(("train.iters", "train.val_every", "train.ckpt_every"))) + (
        "train.iters=100000", "train.val_every=100000", "train.ckpt_every=1000")
    cases += signal_cases(m, long, [("mid-training (3 steps logged)", ("lines", "gain/runs/plain_s0/train_log.csv",
                                                                       4))], setup=DATA, keep=("gain/*",),
                          timeout=240)
    return cases


def benchmarks_gain_tools() -> list:
    m = "benchmarks.gain.boundary_maps"
    base = lambda p="{fx}/run/model.pt", *extra: ("--model", p, "--cfg", "synthetic_plain.yaml", "--set",  # noqa
                                                  "data.root={fx}/data", "data.crop_size=[32,64]",
                                                  f"data.kwargs={DATA_KW}",
                                                  f"data.val_kwargs={DATA_KW}", "--split", "val", "--images", "2",
                                                  "--out-dir", f"{C}/maps") + extra
    cases = file_faults(m, lambda p: base(p), ".pt", "--model", valid="run/model.pt", extra=PT_KINDS + [
        ("wrong kind of model", "an ONNX model", "s.onnx", "model.onnx")])
    cases += flag_faults(m, base(), [("bad value", "--images", "0", "--images"),
                                     ("bad value", "--tolerance", "-1", "--tolerance"),
                                     ("bad value", "--split", "nonesuch", "nonesuch")],
                         required_missing=(("--cfg", "synthetic_plain.yaml"), "--model"))
    cases += output_faults(m, lambda p: base("{fx}/run/model.pt")[:-2] + ("--out-dir", p), "maps", "--out-dir",
                           folder=True)
    t = "benchmarks.gain.trials"
    tbase = ("--prefix", "camvid", "--out-dir", f"{C}/trials", "--runs-dir", f"{C}/runs", "--teacher",
             "{fx}/run/model.pt", "--no-train")
    cases += flag_faults(t, tbase, [("bad value", "--jobs", "0", "--jobs"), ("bad value", "--only", "nonesuch",
                                                                             "nonesuch"),
                                    ("bad value", "--prefix", "nonesuch", "nonesuch"),
                                    ("config key", "--set", "train.nope=1", "train.nope")])
    cases += [Case(t, "missing file", "--out-dir without the benchmark's tuning table", tbase,
                   names="camvid_tuning.csv"),
              Case(t, "missing file", "--teacher does not exist", tbase + ("--teacher", f"{C}/no/such/t.pt"),
                   (2,), names="t.pt"),
              Case(t, "output inside a file", "--out-dir inside a file", ("--prefix", "camvid", "--out-dir",
                                                                          f"{C}/afile/trials", "--teacher",
                                                                          "{fx}/run/model.pt", "--no-train"),
                   names="afile", setup=(("text", "afile", "x\n"),))]
    return cases


def benchmarks_gain_curve() -> list:
    m = "benchmarks.gain.curve"
    base = ("--run", "plain={fx}/run", "--out-dir", f"{C}/curve")
    cases = flag_faults(m, base, [("bad value", "--run", "plain", "LABEL=DIR"),
                                  ("bad value", "--run", "=" + "{fx}/run", "--run")],
                        required_missing=(("--out-dir", f"{C}/curve"), "--run"))
    cases += [
        Case(m, "missing file", "--run names a folder that does not exist", ("--run", f"x={C}/no/such/run"),
             names="no/such/run"),
        Case(m, "missing file", "--run names a folder without val_log.csv", ("--run", "x={fx}/emptydir"),
             names="emptydir"),
        Case(m, "junk bytes", "--run folder whose val_log.csv is random bytes", ("--run", f"x={C}/run"),
             names="val_log.csv", setup=(("copy", "run", "run"), ("bytes", "run/val_log.csv"))),
        Case(m, "empty file", "--run folder whose val_log.csv is empty", ("--run", f"x={C}/run"),
             names="val_log.csv", setup=(("copy", "run", "run"), ("empty", "run/val_log.csv"))),
        Case(m, "bad value", "--name with a slash", base + ("--name", "a/b"), names="--name"),
        Case(m, "control", "no fault", base, (0,)),
    ]
    cases += output_faults(m, lambda p: base[:2] + ("--out-dir", p), "curve", "--out-dir", folder=True)
    return cases


def benchmarks_demo() -> list:
    m = "benchmarks.demo"
    base = ("--out-dir", f"{C}/demo", "--teacher-iters", "2", "--student-iters", "2")
    cases = flag_faults(m, base, [("bad value", "--teacher-iters", "0", "--teacher-iters"),
                                  ("bad value", "--student-iters", "-1", "--student-iters"),
                                  ("config key", "--set", "train.nope=1", "train.nope"),
                                  ("config type", "--set", "train.lr=fast", "train.lr")])
    cases += output_faults(m, lambda p: ("--out-dir", p, "--teacher-iters", "2"), "demo", "--out-dir", folder=True)
    cases += signal_cases(m, base, [("while the teacher trains (after 8 s)", ("after", 8.0))], keep=("demo/*",),
                          timeout=240)
    s = "benchmarks.demo.camvid_street"
    sbase = ("--root", "{fx}/emptydir", "--model", "{fx}/s.onnx", "--out-dir", f"{C}/pics")
    cases += flag_faults(s, sbase, [("bad value", "--fps", "0", "--fps")])
    cases += [Case(s, "missing file", "--root does not exist", ("--root", f"{C}/no/camvid", "--out-dir", f"{C}/p"),
                   names="no/camvid"),
              Case(s, "empty file", "--root is an empty folder", sbase, names="emptydir")]
    camvid = str(CAMVID) if CAMVID.is_dir() else "{fx}/emptydir"
    cases += file_faults(s, lambda p: ("--root", camvid, "--model", p, "--out-dir", f"{C}/pics"), ".onnx",
                         "--model", cut=False, names=False, timeout=180)
    c = "benchmarks.demo.model_card"
    cases += file_faults(c, lambda p: (p, f"{C}/out/card.pt"), ".pt", "ckpt", valid="run/model.pt", extra=PT_KINDS)
    cases += [Case(c, "missing argument", "out left out", ("{fx}/run/model.pt",), names="out"),
              Case(c, "bad value", "--target-miou abc", ("{fx}/run/model.pt", f"{C}/out/card.pt", "--target-miou",
                                                         "abc"), names="--target-miou"),
              Case(c, "missing file", "--int8 does not exist", ("{fx}/run/model.pt", f"{C}/out/card.pt", "--int8",
                                                                f"{C}/no/such/q.xml"), names="q.xml", timeout=180)]
    cases += output_faults(c, lambda p: ("{fx}/run/model.pt", p), "card.pt", "out", timeout=180)
    return cases


def benchmarks_speed() -> list:
    m = "benchmarks.speed"
    base = ("--arch", "deeplabv3_resnet10_w8", "--backends", "ort-fp32", "--size", "64x128", "--rounds", "1",
            "--warmup", "1", "--pause", "0", "--work-dir", f"{C}/work", "--out-dir", f"{C}/speed")
    cases = flag_faults(m, base, [("bad value", "--arch", "nonesuch", "nonesuch"),
                                  ("bad value", "--backends", "ov-int4", "ov-int4"),
                                  ("bad value", "--rounds", "0", "--rounds"), ("bad size", "--size", "512x", "--size"),
                                  ("bad value", "--threads", "0", "--threads"),
                                  ("bad value", "--pause", "-1", "--pause")])
    cases += output_faults(m, lambda p: base[:-2] + ("--out-dir", p), "speed", "--out-dir", folder=True, timeout=180)
    cases.append(Case(m, "output inside a file", "--work-dir inside a file", base[:-4] + (
        "--work-dir", f"{C}/afile/work", "--out-dir", f"{C}/speed"), names="afile", setup=(("text", "afile", "x\n"),),
        timeout=180))
    loop = "benchmarks.speed.loop"
    lbase = ("--model", "{fx}/s.xml", "--video", "{fx}/short.avi", "--frames", "10", "--iters", "5",
             "--bench-seconds", "0", "--repeats", "1", "--work-dir", f"{C}/work", "--out-dir", f"{C}/loop")
    cases += flag_faults(loop, lbase, [("bad value", "--frames", "0", "--frames"),
                                       ("bad value", "--preset", "nonesuch", "--preset"),
                                       ("bad value", "--repeats", "0", "--repeats"),
                                       ("bad value", "--bench-seconds", "-1", "--bench-seconds")])
    cases += file_faults(loop, lambda p: ("--model", p) + lbase[2:], ".xml", "--model", valid="s.xml", cut=False,
                         timeout=180)
    cases += [Case(loop, "missing file", "--video does not exist", lbase[:2] + ("--video", f"{C}/no/such/v.mp4")
                   + lbase[4:], names="v.mp4"),
              Case(loop, "source", "--video with no frame", lbase[:2] + ("--video", "{fx}/zero.avi") + lbase[4:],
                   names="zero.avi", timeout=180),
              Case(loop, "output inside a file", "--out-dir inside a file", lbase[:-2] + ("--out-dir",
                                                                                         f"{C}/afile/loop"),
                   names="afile", setup=(("text", "afile", "x\n"),), timeout=180)]
    return cases


def benchmarks_speed_tools() -> list:
    lc = "benchmarks.speed.loss_cost"
    cases = flag_faults(lc, ("--batch", "1", "--size", "32x64", "--repeats", "1"), [
        ("bad value", "--student", "nonesuch", "nonesuch"), ("bad value", "--teacher", "nonesuch", "nonesuch"),
        ("bad value", "--batch", "0", "--batch"), ("bad size", "--size", "128x", "--size"),
        ("bad value", "--classes", "0", "--classes"), ("bad value", "--max-tokens", "0", "--max-tokens")])
    ld = "benchmarks.speed.loader"
    lbase = ("--root", f"{C}/no/cityscapes", "--workers", "0", "--batches", "1")
    cases += flag_faults(ld, lbase, [("bad value", "--step-its", "0", "--step-its"),
                                     ("bad value", "--workers", "-1", "--workers"),
                                     ("bad size", "--size", "x", "--size"),
                                     ("config key", "--set", "data.nope=1", "data.nope")],
                         required_missing=(("--workers", "0"), "--root"))
    cases += [Case(ld, "missing file", "--root does not exist", lbase, names="no/cityscapes"),
              Case(ld, "directory for a file", "--root is a file", ("--root", f"{C}/afile", "--workers", "0"),
                   names="afile", setup=(("text", "afile", "x\n"),)),
              Case(ld, "missing file", "--cfg does not exist", lbase + ("--cfg", f"{C}/no/c.yaml"), names="c.yaml")]
    na = "benchmarks.speed.no_added_cost"
    cheap = ("--variants", "onnx-fp32", "--iters", "1", "--warmup", "0", "--rounds", "1", "--num-calib", "2")
    pair = lambda a, b: ("--pair", "r10", a, b, "--out-dir", f"{C}/nac") + cheap  # noqa: E731
    cases += file_faults(na, lambda p: pair(p, "{fx}/run/model.pt"), ".pt", "--pair PLAIN_PT", valid="run/model.pt",
                         extra=PT_KINDS)
    cases += flag_faults(na, pair("{fx}/run/model.pt", "{fx}/run/model.pt"), [
        ("bad value", "--variants", "onnx-int4", "onnx-int4"), ("bad value", "--rounds", "0", "--rounds"),
        ("bad value", "--threads", "0", "--threads")], required_missing=(("--out-dir", f"{C}/nac"), "--pair"))
    cases += output_faults(na, lambda p: ("--pair", "r10", "{fx}/run/model.pt", "{fx}/run/model.pt", "--out-dir", p)
                           + cheap, "nac", "--out-dir", folder=True, timeout=240)
    ov = "benchmarks.speed.overlay"
    obase = ("--size", "64x128", "--maps", "1", "--rounds", "1", "--out-dir", f"{C}/ov")
    cases += flag_faults(ov, obase, [("bad size", "--size", "720x", "--size"), ("bad value", "--rounds", "0",
                                                                                "--rounds"),
                                     ("bad value", "--maps", "0", "--maps")])
    cases += [Case(ov, "missing file", "--root does not exist", obase + ("--root", f"{C}/no/camvid"),
                   names="no/camvid"),
              Case(ov, "empty file", "--root without label images", obase + ("--root", "{fx}/emptydir"),
                   names="emptydir"),
              Case(ov, "control", "no fault (a drawn class map)", obase, (0,))]
    cases += output_faults(ov, lambda p: obase[:-2] + ("--out-dir", p), "ov", "--out-dir", folder=True)
    return cases


def benchmarks_faults() -> list:
    m = "benchmarks.faults"
    return flag_faults(m, ("--only", "nonesuch-entry-point", "--list"), [
        ("bad value", "--jobs", "0", "--jobs"), ("bad value", "--only", "nonesuch-module", "nonesuch-module")]) + [
        Case(m, "output inside a file", "--out-dir inside a file",
             ("--out-dir", f"{C}/afile/results", "--work-dir", f"{C}/work", "--only", "runtime.bench"),
             names="afile", setup=(("text", "afile", "x\n"),))]


GENERATORS = (distill_run, distill_evaluate, export_onnx, export_openvino, export_quantize, export_trt, runtime_run,
              runtime_bench, benchmarks_gain, benchmarks_gain_tools, benchmarks_gain_curve, benchmarks_demo,
              benchmarks_speed, benchmarks_speed_tools, benchmarks_faults)


def all_cases() -> list:
    """Every case, in a fixed order; (module, fault) is unique."""
    cases = [c for gen in GENERATORS for c in gen()]
    seen = {}
    for c in cases:
        if c.key in seen:
            raise AssertionError(f"two cases {c.key}")
        seen[c.key] = c
    return cases
