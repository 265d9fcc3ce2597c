"""With CIRKD's stem, `deeplabv3_resnet18` is CIRKD's student and `deeplabv3_resnet101` its teacher.

The reference is CIRKD's own code (winycg/CIRKD@7e0d21f `models/deeplabv3.py`, `segbase.py`,
`base_models/resnetv1b.py`, the code of its published 74.21 -> 76.38 Cityscapes recipe), run by
tests/layouts/make_layouts.py: its state-dict keys and shapes, parameter count, the geometry of every conv, and
its eval-mode outputs for name-seeded weights on a fixed input (tests/layouts/cirkd_deeplabv3_*.json).
Names map by `distill.models.cirkd.cirkd_key` (CIRKD `pretrained.` -> `backbone.` with the deep stem's
conv1/bn1/conv2/bn2/conv3/bn3 -> stem.0/1/3/4/6/7, `auxlayer.` -> `aux_head.`, `head.` unchanged).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from distill import checkpoint
from distill.models import build_model
from distill.models.cirkd import cirkd_key
from tests.layouts.make_layouts import fingerprint_input, seeded_state

LAYOUTS = Path(__file__).parent / "layouts"
CASES = [("cirkd_deeplabv3_resnet18", "deeplabv3_resnet18", 13_607_974),      # CIRKD paper: 13.6M
         ("cirkd_deeplabv3_resnet101", "deeplabv3_resnet101", 61_118_950)]   # CIRKD paper: 61.1M


def _layout(name):
    return json.loads((LAYOUTS / f"{name}.json").read_text())


@pytest.fixture(scope="module", params=CASES, ids=[c[1] for c in CASES])
def case(request):
    layout_name, arch, params = request.param
    return _layout(layout_name), build_model(arch, 19, stem="v1s"), params


def test_state_dict_is_cirkds_key_for_key(case):
    layout, model, _ = case
    theirs = {cirkd_key(k): shape for k, shape in layout["keys"].items()}
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert len(theirs) == len(layout["keys"])                      # the mapping is one-to-one
    assert sorted(theirs) == sorted(ours), (sorted(set(theirs) - set(ours))[:5], sorted(set(ours) - set(theirs))[:5])
    assert [k for k in theirs if theirs[k] != ours[k]] == []


def test_parameter_count_is_cirkds(case):
    layout, model, params = case
    assert layout["params"] == params
    assert sum(p.numel() for p in model.parameters()) == params


def test_every_conv_has_cirkds_kernel_stride_padding_dilation(case):
    """Shapes cannot see a dilation: CIRKD's BasicBlockV1b keeps the stage's dilation in the second conv of a
    dilated stage's first block, and its ASPP rates are 12/24/36."""
    layout, model, _ = case
    theirs = {cirkd_key(n): g for n, g in layout["convs"].items()}
    ours = {n: [*m.kernel_size, *m.stride, *m.padding, *m.dilation] for n, m in model.named_modules()
            if isinstance(m, nn.Conv2d)}
    assert sorted(theirs) == sorted(ours)
    assert {n: (ours[n], theirs[n]) for n in theirs if ours[n] != theirs[n]} == {}


def test_outputs_equal_cirkds_for_the_same_weights(case):
    """Same weights (seeded by CIRKD's key names), same input: our logits, aux logits and distillation feature
    are the numbers CIRKD's network gave (eval mode; so branch order, pooling and dropout placement agree)."""
    layout, model, _ = case
    model.load_state_dict({cirkd_key(k): v for k, v in seeded_state(layout["keys"]).items()})
    model.eval()
    with torch.no_grad():
        out = model.forward_features(fingerprint_input())
        aux = model.aux_head(out["stages"][2])
    got = {"logits": out["logits"], "aux": aux, "feat_channel_mean": out["feat"].mean((0, 2, 3))}
    for name, ref in layout["outputs"].items():
        want = torch.tensor(ref["values"]).reshape(ref["shape"])
        assert got[name].shape == want.shape, name
        # float32 sums in another order (another thread count) move deep outputs by ~1e-5 of their scale; an
        # architecture slip (a dilation, the branch order) moves them by their scale
        scale = want.abs().max().item()
        torch.testing.assert_close(got[name], want, rtol=1e-3, atol=1e-3 * scale, msg=lambda m: f"{name}: {m}")


def test_cirkd_imagenet_file_builds_cirkds_student_and_its_checkpoint_rebuilds_it(tmp_path):
    """`pretrained=` CIRKD's resnet18-imagenet.pth with stem="v1s", which brings CIRKD's head; a checkpoint
    records only that, and rebuilds the same network (the BRD taps: 4 stages, the 128-channel head feature)."""
    from tests.test_recipes import imagenet_file

    weights = imagenet_file(tmp_path / "resnet18-imagenet.pth", "cirkd_resnet18_v1s")
    model = build_model("deeplabv3_resnet18", 19, pretrained=str(weights), stem="v1s")
    assert model.arch_kwargs == {"stem": "v1s"} and model.pretrained_report.complete
    assert sorted(k for k in model.state_dict() if k.startswith("head.aspp.b1")) == [
        "head.aspp.b1.block.0.weight", "head.aspp.b1.block.1.bias", "head.aspp.b1.block.1.num_batches_tracked",
        "head.aspp.b1.block.1.running_mean", "head.aspp.b1.block.1.running_var", "head.aspp.b1.block.1.weight"]
    path = tmp_path / "student.pt"
    classes = [f"c{i}" for i in range(19)]
    checkpoint.save(path, model, checkpoint.make_meta("deeplabv3_resnet18", model.arch_kwargs, 19, classes,
                                                      [[i, i, i] for i in range(19)], [0, 0, 0], [1, 1, 1],
                                                      [512, 1024], "cityscapes"))
    rebuilt, meta = checkpoint.load(path)
    assert meta["arch_kwargs"] == {"stem": "v1s"}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    rebuilt.train()
    out = rebuilt.forward_features(torch.randn(2, 3, 64, 64))
    assert [s.shape[1] for s in out["stages"]] == [64, 128, 256, 512] and out["feat"].shape[1:] == (128, 8, 8)
    assert out["aux"].shape == out["logits"].shape == (2, 19, 8, 8)


def test_the_mmseg_head_stays_selectable_with_the_cirkd_stem():
    model = build_model("deeplabv3_resnet18", 19, stem="v1s", aspp="mmseg")
    assert model.feat_channels == 256 and hasattr(model.head, "branches")
    with pytest.raises(ValueError, match="aspp must be"):
        build_model("deeplabv3_resnet18", 19, aspp="deeplab")
    with pytest.raises(ValueError, match="DeepLabV3 option"):
        build_model("pspnet_resnet18", 19, aspp="cirkd")
