"""benchmarks.gain.inference_sizes on a tiny tree in CamVid's layout: every model, split, size and flip scored
exactly as `distill.evaluate` scores that setting, the first model's lead the difference of those scores, and
the report labelled with CamVid's splits (val shares its drive with training; 0001TP is held out)."""
from __future__ import annotations

import csv

import pytest

from benchmarks.gain.inference_sizes import main
from distill import checkpoint, evaluate

from .conftest import write_synthetic_student
from .faults import cli_exit, error_lines

SIZE = [64, 96]


@pytest.fixture(scope="module")
def camvid_models(tmp_path_factory):
    """A CamVid tree with val and the held-out drive, and two random CamVid models that predict differently."""
    from distill.data import DATASETS

    from . import trees

    tmp = tmp_path_factory.mktemp("sizes")
    root = trees.camvid(tmp / "cv", size=tuple(SIZE), train=(("0001TP", 2), ("0006R0", 1)), val=(("0016E5", 2),))
    models = {}
    for label, seed in (("teacher", 1), ("student", 2)):
        raw = write_synthetic_student(tmp / f"{label}_raw.pt", input_size=SIZE, seed=seed,
                                      arch_kwargs={"width": 8, "head_channels": 32}, bn_passes=2)
        model, meta = checkpoint.load(raw)
        models[label] = tmp / f"{label}.pt"
        checkpoint.save(models[label], model, {**meta, "dataset": "camvid",
                                               "classes": list(DATASETS["camvid"].classes)})
    return root, models, tmp


def test_each_setting_scores_what_distill_evaluate_gives_and_the_lead_is_their_difference(camvid_models):
    root, models, tmp = camvid_models
    out = tmp / "report"
    assert main(["--model", f"teacher={models['teacher']}", "--model", f"student={models['student']}",
                 "--dataset", "camvid", "--root", str(root), "--splits", "val", "tune", "--sizes", "48x64",
                 "--flip", "--name", "probe", "--out-dir", str(out)]) == 0
    with open(out / "probe.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    # 2 models x 2 splits x (own size, 48x64) x (flip off, on)
    assert len(rows) == 16 and {(r["size"], r["flip"]) for r in rows} == {
        ("own", "False"), ("own", "True"), ("48x64", "False"), ("48x64", "True")}
    got = {(r["model"], r["split"], r["size"], r["flip"]): r for r in rows}
    for label, split, size, flip in (("teacher", "tune", "48x64", True), ("student", "val", "own", False)):
        argv = ["--model", str(models[label]), "--dataset", "camvid", "--root", str(root), "--split", split]
        want = evaluate.main(argv + (["--size", size] if size != "own" else []) + (["--flip"] if flip else []))
        row = got[(label, split, size, str(flip))]
        assert float(row["mIoU"]) == pytest.approx(100 * want["mIoU"], abs=0.006)
        assert float(row["boundary_f1"]) == pytest.approx(100 * want["boundary_f1"], abs=0.006)
        assert int(row["images"]) == want["num_images"]
    # the resized and flipped settings are really different inferences, not the own size scored again
    assert len({got[("teacher", "tune", s, f)]["mIoU"] for s in ("own", "48x64") for f in ("False", "True")}) > 1
    text = (out / "probe.md").read_text()
    assert "## held-out drive 0001TP (no model trained on it)" in text
    assert "## val (drive 0016E5, shares its drive with 204 training frames)" in text
    lead = float(got[("teacher", "val", "48x64", "True")]["mIoU"]) - float(got[("student", "val", "48x64", "True")]["mIoU"])
    [shown] = [line for line in text.splitlines() if line.startswith("| val | 48x64 | True | student |")]
    assert float(shown.strip("| ").split("|")[-1]) == pytest.approx(lead, abs=0.011)


@pytest.mark.parametrize("fault", ["missing model", "bad label", "same label twice", "bad size"])
def test_bad_input_is_one_line_before_any_scoring(camvid_models, capsys, fault):
    root, models, tmp = camvid_models
    t = f"teacher={models['teacher']}"
    extra = {"missing model": ["--model", "student=no/such.pt"], "bad label": ["--model", str(models["student"])],
             "same label twice": ["--model", t], "bad size": ["--sizes", "48x"]}[fault]
    code, err = cli_exit(main, ["--model", t, "--dataset", "camvid", "--root", str(root), *extra], capsys)
    [line] = error_lines(err)
    assert code == 2 and "Traceback" not in err
    assert {"missing model": "no/such.pt", "bad label": "LABEL=FILE", "same label twice": "given twice",
            "bad size": "--sizes"}[fault] in line
