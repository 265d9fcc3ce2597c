"""SegMetric against small hand-worked cases (ignore pixels, absent classes, boundaries, components)."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from distill.metrics import SegMetric, _boundary


def square(size=20, top=5, left=5, side=10, cls=1, bg=0):
    m = np.full((size, size), bg, np.int64)
    m[top:top + side, left:left + side] = cls
    return m


def test_iou_acc_with_ignore_and_absent_classes():
    label = np.array([[0, 0, 1, 255], [0, 1, 1, 255]])
    pred = np.array([[0, 1, 1, 3], [0, 1, 0, 2]])  # 3 and 2 only where the label is ignore: they don't count
    m = SegMetric(4)
    m.update(pred, label)
    r = m.compute()
    # class 0: tp 2, label 3, pred 3 -> 2/4 ; class 1 the same ; classes 2, 3 absent from both -> excluded
    assert r["IoU"][:2] == [0.5, 0.5]
    assert math.isnan(r["IoU"][2]) and math.isnan(r["IoU"][3])
    assert r["mIoU"] == pytest.approx(0.5)
    assert r["aAcc"] == pytest.approx(4 / 6)
    assert r["Acc"][:2] == [pytest.approx(2 / 3)] * 2 and r["mAcc"] == pytest.approx(2 / 3)


def test_class_only_predicted_counts_as_zero():
    m = SegMetric(3)
    m.update(np.array([[0, 2]]), np.array([[0, 0]]))
    r = m.compute()
    assert r["IoU"][0] == 0.5 and r["IoU"][2] == 0.0 and math.isnan(r["IoU"][1])
    assert r["mIoU"] == pytest.approx(0.25)


def test_accumulates_over_images_and_batches():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, (3, 16, 16))
    preds = rng.integers(0, 3, (3, 16, 16))
    a, b = SegMetric(3), SegMetric(3)
    a.update(preds, labels)
    for p, t in zip(preds, labels):
        b.update(p, t)
    assert a.compute() == b.compute() and a.num_images == 3
    conf = np.zeros((3, 3), int)
    np.add.at(conf, (labels.ravel(), preds.ravel()), 1)
    assert np.array_equal(a.confusion, conf)


def reference_mask_to_boundary(mask, dilation):
    """Cheng et al.'s boundary_iou/utils/boundary_utils.py, verbatim in spirit."""
    h, w = mask.shape
    padded = cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    eroded = cv2.erode(padded, np.ones((3, 3), np.uint8), iterations=dilation)[1:h + 1, 1:w + 1]
    return mask - eroded


@pytest.mark.parametrize("d", [1, 3, 5])
def test_boundary_matches_the_reference_implementation(d):
    rng = np.random.default_rng(d)
    mask = (cv2.GaussianBlur(rng.random((40, 60)), (0, 0), 3) > 0.5).astype(np.uint8)
    np.testing.assert_array_equal(_boundary(mask, d), reference_mask_to_boundary(mask, d).astype(bool))


def test_boundary_iou_of_a_shifted_square():
    # 20x20 image: d = max(1, round(0.02 * 28.3)) = 1, so each 10x10 square's boundary is its 36-pixel ring.
    # Shifted right by one pixel, the rings share 9 + 9 pixels of the top and bottom rows: 18 / (36+36-18).
    m = SegMetric(2)
    m.update(square(left=6), square(left=5))
    r = m.compute()
    assert r["boundary_iou_per_class"][1] == pytest.approx(1 / 3)
    assert r["IoU"][1] == pytest.approx(90 / 110)  # region IoU is far kinder than boundary IoU
    m.reset()
    m.update(square(), square())
    assert m.compute()["boundary_iou"] == 1.0


def test_boundary_iou_ignores_ignore_pixels():
    label, pred = square(), square(left=6)
    label[:, 10:] = 255  # only the left half is labelled
    m = SegMetric(2)
    m.update(pred, label)
    # Ignored pixels (cols 10..) are "don't care": the cut at col 10 draws no boundary. Label ring (d = 1):
    # rows 5 and 14, cols 5..9 (5 px each) + col 5 rows 6..13 (8) = 18. Prediction (from col 6): rows 5 and
    # 14, cols 6..9 (4 each) + col 6 rows 6..13 (8) = 16. Shared: rows 5 and 14, cols 6..9 = 8.
    assert m.compute()["boundary_iou_per_class"][1] == pytest.approx(8 / (18 + 16 - 8))


@pytest.mark.parametrize("plate_pred", [1, 0])
def test_an_ignored_patch_inside_an_object_keeps_the_objects_boundary(plate_pred):
    # A licence plate (ignore) one pixel inside the car's top edge: the car's whole 36-pixel ring is still
    # scored, and the plate's own edge is no boundary, whatever is predicted on it.
    label, pred = square(), square()
    label[6:8, 7:9] = 255
    pred[6:8, 7:9] = plate_pred
    m = SegMetric(2)
    m.update(pred, label)
    r = m.compute()
    assert m.b_union[1] == 36 and r["boundary_iou_per_class"][1] == 1.0
    assert r["boundary_f1_per_class"][1] == 1.0


