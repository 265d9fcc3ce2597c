"""The CLI contract, for every `python -m` entry point (runtime/contract/): bad input exits 2 with
exactly one `error:` line on stderr and no traceback; every flag has help and each --help ends with
real examples.

Each command runs three times: a missing file, a bad flag value, and a bad config key (commands that
read no config, or no file, get another kind of bad input instead). Each must fail before any heavy
work, so what they cost is imports: they run as `python -m` runs them, in two interpreters
(tests/cli_driver.py) rather than one each.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .cli_driver import run_in_one_process

ROOT = Path(__file__).resolve().parent.parent
MISSING_PT, MISSING_ONNX = "no/such/student.pt", "no/such/student.onnx"

# (entry point, what is wrong, arguments, a phrase the one error line must contain)
CASES = [
    ("distill.run", "missing file", ["--cfg", "no/such/config.yaml"], "no/such/config.yaml"),
    ("distill.run", "bad flag value", ["--cfg", "synthetic.yaml", "--set", "train.iters=-3"], "train.iters"),
    ("distill.run", "bad config key", ["--cfg", "synthetic.yaml", "--set", "train.lrr=0.1"], "train.lrr"),
    ("distill.evaluate", "missing file", ["--model", MISSING_PT, "--cfg", "synthetic.yaml"], MISSING_PT),
    ("distill.evaluate", "bad flag value", ["--model", MISSING_PT, "--window", "0x64"], "--window"),
    ("distill.evaluate", "bad config key", ["--model", MISSING_PT, "--cfg", "synthetic.yaml", "--set", "eval.nope=1"],
     "eval.nope"),
    ("export.onnx", "missing file", [MISSING_PT], MISSING_PT),
    ("export.onnx", "bad flag value", [MISSING_PT, "--size", "60x64"], "multiple of 8"),
    ("export.onnx", "bad flag value (opset)", [MISSING_PT, "--opset", "7"], "opset 7"),
    ("export.quantize", "missing file", [MISSING_ONNX], MISSING_ONNX),
    ("export.quantize", "bad flag value", [MISSING_ONNX, "--num-calib", "0"], "--num-calib"),
    ("export.quantize", "wrong kind of file", ["README.md"], "README.md"),
    ("export.openvino", "missing file", [MISSING_ONNX], MISSING_ONNX),
    ("export.openvino", "bad flag value", [MISSING_ONNX, "--precision", "int4"], "--precision"),
    ("export.openvino", "wrong kind of file", ["README.md"], "README.md"),
    ("export.trt", "missing file", [MISSING_ONNX], MISSING_ONNX),
    ("export.trt", "bad flag value", [MISSING_ONNX, "--workspace", "-1"], "--workspace"),
    ("export.trt", "wrong kind of file", ["README.md"], "README.md"),
    ("runtime.run", "missing file", ["--model", MISSING_ONNX, "--source", "x.mp4", "--sink", "none"], MISSING_ONNX),
    ("runtime.run", "bad flag value", ["--model", MISSING_ONNX, "--alpha", "2"], "--alpha"),
    ("runtime.run", "unknown model format", ["--model", "README.md", "--sink", "none"], "unknown model format"),
    ("runtime.bench", "missing file", ["--model", MISSING_ONNX], MISSING_ONNX),
    ("runtime.bench", "bad flag value", ["--model", MISSING_ONNX, "--iters", "0"], "--iters"),
    ("runtime.bench", "unknown model format", ["--model", "README.md"], "unknown model format"),
    ("benchmarks.speed.no_added_cost", "missing file", ["--pair", "r10", MISSING_PT, MISSING_PT], MISSING_PT),
    ("benchmarks.speed.no_added_cost", "bad flag value", ["--pair", "r10", MISSING_PT, MISSING_PT, "--rounds", "0"],
     "--rounds"),
    ("benchmarks.speed.no_added_cost", "unknown variant", ["--pair", "r10", MISSING_PT, MISSING_PT, "--variants", "onnx-int4"],
     "onnx-int4"),
    ("benchmarks.speed.loss_cost", "unknown architecture", ["--student", "nonesuch"], "nonesuch"),
    ("benchmarks.speed.loss_cost", "bad flag value", ["--batch", "0"], "--batch"),
    ("benchmarks.speed.loss_cost", "bad size", ["--size", "128x"], "--size"),
    ("benchmarks.speed.loader", "missing folder", ["--root", "no/such/cityscapes", "--workers", "0"], "no/such/cityscapes"),
    ("benchmarks.speed.loader", "bad flag value", ["--root", "no/such/cityscapes", "--step-its", "0"], "--step-its"),
    ("benchmarks.speed.loader", "bad config key", ["--root", "no/such/cityscapes", "--set", "data.nope=1"], "data.nope"),
    ("benchmarks.gain.boundary_maps", "missing file", ["--model", MISSING_PT, "--cfg", "synthetic.yaml"], MISSING_PT),
    ("benchmarks.gain.boundary_maps", "bad flag value", ["--model", MISSING_PT, "--cfg", "synthetic.yaml", "--images", "0"],
     "--images"),
    ("benchmarks.gain.boundary_maps", "bad config key", ["--model", MISSING_PT, "--cfg", "synthetic.yaml", "--set",
                                                         "model.nope=1"], "model.nope"),
    ("benchmarks.demo", "unwritable output folder", ["--out-dir", "README.md/demo"], "README.md/demo"),
    ("benchmarks.demo", "bad flag value", ["--teacher-iters", "0"], "--teacher-iters"),
    ("benchmarks.demo", "bad config key", ["--out-dir", "{tmp}/demo", "--set", "train.nope=1"], "train.nope"),
    ("benchmarks.gain", "missing file", ["--methods", "plain,brd", "--seeds", "0", "--teacher", MISSING_PT,
                                         "--out-dir", "{tmp}/gain"], MISSING_PT),
    ("benchmarks.gain", "bad flag value", ["--jobs", "0"], "--jobs"),
    ("benchmarks.gain", "bad config key", ["--methods", "plain", "--no-tune", "--set", "train.nope=1",
                                           "--out-dir", "{tmp}/gain"], "train.nope"),
]
CASES += [
    ("benchmarks.speed", "unknown architecture", ["--arch", "nonesuch"], "nonesuch"),
    ("benchmarks.speed", "bad flag value", ["--rounds", "0"], "--rounds"),
    ("benchmarks.speed", "bad size", ["--size", "512x"], "--size"),
    ("benchmarks.speed.loop", "missing file", ["--model", "no/such/student.int8.xml"], "no/such/student.int8.xml"),
    ("benchmarks.speed.loop", "missing video", ["--video", "no/such/street.mp4"], "no/such/street.mp4"),
    ("benchmarks.speed.loop", "bad flag value", ["--frames", "0"], "--frames"),
    ("benchmarks.speed.streams", "missing file", ["--model", "no/such/student.int8.xml"], "no/such/student.int8.xml"),
    ("benchmarks.speed.streams", "bad flag value", ["--streams", "0"], "--streams"),
    ("benchmarks.speed.streams", "bad size", ["--sizes", "720x"], "--sizes"),
    ("benchmarks.speed.streams", "bad flag value", ["--repeats", "0"], "--repeats"),
    ("benchmarks.speed.bf16", "missing file", ["--models", MISSING_PT], MISSING_PT),
    ("benchmarks.speed.bf16", "unknown architecture", ["--models", "nonesuch"], "nonesuch"),
    ("benchmarks.speed.bf16", "bad flag value", ["--repeats", "0"], "--repeats"),
    ("benchmarks.speed.overlay", "missing folder", ["--root", "no/such/camvid"], "no/such/camvid"),
    ("benchmarks.speed.overlay", "bad size", ["--size", "720x"], "--size"),
    ("benchmarks.speed.overlay", "bad flag value", ["--rounds", "0"], "--rounds"),
    ("benchmarks.gain.trials", "missing file", ["--out-dir", "{tmp}/trials", "--no-train", "--teacher",
                                                "{tmp}/gone/teacher.pt"], "gone/teacher.pt"),
    ("benchmarks.gain.trials", "bad flag value", ["--jobs", "0"], "--jobs"),
    ("benchmarks.gain.curve", "missing folder", ["--run", "plain=no/such/run"], "no/such/run"),
    ("benchmarks.gain.curve", "bad run", ["--run", "plain"], "LABEL=DIR"),
    ("benchmarks.gain.curve", "missing flag", ["--name", "x"], "--run"),
    ("benchmarks.gain.inference_sizes", "missing file", ["--model", f"x={MISSING_PT}", "--dataset", "camvid",
                                                         "--root", "no/such/camvid"], MISSING_PT),
    ("benchmarks.gain.inference_sizes", "bad size", ["--model", f"x={MISSING_PT}", "--dataset", "camvid",
                                                     "--root", "x", "--sizes", "48x"], "--sizes"),
    ("benchmarks.gain.inference_sizes", "missing flag", ["--model", f"x={MISSING_PT}"], "--dataset"),
    ("benchmarks.gain.trials", "unknown trial", ["--only", "nonesuch"], "nonesuch"),
    ("benchmarks.gain.trials", "bad config key", ["--set", "train.nope=1", "--no-train"], "train.nope"),
    ("benchmarks.faults", "unwritable output folder", ["--out-dir", "README.md/results", "--only", "runtime.bench"],
     "README.md/results"),
    ("benchmarks.faults", "bad flag value", ["--jobs", "0"], "--jobs"),
    ("benchmarks.faults", "unknown entry point", ["--only", "nonesuch", "--list"], "nonesuch"),
]
ENTRY_POINTS = sorted({c[0] for c in CASES})
@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Every case run once, in two processes (tests/cli_driver.py: each command as `python -m` runs it, in
    one interpreter that imports torch once), at the lowest CPU priority."""
    tmp = tmp_path_factory.mktemp("contract")
    missing_root = ROOT / "no"
    existed = missing_root.exists()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    calls = [(module, [a.replace("{tmp}", str(tmp)) for a in args]) for module, _, args, _ in CASES]
    with ThreadPoolExecutor(2) as pool:
        even, odd = pool.map(lambda half: run_in_one_process(half, env=env, nice=19), [calls[0::2], calls[1::2]])
    merged = [None] * len(CASES)
    merged[0::2], merged[1::2] = even, odd
    out = dict(enumerate(merged))
    out["made the missing folder"] = not existed and missing_root.exists()
    return out


