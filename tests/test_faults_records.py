"""Records (<model>.parity.json, <model>.gate.json) never contradict the files beside them: a candidate's
records are written under its hidden name and move with it, so SIGTERM or kill -9 at any phase of an INT8
export (calibration, parity, gate), a failed gate, or a record left without its model never leave a record
that describes another file than the one it sits next to."""
from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time

import pytest

from .conftest import write_synthetic_student
from .faults import ENV, ROOT, error_lines, run

RECORDS = (".parity.json", ".gate.json")


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def records_agree(folder):
    """Every record under `folder` (hidden ones too) names the file beside it, which exists with the hash
    the record gives. Returns {record name: record}."""
    found = {}
    for rec in sorted(folder.rglob("*.json")):
        suffix = next((s for s in RECORDS if rec.name.endswith(s)), None)
        if suffix is None:
            continue
        report = json.loads(rec.read_text())
        model = rec.with_name(rec.name[:-len(suffix)])
        assert model.is_file(), f"{rec.name} describes {model.name}, which does not exist"
        assert report["file"] == model.name and report["sha256"] == sha256(model), rec.name
        found[rec.name] = report
    return found


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    """An 11-class student as FP32 ONNX and a synthetic dataset in its on-disk layout (train for calibration,
    a val split big enough that the gate takes a moment)."""
    from distill.data import build_dataset
    from export.onnx import torch_to_onnx

    d = tmp_path_factory.mktemp("syn")
    ckpt = write_synthetic_student(d / "s.pt", input_size=(32, 64), bn_passes=1)
    onnx_path = torch_to_onnx(ckpt, d / "s.onnx", simplify=False)
    build_dataset("synthetic", d / "data", "train", num_images=8, size=(32, 64), seed=0)
    build_dataset("synthetic", d / "data", "val", num_images=64, size=(32, 64), seed=1)
    return onnx_path, d / "data"


def quantize_args(syn, out, *extra):
    onnx_path, data = syn
    return ["export.quantize", onnx_path, "-o", out, "--data-root", data, "--num-calib", "8", "--parity-images",
            "64", "--min-agreement", "0", *extra]


@pytest.fixture(scope="module")
def published_once(syn, tmp_path_factory):
    """A model that passed parity and its gate, with both records: one real export for the module."""
    tmp = tmp_path_factory.mktemp("published")
    out = tmp / "out" / "q.int8.onnx"
    r = run(quantize_args(syn, out, "--max-drop", "100", "--max-boundary-drop", "100"), env=dict(ENV, TMPDIR=str(tmp)))
    assert r.returncode == 0, r.stderr[-2000:]
    files = {p.name: p.read_bytes() for p in out.parent.iterdir()}
    assert sorted(files) == ["q.int8.onnx", "q.int8.onnx.gate.json", "q.int8.onnx.parity.json"]
    records = records_agree(out.parent)
    assert records["q.int8.onnx.gate.json"]["passed"] and records["q.int8.onnx.parity.json"]["passed"]
    return files


@pytest.fixture
def published(published_once, tmp_path):
    """That model and its records, copied byte for byte into this test's own folder (the records name the
    file beside them, not a path, so they hold there too)."""
    out = tmp_path / "out" / "q.int8.onnx"
    out.parent.mkdir()
    for name, data in published_once.items():
        (out.parent / name).write_bytes(data)
    records_agree(out.parent)
    return out, dict(published_once)


