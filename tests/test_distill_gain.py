"""benchmarks.gain (the distillation gain) end to end on tiny synthetic data: real (3-step) runs through the
runner, one evaluation for students and teacher, the report files, reuse of finished runs, and the
missing-teacher error."""
from __future__ import annotations

import csv

import cv2
import pytest
import torch

from benchmarks.gain.protocol import BenchmarkError, main, run_distill_gain
from distill import checkpoint

from .conftest import write_synthetic_student

SIZE = [64, 128]


def _tiny_overrides(tmp_path):
    return [f"data.root={tmp_path / 'data'}", "data.crop_size=[64,128]",
            "data.kwargs={num_images: 4, size: [64, 128], seed: 0}",
            "data.val_kwargs={num_images: 3, size: [64, 128], seed: 0}",
            "train.iters=3", "train.batch_size=2", "train.ckpt_every=3", "train.val_every=100",
            "train.log_every=1", "train.threads=1", "eval.input_size=[64,128]"]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A real (random-weight) teacher checkpoint with the synthetic dataset's 11 classes."""
    return write_synthetic_student(tmp_path_factory.mktemp("teacher") / "model.pt", input_size=SIZE, seed=1,
                                   arch_kwargs={"width": 8, "head_channels": 32})


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_protocol_tunes_on_the_tune_split_then_reports_paired_differences(tmp_path, teacher):
    out, runs_dir = tmp_path / "report", tmp_path / "runs"
    kwargs = dict(methods=["plain", "kd", "brd"], seeds=[0, 1], out_dir=out, runs_dir=runs_dir,
                  overrides=_tiny_overrides(tmp_path), teacher_ckpt=teacher, panel_images=2, log=lambda *a: None)
    result = run_distill_gain(**kwargs)

    # tuning: two candidates per distilled method at seed 100, scored on the tune split, the best kept
    tuning = _read_csv(out / "synthetic_tuning.csv")
    assert [(t["method"], t["candidate"]) for t in tuning] == [("kd", "0"), ("kd", "1"), ("brd", "0"), ("brd", "1")]
    for m in ("kd", "brd"):
        mine = [t for t in tuning if t["method"] == m]
        best = max(mine, key=lambda t: float(t["tune_mIoU"]))
        assert [t["chosen"] for t in mine].count("True") == 1 and best["chosen"] == "True"
        _, meta = checkpoint.load(runs_dir / "tune" / f"{m}_c0" / "model.pt")
        assert meta["config"]["train"]["seed"] == 100 and meta["config"]["data"]["val_split"] == "tune"
        assert float(mine[0]["tune_mIoU"]) == pytest.approx(meta["metrics"]["mIoU"])
        # the final runs carry the chosen setting and were validated on val
        _, final = checkpoint.load(runs_dir / f"{m}_s1" / "model.pt")
        assert final["config"]["data"]["val_split"] == "val" and final["config"]["train"]["seed"] == 1
        chosen = int(best["candidate"])
        if m == "kd":
            assert final["config"]["distill"]["kd"]["temperature"] == [1.0, 4.0][chosen]
        else:
            assert final["config"]["distill"]["boundary"]["weight"] == [10.0, 30.0][chosen]
    assert (tmp_path / "data" / "synthetic_tune.json").is_file()
    # BRD contains the KD term: it is tuned after KD, with KD's chosen temperature, for every candidate
    kd_t = [1.0, 4.0][int(next(t for t in tuning if t["method"] == "kd" and t["chosen"] == "True")["candidate"])]
    for k in (0, 1):
        _, meta = checkpoint.load(runs_dir / "tune" / f"brd_c{k}" / "model.pt")
        assert meta["config"]["distill"]["kd"]["temperature"] == kd_t
    _, meta = checkpoint.load(runs_dir / "brd_s0" / "model.pt")
    assert meta["config"]["distill"]["kd"]["temperature"] == kd_t

    # one CSV row per method x seed plus the teacher, with the columns
    rows = _read_csv(out / "synthetic.csv")
    assert [(r["method"], r["seed"]) for r in rows] == [("plain", "0"), ("kd", "0"), ("brd", "0"), ("plain", "1"),
                                                        ("kd", "1"), ("brd", "1"), ("teacher", "")]
    for key in ("mIoU", "boundary_f1", "boundary_iou", "split_rate", "spurious_rate", "miss_rate"):
        assert all(0.0 <= float(r[key]) <= 1.0 for r in rows if r[key] not in ("", "nan")), key
    _, meta = checkpoint.load(runs_dir / "brd_s1" / "model.pt")
    assert float(rows[5]["mIoU"]) == pytest.approx(meta["metrics"]["mIoU"])

    # paired differences: BRD minus each method on the same seed, mean = mean of the per-seed differences
    paired = _read_csv(out / "synthetic_paired.csv")
    assert {(p["method"], p["metric"]) for p in paired} == {(m, k) for m in ("plain", "kd") for k in
                                                            ("mIoU", "boundary_f1", "boundary_iou", "split_rate", "spurious_rate")}
    d = next(p for p in paired if p["method"] == "plain" and p["metric"] == "mIoU")
    per_seed = [float(rows[2 + 3 * s]["mIoU"]) - float(rows[3 * s]["mIoU"]) for s in (0, 1)]
    assert float(d["mean"]) == pytest.approx(sum(per_seed) / 2) and d["n"] == "2"
    assert float(d["lo"]) <= float(d["mean"]) <= float(d["hi"])

    md = (out / "synthetic.md").read_text()
    for text in ("| teacher |", "| BRD |", "BRD against each method", "Target (BRD above KD and plain",
                 "## Tuning", "python -m benchmarks.gain", "the teacher leads by"):
        assert text in md, text
    for name in ("metrics", "connectivity", "paired", "panel"):
        img = cv2.imread(str(out / f"synthetic_{name}.png"))
        assert img is not None and img.shape[1] >= 400, name

    # second call: finished runs are reused, not retrained, and give the same numbers
    before = {p: p.stat().st_mtime_ns for p in runs_dir.glob("**/model.pt")}
    again = run_distill_gain(**kwargs)
    assert {p: p.stat().st_mtime_ns for p in runs_dir.glob("**/model.pt")} == before
    assert [r["mIoU"] for r in again["runs"]] == [r["mIoU"] for r in result["runs"]]

    # a run folder trained with another config is not silently reused: stop and name the key
    with pytest.raises(BenchmarkError, match="train.lr"):
        run_distill_gain(**{**kwargs, "overrides": [*_tiny_overrides(tmp_path), "train.lr=0.05"]})

    # train=False reads what is there: a method and a seed never run are left out (and said so), not trained
    partial = run_distill_gain(**{**kwargs, "methods": ["plain", "brd"], "seeds": [0, 1, 2], "train": False})
    assert [(r["method"], r["seed"]) for r in partial["runs"]] == [("plain", 0), ("brd", 0), ("plain", 1), ("brd", 1)]
    assert not (runs_dir / "plain_s2").exists()
    assert "Not run (left out of the means): plain_s2, brd_s2." in (out / "synthetic.md").read_text()