@pytest.mark.timeout(900)  # the first case also waits for the shared fixture: 48 processes on a busy machine
@pytest.mark.parametrize("index", range(len(CASES)), ids=[f"{c[0]}: {c[1]}" for c in CASES])
def test_bad_input_is_one_error_line_and_exit_2(results, index):
    module, what, args, phrase = CASES[index]
    r = results[index]
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert r.returncode == 2, f"{module} {args}: exit {r.returncode}\n{r.stderr[-3000:]}"
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    assert len(errors) == 1, r.stderr
    assert phrase in errors[0], errors[0]


def test_a_failing_command_creates_no_folder(results):
    # every "missing file" case names a path under no/such/: failing on it must not create that folder
    assert not results["made the missing folder"], f"a failing command created {ROOT / 'no'}"


def test_every_entry_point_is_covered_three_times():
    counts = {m: sum(c[0] == m for c in CASES) for m in ENTRY_POINTS}
    assert len(ENTRY_POINTS) == 23 and all(n >= 3 for n in counts.values()), counts


class _Parsed(Exception):
    """Raised instead of parsing, carrying the parser the entry point built."""


def _parser_of(module, monkeypatch):
    """The parser `python -m module` builds (caught before it parses anything)."""
    from runtime import contract

    def capture(parser, *args, **kw):
        raise _Parsed(parser)

    monkeypatch.setattr(contract.ArgumentParser, "parse_args", capture)
    # `python -m benchmarks.speed` runs a package: its main is the one its __main__ imports
    package = importlib.util.find_spec(module).submodule_search_locations is not None
    mod = importlib.import_module(module + ".__main__" if package else module)
    entry = mod.cli if module == "distill.evaluate" else mod.main
    with pytest.raises(_Parsed) as caught:
        entry(["--help"])
    return caught.value.args[0]


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_help_documents_every_flag_and_ends_with_examples(module, monkeypatch):
    parser = _parser_of(module, monkeypatch)
    shown = [a for a in parser._actions if a.help != argparse.SUPPRESS and not isinstance(a, argparse._HelpAction)]
    undocumented = [a.option_strings or a.dest for a in shown if not a.help]
    assert not undocumented, f"{module}: flags without help: {undocumented}"
    assert not any(a.help.rstrip().endswith(":") for a in shown), module
    assert not (parser.description or "").rstrip().endswith(":"), module
    examples = [line.strip() for line in (parser.epilog or "").splitlines()[1:]]
    named = ("python -m " + module, "torchrun")
    assert 2 <= len(examples) <= 3 and all(e.startswith(named) for e in examples), \
        f"{module}: epilog {parser.epilog!r}"


