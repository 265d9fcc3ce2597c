"""Segmentation metrics: the usual IoU family plus what boundary/relation distillation claims to fix.

- `IoU`/`mIoU`, `Acc`/`mAcc`, `aAcc` from one confusion matrix over all images.
- `boundary_iou`: Boundary IoU (Cheng et al., CVPR 2021). A mask's boundary is the mask minus its
  erosion by d = max(1, round(0.02 * image diagonal)) pixels (the image border counts as background,
  as in the reference `mask_to_boundary`); per class, |G_d ∩ P_d| / |G_d ∪ P_d| summed over images.
- `boundary_f1`: boundary F-score (Csurka et al., BMVC 2013): 1-pixel contours matched within a
  tolerance of max(1, round(0.0075 * diagonal)); precision and recall counts summed over images.
- Connectivity, per ground-truth region (connected components of `label == c`, 8-connectivity):
  - `split_rate`: of the regions that at least one predicted component of class c overlaps, the share
    overlapped by two or more (an object broken into pieces);
  - `miss_rate`: the share of regions that no predicted component of their class overlaps;
  - `spurious_rate`: the share of predicted components (every class, also classes absent from the
    label) that overlap no region of their class.
  Counts are pooled over all images and classes (and per class in `*_per_class`). Components smaller
  than `min_area` = max(1, round(1e-4 * H * W)) pixels (3 px at 128x256, 210 px at 1024x2048) are
  dropped from label and prediction alike before matching: single-pixel specks of label noise or
  interpolation are not objects.

Pixels labelled `ignore_index` count nowhere. They are left out of every mask, and for the boundary
metrics they are "don't care" when a boundary is traced: an ignored patch inside an object (a licence
plate) draws no boundary of its own and does not remove the object's true boundary around it (the
ignored pixels themselves are excluded, not a margin around them). A class absent from both prediction
and label has no value (NaN in per-class lists) and is left out of the means. All scalars are fractions
(0..1).
"""
from __future__ import annotations

import cv2
import numpy as np

_K3 = np.ones((3, 3), np.uint8)


def _boundary(mask: np.ndarray, d: int, dont_care: np.ndarray | None = None) -> np.ndarray:
    """Cheng et al.'s mask_to_boundary on a 0/1 uint8 mask: pad with 0, erode with a (2d+1)x(2d+1) square
    (d iterations of 3x3), subtract. `dont_care` pixels erode as if inside the mask (they draw no edge)."""
    h, w = mask.shape
    filled = mask if dont_care is None else (mask | dont_care)
    padded = cv2.copyMakeBorder(filled, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    eroded = cv2.erode(padded, np.ones((2 * d + 1, 2 * d + 1), np.uint8))[1:h + 1, 1:w + 1]
    return (mask > eroded).astype(bool)


def _contour(mask: np.ndarray, dont_care: np.ndarray | None = None) -> np.ndarray:
    """1-pixel inner contour; the image border is not a contour (replicated border), nor is the edge of a
    `dont_care` region."""
    filled = mask if dont_care is None else (mask | dont_care)
    eroded = cv2.erode(filled, _K3, borderType=cv2.BORDER_REPLICATE)
    return (mask > eroded).astype(bool)


def _components(mask: np.ndarray, min_area: int) -> tuple[np.ndarray, int]:
    """(label map with components 1..n of at least min_area pixels, 0 elsewhere; n), 8-connectivity."""
    n, cc, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    keep = np.zeros(n, np.int32)
    big = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] >= min_area) + 1
    keep[big] = np.arange(1, big.size + 1)
    return keep[cc], int(big.size)


