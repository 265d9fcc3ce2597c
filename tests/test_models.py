"""Model zoo: shapes, strides, distillation taps and pretrained-weight key mapping."""
from __future__ import annotations

import pytest
import torch

from distill.models import build_model, list_models, load_pretrained
from distill.models.mobilenetv2 import MobileNetV2
from distill.models.resnet import resnet

REQUIRED = {"deeplabv3_resnet101", "deeplabv3_resnet18", "deeplabv3_mobilenetv2", "pspnet_resnet18",
            "deeplabv3_resnet18_w32", "deeplabv3_resnet10_w16", "lraspp_mobilenetv2_w035"}
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
        assert feats["logits"].shape == (1, 7, -(-h // 8), -(-w // 8))
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


def _torchvision_resnet18_state():
    """The key layout of torchvision's resnet18 file (7x7 stem + fc), with recognisable values."""
    net = resnet(18, deep_stem=False)
    sd = {k: torch.full_like(v, 0.5) if v.is_floating_point() else v for k, v in net.state_dict().items()}
    sd["fc.weight"], sd["fc.bias"] = torch.zeros(1000, 512), torch.zeros(1000)
    return sd


def test_pretrained_torchvision_resnet(tmp_path):
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(_torchvision_resnet18_state(), path)
    model = build_model("deeplabv3_resnet18", 5, deep_stem=False)
    report = load_pretrained(model, path)
    assert report.missing == [] and report.unexpected == []  # the ImageNet classifier is dropped on purpose
    assert torch.all(model.backbone.layer4[1].conv2.weight == 0.5)


def test_pretrained_cirkd_and_mmseg_deep_stem(tmp_path):
    ours = resnet(18).state_dict()
    # CIRKD's resnet18-imagenet.pth: conv1/bn1/conv2/bn2/conv3/bn3 for the deep stem
    stem_names = {"stem.0": "conv1", "stem.1": "bn1", "stem.3": "conv2", "stem.4": "bn2", "stem.6": "conv3", "stem.7": "bn3"}
    cirkd = {}
    for k, v in ours.items():
        head = ".".join(k.split(".")[:2])
        cirkd[stem_names[head] + k[len(head):] if head in stem_names else k] = torch.full_like(v, 0.25) if v.is_floating_point() else v
    torch.save(cirkd, tmp_path / "cirkd.pth")
    model = build_model("deeplabv3_resnet18", 5)
    report = load_pretrained(model, tmp_path / "cirkd.pth")
    assert report.missing == [] and report.unexpected == []
    assert torch.all(model.backbone.stem[6].weight == 0.25)
    # mmseg: {"state_dict": {"backbone.stem.0.weight": ...}}
    mm = {"meta": {}, "state_dict": {"backbone." + k: torch.full_like(v, 0.75) if v.is_floating_point() else v for k, v in ours.items()}}
    torch.save(mm, tmp_path / "mmseg.pth")
    report = load_pretrained(model, tmp_path / "mmseg.pth")
    assert report.missing == [] and torch.all(model.backbone.stem[0].weight == 0.75)


def _mmseg_mobilenetv2_names(state: dict) -> dict:
    """Our torchvision-layout keys -> mmseg's (conv1.conv|bn, layerK.J.conv.I.conv|bn), built independently."""
    blocks_per_layer = [1, 2, 3, 4, 3, 3, 1]
    block_to_layer = [(li + 1, j) for li, n in enumerate(blocks_per_layer) for j in range(n)]
    names, unit_index = {}, {}
    for key in state:
        unit, leaf = key.rsplit(".", 1)
        parts = unit.split(".")
        block = int(parts[1])
        if block == 0:
            mm = "conv1." + ("conv" if parts[2] == "0" else "bn")
        else:
            units = unit_index.setdefault(block, [])
            if unit not in units:
                units.append(unit)
            c = units.index(unit)
            layer, j = block_to_layer[block - 1]
            mm = f"layer{layer}.{j}.conv.{c // 2}.{'conv' if c % 2 == 0 else 'bn'}"
        names[key] = f"{mm}.{leaf}"
    return names


def test_pretrained_mobilenetv2_mmseg_layout(tmp_path):
    ours = MobileNetV2().state_dict()
    mm = {"backbone." + name: (torch.full_like(ours[k], 0.125) if ours[k].is_floating_point() else ours[k])
          for k, name in _mmseg_mobilenetv2_names(ours).items()}
    mm["backbone.conv2.conv.weight"] = torch.zeros(1280, 320, 1, 1)  # mmseg's last 1x1, absent here
    torch.save({"state_dict": mm}, tmp_path / "mbv2_mmseg.pth")
    model = build_model("deeplabv3_mobilenetv2", 5)
    report = load_pretrained(model, tmp_path / "mbv2_mmseg.pth")
    assert report.missing == []
    assert all(torch.all(v == 0.125) for k, v in model.backbone.state_dict().items() if k.endswith("weight"))


def test_pretrained_torchvision_mobilenetv2(tmp_path):
    ours = MobileNetV2().state_dict()
    tv = {k: torch.full_like(v, -1.0) if v.is_floating_point() else v for k, v in ours.items()}
    tv["features.18.0.weight"] = torch.zeros(1280, 320, 1, 1)  # torchvision's last ConvBNReLU
    tv["classifier.1.weight"] = torch.zeros(1000, 1280)
    torch.save(tv, tmp_path / "mobilenet_v2-b0353104.pth")
    model = build_model("deeplabv3_mobilenetv2", 5)
    report = load_pretrained(model, tmp_path / "mobilenet_v2-b0353104.pth")
    assert report.missing == [] and report.unexpected == ["features.18.0.weight"]
    assert torch.all(model.backbone.features[17].conv[2].weight == -1.0)


def test_pretrained_errors(tmp_path):
    model = build_model("deeplabv3_resnet10_w16", 3)
    with pytest.raises(FileNotFoundError, match="pretrained weights not found: .*nothing is downloaded"):
        load_pretrained(model, tmp_path / "missing.pth")
    torch.save({"a": torch.zeros(3)}, tmp_path / "foreign.pth")
    with pytest.raises(ValueError, match="no tensor matches"):
        load_pretrained(model, tmp_path / "foreign.pth")
