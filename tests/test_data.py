"""Datasets read from tiny trees written here in each exact on-disk layout; synthetic data; transforms."""
from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from distill.data import DATASETS, MEAN, STD, DatasetError, build_dataset
from distill.data import cityscapes, cocostuff, synthetic, synthetic_scene
from distill.data.transforms import EvalTransform, TrainTransform


def write_png(path, arr, palette=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    if palette is None:
        im = Image.fromarray(arr)
    else:  # an indexed PNG like VOC's own labels
        im = Image.frombytes("P", (arr.shape[1], arr.shape[0]), np.ascontiguousarray(arr).tobytes())
        im.putpalette(palette)
    im.save(path)


def write_rgb(path, h=6, w=8, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    ok = cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 100])
    assert ok
    return img


# --------------------------------------------------------------------------------------------- Cityscapes
def make_cityscapes(root, ids, split="val", city="aachen"):
    img_p = root / "leftImg8bit" / split / city / f"{city}_000000_000019_leftImg8bit.png"
    rgb = write_rgb(img_p, *ids.shape)
    write_png(root / "gtFine" / split / city / f"{city}_000000_000019_gtFine_labelIds.png", ids)
    return rgb


def test_cityscapes_maps_label_ids_to_train_ids(tmp_path):
    # road(7)->0, sidewalk(8)->1, unlabeled(0)->255, parking(9)->255, sky(23)->10, bicycle(33)->18
    ids = np.array([[7, 8, 0, 9], [23, 33, 26, 11]], np.uint8)
    rgb = make_cityscapes(tmp_path, ids)
    ds = build_dataset("cityscapes", tmp_path, "val")
    assert len(ds) == 1
    img, lbl = ds[0]
    assert img.dtype == np.uint8 and img.shape == (2, 4, 3)
    np.testing.assert_array_equal(img, rgb)  # PNG, exact; and RGB not BGR
    np.testing.assert_array_equal(lbl, [[0, 1, 255, 255], [10, 18, 13, 2]])
    assert lbl.dtype == np.uint8


def test_cityscapes_table_is_the_official_one():
    info = DATASETS["cityscapes"]
    assert info.num_classes == 19 and len(info.palette) == 19
    lut = cityscapes.id_to_train_id_lut()
    train_ids = sorted(int(v) for v in lut[:34] if v != 255)
    assert train_ids == list(range(19))
    assert info.classes[lut[26]] == "car" and info.palette[lut[26]] == (0, 0, 142)
    assert info.classes[lut[17]] == "pole" and lut[18] == 255  # polegroup is not evaluated


def test_cityscapes_errors_name_the_file(tmp_path):
    with pytest.raises(DatasetError, match="leftImg8bit"):
        build_dataset("cityscapes", tmp_path / "nowhere", "val")
    (tmp_path / "leftImg8bit" / "val").mkdir(parents=True)
    (tmp_path / "gtFine" / "val").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no images"):
        build_dataset("cityscapes", tmp_path, "val")
    img = tmp_path / "leftImg8bit" / "val" / "bonn" / "bonn_1_leftImg8bit.png"
    write_rgb(img)
    with pytest.raises(DatasetError, match="bonn_1_leftImg8bit.png: image has no label"):
        build_dataset("cityscapes", tmp_path, "val")
    bad = tmp_path / "gtFine" / "val" / "bonn" / "bonn_1_gtFine_labelIds.png"
    write_png(bad, np.full((6, 8), 40, np.uint8))  # 40 is not a Cityscapes label id
    ds = build_dataset("cityscapes", tmp_path, "val")
    with pytest.raises(DatasetError, match=r"bonn_1_gtFine_labelIds\.png.*\[40\]"):
        ds[0]


def test_label_size_mismatch_is_an_error(tmp_path):
    make_cityscapes(tmp_path, np.zeros((4, 4), np.uint8))
    lbl = next((tmp_path / "gtFine").rglob("*.png"))
    write_png(lbl, np.zeros((5, 4), np.uint8))
    with pytest.raises(DatasetError, match="label is 4x5"):
        build_dataset("cityscapes", tmp_path, "val")[0]