def test_boundary_f1_tolerance():
    # Vertical edge between class 1 (left) and class 0 (right) at col 9|10 on a 20x20 image; tolerance 1 px.
    label = np.zeros((20, 20), np.int64)
    label[:, :10] = 1
    near, far = np.zeros_like(label), np.zeros_like(label)
    near[:, :11] = 1  # edge moved by one pixel: within tolerance
    far[:, :13] = 1   # moved by three pixels: outside
    m = SegMetric(2)
    m.update(near, label)
    assert m.compute()["boundary_f1"] == pytest.approx(1.0)
    m.reset()
    m.update(far, label)
    assert m.compute()["boundary_f1"] == pytest.approx(0.0)
    m.reset()
    m.update(label, label)
    assert m.compute()["boundary_f1_per_class"] == [1.0, 1.0]


def street():
    """20x20: a car (1) rows 5..14 cols 5..14 and a pole (2) at col 17 rows 2..17 on background (0)."""
    label = square()
    label[2:18, 17] = 2
    return label


def test_connectivity_split_missed_and_spurious_hand_worked():
    label = street()
    pred = square()
    pred[5:15, 9] = 2       # a stripe of class 2 cuts the car in two, and is itself no pole
    pred[0:2, 0:2] = 3      # a blob of class 3, which is not in the label
    m = SegMetric(4)
    m.update(pred, label)
    r = m.compute()
    # regions: background, car, pole = 3; overlapped: background, car = 2; split: car; missed: pole
    # predicted components: background 1, car halves 2, stripe 1, blob 1 = 5; spurious: stripe, blob
    assert r["split_rate"] == pytest.approx(1 / 2)
    assert r["miss_rate"] == pytest.approx(1 / 3)
    assert r["spurious_rate"] == pytest.approx(2 / 5)
    assert r["split_rate_per_class"][:2] == [0.0, 1.0] and math.isnan(r["split_rate_per_class"][2])
    assert r["miss_rate_per_class"][:3] == [0.0, 0.0, 1.0] and math.isnan(r["miss_rate_per_class"][3])
    assert r["spurious_rate_per_class"] == [0.0, 0.0, 1.0, 1.0]
    m.reset()
    m.update(label, label)
    r = m.compute()
    assert (r["split_rate"], r["miss_rate"], r["spurious_rate"]) == (0.0, 0.0, 0.0)


def test_connectivity_counts_pool_over_images():
    m = SegMetric(4)
    m.update(street(), street())           # 3 regions, all found whole
    cut = street()
    cut[5:15, 9] = 0                        # second image: the car split by a background column
    m.update(cut, street())
    r = m.compute()
    assert r["split_rate"] == pytest.approx(1 / 6) and r["miss_rate"] == 0.0


def test_connectivity_leaves_out_specks_and_ignored_pixels():
    # 200x200: min_area = round(1e-4 * 40000) = 4 px, for label and prediction alike
    label = np.zeros((200, 200), np.int64)
    label[50:150, 50:150] = 1
    pred = label.copy()
    pred[10, 10] = 2                  # a 1-pixel speck: no component
    pred[100, 10] = 1                 # nor a 1-pixel piece of the car
    label[180:, :] = 255
    pred[185:195, 20:40] = 3          # predictions on ignored pixels make no component
    m = SegMetric(4)
    m.update(pred, label)
    r = m.compute()
    assert (r["split_rate"], r["miss_rate"], r["spurious_rate"]) == (0.0, 0.0, 0.0)
    pred[10:12, 10:12] = 2            # 4 px: now a spurious component
    m.reset()
    m.update(pred, label)
    assert m.compute()["spurious_rate"] == pytest.approx(1 / 3)


def test_perfect_prediction_scores_perfectly():
    rng = np.random.default_rng(1)
    label = (cv2.GaussianBlur(rng.random((48, 64)), (0, 0), 4) * 12).astype(np.int64) % 4
    label[:4] = 255
    m = SegMetric(4)
    m.update(np.where(label == 255, 0, label), label)
    r = m.compute()
    for k in ("mIoU", "aAcc", "boundary_iou", "boundary_f1"):
        assert r[k] == pytest.approx(1.0), k
    for k in ("split_rate", "miss_rate", "spurious_rate"):
        assert r[k] == 0.0, k


def test_bad_inputs_are_errors():
    m = SegMetric(3)
    with pytest.raises(ValueError, match="shape"):
        m.update(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="label values outside"):
        m.update(np.zeros((1, 2), int), np.array([[0, 7]]))
    with pytest.raises(ValueError, match="prediction values outside"):
        m.update(np.array([[0, 3]]), np.zeros((1, 2), int))