def connectivity_counts(g: np.ndarray, p: np.ndarray, min_area: int = 1) -> tuple[int, int, int, int, int, int]:
    """Match the components of two 0/1 masks of one class.

    Returns (regions, overlapped regions, split regions, missed regions, predicted components,
    spurious components): a region is split when >= 2 predicted components overlap it, missed when
    none does; a predicted component is spurious when it overlaps no region."""
    gl, ng = _components(g, min_area)
    pl, npc = _components(p, min_area)
    if ng == 0 or npc == 0:
        return ng, 0, 0, ng, npc, npc
    both = (gl > 0) & (pl > 0)
    pairs = np.unique(gl[both].astype(np.int64) * (npc + 1) + pl[both])
    per_region = np.bincount(pairs // (npc + 1), minlength=ng + 1)[1:]
    matched_pred = np.unique(pairs % (npc + 1)).size
    overlapped = int(np.count_nonzero(per_region))
    return ng, overlapped, int(np.count_nonzero(per_region >= 2)), ng - overlapped, npc, npc - matched_pred


# connectivity counters, per class: regions, overlapped regions, split, missed, predicted components, spurious
_REGIONS, _OVERLAPPED, _SPLIT, _MISSED, _PRED, _SPURIOUS = range(6)


class SegMetric:
    def __init__(self, num_classes: int, ignore_index: int = 255, boundary_ratio: float = 0.02,
                 f1_ratio: float = 0.0075, boundary: bool = True, connectivity: bool = True,
                 min_area_ratio: float = 1e-4):
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.boundary_ratio, self.f1_ratio, self.min_area_ratio = boundary_ratio, f1_ratio, min_area_ratio
        self.with_boundary, self.with_connectivity = boundary, connectivity
        self.reset()

    def reset(self) -> None:
        n = self.num_classes
        self.confusion = np.zeros((n, n), np.int64)  # rows: label, columns: prediction
        self.b_inter = np.zeros(n, np.int64)
        self.b_union = np.zeros(n, np.int64)
        self.f1_counts = np.zeros((n, 4), np.int64)  # matched pred, pred, matched label, label contour pixels
        self.cc_counts = np.zeros((n, 6), np.int64)  # see _REGIONS.._SPURIOUS
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
        if not (self.with_boundary or self.with_connectivity):
            return
        in_label, in_pred = conf.sum(1) > 0, conf.sum(0) > 0
        h, w = label.shape
        diag = (h * h + w * w) ** 0.5
        d_iou = max(1, int(round(self.boundary_ratio * diag)))
        d_f1 = max(1, int(round(self.f1_ratio * diag)))
        min_area = max(1, int(round(self.min_area_ratio * h * w)))
        tol = np.ones((2 * d_f1 + 1, 2 * d_f1 + 1), np.uint8)
        ignored = None if valid.all() else (~valid).astype(np.uint8)
        for c in np.flatnonzero(in_label | in_pred):
            g = ((label == c) & valid).astype(np.uint8)
            p = ((pred == c) & valid).astype(np.uint8)
            if self.with_boundary:
                gb, pb = _boundary(g, d_iou, ignored), _boundary(p, d_iou, ignored)
                self.b_inter[c] += np.count_nonzero(gb & pb)
                self.b_union[c] += np.count_nonzero(gb | pb)
                gc, pc = _contour(g, ignored), _contour(p, ignored)
                near_g = cv2.dilate(gc.astype(np.uint8), tol).astype(bool)
                near_p = cv2.dilate(pc.astype(np.uint8), tol).astype(bool)
                self.f1_counts[c] += (np.count_nonzero(pc & near_g), np.count_nonzero(pc),
                                      np.count_nonzero(gc & near_p), np.count_nonzero(gc))
            if self.with_connectivity:
                self.cc_counts[c] += connectivity_counts(g, p, min_area)

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
        if self.with_connectivity:
            cc = self.cc_counts.astype(np.float64)
            for name, num, den in (("split_rate", _SPLIT, _OVERLAPPED), ("miss_rate", _MISSED, _REGIONS),
                                   ("spurious_rate", _SPURIOUS, _PRED)):
                total = cc[:, den].sum()
                out[name] = float(cc[:, num].sum() / total) if total else float("nan")
                with np.errstate(invalid="ignore", divide="ignore"):
                    out[f"{name}_per_class"] = np.where(cc[:, den] > 0, cc[:, num] / cc[:, den], np.nan).tolist()
        return out
