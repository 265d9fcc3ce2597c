"""The cases of training and evaluation: distill.run (its config file, --set overrides, teacher, data, run
folder, flags, signals) and distill.evaluate."""
from __future__ import annotations

from dataclasses import replace

from ..case import Case
from ..fixtures import BIG_VAL
from .builders import C, DATA, DATA_KW, SIZES, TRAIN, file_faults, flag_faults, output_faults, signal_cases

BIG_KW = '{"num_images": %d, "size": [32, 64], "seed": 0}' % BIG_VAL
EVAL = ("--root", "{fx}/data", "--data-kwargs", DATA_KW)


# ------------------------------------------------------------------------------------------ distill.run
def _train(cfg="synthetic_plain.yaml", extra=()):
    return ("--cfg", cfg, "--set") + TRAIN + tuple(extra)


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
