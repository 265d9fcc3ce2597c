"""The gain benchmark's ledger: the record of every finished run, keyed by a fingerprint of what made it.
Two writers (two benchmarks on two cores) keep each other's rows, and a run named by another path to the same
teacher bytes is the same run."""
from __future__ import annotations

import pytest

from .conftest import write_synthetic_student


def _overrides(tmp_path):
    return [f"data.root={tmp_path / 'data'}"]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A real (random-weight) teacher checkpoint: the fingerprint counts its bytes."""
    return write_synthetic_student(tmp_path_factory.mktemp("teacher") / "model.pt", input_size=[64, 128], seed=1,
                                   arch_kwargs={"width": 8, "head_channels": 32})


def test_two_writers_of_one_ledger_keep_each_others_entries(tmp_path):
    """Two benchmarks on the two cores share a ledger: each one's record rewrites the file over what it holds
    then, not over what that writer read when it started."""
    from benchmarks.gain.ledger import Ledger
    from benchmarks.gain.runs import make_run

    path = tmp_path / "synthetic_trials_ledger.jsonl"
    first, second = Ledger(path), Ledger(path)  # both opened before either records
    runs = [make_run("plain", 100, tmp_path / name, "synthetic", "configs", _overrides(tmp_path))
            for name in ("a", "b")]
    first.record(runs[0], {"mIoU": 0.5}, 10.0)
    second.record(runs[1], {"mIoU": 0.6}, 20.0)
    again = Ledger(path)
    assert again.get(runs[0])["mIoU"] == 0.5 and again.get(runs[1])["mIoU"] == 0.6


LEDGER_WRITER = """
import sys, time
from pathlib import Path
from benchmarks.gain.ledger import Ledger
from benchmarks.gain.runs import make_run
path, tag, tmp = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
runs = [make_run("plain", 100, tmp / f"{tag}{i}", "synthetic", "configs", [f"data.root={tmp / 'data'}"])
        for i in range(40)]
(tmp / f"{tag}.ready").touch()
while not (tmp / "go").exists():  # both writers start together
    time.sleep(0.001)
for i, run in enumerate(runs):
    Ledger(path).record(run, {"mIoU": i / 100}, float(i))
"""


def test_two_processes_writing_40_entries_each_leave_80(tmp_path):
    """Two benchmarks on the two cores record into one ledger at the same time: every entry of both is there
    (each record re-reads and rewrites the file under the folder's lock; without it, 42 of 80 were left)."""
    import json
    import os
    import subprocess
    import sys
    import time

    from .faults import ROOT

    path = tmp_path / "synthetic_ledger.jsonl"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    writers = [subprocess.Popen([sys.executable, "-c", LEDGER_WRITER, str(path), tag, str(tmp_path)], cwd=ROOT,
                                env=env, stderr=subprocess.PIPE, text=True) for tag in ("a", "b")]
    t0 = time.time()
    while not all((tmp_path / f"{tag}.ready").exists() for tag in ("a", "b")):
        assert time.time() - t0 < 120 and all(w.poll() is None for w in writers), [w.stderr.read() for w in writers]
        time.sleep(0.01)
    (tmp_path / "go").touch()
    for w in writers:
        assert w.wait(timeout=300) == 0, w.stderr.read()[-3000:]
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(entries) == 80
    assert {e["name"]: e["train_s"] for e in entries} == {f"{tag}{i}": float(i) for tag in "ab" for i in range(40)}
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["a.ready", "b.ready", "go", path.name]


def test_a_run_named_from_another_folder_or_by_another_path_is_the_same_run(tmp_path, teacher, monkeypatch):
    """The fingerprint counts the teacher's bytes, not the path the config names it with: recorded with the
    teacher named relative to one folder, the row is taken from another folder (teacher named by its absolute
    path) and with a copy of the same file elsewhere; a teacher with other bytes is another run."""
    import shutil

    from benchmarks.gain.ledger import Ledger
    from benchmarks.gain.runs import make_run

    path, overrides = tmp_path / "report" / "synthetic_ledger.jsonl", _overrides(tmp_path)

    def kd_run(teacher_path):
        return make_run("kd", 100, tmp_path / "runs" / "kd_s100", "synthetic", "configs", overrides,
                        teacher=teacher_path)

    monkeypatch.chdir(teacher.parent)
    Ledger(path).record(kd_run(teacher.name), {"mIoU": 0.5}, 1.0)  # `--teacher model.pt` in the teacher's folder
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert Ledger(path).get(kd_run(teacher))["mIoU"] == 0.5
    copy = elsewhere / "teacher_copy.pt"
    shutil.copyfile(teacher, copy)
    assert Ledger(path).get(kd_run(copy.name))["mIoU"] == 0.5
    copy.write_bytes(teacher.read_bytes() + b"\0")
    assert Ledger(path).get(kd_run(copy.name)) is None