# --------------------------------------------------------------------------------------------- VOC (+SBD)
VOC_PALETTE = sum(DATASETS["voc"].palette, ()) + (224, 224, 192) * 235


def make_voc(root, labels: dict, split="train_aug"):
    voc = root / "VOCdevkit" / "VOC2012"
    for name, lbl in labels.items():
        write_rgb(voc / "JPEGImages" / f"{name}.jpg", *lbl.shape)
        write_png(voc / "SegmentationClassAug" / f"{name}.png", lbl, palette=list(VOC_PALETTE))
    sets = voc / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True, exist_ok=True)
    (sets / f"{split}.txt").write_text("".join(f"{n}\n" for n in labels))
    return voc


def test_voc_sbd_layout_palette_png_and_border_ignore(tmp_path):
    lbl = np.array([[0, 15, 255], [20, 255, 1]], np.uint8)  # person, border, tvmonitor, aeroplane
    make_voc(tmp_path, {"2008_000002": lbl, "2008_000003": np.zeros((2, 3), np.uint8)})
    ds = build_dataset("voc", tmp_path, "train")  # train -> train_aug.txt; root above VOCdevkit is found
    assert len(ds) == 2 and DATASETS["voc"].num_classes == 21
    img, got = ds[0]
    assert img.shape == (2, 3, 3)
    np.testing.assert_array_equal(got, lbl)  # palette indices, not expanded colours


def test_voc_errors(tmp_path):
    voc = make_voc(tmp_path, {"a": np.array([[0, 21]], np.uint8)})
    with pytest.raises(DatasetError, match=r"a\.png.*\[21\]"):
        build_dataset("voc", voc, "train_aug")[0]
    with pytest.raises(DatasetError, match="val"):
        build_dataset("voc", voc, "val")
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text("missing_id\n")
    with pytest.raises(DatasetError, match="missing_id"):
        build_dataset("voc", voc, "val")
    with pytest.raises(DatasetError, match="not a VOC2012 root"):
        build_dataset("voc", tmp_path / "empty", "val")


# --------------------------------------------------------------------------------------------- ADE20K
def test_ade20k_zero_is_ignore_and_ids_shift_down(tmp_path):
    root = tmp_path / "ADEChallengeData2016"
    write_rgb(root / "images" / "validation" / "ADE_val_00000001.jpg", 2, 3)
    write_png(root / "annotations" / "validation" / "ADE_val_00000001.png",
              np.array([[0, 1, 150], [2, 0, 3]], np.uint8))
    ds = build_dataset("ade20k", tmp_path, "val")
    _, lbl = ds[0]
    np.testing.assert_array_equal(lbl, [[255, 0, 149], [1, 255, 2]])
    assert DATASETS["ade20k"].num_classes == 150 and DATASETS["ade20k"].classes[0] == "wall"
    write_png(root / "annotations" / "validation" / "ADE_val_00000001.png", np.array([[151, 0, 0]], np.uint8))
    write_rgb(root / "images" / "validation" / "ADE_val_00000001.jpg", 1, 3)
    with pytest.raises(DatasetError, match=r"ADE_val_00000001\.png.*\[151\]"):
        ds[0]


