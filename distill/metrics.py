"""Segmentation metrics: the usual IoU family plus what boundary/relation distillation claims to fix.

- `IoU`/`mIoU`, `Acc`/`mAcc`, `aAcc` from one confusion matrix over all images.
- `boundary_iou`: Boundary IoU (Cheng et al., CVPR 2021). A mask's boundary is the mask minus its
  erosion by d = max(1, round(0.02 * image diagonal)) pixels (the image border counts as background,
  as in the reference `mask_to_boundary`); per class, |G_d ∩ P_d| / |G_d ∪ P_d| summed over images.
- `boundary_f1`: boundary F-score (Csurka et al., BMVC 2013): 1-pixel contours matched within a
  tolerance of max(1, round(0.0075 * diagonal)); precision and recall counts summed over images.
- `fragmentation`: for every (image, class present in the label), predicted connected components /
  true connected components (8-connectivity), averaged; 1.0 is ideal, > 1 means split or speckled
  objects, < 1 merged or missed ones.

Pixels labelled `ignore_index` count nowhere: masks are restricted to labelled pixels, and boundary
pixels within d of an ignored pixel are not counted (the ignore region's edge is no object boundary). A class absent from both prediction and label has no value (NaN in per-class lists) and is
left out of the means. Scalars are fractions (0..1), except `fragmentation` which is a ratio.
"""
from __future__ import annotations

import cv2
import numpy as np

_K3 = np.ones((3, 3), np.uint8)


def _boundary(mask: np.ndarray, d: int) -> np.ndarray:
    """Cheng et al.'s mask_to_boundary on a 0/1 uint8 mask: pad with 0, erode d times with a 3x3 square,
    subtract. d iterations of a 3x3 erosion equal one (2d+1)x(2d+1) erosion."""
    h, w = mask.shape
    padded = cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    eroded = cv2.erode(padded, np.ones((2 * d + 1, 2 * d + 1), np.uint8))[1:h + 1, 1:w + 1]
    return (mask - eroded).astype(bool)


def _contour(mask: np.ndarray) -> np.ndarray:
    """1-pixel inner contour; the image border is not a contour (replicated border)."""
    eroded = cv2.erode(mask, _K3, borderType=cv2.BORDER_REPLICATE)
    return (mask - eroded).astype(bool)