def test_parallel_jobs_train_the_same_weights_as_one_at_a_time(tmp_path, teacher):
    # --jobs runs each training in its own process; the weights must not depend on it
    common = dict(methods=["brd"], seeds=[0], overrides=_tiny_overrides(tmp_path), teacher_ckpt=teacher,
                  tune=False, panel_images=1, log=lambda *a: None)
    run_distill_gain(out_dir=tmp_path / "a", runs_dir=tmp_path / "ra", jobs=1, threads=1, **common)
    run_distill_gain(out_dir=tmp_path / "b", runs_dir=tmp_path / "rb", jobs=2, threads=1, **common)
    a, _ = checkpoint.load(tmp_path / "ra" / "brd_s0" / "model.pt")
    b, _ = checkpoint.load(tmp_path / "rb" / "brd_s0" / "model.pt")
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    assert (tmp_path / "rb" / "brd_s0" / "train.out").stat().st_size > 0  # its output went to the run's log


def test_missing_teacher_is_a_clear_error(tmp_path, capsys):
    missing = tmp_path / "nowhere" / "model.pt"
    with pytest.raises(BenchmarkError, match="--train-teacher"):
        run_distill_gain(["plain", "brd"], [0], tmp_path / "out", overrides=_tiny_overrides(tmp_path),
                         teacher_ckpt=missing, log=lambda *a: None)
    assert not (tmp_path / "out" / "runs").exists()  # nothing trained before the check
    assert main(["--methods", "plain,brd", "--seeds", "0", "--teacher", str(missing), "--out-dir", str(tmp_path / "o")]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert main(["--methods", "plain", "nonsense", "--out-dir", str(tmp_path / "o")]) == 2
    assert "unknown method 'nonsense'" in capsys.readouterr().err


def test_config_changes_name_what_differs_and_accept_keys_added_since():
    from benchmarks.gain.runs import config_changes
    from distill.config import Config

    trained = Config().to_dict()
    del trained["distill"]["boundary"]["fuse"]          # a run made before this key existed
    assert config_changes(trained, Config().to_dict()) == []
    wanted = Config().to_dict()
    wanted["train"]["lr"] = 0.5
    wanted["train"]["threads"] = 7                        # not learned: ignored
    wanted["distill"]["boundary"]["fuse"] = True
    assert config_changes(trained, wanted) == ["distill.boundary.fuse", "train.lr"]


def test_t_quantile_for_the_actual_degrees_of_freedom():
    """Two-sided 95% quantiles of Student's t from the standard tables (Abramowitz & Stegun 26.7): the interval
    of n paired seeds uses df = n - 1 exactly, also between table rows and above 30 (where 1.96 would be too narrow)."""
    from benchmarks.gain.stats import paired_difference, t975

    table = {1: 12.706, 2: 4.303, 4: 2.776, 11: 2.201, 13: 2.160, 40: 2.021, 60: 2.000, 120: 1.980}
    for df, t in table.items():
        assert t975(df) == pytest.approx(t, abs=6e-4), df
    d = paired_difference({0: 1.0, 1: 2.0, 2: 3.0}, {0: 0.0, 1: 0.0, 2: 0.0})  # diffs 1, 2, 3: sd 1, df 2
    assert (d["lo"], d["hi"]) == (pytest.approx(2 - 4.3027 / 3 ** 0.5, abs=1e-4), pytest.approx(2 + 4.3027 / 3 ** 0.5, abs=1e-4))


def test_a_fresh_machine_resumes_from_the_committed_ledger(tmp_path, teacher):
    """Run folders gone (a fresh machine): finished runs, tuning included, come from <prefix>_ledger.jsonl
    with the same numbers and nothing retrains; a changed setting or teacher has another fingerprint and trains."""
    import json
    import shutil

    from benchmarks.gain.ledger import fingerprint

    out, runs_dir = tmp_path / "report", tmp_path / "runs"
    logs = []
    kwargs = dict(methods=["plain", "brd"], seeds=[0], out_dir=out, runs_dir=runs_dir,
                  overrides=_tiny_overrides(tmp_path), teacher_ckpt=teacher, panel_images=1, log=logs.append)
    first = run_distill_gain(**kwargs)
    ledger = [json.loads(line) for line in (out / "synthetic_ledger.jsonl").read_text().splitlines()]
    assert sorted(e["name"] for e in ledger) == ["brd_c0", "brd_c1", "brd_s0", "kd_c0", "kd_c1", "plain_s0"]
    csv_before = _read_csv(out / "synthetic.csv")
    assert "bF1_pole" in csv_before[0] and "IoU_pole" in csv_before[0]   # per-class IoU and boundary F1
    panel = (out / "synthetic_panel.png").read_bytes()

    shutil.rmtree(runs_dir)
    logs.clear()
    again = run_distill_gain(**kwargs)
    assert not runs_dir.exists() or not list(runs_dir.glob("**/model.pt"))    # nothing trained
    assert [r["mIoU"] for r in again["runs"]] == [r["mIoU"] for r in first["runs"]]
    assert [t["chosen"] for t in again["tuning"]] == [t["chosen"] for t in first["tuning"]]
    after = _read_csv(out / "synthetic.csv")
    assert [r["mIoU"] for r in after] == [r["mIoU"] for r in csv_before]
    assert (out / "synthetic_panel.png").read_bytes() == panel                   # the drawn panel stays
    assert sum("finished earlier" in str(m) for m in logs) == 6

    # what a run learned from is in its fingerprint: the teacher's bytes and the learned settings, not paths
    entry = next(e for e in ledger if e["name"] == "brd_s0")
    from benchmarks.gain.runs import make_run
    setting = next(r["setting"] for r in first["runs"] if r["method"] == "brd").split()
    run = make_run("brd", 0, runs_dir / "brd_s0", "synthetic", "configs", _tiny_overrides(tmp_path), setting, teacher)
    assert fingerprint(run.load().to_dict()) == entry["fingerprint"]
    moved = run.load().to_dict()
    moved["data"]["root"] = "/elsewhere"
    assert fingerprint(moved) == entry["fingerprint"]
    older = run.load().to_dict()          # a run recorded before train.class_weights existed (its default: none)
    del older["train"]["class_weights"]
    assert fingerprint(older) == entry["fingerprint"]
    changed = run.load().to_dict()
    changed["train"]["lr"] = 0.05
    assert fingerprint(changed) != entry["fingerprint"]
    other = tmp_path / "teacher2.pt"
    other.write_bytes(teacher.read_bytes() + b"\0")
    swapped = run.load().to_dict()
    swapped["teacher"]["ckpt"] = str(other)
    assert fingerprint(swapped) != entry["fingerprint"]
    started = {}                          # a run started from a model file: that file's bytes, not its path
    for name, data in (("a.pt", teacher.read_bytes()), ("b.pt", teacher.read_bytes()), ("c.pt", b"other")):
        (tmp_path / name).write_bytes(data)
        cfg = run.load().to_dict()
        cfg["model"]["init_from"] = str(tmp_path / name)
        started[name] = fingerprint(cfg)
    assert started["a.pt"] == started["b.pt"] != started["c.pt"] and started["a.pt"] != entry["fingerprint"]

    logs.clear()
    run_distill_gain(**{**kwargs, "methods": ["plain"], "overrides": [*_tiny_overrides(tmp_path), "train.iters=4"]})
    assert (runs_dir / "plain_s0" / "model.pt").is_file()                      # changed: trained anew


def test_the_data_recipe_is_chosen_with_the_plain_student_on_tune_and_applied_to_every_method(tmp_path, teacher,
                                                                                          monkeypatch):
    from benchmarks.gain import runs as gain_runs

    monkeypatch.setitem(gain_runs.RECIPE, "synthetic", [["train.class_weights=none"],
                                                        ["train.class_weights=median_freq"]])
    out, runs_dir = tmp_path / "report", tmp_path / "runs"
    result = run_distill_gain(methods=["plain", "kd"], seeds=[0], out_dir=out, runs_dir=runs_dir,
                              overrides=_tiny_overrides(tmp_path), teacher_ckpt=teacher, panel_images=0,
                              log=lambda *a: None)
    recipe = [t for t in result["tuning"] if t["method"] == "recipe"]
    assert [t["setting"] for t in recipe] == ["train.class_weights=none", "train.class_weights=median_freq"]
    for k in (0, 1):  # the plain student, at the tuning seed, scored on the tune split
        _, meta = checkpoint.load(runs_dir / "tune" / f"recipe_c{k}" / "model.pt")
        cfg = meta["config"]
        assert cfg["distill"]["kd"]["weight"] == 0 and cfg["train"]["seed"] == 100 and cfg["data"]["val_split"] == "tune"
        assert recipe[k]["tune_mIoU"] == pytest.approx(meta["metrics"]["mIoU"])
    best = max(recipe, key=lambda t: t["tune_mIoU"])
    assert best["chosen"] and sum(t["chosen"] for t in recipe) == 1
    want = best["setting"].split("=")[1]
    for run in ("tune/kd_c0", "tune/kd_c1", "plain_s0", "kd_s0"):  # every later run trains with it
        _, meta = checkpoint.load(runs_dir / run / "model.pt")
        assert meta["config"]["train"]["class_weights"] == want, run
    assert "data recipe (plain student)" in (out / "synthetic.md").read_text()


RETIRED_CAMVID_TEACHER = "d5a5a92"  # the last commit of models/camvid/teacher.pt


@pytest.mark.parametrize("where", ["the repository", "another folder"])
def test_camvid_trials_build_on_the_tuning_runs_the_benchmark_recorded(where, tmp_path, monkeypatch):
    """Each CamVid trial is the benchmark's chosen tuning run (recipe, inherited KD temperature, chosen setting)
    plus its one change: the baseline rebuilt from camvid_tuning.csv is the run the committed ledger recorded
    (its row is taken, not retrained: from the repository, and from another folder; the teacher, retired from
    models/, comes from git history), and the trial's config differs from it only in the changed keys."""
    import json
    from pathlib import Path

    from benchmarks.gain import ledger as gain_ledger
    from benchmarks.gain.ledger import Ledger
    from benchmarks.gain.runs import config_changes
    from benchmarks.gain.trials import TRIALS, plan

    import subprocess

    root = Path(__file__).resolve().parents[1]
    results = Path("docs/results")
    # the benchmark's teacher was retired from models/ (the size budget); its bytes are what the ledger counts
    shown = subprocess.run(["git", "show", f"{RETIRED_CAMVID_TEACHER}:models/camvid/teacher.pt"], cwd=root,
                           capture_output=True)
    if not (root / results / "camvid_tuning.csv").is_file() or shown.returncode:
        pytest.skip("the CamVid benchmark's tuning table, or its teacher in git history, is not in this checkout")
    # rows recorded before the teacher counted by its bytes alone also hash its path relative to the repository
    # (ledger.legacy_fingerprint): the retired file goes where it lay, under a stand-in for the repository
    monkeypatch.setattr(gain_ledger, "REPO", tmp_path / "repo")
    teacher = tmp_path / "repo" / "models" / "camvid" / "teacher.pt"
    teacher.parent.mkdir(parents=True)
    teacher.write_bytes(shown.stdout)
    if where == "another folder":
        monkeypatch.chdir(tmp_path)
        results = root / results
    else:
        monkeypatch.chdir(root)
    ledger = {e["name"]: e for e in map(json.loads, (results / "camvid_ledger.jsonl").read_text().splitlines())}
    trials = plan("camvid", results, Path("runs/extra"), teacher=teacher)
    assert [t[0] for t in trials] == [t[0] for t in TRIALS["camvid"]]
    for (name, method, _, run, base, baseline), (_, _, _, change) in zip(trials, TRIALS["camvid"]):
        assert Ledger(results / "camvid_ledger.jsonl").get(baseline) == ledger[baseline.name], name
        assert base["mIoU"] == pytest.approx(ledger[baseline.name]["mIoU"]), name
        changed = config_changes(baseline.load().to_dict(), run.load().to_dict())
        assert changed == sorted(c.split("=")[0] for c in change), name
        cfg = run.load()
        assert cfg.train.seed == 100 and cfg.data.val_split == "tune" and cfg.train.class_weights == "median_freq"
    assert {t[5].name for t in trials if t[1] == "plain"} == {"recipe_c2"}  # the chosen recipe's plain run


def test_a_trial_trains_its_change_reports_it_against_the_baseline_and_resumes_from_its_ledger(tmp_path, teacher,
                                                                                              monkeypatch):
    import shutil

    from benchmarks.gain import trials as gain_trials

    out, runs_dir = tmp_path / "report", tmp_path / "extra"
    out.mkdir()
    (out / "synthetic_tuning.csv").write_text(
        "method,candidate,setting,inherited,tune_mIoU,tune_boundary_f1,tune_split_rate,run,chosen\n"
        f"kd,0,distill.kd.temperature=1.0,,0.30,0.20,0.40,{tmp_path}/tune/kd_c0,False\n"
        f"kd,1,distill.kd.temperature=4.0,,0.25,0.10,0.50,{tmp_path}/tune/kd_c1,True\n")
    monkeypatch.setitem(gain_trials.TRIALS, "synthetic", [("kd_4", "kd", "4 iterations", ["train.iters=4"])])
    kwargs = dict(prefix="synthetic", out_dir=out, runs_dir=runs_dir, jobs=1, overrides=_tiny_overrides(tmp_path),
                  teacher_ckpt=teacher, log=lambda *a: None)
    rows = gain_trials.run_trials(**kwargs)
    _, meta = checkpoint.load(runs_dir / "kd_4" / "model.pt")
    cfg = meta["config"]
    assert cfg["train"]["iters"] == 4 and cfg["distill"]["kd"]["temperature"] == 4.0      # chosen, not best-scored row
    assert cfg["train"]["seed"] == 100 and cfg["data"]["val_split"] == "tune"
    (row,) = rows
    assert row["tune mIoU %"] == round(100 * meta["metrics"]["mIoU"], 1) and row["baseline tune mIoU %"] == 25.0
    assert row["delta mIoU"] == round(100 * (meta["metrics"]["mIoU"] - 0.25), 1)
    assert row["pays"] == (meta["metrics"]["mIoU"] > 0.25) and row["train_s"] > 0
    text = (out / "synthetic_trials.md").read_text()
    assert "| kd_4 | 4 iterations | 4 |" in text and "python -m benchmarks.gain.trials" in text

    shutil.rmtree(runs_dir)  # a fresh machine: the committed ledger has it, nothing trains
    again = gain_trials.run_trials(**kwargs)
    assert not runs_dir.exists() and again[0]["tune mIoU %"] == row["tune mIoU %"]
    monkeypatch.setitem(gain_trials.TRIALS, "synthetic", [("kd_4", "kd", "5 iterations", ["train.iters=5"])])
    gain_trials.run_trials(**kwargs)  # another change: another fingerprint, trained anew
    assert checkpoint.load_meta(runs_dir / "kd_4" / "model.pt")["config"]["train"]["iters"] == 5


def test_thin_class_boundary_f1_is_paired_where_the_dataset_names_thin_classes():
    """CamVid names its thin and small classes: every run gets their mean boundary F1, which the results table
    shows and BRD's paired differences cover; a dataset that names none gets no such column."""
    from types import SimpleNamespace

    from benchmarks.gain import report
    from distill.data import DATASETS
    from distill.data.camvid import THIN_CLASSES

    classes = list(DATASETS["camvid"].classes)
    thin = {classes.index(c) for c in THIN_CLASSES}

    def run(method, seed, thin_bf1):
        return {"method": method, "seed": seed, "mIoU": 0.5, "boundary_f1": 0.4, "boundary_iou": 0.3,
                "split_rate": 0.2, "spurious_rate": 0.1, "miss_rate": 0.1,
                "boundary_f1_per_class": [thin_bf1 if i in thin else 0.9 for i in range(len(classes))]}
    runs = ([run("brd", s, v) for s, v in enumerate((0.30, 0.32, 0.35))]
            + [run("kd", s, v) for s, v in enumerate((0.25, 0.26, 0.28))])
    [sec] = report._sections({"runs": runs, "teacher": None}, SimpleNamespace(data=SimpleNamespace(dataset="camvid")))
    d = next(p for p in sec["paired"] if p["metric"] == "thin_boundary_f1")
    assert d["n"] == 3 and d["mean"] == pytest.approx(0.06) and d["verdict"] == "better"
    brd = next(r for r in sec["rows"] if r["method"] == "brd")
    assert brd["thin_boundary_f1_mean"] == pytest.approx((0.30 + 0.32 + 0.35) / 3)
    text = "\n".join(report._results_section(sec["rows"], None) + report._paired_section(sec["paired"]))
    assert "| thin bF1 % |" in text and "| thin bF1 |" in text and "+6.0" in text
    [other] = report._sections({"runs": runs, "teacher": None},
                               SimpleNamespace(data=SimpleNamespace(dataset="synthetic")))
    assert all(p["metric"] != "thin_boundary_f1" for p in other["paired"])
    assert "thin bF1" not in "\n".join(report._results_section(other["rows"], None))