# --------------------------------------------------------------------------------------------- COCO-Stuff 10K
def test_cocostuff10k_mmseg_layout_and_171_class_mapping(tmp_path):
    write_rgb(tmp_path / "images" / "test2014" / "COCO_train2014_000000000077.jpg", 2, 2)
    write_png(tmp_path / "annotations" / "test2014" / "COCO_train2014_000000000077_labelTrainIds.png",
              np.array([[0, 170], [255, 80]], np.uint8))
    ds = build_dataset("cocostuff10k", tmp_path, "val")
    np.testing.assert_array_equal(ds[0][1], [[0, 170], [255, 80]])
    info = DATASETS["cocostuff10k"]
    assert info.num_classes == 171 and info.classes[80] == "banner" and info.classes[-1] == "wood"
    # The converter's table: 0 unlabelled -> 255, 1 person -> 0, 11 fire hydrant -> 10, 12 unused -> 255,
    # 13 stop sign -> 11, 92 banner -> 80, 182 wood -> 170.
    raw = np.array([0, 1, 11, 12, 13, 91, 92, 182, 183], np.uint8)
    np.testing.assert_array_equal(cocostuff.to_train_ids(raw), [255, 0, 10, 255, 11, 255, 80, 170, 255])
    assert info.classes[cocostuff.ID_TO_TRAIN_ID[13]] == "stop sign"
    write_png(tmp_path / "annotations" / "test2014" / "COCO_train2014_000000000077_labelTrainIds.png",
              np.array([[171, 0], [0, 0]], np.uint8))
    with pytest.raises(DatasetError, match=r"_labelTrainIds\.png.*\[171\]"):
        ds[0]


def test_unknown_dataset_and_kwargs():
    with pytest.raises(DatasetError, match="unknown dataset"):
        build_dataset("kitti", "x", "val")