# spellings the commands had before they shared one name per thing (a 0.x project keeps no aliases)
REMOVED = ("--ckpt", "--crop", "--out", "--json", "--stats", "--shape", "--input-size", "--ov-precision", "--height",
           "--width", "--fp16", "--int8")


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_each_flag_has_one_spelling(module, monkeypatch):
    """No entry point accepts an alias: every flag is shown in --help (nothing hidden), has one long name (plus
    at most a one-letter short one), none is a removed spelling, and a report folder is always --out-dir."""
    parser = _parser_of(module, monkeypatch)
    flags = [a for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]
    assert not [a.option_strings for a in flags if a.help == argparse.SUPPRESS], module
    assert not [a.option_strings for a in flags if sum(o.startswith("--") for o in a.option_strings) != 1], module
    names = {o for a in flags for o in a.option_strings}
    assert not names & set(REMOVED), (module, sorted(names & set(REMOVED)))
    assert not [n for n in names if n.startswith("--out") and n not in ("--out-dir", "--output")], module
    assert not [a.dest for a in parser._actions if not a.option_strings and a.nargs in ("*", "+")], \
        f"{module}: a positional catch-all (overrides go through --set)"


def test_sizes_take_one_spelling():
    """`--size HxW` only: the old two-number form `--size H W` is an unknown argument."""
    from runtime import contract

    p = contract.ArgumentParser(prog="x")
    contract.size_arg(p, "--size", help="HxW")
    contract.add_overrides(p)
    assert p.parse_args(["--size", "64x128", "--set", "a.b=1"]).size == (64, 128)
    with pytest.raises(SystemExit) as e:
        p.parse_args(["--size", "64", "128"])
    assert e.value.code == 2


