"""benchmarks.gain on CamVid's two report splits, end to end on a tiny tree in CamVid's layout: val (the drive
0016E5, shared with training) and the held-out drive 0001TP, every run and the teacher scored on each as
`distill.evaluate` scores them, and scores cached in (and filled into) the ledger."""
from __future__ import annotations

import csv

import pytest

from benchmarks.gain.protocol import run_distill_gain
from distill import checkpoint

from .conftest import write_synthetic_student


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


CAMVID_SIZE = [64, 96]
VAL_LABEL = "val (drive 0016E5, shares its drive with 204 training frames)"
HELD_LABEL = "held-out drive 0001TP (no model trained on it)"


def _camvid_overrides(root):
    """The CamVid method configs on a tiny tree: the benchmark's tiny student, 3 steps, whole 64x96 frames."""
    return [f"data.root={root}", "data.crop_size=[64,96]", "data.scale_range=[1.0,1.0]",
            "model.arch=deeplabv3_resnet10_w8", "train.iters=3", "train.batch_size=2", "train.ckpt_every=3",
            "train.val_every=100", "train.log_every=1", "train.threads=1", "train.amp=false",
            "train.class_weights=none", "eval.input_size=[64,96]"]


@pytest.fixture(scope="module")
def camvid_gain(tmp_path_factory):
    """plain and BRD at seeds 0 and 1 on a CamVid tree with all three training drives (the runs train on
    train_no_tune, validate on val), under a random CamVid teacher; the report folder and its runs."""
    from distill.data import DATASETS

    from . import trees

    tmp = tmp_path_factory.mktemp("camvid_gain")
    root = trees.camvid(tmp / "cv", size=tuple(CAMVID_SIZE), train=(("0001TP", 2), ("0006R0", 1), ("0016E5", 2)),
                        val=(("0016E5", 2),))
    src = write_synthetic_student(tmp / "t" / "raw.pt", input_size=CAMVID_SIZE, seed=1,
                                  arch_kwargs={"width": 8, "head_channels": 32}, bn_passes=2)
    model, meta = checkpoint.load(src)
    teacher = tmp / "t" / "model.pt"
    checkpoint.save(teacher, model, {**meta, "dataset": "camvid", "classes": list(DATASETS["camvid"].classes)})
    kwargs = dict(methods=["plain", "brd"], seeds=[0, 1], out_dir=tmp / "report", runs_dir=tmp / "runs",
                  overrides=_camvid_overrides(root), teacher_ckpt=teacher, tune=False, prefix="camvid",
                  panel_images=0, log=lambda *a: None)
    result = run_distill_gain(**kwargs)
    return {"root": root, "teacher": teacher, "kwargs": kwargs, "result": result, "tmp": tmp}


def test_camvid_report_gives_val_and_the_held_out_drive_each_scored_as_distill_evaluate_scores_it(camvid_gain):
    import json

    from distill import evaluate

    out, runs_dir, root = camvid_gain["kwargs"]["out_dir"], camvid_gain["kwargs"]["runs_dir"], camvid_gain["root"]
    md = (out / "camvid.md").read_text()
    for label in (VAL_LABEL, HELD_LABEL):
        for heading in (f"## Results: {label}", f"## BRD against each method, seed by seed: {label}",
                        f"## IoU per class: {label} (mean over seeds, percent)",
                        f"## Boundary F1 of the thin and small classes: {label} (mean over seeds, percent)"):
            assert heading in md, heading
        assert f"On {label}: teacher " in md                                      # the teacher's lead on each
    assert md.index(f"## Results: {VAL_LABEL}") < md.index(f"## Results: {HELD_LABEL}")

    # every run and the teacher on both splits, each number what `distill.evaluate` prints for that model file
    rows = _read_csv(out / "camvid.csv")
    assert [(r["method"], r["seed"], r["split"]) for r in rows] == [
        (m, s, sp) for sp in ("val", "tune") for m, s in [("plain", "0"), ("brd", "0"), ("plain", "1"), ("brd", "1"),
                                                           ("teacher", "")]]
    for (method, seed), model in ((("brd", "1"), runs_dir / "brd_s1" / "model.pt"),
                                  (("teacher", ""), camvid_gain["teacher"])):
        for split in ("val", "tune"):
            want = evaluate.main(["--model", str(model), "--dataset", "camvid", "--root", str(root), "--split", split])
            row = next(r for r in rows if (r["method"], r["seed"], r["split"]) == (method, seed, split))
            for key in ("mIoU", "boundary_f1", "split_rate"):
                assert float(row[key]) == pytest.approx(want[key], nan_ok=True), (method, split, key)
            assert float(row["IoU_pole"]) == pytest.approx(want["IoU"][2], nan_ok=True)
    paired = _read_csv(out / "camvid_paired.csv")
    assert {(p["split"], p["method"]) for p in paired} == {("val", "plain"), ("tune", "plain")}
    for name in ("metrics", "connectivity", "paired", "metrics_tune", "connectivity_tune", "paired_tune"):
        assert (out / f"camvid_{name}.png").is_file(), name
    # the scores are cached in the ledger, per split, with what they were scored with
    ledger = {e["name"]: e for e in map(json.loads, (out / "camvid_ledger.jsonl").read_text().splitlines())}
    assert set(ledger["brd_s1"]["scores"]) == {"val", "tune"} and set(ledger["teacher"]["scores"]) == {"val", "tune"}
    assert ledger["brd_s1"]["scores"]["tune"]["mIoU"] == pytest.approx(
        float(next(r for r in rows if (r["method"], r["seed"], r["split"]) == ("brd", "1", "tune"))["mIoU"]))


