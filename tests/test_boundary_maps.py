"""benchmarks.gain.boundary_maps: label boundaries, cell reduction and the tolerance-matched P/R scores, by hand."""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks.gain.boundary_maps import PRCounter, label_boundaries, main, to_cells

from .conftest import write_synthetic_student


def test_label_boundaries_mark_both_sides_and_never_ignore():
    label = np.zeros((4, 6), np.int64)
    label[:, 3:] = 1
    label[0, :] = 255
    edge, valid = label_boundaries(label)
    assert edge[1:, 2].all() and edge[1:, 3].all()     # both sides of the class change
    assert not edge[0].any() and not valid[0].any()    # ignored row: no boundary, and not next to it
    assert edge.sum() == 6


def test_to_cells_any_and_all():
    m = np.zeros((8, 8), bool)
    m[0, 0] = True
    assert to_cells(m, (2, 2), "any").tolist() == [[True, False], [False, False]]
    assert not to_cells(m, (2, 2), "all").any()
    assert to_cells(np.ones((8, 8), bool), (4, 4), "all").all()


def test_a_perfect_map_scores_one_and_a_random_map_does_not():
    rng = np.random.default_rng(0)
    gt = np.zeros((16, 32), bool)
    gt[:, 10] = gt[5, :] = True
    valid = np.ones_like(gt)
    perfect, shifted, noise = PRCounter(0), PRCounter(1), PRCounter(0)
    perfect.update(gt.astype(float), gt, valid)
    shifted.update(np.roll(gt, 1, axis=1).astype(float), gt, valid)   # 1 cell off: within tolerance 1
    noise.update(rng.random(gt.shape), gt, valid)
    assert perfect.scores()["best_f"] == 1.0 and perfect.scores()["ap"] == pytest.approx(1.0)
    assert shifted.scores()["best_f"] > 0.9
    share = gt.mean()
    assert noise.scores()["best_f"] < 0.5 and noise.scores()["ap"] == pytest.approx(share, abs=0.05)


def test_cli_scores_every_stage_and_writes_the_report(tmp_path):
    ckpt = write_synthetic_student(tmp_path / "m.pt")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"model: {{arch: deeplabv3_resnet10_w16}}\ndata: {{dataset: synthetic, root: {tmp_path / 'data'}, "
                   f"crop_size: [32, 64], kwargs: {{num_images: 2, size: [32, 64]}}, "
                   f"val_kwargs: {{num_images: 3, size: [32, 64]}}}}\n")
    assert main(["--model", str(ckpt), "--cfg", str(cfg), "--images", "3", "--out-dir", str(tmp_path / "out")]) == 0
    text = (tmp_path / "out" / "boundary_maps.md").read_text()
    for name in ("stage 1", "stage 4", "fused (stride 4)", "random best F", "python -m benchmarks.gain.boundary_maps"):
        assert name in text
    assert (tmp_path / "data" / "synthetic_tune.json").is_file()     # it read the tuning split, not val
    assert not (tmp_path / "data" / "synthetic_val.json").exists()
    assert main(["--model", str(ckpt), "--cfg", str(cfg), "--images", "1", "--tolerance", "0", "--name", "maps_b",
                 "--out-dir", str(tmp_path / "out")]) == 0                # --name: beside the first, not over it
    assert "![maps](maps_b.png)" in (tmp_path / "out" / "maps_b.md").read_text()
    assert (tmp_path / "out" / "maps_b.png").is_file() and "fused" in (tmp_path / "out" / "boundary_maps.md").read_text()
    assert main(["--model", str(tmp_path / "nope.pt"), "--cfg", str(cfg)]) == 2
