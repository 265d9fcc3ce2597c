"""Exports given bad input: a failed gate never leaves a model under its name, temp files of killed exports
are cleaned, an INT8 model is not quantised again, and a wrong -o or flag is named as the user typed it."""
from __future__ import annotations

import json
import os
import time

import pytest

from .conftest import write_synthetic_student
from .faults import ENV, cli_exit, error_lines, run


# ------------------------------------------------------------------------------------------ failed gates
@pytest.mark.parametrize("keep", [False, True])
def test_failed_parity_never_leaves_the_model_under_its_name(model, calib, tmp_path, keep):
    out = tmp_path / "q.int8.onnx"
    env = dict(ENV, TMPDIR=str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    r = run(["export.quantize", model, "-o", out, "--calib-dir", calib, "--no-gate", "--min-agreement", "1.0",
             *(["--keep-failed"] if keep else [])], env=env)
    assert r.returncode == 1, r.stderr
    kept = "kept as q.int8.FAILED.onnx with its records" if keep else \
        "deleted (--keep-failed keeps it as q.int8.FAILED.onnx)"
    assert error_lines(r.stderr) == [f"error: q.int8.onnx failed its parity check: not written under its name; {kept}"]
    # the record goes with the model: beside the FAILED one, or deleted with it (none under the final name)
    left = sorted(f.name for f in tmp_path.iterdir())
    assert left == sorted(["tmp"] + (["q.int8.FAILED.onnx", "q.int8.FAILED.onnx.parity.json"] if keep else []))
    if keep:
        report = json.loads((tmp_path / "q.int8.FAILED.onnx.parity.json").read_text())
        assert report["passed"] is False and report["model"] == "q.int8.onnx" and report["file"] == "q.int8.FAILED.onnx"
    assert not list((tmp_path / "tmp").glob("brd-*"))  # the work folder went too


def test_stale_temp_files_of_killed_exports_are_cleaned_on_the_next_start(model, calib, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    dead = 2 ** 22 + 12345  # above the default pid_max: no such process
    stale = [tmp_path / f".q.int8.pid{dead}.candidate.onnx", tmp_path / f".q.int8.pid{dead}.abc.tmp.onnx",
             tmp / f"brd-export-pid{dead}-xyz", tmp / "brd-quant-old"]
    live = tmp_path / f".q.int8.pid{os.getpid()}.abc.tmp.onnx"  # a running export's file is left alone
    recent = tmp / "brd-quant-recent"  # no pid (an older version's name), but maybe still in use: kept
    for f in stale[:2] + [live]:
        f.write_bytes(b"x" * 1000)
    for d in stale[2:] + [recent]:
        d.mkdir()
        (d / "pre.onnx").write_bytes(b"x")
    os.utime(stale[3], (time.time() - 2 * 86400,) * 2)
    r = run(["export.quantize", model, "-o", tmp_path / "q.int8.onnx", "--calib-dir", calib, "--no-gate"],
            env=dict(ENV, TMPDIR=str(tmp)))
    assert r.returncode == 0, r.stderr
    assert not any(f.exists() for f in stale) and live.exists() and list(tmp.glob("brd-*")) == [recent]
    assert (tmp_path / "q.int8.onnx").is_file() and json.loads(
        (tmp_path / "q.int8.onnx.parity.json").read_text())["file"] == "q.int8.onnx"


# ------------------------------------------------------------------------------------------ the trial's last cases
def test_quantizing_an_int8_model_again_is_one_line(model, calib, tmp_path, capsys):
    """An INT8 model given to export.quantize made ONNX Runtime fail on the doubled Q/DQ nodes (a traceback):
    refused before any work, by its metadata or, where that says fp32, by the quantisation operators in its graph."""
    import onnx

    from export.metadata import onnx_meta, set_onnx_meta
    from export.quantize import main

    int8 = tmp_path / "q.int8.onnx"
    code, err = cli_exit(main, [str(model), "-o", str(int8), "--calib-dir", str(calib), "--no-gate"], capsys)
    assert code == 0, err
    relabelled = tmp_path / "relabelled.onnx"  # a Q/DQ graph whose metadata claims fp32
    m = onnx.load(str(int8))
    set_onnx_meta(m, {**onnx_meta(int8), "export": {**onnx_meta(int8)["export"], "precision": "fp32"}})
    onnx.save(m, str(relabelled))
    before = sorted(f.name for f in tmp_path.iterdir())
    for src, what in ((int8, "its metadata says int8"), (relabelled, "its graph holds DequantizeLinear, QuantizeLinear")):
        code, err = cli_exit(main, [str(src), "-o", str(tmp_path / "again.int8.onnx"), "--calib-dir", str(calib),
                                    "--no-gate"], capsys)
        assert code == 2 and error_lines(err) == [
            f"error: {src}: already a quantised model ({what}); export.quantize takes the FP32 model: the student "
            "checkpoint (.pt) or its FP32 ONNX (python -m export.onnx student.pt)"]
    assert sorted(f.name for f in tmp_path.iterdir()) == before  # nothing written
    # export.openvino made an "fp32" IR of it, which failed parity (exit 1, naming the IR): now refused the same way
    from export.openvino import main as to_openvino

    code, err = cli_exit(to_openvino, [str(int8), "-o", str(tmp_path / "new" / "q.xml")], capsys)
    assert code == 2 and error_lines(err) == [
        f"error: {int8}: already a quantised model (its metadata says int8); export.openvino takes the FP32 model: "
        "the student checkpoint (.pt) or its FP32 ONNX (python -m export.onnx student.pt)"]
    assert sorted(f.name for f in tmp_path.iterdir()) == before  # no output folder made either


@pytest.mark.parametrize("module, given, expected", [
    ("export.openvino", "s.bin", "the IR's .xml path (its weights go beside it as .bin), e.g. {d}/s.xml"),
    ("export.openvino", "s.XML", "the IR's .xml path (its weights go beside it as .bin), e.g. {d}/s.xml"),
    ("export.openvino", "s", "the IR's .xml path (its weights go beside it as .bin), e.g. {d}/s.xml"),
    ("export.onnx", "s.xml", "an ONNX model path ending in .onnx, e.g. {d}/s.onnx"),
    ("export.quantize", "s.int8.bin", "an ONNX model path ending in .onnx, e.g. {d}/s.int8.onnx"),
    ("export.trt", "s.onnx", "an engine path ending in .engine, e.g. {d}/s.engine"),
])
def test_an_output_of_the_wrong_kind_is_named_as_the_user_gave_it(model, calib, tmp_path, capsys, module, given,
                                                                   expected):
    """`export.openvino -o s.bin` named the hidden candidate it was staged under (.s.pid123.candidate.bin):
    the one line names the user's -o and what was expected, before any work (no output folder is made)."""
    import importlib

    main = importlib.import_module(module).main
    d = tmp_path / "out"
    source = write_synthetic_student(tmp_path / "s.pt", input_size=(32, 64)) if module == "export.onnx" else model
    code, err = cli_exit(main, [str(source), "-o", str(d / given), "--calib-dir", str(calib), "--no-gate"]
                         if module == "export.quantize" else [str(source), "-o", str(d / given)], capsys)
    assert code == 2 and error_lines(err) == [f"error: {d / given}: -o/--output expected {expected.format(d=d)}"]
    assert not d.exists()


# ------------------------------------------------------------------------------------------ found by the fault trial
@pytest.mark.parametrize("module, args, message", [
    ("export.openvino", ["--opset", "99"], "--opset 99 is not supported: use 13..20"),
    ("export.trt", ["--opset", "5"], "--opset 5 is not supported: use 13..20"),
    ("export.trt", ["--min-shape", "1x3"], "--min-shape: bad shape '1x3': expected 4 positive dims NxCxHxW"),
    ("export.trt", ["--opt-shape", "abc"], "--opt-shape: bad shape 'abc': expected NxCxHxW, e.g. 1x3x512x1024"),
])
def test_export_flags_are_checked_and_named(model, tmp_path, capsys, module, args, message):
    """An opset out of range was taken by export.openvino (unused for an ONNX source, unchecked for a checkpoint);
    export.trt's shape errors did not say which flag."""
    import importlib

    code, err = cli_exit(importlib.import_module(module).main, [str(model), "-o", str(tmp_path / "o" / "m.x")] + args,
                         capsys)
    assert code == 2 and len(error_lines(err)) == 1 and message in error_lines(err)[0], err
    assert not (tmp_path / "o").exists()