def test_an_old_ledger_row_gets_its_held_out_score_from_model_pt_and_a_gone_run_stays_blank(camvid_gain, tmp_path,
                                                                                            monkeypatch):
    """Ledger rows recorded before the held-out drive was scored (no `scores`): the benchmark scores them from
    their model.pt and caches it, training nothing; a rerun scores nothing; a run whose folder is gone keeps its
    val numbers from the ledger (its runner validated on val) and a blank held-out column."""
    import json
    import shutil
    from pathlib import Path

    from benchmarks.gain import protocol

    out, runs_dir = tmp_path / "report", tmp_path / "runs"
    shutil.copytree(camvid_gain["kwargs"]["out_dir"], out)
    shutil.copytree(camvid_gain["kwargs"]["runs_dir"], runs_dir)
    kwargs = {**camvid_gain["kwargs"], "out_dir": out, "runs_dir": runs_dir}
    ledger_path = out / "camvid_ledger.jsonl"

    def forget_scores():
        entries = [json.loads(line) for line in ledger_path.read_text().splitlines()]
        ledger_path.write_text("".join(json.dumps({k: v for k, v in e.items() if k != "scores"}) + "\n"
                                       for e in entries if e["name"] != "teacher"))

    forget_scores()
    calls = []
    score = protocol.score_checkpoint
    monkeypatch.setattr(protocol, "score_checkpoint", lambda ckpt, cfg, split: calls.append((ckpt, split))
                        or score(ckpt, cfg, split))
    before = {p: p.stat().st_mtime_ns for p in runs_dir.glob("**/*.pt")}
    result = run_distill_gain(**kwargs)
    assert {p: p.stat().st_mtime_ns for p in runs_dir.glob("**/*.pt")} == before       # nothing trained
    assert len(calls) == 2 * 5                                                           # 4 runs + teacher, 2 splits
    first = camvid_gain["result"]
    assert [r["mIoU"] for r in result["by_split"]["tune"]] == pytest.approx([r["mIoU"] for r in first["by_split"]["tune"]])
    assert all(set(json.loads(line).get("scores", {})) == {"val", "tune"} for line in ledger_path.read_text().splitlines())

    calls.clear()
    run_distill_gain(**kwargs)
    assert calls == []                                                                   # cached: nothing rescored

    forget_scores()
    shutil.rmtree(runs_dir / "plain_s0")                                                 # a run folder gone
    calls.clear()
    result = run_distill_gain(**{**kwargs, "train": False})
    assert not (runs_dir / "plain_s0").exists() and ("plain_s0" not in {Path(c[0]).parent.name for c in calls})
    rows = _read_csv(out / "camvid.csv")
    gone = {r["split"]: r for r in rows if (r["method"], r["seed"]) == ("plain", "0")}
    assert float(gone["val"]["mIoU"]) == pytest.approx(next(r["mIoU"] for r in first["runs"] if r["run"].endswith("plain_s0")))
    assert gone["tune"]["mIoU"] == "" and [u["seed"] for u in result["unscored"]["tune"]] == [0]
    md = (out / "camvid.md").read_text()
    assert f"Not scored on {HELD_LABEL}" in md and "plain_s0." in md
