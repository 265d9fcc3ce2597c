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
    # Masks are cut at the ignore edge (col 10) and boundary pixels within d = 1 of it (col 9) are not
    # counted. Label ring in cols 5..8: rows 5 and 14 (4 px each) + col 5 rows 6..13 (8) = 16.
    # Prediction ring (square from col 6): rows 5 and 14, cols 6..8 (3 each) + col 6 rows 6..13 (8) = 14.
    # Shared: rows 5 and 14, cols 6..8 = 6. Boundary IoU = 6 / (16 + 14 - 6).
    assert m.compute()["boundary_iou_per_class"][1] == pytest.approx(6 / 24)


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


def test_fragmentation_counts_components_per_class_present():
    label = square()
    pred = square()
    pred[5:15, 9] = 2       # a column of class 2 splits the square in two
    label[0, :] = 255
    pred[0, :] = 1          # predictions on ignore pixels add no component
    m = SegMetric(3)
    m.update(pred, label)
    r = m.compute()
    # class 1: 2 predicted / 1 true ; class 0: 1 / 1 ; class 2 not in the label: not counted
    assert r["fragmentation_per_class"][:2] == [1.0, 2.0] and math.isnan(r["fragmentation_per_class"][2])
    assert r["fragmentation"] == pytest.approx(1.5)
    missed = square(cls=0)  # second image: class 1 not predicted at all -> ratio 0
    m.update(missed, square())
    r = m.compute()
    assert r["fragmentation_per_class"][1] == pytest.approx(1.0)  # (2 + 0) / 2
    assert r["fragmentation"] == pytest.approx((1 + 2 + 1 + 0) / 4)


def test_perfect_prediction_scores_perfectly():
    rng = np.random.default_rng(1)
    label = (cv2.GaussianBlur(rng.random((48, 64)), (0, 0), 4) * 12).astype(np.int64) % 4
    label[:4] = 255
    m = SegMetric(4)
    m.update(np.where(label == 255, 0, label), label)
    r = m.compute()
    for k in ("mIoU", "aAcc", "boundary_iou", "boundary_f1", "fragmentation"):
        assert r[k] == pytest.approx(1.0), k


def test_bad_inputs_are_errors():
    m = SegMetric(3)
    with pytest.raises(ValueError, match="shape"):
        m.update(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="label values outside"):
        m.update(np.zeros((1, 2), int), np.array([[0, 7]]))
    with pytest.raises(ValueError, match="prediction values outside"):
        m.update(np.array([[0, 3]]), np.zeros((1, 2), int))