def _phase_ready(proc, folder, phase, seen):
    if phase == "calibration":  # the quantiser's temporary output exists while it calibrates
        return any(folder.glob(".*.pid*.tmp.onnx"))
    if phase == "parity":  # printed once the candidate is written, right before its parity check
        seen.append(proc.stdout.readline())
        return seen[-1].startswith("quantised ")
    return any(folder.glob(".q.int8.pid*.candidate.onnx.parity.json"))  # gate: parity passed, its record written


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
@pytest.mark.parametrize("phase", ["calibration", "parity", "gate"])
def test_a_signal_at_any_phase_of_an_int8_export_leaves_records_that_agree(syn, published, tmp_path, phase, sig):
    out, before = published
    # the candidate would fail its gate: were its records published, they would contradict the model kept
    p = subprocess.Popen([sys.executable, "-m", *map(str, quantize_args(syn, out, "--max-drop", "-100"))], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=dict(ENV, TMPDIR=str(tmp_path)))
    seen, t0 = [], time.time()
    while not _phase_ready(p, out.parent, phase, seen):
        assert p.poll() is None, f"ended before the {phase} phase: {p.stderr.read()[-2000:]}"
        assert time.time() - t0 < 120, f"never reached the {phase} phase"
        time.sleep(0.01)
    p.send_signal(sig)
    stdout, err = p.communicate(timeout=60)
    assert p.returncode == (143 if sig == signal.SIGTERM else -9), (phase, stdout, err)
    if sig == signal.SIGTERM:
        assert error_lines(err)[-1] == "interrupted by SIGTERM: nothing written under the output name"
        assert not [f for f in out.parent.iterdir() if f.name.startswith(".")]  # the candidate went
    if phase == "gate":
        assert "drop" not in stdout or "ok" not in stdout.splitlines()[-1]  # the gate had not finished
    records_agree(out.parent)  # what kill -9 left (a hidden candidate and its record) agrees too
    assert {f.name: f.read_bytes() for f in out.parent.iterdir() if not f.name.startswith(".")} == before

    from export.publish import check_writable

    check_writable(out)  # the next start removes what the killed run left, and only that
    assert {f.name: f.read_bytes() for f in out.parent.iterdir()} == before


@pytest.mark.parametrize("keep", [False, True])
def test_a_failed_gate_never_touches_the_model_in_use_or_its_records(syn, published, tmp_path, keep):
    out, before = published
    r = run(quantize_args(syn, out, "--max-drop", "-100", *(["--keep-failed"] if keep else [])),
            env=dict(ENV, TMPDIR=str(tmp_path)))
    assert r.returncode == 1, r.stderr[-2000:]
    kept = "kept as q.int8.FAILED.onnx with its records" if keep else \
        "deleted (--keep-failed keeps it as q.int8.FAILED.onnx)"
    assert error_lines(r.stderr)[-1] == ("error: q.int8.onnx failed its accuracy gate: not written under its name "
                                         f"(the older q.int8.onnx there is left untouched); {kept}")
    now = {f.name: f.read_bytes() for f in out.parent.iterdir()}
    assert {k: v for k, v in now.items() if "FAILED" not in k} == before  # the model in use keeps its records
    records = records_agree(out.parent)
    if keep:
        failed = records["q.int8.FAILED.onnx.gate.json"]
        assert not failed["passed"] and failed["int8_model"] == "q.int8.onnx" and failed["drop"] > -100
        assert sorted(k for k in now if "FAILED" in k) == [
            "q.int8.FAILED.onnx", "q.int8.FAILED.onnx.gate.json", "q.int8.FAILED.onnx.parity.json"]
    else:
        assert sorted(now) == sorted(before)


def test_a_record_without_its_model_is_removed_at_the_next_start(tmp_path, capsys):
    from export.publish import check_writable

    (tmp_path / "gone.onnx.parity.json").write_text('{"passed": true, "file": "gone.onnx"}')
    (tmp_path / "gone.onnx.gate.json").write_text('{"passed": false, "file": null}')
    (tmp_path / "here.onnx").write_bytes(b"x")
    (tmp_path / "here.onnx.parity.json").write_text('{"passed": true, "file": "here.onnx"}')
    check_writable(tmp_path / "new.onnx")
    assert sorted(f.name for f in tmp_path.iterdir()) == ["here.onnx", "here.onnx.parity.json"]


def test_json_outputs_hold_no_nan_and_say_why(tmp_path):
    from runtime.contract import write_json_file

    path = write_json_file(tmp_path / "g.json", {"drop": float("nan"), "iou": [0.5, float("nan")],
                                                 "x": float("inf"), "ok": 1.0})
    data = json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in strict JSON"))
    assert data["drop"] is None and data["drop_null"].startswith("NaN: ") and data["iou"] == [0.5, None]
    assert data["iou_null"].startswith("entries [1] are null") and data["x"] is None and data["ok"] == 1.0