# --------------------------------------------------------------------------------------------- synthetic
def tree_digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.png")):
        h.update(p.relative_to(root).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def test_synthetic_is_deterministic_and_cityscapes_shaped(tmp_path):
    a = synthetic.generate(tmp_path / "a", "train", 6, size=(64, 128), seed=3)
    b = synthetic.generate(tmp_path / "b", "train", 6, size=(64, 128), seed=3)
    c = synthetic.generate(tmp_path / "c", "train", 6, size=(64, 128), seed=4)
    assert tree_digest(a) == tree_digest(b) != tree_digest(c)
    imgs = sorted((a / "leftImg8bit" / "train").rglob("*_leftImg8bit.png"))
    lbls = sorted((a / "gtFine" / "train").rglob("*_gtFine_labelTrainIds.png"))
    assert len(imgs) == len(lbls) == 6
    # read by the Cityscapes loader (trainIds flavour): the same code path
    ds = build_dataset("cityscapes", a, "train", label_type="labelTrainIds")
    img, lbl = ds[0]
    assert img.shape == (64, 128, 3) and lbl.max() < 19


def test_synthetic_scenes_have_street_structure():
    n = len(synthetic.CLASSES)
    counts = np.zeros(n, np.int64)
    blueness = [0.0, 0.0]
    for i in range(12):
        img, lbl = synthetic.render(0, "train", i, (96, 192))
        assert img.shape == (96, 192, 3) and img.dtype == np.uint8 and lbl.shape == (96, 192)
        counts += np.bincount(lbl.ravel(), minlength=n)
        # sky and buildings above, never ground; road at the bottom
        assert np.isin(lbl[:5], [synthetic_scene.SKY, synthetic_scene.BUILDING]).mean() > 0.5
        assert not np.isin(lbl[:5], [synthetic_scene.ROAD, synthetic_scene.SIDEWALK]).any()
        assert (lbl[-5:] == synthetic_scene.ROAD).mean() > 0.2
        blueness[0] += (img[lbl == synthetic_scene.SKY].astype(float) @ [-1, 0, 1]).mean()
        blueness[1] += (img[lbl == synthetic_scene.ROAD].astype(float) @ [-1, 0, 1]).mean()
    frac = counts / counts.sum()
    assert (counts > 0).all(), dict(zip(synthetic.CLASSES, counts))  # every class appears
    for thin in (synthetic_scene.POLE, synthetic_scene.WIRE, synthetic_scene.FENCE, synthetic_scene.SIGN):
        assert frac[thin] < 0.03  # thin classes stay thin
    assert blueness[0] > blueness[1] + 12 * 10  # appearance carries the label: sky is bluer than road
    img, lbl = synthetic.render(1, "val", 0, (96, 192))
    assert not np.array_equal(synthetic.render(1, "train", 0, (96, 192))[1], lbl)  # splits differ


def test_build_synthetic_generates_once_and_refuses_other_settings(tmp_path):
    ds = build_dataset("synthetic", tmp_path, "val", num_images=3, size=(32, 64), seed=0)
    assert len(ds) == 3 and DATASETS["synthetic"].num_classes == len(synthetic.CLASSES)
    first = next((tmp_path / "leftImg8bit").rglob("*.png"))
    mtime = first.stat().st_mtime_ns
    ds = build_dataset("synthetic", tmp_path, "val", num_images=3, size=(32, 64), seed=0)
    assert first.stat().st_mtime_ns == mtime  # cached
    with pytest.raises(DatasetError, match=r"other settings: num_images 3 \(asked: 2\), size \[32, 64\] \(asked: \[40, 64\]\)"):
        build_dataset("synthetic", tmp_path, "val", num_images=2, size=(40, 64), seed=0)
    assert first.stat().st_mtime_ns == mtime and len(list((tmp_path / "leftImg8bit").rglob("*.png"))) == 3
    with pytest.raises(DatasetError, match="evaluation does not generate"):
        build_dataset("synthetic", tmp_path, "test", num_images=2, size=(32, 64), create=False)
    assert not (tmp_path / "leftImg8bit" / "test").exists()
    # an interrupted generation (manifest still marked incomplete) is ours to redo
    man = tmp_path / "synthetic_val.json"
    man.write_text(man.read_text()[:-1] + ', "complete": false}')
    assert len(build_dataset("synthetic", tmp_path, "val", num_images=2, size=(40, 64), seed=0)) == 2
    other = tmp_path / "cs"
    make_cityscapes(other, np.zeros((4, 4), np.uint8), split="val")
    with pytest.raises(DatasetError, match="not written by the synthetic generator"):
        build_dataset("synthetic", other, "val", num_images=2, size=(32, 64))


def test_a_second_process_waits_for_a_generation_in_progress_and_reads_its_split(tmp_path):
    """Two processes reading one root (the gain benchmark's --jobs workers, torchrun's ranks): while one
    generates, the other waits for it, then reads that split. Before, the second took the half-written split
    for an interrupted one and deleted it under the first, which failed writing its images."""
    import fcntl
    import os
    import subprocess
    import sys
    import time

    root = tmp_path / "data"
    root.mkdir()
    fd = os.open(root, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # this test is the first process, in the middle of its generation
    synthetic._manifest(root, "train").write_text('{"complete": false}')
    code = ("import sys; from distill.data import build_dataset; "
            "print(len(build_dataset('synthetic', sys.argv[1], 'train', num_images=3, size=(32, 64), seed=0)))")
    second = subprocess.Popen([sys.executable, "-c", code, str(root)], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).parent.parent)
    try:
        time.sleep(3.0)  # ample for the second to import torch and reach the split
        assert second.poll() is None, "the second process did not wait for the generation in progress"
        assert synthetic._manifest(root, "train").read_text() == '{"complete": false}'  # nothing touched
        synthetic.generate(root, "train", 3, size=(32, 64), seed=0)
        first = next((root / "leftImg8bit").rglob("*.png"))
        mtime = first.stat().st_mtime_ns
    finally:
        os.close(fd)  # the generation is done: the lock goes
    out, _ = second.communicate(timeout=60)
    assert second.returncode == 0 and out.strip() == "3"
    assert first.stat().st_mtime_ns == mtime  # read, not generated again


# --------------------------------------------------------------------------------------------- transforms
def test_train_transform_shapes_ignore_padding_and_nearest_labels():
    torch.manual_seed(0)
    img = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    lbl = np.random.default_rng(1).integers(0, 5, (20, 30)).astype(np.uint8)
    tf = TrainTransform((64, 48), MEAN, STD, scale_range=(0.5, 2.0))
    seen_pad = False
    for _ in range(20):
        x, y = tf(img, lbl)
        assert x.shape == (3, 64, 48) and x.dtype == torch.float32
        assert y.shape == (64, 48) and y.dtype == torch.int64
        vals = set(y.unique().tolist())
        assert vals <= {0, 1, 2, 3, 4, 255}  # nearest only: no blended label values
        seen_pad |= 255 in vals
    assert seen_pad  # crop larger than the scaled image: label padded with ignore


def test_train_transform_pads_images_with_the_mean_colour_even_after_jitter():
    # a black pad would draw a false edge into feature-based (label-free) distillation targets
    torch.manual_seed(0)
    img = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    lbl = np.ones((20, 30), np.uint8)
    tf = TrainTransform((64, 48), MEAN, STD, scale_range=(0.5, 1.0), jitter=True)
    for _ in range(10):
        x, y = tf(img, lbl)
        pad = y == 255
        assert pad.any() and (~pad).any()
        assert torch.count_nonzero(x[:, pad]) == 0          # exactly the mean colour after normalisation
        assert torch.count_nonzero(x[:, ~pad]) > 0.9 * 3 * int((~pad).sum())


def test_train_transform_flip_keeps_image_and_label_aligned():
    torch.manual_seed(0)
    img = np.zeros((8, 8, 3), np.uint8)
    img[:, :4] = 255
    lbl = np.zeros((8, 8), np.uint8)
    lbl[:, :4] = 1
    tf = TrainTransform(8, [0, 0, 0], [1, 1, 1], scale_range=(1.0, 1.0), jitter=False)
    flips = 0
    for _ in range(20):
        x, y = tf(img, lbl)
        assert torch.equal(x[0] > 127, y == 1)
        flips += int(y[0, -1] == 1)
    assert 0 < flips < 20


def test_exposure_darkens_and_brightens_whole_images_within_its_range_in_stops():
    # a dusk drive is ~2.5x darker than the day drives: only a multiplicative factor reaches it
    torch.manual_seed(0)
    img = np.full((8, 8, 3), 200, np.uint8)
    lbl = np.zeros((8, 8), np.uint8)
    tf = TrainTransform(8, [0, 0, 0], [1, 1, 1], scale_range=(1.0, 1.0), flip=False, jitter=False,
                        exposure=(0.25, 1.0))
    factors = np.array([tf(img, lbl)[0].mean().item() / 200 for _ in range(400)])
    assert factors.min() >= 0.25 - 1 / 200 and factors.max() <= 1.0 + 1 / 200
    assert factors.min() < 0.3 and factors.max() > 0.9
    # log-uniform: as many draws in the darker stop [0.25, 0.5) as in [0.5, 1.0]
    assert 0.4 < np.mean(factors < 0.5) < 0.6
    plain = TrainTransform(8, [0, 0, 0], [1, 1, 1], scale_range=(1.0, 1.0), flip=False, jitter=False)
    assert torch.equal(plain(img, lbl)[0], torch.full((3, 8, 8), 200.0))


def test_a_bad_exposure_range_names_its_key(tmp_path):
    from distill.build import build_data
    from distill.config import Config, ConfigError
    cfg = Config()
    cfg.data.dataset, cfg.data.root, cfg.data.exposure = "synthetic", str(tmp_path), [1.2, 0.3]
    with pytest.raises(ConfigError, match=r"data\.exposure \[1\.2, 0\.3\]: expected \[low, high\]"):
        build_data(cfg, 0, 1, 0, MEAN, STD)


def test_eval_transform_normalises_and_resizes_labels_nearest():
    img = np.full((4, 6, 3), 255, np.uint8)
    lbl = np.array([[0, 1, 2, 0, 1, 2]] * 4, np.uint8)
    x, y = EvalTransform([255, 0, 255], [1, 255, 2])(img, lbl)
    assert torch.allclose(x[:, 0, 0], torch.tensor([0.0, 1.0, 0.0]))
    assert torch.equal(y, torch.from_numpy(lbl.astype(np.int64)))
    x, y = EvalTransform(MEAN, STD, size=(8, 12))(img, lbl)
    assert x.shape == (3, 8, 12) and set(y.unique().tolist()) == {0, 1, 2}
