"""The README's first command, end to end on tiny settings: every step runs, the report holds both
benchmarks' tables, the overlay video is complete, and a re-run reuses every finished step."""
from __future__ import annotations

import json

import cv2
import pytest

from benchmarks.demo.end_to_end import run_demo

pytestmark = pytest.mark.slow  # every step of the demo: about 1.5 minutes

TINY = ["data.kwargs={num_images: 6, size: [64, 128], seed: 0}",
        "data.val_kwargs={num_images: 3, size: [64, 128], seed: 0}",
        "data.crop_size=[64,128]", "eval.input_size=[64,128]", "train.batch_size=2", "train.val_every=2",
        "train.threads=2"]


def test_demo_end_to_end_and_reuse(tmp_path, capsys):
    report = run_demo(tmp_path / "demo", teacher_iters=2, student_iters=2, overrides=TINY, bench_iters=2)
    text = report.read_text()
    assert "| plain (CE only) | 1 |" in text and "| BRD | 1 |" in text and "| teacher |" in text
    assert "plain and BRD ONNX graphs are structurally identical" in text
    assert "| resnet10_w8 | openvino-int8 | brd |" in text
    models = tmp_path / "demo" / "models"
    for name in ("onnx", "int8.onnx", "xml", "fp16.xml", "int8.xml"):
        # two training steps make a near-random student, whose INT8 may fail its parity floor: then it is
        # kept only as *.FAILED.* (the demo passes --keep-failed) and its report says so
        stem, suffix = name.rsplit(".", 1) if "." in name else ("", name)
        failed = models / f"resnet10_w8_brd.{stem + '.' if stem else ''}FAILED.{suffix}"
        assert (models / f"resnet10_w8_brd.{name}").exists() or failed.exists(), name
        if failed.exists():
            assert json.loads((models / f"{failed.name}.parity.json").read_text())["file"] == failed.name
    # no_added_cost (step 6) times the checked files; what it builds itself stays in its own folder, so the
    # models folder holds only what the exporters published after their checks (or kept as *.FAILED.*)
    assert not [p.name for p in models.iterdir() if ".unchecked." in p.name]
    assert all(".unchecked." in p.name for p in (tmp_path / "demo" / "no_added_cost" / "unchecked_timing_copies").iterdir())
    # the exported INT8 model scored with distill.evaluate --model, next to its FP32 model
    assert "The deployed files, scored (distill.evaluate --model)" in text and "| mIoU FP32 | mIoU INT8 |" in text
    rows = json.loads((tmp_path / "demo" / "scores" / "scores.json").read_text())
    assert [(r["format"], r["precision"]) for r in rows] == [("onnx", "fp32"), ("onnx", "int8"), ("openvino", "fp32"),
                                                              ("openvino", "int8")]
    assert all(0 <= r["mIoU"] <= 1 and r["images"] == 3 for r in rows if r["published"])
    video = cv2.VideoCapture(str(tmp_path / "demo" / "overlay.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 120  # 3 scenes x 40 frames, none lost
    assert (int(video.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(video.get(cv2.CAP_PROP_FRAME_WIDTH))) == (128, 256)
    student = tmp_path / "demo" / "runs" / "brd_s0" / "model.pt"
    mtime = student.stat().st_mtime
    capsys.readouterr()

    run_demo(tmp_path / "demo", teacher_iters=2, student_iters=2, overrides=TINY, bench_iters=2)
    out = capsys.readouterr().out
    assert student.stat().st_mtime == mtime
    steps = [line for line in out.splitlines() if line.startswith("== ")]
    assert steps and all(line.endswith(")") and ": reused (" in line for line in steps), steps


def test_a_card_scores_the_model_on_the_data_settings_it_was_validated_with(tmp_path, trained_plain):
    """A synthetic model validated on its own set (16 images at 64x128, not the generator's defaults) gets its
    card scored on that set: the settings come from the checkpoint's config, not from the defaults."""
    from benchmarks.demo.model_card import ship

    results = ship(trained_plain["plain"], tmp_path / "m" / "card.pt", root=trained_plain["data"])
    assert results["num_images"] == 16 and (tmp_path / "m" / "card.md").is_file()
