"""The fault trial's own parts (benchmarks/faults/), cheaply: the cases it generates and the verdict on hand-made
outcomes; the whole trial (about 20 minutes) is not run here (`python -m benchmarks.faults`)."""
from __future__ import annotations

import pytest

from benchmarks.faults.case import CLEAN, DATA_LOST, NOT_CLEAN, Case, Outcome, classify, kept
from benchmarks.faults.cases import all_cases
from benchmarks.faults.runner import broken, changes, snapshot, triggered


def test_the_trial_generates_at_least_250_distinct_cases_over_every_entry_point():
    from .test_cli_contract import ENTRY_POINTS

    cases = all_cases()
    assert len(cases) >= 250
    assert len({c.key for c in cases}) == len(cases)
    assert len({c.command + repr(c.setup) + repr(c.trigger) + repr(c.action) for c in cases}) == len(cases)
    modules = {c.module for c in cases}
    assert set(ENTRY_POINTS) <= modules, set(ENTRY_POINTS) - modules
    kinds = {c.kind for c in cases}
    for kind in ("missing file", "empty file", "junk bytes", "directory for a file", "wrong suffix", "truncated file",
                 "wrong kind of model", "duplicate key", "binary config", "unknown flag", "missing argument",
                 "bad size", "read-only output", "full disk", "output inside a file", "signal", "source",
                 "non-image", "unreachable source", "missing library"):
        assert kind in kinds, kind
    signals = [c for c in cases if c.kind == "signal"]
    assert {c.signal for c in signals} == {"SIGINT", "SIGTERM"}
    assert all(c.expect == ((130,) if c.signal == "SIGINT" else (143,)) and c.trigger for c in signals)


BAD = Case("export.onnx", "junk bytes", "checkpoint: junk", ("{c}/in/junk.pt",), names="junk.pt")


@pytest.mark.parametrize("outcome, verdict, reason", [
    (Outcome(2, "error: /x/in/junk.pt: not a checkpoint\n"), CLEAN, None),
    (Outcome(2, "warning: slow\nerror: /x/in/junk.pt: not a checkpoint\n"), CLEAN, None),
    (Outcome(1, "Traceback (most recent call last):\n  ...\nValueError: bad\n"), NOT_CLEAN, "exit 1, expected 2"),
    (Outcome(2, "Traceback (most recent call last):\nerror: junk.pt\n"), NOT_CLEAN, "traceback"),
    (Outcome(2, "error: junk.pt: bad\nerror: again\n"), NOT_CLEAN, "`error:` on 2 lines"),
    (Outcome(2, "Error: junk.pt\n"), NOT_CLEAN, "no `error:` line"),
    (Outcome(2, "error: not a checkpoint\n"), NOT_CLEAN, "does not name 'junk.pt'"),
    (Outcome(2, "error: junk.pt: bad\n", new=["out/", "out/.s.pid7.tmp.onnx"]), NOT_CLEAN, "left behind"),
    (Outcome(None, ""), NOT_CLEAN, "did not end"),
    (Outcome(-15, ""), NOT_CLEAN, "killed by signal 15"),
    (Outcome(2, "error: junk.pt: bad\n", changed=["in/junk.pt"]), DATA_LOST, "changed or removed"),
    (Outcome(2, "error: junk.pt: bad\n", new=["out/s.onnx"], invalid=["out/s.onnx"]), DATA_LOST, "does not load"),
])
def test_the_verdict_on_hand_made_outcomes(outcome, verdict, reason):
    got, reasons = classify(BAD, outcome)
    assert got == verdict, reasons
    assert (reason is None and not reasons) or any(reason in r for r in reasons), reasons


def test_a_signal_case_is_clean_only_with_its_code_its_line_and_what_it_may_keep():
    case = Case("distill.run", "signal", "SIGTERM mid-training", ("--cfg", "x.yaml"), expect=(143,),
                trigger=("after", 1), action=("signal", "SIGTERM"), keep=("run/*",))
    ok = Outcome(143, "interrupted by SIGTERM: run/last.pt saved at step 3\n", new=["run/", "run/last.pt"])
    assert classify(case, ok) == (CLEAN, [])
    assert kept(case, "run/") and kept(case, "run/last.pt") and not kept(case, "other.pt")
    assert classify(case, Outcome(143, "", new=["run/"]))[1] == ["no 'interrupted by' line"]
    assert classify(case, Outcome(130, "interrupted by SIGINT\n"))[0] == NOT_CLEAN
    assert classify(case, Outcome(0, "", fired=False))[1][0].startswith("the trigger never came")


def test_snapshots_see_new_changed_removed_and_broken_files(tmp_path):
    (tmp_path / "keep.txt").write_text("a")
    (tmp_path / "gone.txt").write_text("b")
    (tmp_path / "edit.txt").write_text("c")
    before = snapshot(tmp_path)
    (tmp_path / "gone.txt").unlink()
    (tmp_path / "edit.txt").write_text("C")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "out.json").write_text("{not json")
    (tmp_path / "sub" / ".out.pid3.tmp.json").write_text("{")
    new, changed = changes(before, snapshot(tmp_path))
    assert new == ["sub/", "sub/.out.pid3.tmp.json", "sub/out.json"] and changed == ["edit.txt", "gone.txt"]
    assert broken(tmp_path, new) == ["sub/out.json"]  # a temporary name is not judged as a result
    assert triggered(("file", "sub/*.json"), tmp_path, 0, b"") and triggered(("text", "xyz"), tmp_path, 0, b"..xyz")
    assert triggered(("lines", "edit.txt", 1), tmp_path, 0, b"") and not triggered(("lines", "edit.txt", 2),
                                                                                  tmp_path, 0, b"")


def test_a_report_row_names_the_folders_as_the_command_shows_them():
    from benchmarks.faults.trial import row

    r = row(7, BAD, Outcome(2, "error: /tmp/w/cases/007/in/junk.pt: not a checkpoint (read /tmp/w/fx/s.onnx)\n"),
            {"/tmp/w/cases/007": "$CASE", "/tmp/w/fx": "$FX"})
    assert r["verdict"] == CLEAN and r["command"] == "python -m export.onnx $CASE/in/junk.pt"
    assert r["stderr_lines"] == "error: $CASE/in/junk.pt: not a checkpoint (read $FX/s.onnx)"
