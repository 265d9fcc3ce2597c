"""Model zoo: shapes, strides and distillation taps (weight files: tests/test_pretrained.py)."""
from __future__ import annotations

import pytest
import torch

from distill.models import build_model, list_models

REQUIRED = {"deeplabv3_resnet101", "deeplabv3_resnet18", "deeplabv3_mobilenetv2", "pspnet_resnet18",
            "deeplabv3_resnet18_w32", "deeplabv3_resnet10_w16", "lraspp_mobilenetv2_w035",
            "lraspp_mobilenetv3_large", "lraspp_efficientnet_lite0", "deeplabv3plus_efficientnet_lite2"}
BIG = {"deeplabv3_resnet101", "deeplabv3_resnet50"}


def test_registry_has_the_recipe_models():
    assert REQUIRED <= set(list_models())
    with pytest.raises(KeyError, match="unknown model 'nope'"):
        build_model("nope", 3)


@pytest.mark.parametrize("name", list_models())
def test_forward_shapes_and_feature_taps(name):
    model = build_model(name, 7).eval()
    sizes = [(64, 96)] if name in BIG else [(64, 128), (96, 80)]
    for h, w in sizes:
        x = torch.randn(1, 3, h, w)
        with torch.no_grad():
            out = model(x)
            feats = model.forward_features(x)
        assert isinstance(out, torch.Tensor) and out.shape == (1, 7, h, w)
        stages = feats["stages"]
        assert len(stages) == 4
        for s, c, stride in zip(stages, model.stage_channels, model.backbone.strides):
            assert s.shape == (1, c, -(-h // stride), -(-w // stride)), (name, s.shape, c, stride)
        assert feats["feat"].shape[1] == model.feat_channels
        stride = model.head_stride
        assert stride == (4 if name.startswith("deeplabv3plus") else 8)
        assert feats["logits"].shape == (1, 7, -(-h // stride), -(-w // stride))
        assert feats["feat"].shape[2:] == feats["logits"].shape[2:]
        assert feats["aux"] is None  # aux head only in training


def test_aux_head_in_training_only():
    model = build_model("deeplabv3_resnet10_w16", 4).train()
    feats = model.forward_features(torch.randn(2, 3, 64, 64))
    assert feats["aux"].shape == (2, 4, 8, 8)
    assert build_model("deeplabv3_resnet10_w16", 4, aux=False).train().forward_features(torch.randn(2, 3, 64, 64))["aux"] is None


def test_output_stride_16_halves_the_maps():
    model = build_model("deeplabv3_resnet10_w16", 3, output_stride=16).eval()
    feats = model.forward_features(torch.randn(1, 3, 64, 64))
    assert [s.shape[-1] for s in feats["stages"]] == [16, 8, 4, 4]
