"""benchmarks/speed/loader.py: its logic on a tiny Cityscapes tree (not its speed: that is the benchmark's job)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.speed.loader import main, report, verdict
from tests import trees

ROOT = Path(__file__).resolve().parent.parent


def test_measures_the_cityscapes_training_pipeline_per_worker_count(tmp_path):
    root = trees.cityscapes(tmp_path / "cityscapes", size=(64, 128), train=4, val=1)
    # in its own process, as it is run: DataLoader workers fork, and forking this test process (which has
    # loaded OpenVINO and onnxruntime thread pools in earlier tests) can crash the child
    done = subprocess.run([sys.executable, "-m", "benchmarks.speed.loader", "--root", str(root), "--workers", "0", "1",
                           "--batch", "2", "--batches", "2", "--size", "32x64", "--step-its", "0.5",
                           "--out-dir", str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads((tmp_path / "out" / "loader.json").read_text())
    assert [r["workers"] for r in got["rows"]] == [0, 1]
    for r in got["rows"]:
        # exactly the asked batches, as the training loader yields them (normalised crops, batched)
        assert r["images"] == 4 and r["batch_shape"] == [2, 3, 32, 64] and r["crop"] == [32, 64]
        assert r["images_per_s"] > 0 and r["needed_images_per_s"] == 1.0
        assert r["keeps_up"] == (r["images_per_s"] >= 1.0)
    assert "needs 1 images/s" in (tmp_path / "out" / "loader.md").read_text()
    assert "| 0 |" in done.stdout


def test_verdict_and_report_compare_with_the_stated_gpu_speed():
    rows = [{"workers": 0, "images_per_s": 10.0, "crop": [512, 1024]},
            {"workers": 2, "images_per_s": 40.0, "crop": [512, 1024]},
            {"workers": 4, "images_per_s": 70.0, "crop": [512, 1024]}]
    judged = verdict(rows, batch=16, step_its=2.0)                  # needs 32 images/s
    assert [r["keeps_up"] for r in judged] == [False, True, True]
    assert judged[0]["share_of_need"] == 10 / 32
    text = report(judged, "cityscapes.yaml", 16, 2.0)
    assert "512x1024 crops" in text and "needs 32 images/s" in text and "Fewest workers that keep up: 2." in text
    slow = report(verdict(rows, batch=16, step_its=10.0), "cityscapes.yaml", 16, 10.0)   # needs 160
    assert "No worker count measured keeps up: 2.3x the best rate" in slow


def test_bad_root_is_a_one_line_error(tmp_path, capsys):
    assert main(["--root", str(tmp_path / "nothing"), "--workers", "0"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