def test_benchmark_commands_have_one_name_each():
    """A command lives in benchmarks/gain, speed or demo and nowhere else: the top of benchmarks/ holds the
    shared report writer and street video only, no module that runs (or forwards to) a command."""
    top = sorted(p.name for p in (ROOT / "benchmarks").glob("*.py"))
    assert top == ["__init__.py", "report.py", "street.py"], top
    assert not [n for n in top if "__main__" in (ROOT / "benchmarks" / n).read_text()]


def test_backend_rejects_an_unknown_option(tmp_path):
    from runtime.backends import load_backend
    from runtime.backends.onnxruntime import OnnxRuntimeBackend
    from runtime.contract import ConfigError

    model = tmp_path / "m.onnx"
    model.write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="takes no thread"):
        load_backend(model, thread=2)  # misspelt: never dropped silently
    with pytest.raises(TypeError, match="hint"):
        OnnxRuntimeBackend(model, hint="latency")


def test_a_gate_failure_exits_1_and_a_bug_keeps_its_traceback(capsys):
    from runtime import contract

    @contract.command
    def gate(argv):
        raise contract.GateError("parity 97% < 99.9%")

    @contract.command
    def bug(argv):
        raise KeyError("a bug")

    assert gate([]) == 1 and capsys.readouterr().err == "error: parity 97% < 99.9%\n"
    with pytest.raises(KeyError):
        bug([])


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_a_signal_while_an_entry_point_loads_is_one_line_and_128_plus_n(signame, tmp_path):
    """`exit_while_loading` (runtime.run calls it before importing OpenCV and a backend): a signal in a slow
    import ends the process with the `interrupted by` line and 128+N, no traceback."""
    import signal
    import subprocess
    import sys

    slow = tmp_path / "slow_module.py"
    slow.write_text("import sys, time\nprint('importing', flush=True)\ntime.sleep(30)\n")
    code = ("import sys; sys.path.insert(0, {!r})\nfrom runtime.contract.signals import exit_while_loading\n"
            "exit_while_loading()\nimport slow_module\n").format(str(tmp_path))
    p = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).parent.parent, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "importing"
    p.send_signal(getattr(signal, signame))
    _, err = p.communicate(timeout=20)
    assert p.returncode == 128 + getattr(signal, signame)
    assert err == "interrupted by {} while starting\n".format(signame)


def test_runtime_run_guards_its_imports_before_opencv():
    source = (Path(__file__).parent.parent / "runtime" / "run.py").read_text()
    assert source.index("exit_while_loading()") < source.index("import cv2")
