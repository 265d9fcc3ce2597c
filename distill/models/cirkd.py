"""CIRKD's DeepLabV3 decode head and auxiliary head (winycg/CIRKD `models/deeplabv3.py`, commit 7e0d21f, the
code of its published Cityscapes results: DeepLabV3-ResNet18 student 74.21 -> 76.38 mIoU with a
DeepLabV3-ResNet101 teacher). Built by `deeplabv3_resnet*` with `aspp="cirkd"`, the default with the "v1s" stem.

Submodules carry CIRKD's names (`aspp.b0` ... `aspp.project`, `block`), so a CIRKD checkpoint maps onto
these models by renaming its backbone and aux head only (`cirkd_key`). Where our code departs from CIRKD's
it says so; docs/method.md lists the design choices with CIRKD's file/line references.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

# CIRKD's rates (deeplabv3.py:75) are for output stride 8; halved at OS16 like ours
RATES = {8: (12, 24, 36), 16: (6, 12, 18)}
_STEM = {"conv1": "stem.0", "bn1": "stem.1", "conv2": "stem.3", "bn2": "stem.4", "conv3": "stem.6", "bn3": "stem.7"}


def cirkd_channels(cin: int) -> int:
    """CIRKD's ASPP width: 128 after ResNet-18/34's 512-channel stage, 256 after ResNet-50/101's 2048
    (deeplabv3.py:77-80 and 133-136; it raises for any other input)."""
    return 128 if cin <= 512 else 256


def _cbr(cin, cout, kernel=1, dilation=1):
    pad = (kernel - 1) // 2 * dilation
    return [nn.Conv2d(cin, cout, kernel, padding=pad, dilation=dilation, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True)]


class CIRKDASPP(nn.Module):
    """`_ASPP`: 1x1 branch `b0`, three 3x3 atrous branches `b1-b3`, image pooling `b4`, concatenated in that
    order, then a 1x1 projection with BN, ReLU and element-wise Dropout(0.5)."""

    def __init__(self, cin, channels, rates=RATES[8]):
        super().__init__()
        self.b0 = nn.Sequential(*_cbr(cin, channels))
        # CIRKD wraps each atrous branch (`_ASPPConv`) and the pooling (`_AsppPooling`) in a module holding one
        # Sequential (`block`, `gap`); the OrderedDicts reproduce those names without the extra classes
        self.b1, self.b2, self.b3 = (nn.Sequential(OrderedDict(block=nn.Sequential(*_cbr(cin, channels, 3, r))))
                                     for r in rates)
        self.b4 = nn.Sequential(OrderedDict(gap=nn.Sequential(nn.AdaptiveAvgPool2d(1), *_cbr(cin, channels))))
        self.project = nn.Sequential(*_cbr(5 * channels, channels), nn.Dropout(0.5))

    def forward(self, x):
        # CIRKD upsamples the 1x1 pooled map with align_corners=True; from a 1x1 map every mode gives the same
        pooled = F.interpolate(self.b4(x), size=x.shape[2:], mode="bilinear", align_corners=False)
        return self.project(torch.cat([self.b0(x), self.b1(x), self.b2(x), self.b3(x), pooled], dim=1))


class CIRKDDeepLabHead(nn.Module):
    """`_DeepLabHead`: ASPP, then `block` = 3x3 conv + BN + ReLU, Dropout(0.1), 1x1 classifier.

    The distillation feature is the 3x3 block's output before its dropout. CIRKD hands its losses the same
    tensor after Dropout(0.1) (`x_feat_after_aspp`, deeplabv3.py:94-95); in eval mode the two are equal."""

    def __init__(self, cin, num_classes, channels=None, rates=RATES[8]):
        super().__init__()
        channels = channels or cirkd_channels(cin)
        self.aspp = CIRKDASPP(cin, channels, rates)
        self.block = nn.Sequential(*_cbr(channels, channels, 3), nn.Dropout(0.1), nn.Conv2d(channels, num_classes, 1))
        self.channels = channels

    def forward(self, x):
        feat = self.block[:3](self.aspp(x))
        return feat, self.block[4](self.block[3](feat))


class CIRKDFCNHead(nn.Module):
    """`_FCNHead` on the third stage: 3x3 conv to a quarter of the channels, BN, ReLU, Dropout(0.1), 1x1."""

    def __init__(self, cin, num_classes):
        super().__init__()
        self.block = nn.Sequential(*_cbr(cin, cin // 4, 3), nn.Dropout(0.1), nn.Conv2d(cin // 4, num_classes, 1))

    def forward(self, x):
        return self.block(x)


def cirkd_key(key: str) -> str:
    """A CIRKD DeepLabV3 state-dict key -> ours: `pretrained.` (its ResNetV1b) becomes `backbone.`, with the
    deep stem's conv1/bn1/conv2/bn2/conv3/bn3 as stem.0/1/3/4/6/7; `auxlayer.` becomes `aux_head.`; `head.`
    is the same."""
    if key.startswith("pretrained."):
        rest = key[len("pretrained."):]
        first, dot, tail = rest.partition(".")
        return "backbone." + (_STEM[first] + dot + tail if first in _STEM else rest)
    if key.startswith("auxlayer."):
        return "aux_head." + key[len("auxlayer."):]
    return key
