"""CamVid (SegNet's 11-class layout): a generated tree in that exact layout, and the real files at
../shared/camvid when they are there (CI has them; elsewhere those tests skip and say why)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from distill.data import DATASETS, DatasetError, build_dataset
from distill.data.balance import class_pixel_counts, class_weights
from export.onnx import torch_to_onnx

from . import trees

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "camvid"
needs_real = pytest.mark.skipif(not (REAL / "train").is_dir(), reason=f"real CamVid not at {REAL}")


def test_layout_lists_by_file_name_and_void_is_ignore(tmp_path):
    root = trees.camvid(tmp_path, size=(36, 48))
    ds = build_dataset("camvid", root, "train")
    raw = np.asarray(Image.open(ds.pairs[0][1])).copy()
    raw[:4] = 11                                                   # a void band
    Image.fromarray(raw).save(ds.pairs[0][1])
    assert [p.name for p, _ in ds.pairs] == sorted(p.name for p in (root / "train").glob("*.png"))
    assert all(lbl.parent.name == "trainannot" and lbl.name == img.name for img, lbl in ds.pairs)
    image, label = ds[0]
    assert image.shape == (36, 48, 3) and label.shape == (36, 48)
    assert (label[raw == 11] == 255).all() and (raw == 11).any()  # Unlabelled -> ignore
    keep = raw != 11
    assert (label[keep] == raw[keep]).all()                        # 0..10 are the train ids as stored


def test_tune_split_is_the_0001TP_drive_held_out_of_train_no_tune(tmp_path):
    root = trees.camvid(tmp_path, size=(36, 48), train=(("0001TP", 2), ("0006R0", 1), ("0016E5", 2)))
    names = {s: [p.name for p, _ in build_dataset("camvid", root, s).pairs] for s in ("train", "tune", "train_no_tune")}
    assert all(n.startswith("0001TP") for n in names["tune"]) and len(names["tune"]) == 2
    assert not set(names["tune"]) & set(names["train_no_tune"])
    assert sorted(names["tune"] + names["train_no_tune"]) == names["train"]


def test_errors_name_the_file(tmp_path):
    root = trees.camvid(tmp_path, size=(36, 48))
    with pytest.raises(DatasetError, match="unknown split 'trainval'"):
        build_dataset("camvid", root, "trainval")
    with pytest.raises(DatasetError, match="testannot|test"):
        build_dataset("camvid", root, "test")                         # the test split is not in this tree
    lst = (root / "val.txt").read_text()
    (root / "val.txt").write_text(lst + "/SegNet/CamVid/val/0016E5_999999.png /SegNet/CamVid/valannot/0016E5_999999.png\n")
    with pytest.raises(DatasetError, match=r"val\.txt lists 1 image.*0016E5_999999\.png"):
        build_dataset("camvid", root, "val")
    (root / "val.txt").write_text(lst)
    bad = np.full((36, 48), 12, np.uint8)                              # 12 is no CamVid label
    Image.fromarray(bad).save(root / "valannot" / build_dataset("camvid", root, "val").pairs[0][1].name)
    with pytest.raises(DatasetError, match=r"valannot/.*\.png: label values \[12\]"):
        build_dataset("camvid", root, "val")[0]


def test_classes_and_palette_are_segnets():
    info = DATASETS["camvid"]
    assert info.classes == ("sky", "building", "pole", "road", "pavement", "tree", "sign", "fence", "car",
                            "pedestrian", "bicyclist")
    assert info.palette[3] == (128, 64, 128) and info.palette[2] == (192, 192, 128)
    assert len(set(info.palette)) == 11 and "tune" in info.splits and "test" in info.splits


def test_median_frequency_weights_by_hand(tmp_path):
    """Two 2x2 labels. Image A: sky sky / road road. Image B: road road / road pole.
    freq(sky) = 2/4 (present in A only), freq(road) = 5/8, freq(pole) = 1/4 (B only);
    median of the three = 1/2, so weights sky 1, road 0.8, pole 2; absent classes 0."""
    root = tmp_path / "cv"
    for split in ("train", "trainannot"):
        (root / split).mkdir(parents=True)
    for name, lbl in (("0016E5_000030.png", [[0, 0], [3, 3]]), ("0016E5_000060.png", [[3, 3], [3, 2]])):
        Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(root / "train" / name)
        Image.fromarray(np.asarray(lbl, np.uint8)).save(root / "trainannot" / name)
    ds = build_dataset("camvid", root, "train")
    pixels, present = class_pixel_counts(ds)
    assert pixels[[0, 2, 3]].tolist() == [2, 1, 5] and present[[0, 2, 3]].tolist() == [4, 4, 8]
    w = class_weights(ds, "median_freq")
    assert w[0] == pytest.approx(1.0) and w[3] == pytest.approx(0.8) and w[2] == pytest.approx(2.0)
    assert w[1] == 0 and w[10] == 0
    assert class_weights(ds, "sqrt_median_freq")[2] == pytest.approx(2 ** 0.5)
    assert class_weights(ds, "none") is None


@needs_real
def test_real_camvid_splits_and_labels():
    sizes = {s: len(build_dataset("camvid", REAL, s)) for s in ("train", "val", "tune", "train_no_tune")}
    assert sizes == {"train": 367, "val": 101, "tune": 62, "train_no_tune": 305}
    ds = build_dataset("camvid", REAL, "val")
    image, label = ds[0]
    assert image.shape == (360, 480, 3) and label.shape == (360, 480)
    assert set(np.unique(label).tolist()) <= set(range(11)) | {255}


@needs_real
def test_real_camvid_median_frequency_weights_lift_the_thin_classes():
    w = dict(zip(DATASETS["camvid"].classes, class_weights(build_dataset("camvid", REAL, "train_no_tune"), "median_freq")))
    assert all(w[c] > 1.5 for c in ("pole", "sign", "pedestrian", "bicyclist"))
    assert all(w[c] < 0.5 for c in ("road", "sky", "building"))


def _camvid_run(tmp_path, teacher, extra=()):
    from distill.config import load_config

    root = trees.camvid(tmp_path / "cv", size=(64, 96), train=(("0016E5", 4),), val=(("0016E5", 1),))
    # frames 2-4: nothing labelled, so one of the two batches of 2 of every epoch holds no labelled pixel
    for img, lbl in build_dataset("camvid", root, "train").pairs[1:]:
        Image.fromarray(np.full((64, 96), 11, np.uint8)).save(lbl)
    over = [f"out_dir={tmp_path / 'run'}", "data.dataset=camvid", f"data.root={root}", "data.kwargs={}",
            "data.val_kwargs={}", "data.crop_size=[64,96]", "data.scale_range=[1.0,1.0]", "train.iters=6",
            "train.batch_size=2", "train.log_every=1", "train.val_every=100", "train.threads=1",
            "train.class_weights=median_freq", f"teacher.ckpt={teacher}", "eval.input_size=[64,96]",
            "distill.cwd.weight=1.0", "distill.skd.weight=1.0", *extra]
    return load_config(Path(__file__).parents[1] / "configs" / "synthetic.yaml", over)


@pytest.fixture(scope="module")
def camvid_teacher(tmp_path_factory):
    from .conftest import write_synthetic_student  # the synthetic dataset has 11 classes too

    return write_synthetic_student(tmp_path_factory.mktemp("t") / "teacher.pt", input_size=(64, 96), seed=1,
                                   arch_kwargs={"width": 8, "head_channels": 32}, bn_passes=2)


def test_training_goes_through_batches_without_a_labelled_pixel(tmp_path, camvid_teacher):
    """Every term (weighted CE, aux, KD, CWD, SKD, boundary, relation) is 0 over an all-ignore crop, not NaN,
    so such a batch trains nothing and the run goes on."""
    import csv

    from distill.engine import train

    cfg = _camvid_run(tmp_path, camvid_teacher)
    metrics = train(cfg)
    rows = list(csv.DictReader(open(tmp_path / "run" / "train_log.csv")))
    assert len(rows) == 6 and all(np.isfinite(float(v)) for r in rows for k, v in r.items() if k != "step")
    empty = [r for r in rows if float(r["ce"]) == 0.0]
    assert empty, "no step drew an all-ignore frame"
    for r in empty:
        assert all(float(r[k]) == 0.0 for k in ("total", "kd", "cwd", "skd", "boundary", "relation")), r
    assert np.isfinite(metrics["mIoU"]) and (tmp_path / "run" / "model.pt").is_file()


def test_a_non_finite_loss_is_skipped_before_the_optimizer_steps_and_logged(tmp_path, camvid_teacher, capsys,
                                                                            monkeypatch):
    import csv

    import torch

    from distill import engine

    forward, calls, seen = engine.StudentStep.forward, [0], {}

    def poisoned(self, *args, **kwargs):
        calls[0] += 1
        total, terms = forward(self, *args, **kwargs)
        if calls[0] == 3:  # step 3: the loss turns NaN; the weights (not the BN statistics a forward updates) survive it
            seen["before"] = {k: v.detach().clone() for k, v in self.student.named_parameters()}
            return total * float("nan"), terms
        if calls[0] == 4:
            seen["after"] = {k: v.detach().clone() for k, v in self.student.named_parameters()}
        return total, terms

    monkeypatch.setattr(engine.StudentStep, "forward", poisoned)
    engine.train(_camvid_run(tmp_path, camvid_teacher))
    out = capsys.readouterr()
    assert "step 3: non-finite loss" in out.out + out.err and "step skipped (1 so far)" in out.out + out.err
    rows = list(csv.DictReader(open(tmp_path / "run" / "train_log.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2, 4, 5, 6]           # the skipped step trained nothing
    assert all(torch.equal(seen["before"][k], seen["after"][k]) for k in seen["before"])


@pytest.mark.filterwarnings("error::UserWarning")  # the skipped steps are not PyTorch's "scheduler before optimizer"
def test_a_diverged_run_stops_with_one_error(tmp_path, camvid_teacher, monkeypatch):
    from distill import engine

    forward = engine.StudentStep.forward
    monkeypatch.setattr(engine.StudentStep, "forward",
                        lambda self, *a, **k: (lambda t: (t[0] * float("inf"), t[1]))(forward(self, *a, **k)))
    monkeypatch.setattr(engine, "MAX_BAD_STEPS", 3)
    with pytest.raises(FloatingPointError, match="non-finite for 3 steps in a row"):
        engine.train(_camvid_run(tmp_path, camvid_teacher))


def test_a_shipped_model_scores_as_its_card_says(tmp_path, camvid_teacher):
    """benchmarks.demo.model_card stores the checkpoint in fp16 and scores the stored file: the card's numbers are
    what `distill.evaluate` on that file prints, on val (marked as sharing its drive with training) and on the
    held-out 0001TP drive, each with its command, and the file is about half the size."""
    import json

    from benchmarks.demo.model_card import ship
    from distill import checkpoint, evaluate

    root = trees.camvid(tmp_path / "cv", size=(64, 96), train=(("0001TP", 2), ("0016E5", 2)), val=(("0016E5", 2),))
    src = tmp_path / "teacher.pt"
    model, meta = checkpoint.load(camvid_teacher)
    checkpoint.save(src, model, {**meta, "dataset": "camvid", "classes": list(DATASETS["camvid"].classes)})
    dst = tmp_path / "models" / "camvid" / "teacher.pt"
    trained_by = "python -m benchmarks.gain --prefix camvid (its run brd_s0)"
    exported = torch_to_onnx(src, tmp_path / "exported.onnx", simplify=False)  # the card's --int8: any exported file
    results = ship(src, dst, fp16=True, root=root, target_miou=52, target_class_iou=10, command=trained_by,
                   int8=exported)
    assert dst.stat().st_size < 0.6 * src.stat().st_size
    again = evaluate.main(["--model", str(dst), "--dataset", "camvid", "--root", str(root), "--split", "val"])
    assert again["mIoU"] == results["mIoU"]
    text = dst.with_suffix(".md").read_text()
    assert f"mIoU **{100 * results['mIoU']:.1f}**" in text and "| pole |" in text
    assert "**not met**: val mIoU >= 52" in text                       # a random model misses the target, and says so
    assert f"python -m distill.evaluate --model {dst} --dataset camvid --root {root} --split val" in text
    assert f"- Command: `{trained_by}`" in text                     # a benchmark's run names its real command
    assert json.loads(dst.with_suffix(".val.json").read_text())["mIoU"] == pytest.approx(results["mIoU"])
    assert json.loads(dst.with_suffix(".val.json").read_text())["settings"]["model"] == str(dst)  # not its temporary
    assert sorted(p.name for p in dst.parent.iterdir()) == ["teacher.md", "teacher.pt", "teacher.tune.json",
                                                            "teacher.val.json"]
    # the exported model's section: its own scores (per class in the table), and its speed from runtime.bench
    q = evaluate.main(["--model", str(exported), "--dataset", "camvid", "--root", str(root), "--split", "val"])
    assert "| class | IoU | Acc | boundary F1 | boundary IoU | INT8 IoU | INT8 boundary F1 |" in text
    pole = DATASETS["camvid"].classes.index("pole")
    assert f"| pole | {100 * results['IoU'][pole]:.1f} |" in text and text.count(" | ") > 11 * 6
    row = next(line for line in text.splitlines() if line.startswith("| pole |"))
    assert row.endswith(f" {100 * q['IoU'][pole]:.1f} | {100 * q['boundary_f1_per_class'][pole]:.1f} |")
    assert f"`exported.onnx`: mIoU **{100 * q['mIoU']:.1f}**" in text
    speed = next(line for line in text.splitlines() if line.startswith("Speed at "))
    assert speed.startswith(f"Speed at {meta['input_size'][0]}x{meta['input_size'][1]} on this machine")
    assert " FPS, " in speed and f"python -m runtime.bench --model {exported} --iters 200" in speed
    # the held-out drive: its own section, scores and command, the exported model's too
    held = evaluate.main(["--model", str(dst), "--dataset", "camvid", "--root", str(root), "--split", "tune"])
    val_at = text.index("## val (drive 0016E5, shares its drive with 204 training frames): camvid/val, 2 images")
    held_at = text.index("## held-out drive 0001TP (held out of models trained on `train_no_tune`): camvid/tune")
    assert val_at < held_at and f"mIoU **{100 * held['mIoU']:.1f}**" in text[held_at:]
    assert "names no training split" in text[held_at:]                 # this checkpoint carries no config
    assert f"python -m distill.evaluate --model {dst} --dataset camvid --root {root} --split tune" in text[held_at:]
    assert json.loads(dst.with_suffix(".tune.json").read_text())["mIoU"] == pytest.approx(held["mIoU"])
    q_held = evaluate.main(["--model", str(exported), "--dataset", "camvid", "--root", str(root), "--split", "tune"])
    assert (f"On held-out drive 0001TP (held out of models trained on `train_no_tune`): "
            f"mIoU **{100 * q_held['mIoU']:.1f}**") in text
    assert text[held_at:].count(" INT8 IoU |") == 1


def test_a_card_that_fails_to_score_publishes_no_model(tmp_path, camvid_teacher, monkeypatch):
    """The model, its scores and its card are published together at the end: a split that does not score (here
    the held-out drive, after val scored) leaves no model under its final name, no score, no card and no
    temporary file; an older shipped model and card stay as they were."""
    from benchmarks.demo import model_card
    from distill import checkpoint
    from runtime.contract import DataError

    root = trees.camvid(tmp_path / "cv", size=(64, 96), train=(("0001TP", 1), ("0016E5", 1)), val=(("0016E5", 1),))
    src = tmp_path / "student.pt"
    model, meta = checkpoint.load(camvid_teacher)
    checkpoint.save(src, model, {**meta, "dataset": "camvid", "classes": list(DATASETS["camvid"].classes)})
    dst = tmp_path / "models" / "student.pt"
    real, scored = model_card.score_file, []

    def held_out_fails(flag, path, data_args, named=None):
        if scored:
            raise DataError("the held-out drive does not score")
        scored.append(Path(path))
        return real(flag, path, data_args, named)

    monkeypatch.setattr(model_card, "score_file", held_out_fails)
    with pytest.raises(DataError, match="held-out drive"):
        model_card.ship(src, dst, root=root)
    assert scored and scored[0] != dst and scored[0].parent == dst.parent  # the stored file, under a temporary name
    assert list(dst.parent.iterdir()) == []
    dst.write_bytes(b"older model")
    dst.with_suffix(".md").write_text("older card")
    scored.clear()
    with pytest.raises(DataError, match="held-out drive"):
        model_card.ship(src, dst, root=root)
    assert sorted(p.name for p in dst.parent.iterdir()) == ["student.md", "student.pt"]
    assert dst.read_bytes() == b"older model" and dst.with_suffix(".md").read_text() == "older card"


@pytest.mark.parametrize("train_split", ["train", "train_no_tune"])
def test_a_card_says_the_held_out_drive_does_not_count_for_a_model_that_trained_on_it(tmp_path, camvid_teacher,
                                                                                      train_split):
    """The checkpoint's config says what it trained on: `train` contains the 0001TP drive, so the card's
    held-out number does not count as held-out (nor meets a held-out target); `train_no_tune` does not."""
    from benchmarks.demo.model_card import ship
    from distill import checkpoint

    root = trees.camvid(tmp_path / "cv", size=(64, 96), train=(("0001TP", 1), ("0016E5", 1)), val=(("0016E5", 1),))
    src = tmp_path / "student.pt"
    model, meta = checkpoint.load(camvid_teacher)
    config = {"name": "camvid_x", "data": {"dataset": "camvid", "root": str(root), "train_split": train_split}}
    checkpoint.save(src, model, {**meta, "dataset": "camvid", "classes": list(DATASETS["camvid"].classes),
                                 "config": config})
    dst = tmp_path / "models" / "student.pt"
    ship(src, dst, target_held_out_miou=0.01)
    text = dst.with_suffix(".md").read_text()
    held = text[text.index("## held-out drive 0001TP"):]
    assert "## val (drive 0016E5, shares its drive with 204 training frames): camvid/val" in text
    assert "--split tune" in held and f"split `{train_split}`" in text
    if train_split == "train":
        assert held.startswith("## held-out drive 0001TP (`train` contains it: this does not count as held-out)")
        assert "This model trained on `train`, which contains this drive: its number here does not count" in held
        assert "**not met**: held-out drive 0001TP mIoU >= 0.01" in text and "does not count as held-out)" in text
    else:
        assert held.startswith("## held-out drive 0001TP (no model trained on it): camvid/tune")
        assert "does not count" not in text and "which does not contain this drive: held out" in held


def test_the_drive_video_holds_the_frames_in_time_order(tmp_path):
    import cv2

    from benchmarks.demo.camvid_street import drive_frames, drive_video, read_frames

    root = trees.camvid(tmp_path / "cv", size=(64, 96), train=(("0016E5", 1),), val=(("0016E5", 3), ("0006R0", 1)))
    frames = drive_frames(root)
    assert [f.name for f in frames] == sorted(f.name for f in frames) and len(frames) == 3  # one drive only
    video = drive_video(frames, tmp_path / "v.mp4", fps=5)
    got = read_frames(video, [0, 1, 2])
    assert len(got) == 3
    for f, g in zip(frames, got):  # each video frame is closest to its own source frame (lossy codec)
        errs = [np.abs(cv2.imread(str(x)).astype(int) - g.astype(int)).mean() for x in frames]
        assert int(np.argmin(errs)) == frames.index(f)