class SegMetric:
    def __init__(self, num_classes: int, ignore_index: int = 255, boundary_ratio: float = 0.02,
                 f1_ratio: float = 0.0075, boundary: bool = True, fragmentation: bool = True):
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.boundary_ratio, self.f1_ratio = boundary_ratio, f1_ratio
        self.with_boundary, self.with_fragmentation = boundary, fragmentation
        self.reset()

    def reset(self) -> None:
        n = self.num_classes
        self.confusion = np.zeros((n, n), np.int64)  # rows: label, columns: prediction
        self.b_inter = np.zeros(n, np.int64)
        self.b_union = np.zeros(n, np.int64)
        self.f1_counts = np.zeros((n, 4), np.int64)  # matched pred, pred, matched label, label contour pixels
        self.frag_sum = np.zeros(n, np.float64)
        self.frag_count = np.zeros(n, np.int64)
        self.num_images = 0

    def update(self, pred: np.ndarray, label: np.ndarray) -> None:
        """Add one image (HxW) or a batch (NxHxW) of integer predictions and labels."""
        pred, label = np.asarray(pred), np.asarray(label)
        if pred.shape != label.shape:
            raise ValueError(f"prediction shape {pred.shape} differs from label shape {label.shape}")
        if pred.ndim == 3:
            for p, t in zip(pred, label):
                self.update(p, t)
            return
        if pred.ndim != 2:
            raise ValueError(f"expected HxW or NxHxW arrays, got shape {pred.shape}")
        n = self.num_classes
        label = label.astype(np.int64, copy=False)
        pred = pred.astype(np.int64, copy=False)
        valid = label != self.ignore_index
        lv, pv = label[valid], pred[valid]
        if lv.size and (lv.min() < 0 or lv.max() >= n):
            raise ValueError(f"label values outside 0..{n - 1} (and {self.ignore_index} = ignore): "
                             f"{np.unique(lv[(lv < 0) | (lv >= n)])[:10].tolist()}")
        if pv.size and (pv.min() < 0 or pv.max() >= n):
            raise ValueError(f"prediction values outside 0..{n - 1}: {np.unique(pv[(pv < 0) | (pv >= n)])[:10].tolist()}")
        conf = np.bincount(lv * n + pv, minlength=n * n).reshape(n, n)
        self.confusion += conf
        self.num_images += 1
        if not (self.with_boundary or self.with_fragmentation):
            return
        in_label, in_pred = conf.sum(1) > 0, conf.sum(0) > 0
        h, w = label.shape
        diag = (h * h + w * w) ** 0.5
        d_iou = max(1, int(round(self.boundary_ratio * diag)))
        d_f1 = max(1, int(round(self.f1_ratio * diag)))
        tol = np.ones((2 * d_f1 + 1, 2 * d_f1 + 1), np.uint8)
        # Masks are cut where the label is ignore, which draws the same artificial edge into label and
        # prediction; boundary pixels are only counted farther than d from any ignored pixel.
        core_iou = core_f1 = valid
        if self.with_boundary and not valid.all():
            v = valid.astype(np.uint8)
            core_iou = cv2.erode(v, np.ones((2 * d_iou + 1,) * 2, np.uint8)).astype(bool)
            core_f1 = cv2.erode(v, np.ones((2 * d_f1 + 1,) * 2, np.uint8)).astype(bool)
        for c in np.flatnonzero(in_label | in_pred):
            g = ((label == c) & valid).astype(np.uint8)
            p = ((pred == c) & valid).astype(np.uint8)
            if self.with_boundary:
                gb, pb = _boundary(g, d_iou) & core_iou, _boundary(p, d_iou) & core_iou
                self.b_inter[c] += np.count_nonzero(gb & pb)
                self.b_union[c] += np.count_nonzero(gb | pb)
                gc, pc = _contour(g) & core_f1, _contour(p) & core_f1
                near_g = cv2.dilate(gc.astype(np.uint8), tol).astype(bool)
                near_p = cv2.dilate(pc.astype(np.uint8), tol).astype(bool)
                self.f1_counts[c] += (np.count_nonzero(pc & near_g), np.count_nonzero(pc),
                                      np.count_nonzero(gc & near_p), np.count_nonzero(gc))
            if self.with_fragmentation and in_label[c]:
                n_true = cv2.connectedComponents(g, connectivity=8)[0] - 1
                n_pred = cv2.connectedComponents(p, connectivity=8)[0] - 1 if in_pred[c] else 0
                self.frag_sum[c] += n_pred / n_true
                self.frag_count[c] += 1

    def compute(self) -> dict:
        conf = self.confusion.astype(np.float64)
        tp, gt, pr = np.diag(conf), conf.sum(1), conf.sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(gt + pr > 0, tp / (gt + pr - tp), np.nan)
            acc = np.where(gt > 0, tp / gt, np.nan)
            b_iou = np.where(self.b_union > 0, self.b_inter / self.b_union, np.nan)
            mp, np_, mg, ng = self.f1_counts.T.astype(np.float64)
            precision = np.where(np_ > 0, mp / np_, 0.0)
            recall = np.where(ng > 0, mg / ng, 0.0)
            f1 = np.where(np_ + ng > 0, np.where(precision + recall > 0,
                                                 2 * precision * recall / (precision + recall), 0.0), np.nan)
            frag = np.where(self.frag_count > 0, self.frag_sum / self.frag_count, np.nan)

        def mean(x):
            x = x[~np.isnan(x)]
            return float(x.mean()) if x.size else float("nan")

        out = {
            "mIoU": mean(iou), "mAcc": mean(acc),
            "aAcc": float(tp.sum() / conf.sum()) if conf.sum() else float("nan"),
            "IoU": iou.tolist(), "Acc": acc.tolist(),
            "num_images": self.num_images,
        }
        if self.with_boundary:
            out.update(boundary_iou=mean(b_iou), boundary_f1=mean(f1),
                       boundary_iou_per_class=b_iou.tolist(), boundary_f1_per_class=f1.tolist())
        if self.with_fragmentation:
            out.update(fragmentation=float(self.frag_sum.sum() / self.frag_count.sum()) if self.frag_count.sum()
                       else float("nan"), fragmentation_per_class=frag.tolist())
        return out
