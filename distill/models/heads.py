"""Decode heads. Each returns (pre-classifier feature, logits at the feature's stride)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_bn_relu(cin, cout, kernel=1, dilation=1):
    pad = (kernel - 1) // 2 * dilation
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=pad, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class ASPPHead(nn.Module):
    """DeepLabV3: atrous spatial pyramid pooling with image pooling (mmseg's ASPPHead)."""

    def __init__(self, cin, num_classes, channels=256, dilations=(1, 12, 24, 36), dropout=0.1):
        super().__init__()
        self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), conv_bn_relu(cin, channels))
        self.branches = nn.ModuleList(
            conv_bn_relu(cin, channels, 1 if d == 1 else 3, d) for d in dilations
        )
        self.bottleneck = conv_bn_relu(channels * (len(dilations) + 1), channels, 3)
        self.dropout = nn.Dropout2d(dropout)
        self.cls = nn.Conv2d(channels, num_classes, 1)
        self.channels = channels

    def forward(self, x):
        pooled = F.interpolate(self.image_pool(x), size=x.shape[2:], mode="bilinear", align_corners=False)
        feat = self.bottleneck(torch.cat([pooled] + [b(x) for b in self.branches], dim=1))
        return feat, self.cls(self.dropout(feat))


class PSPHead(nn.Module):
    """PSPNet pyramid pooling module (bins 1, 2, 3, 6)."""

    def __init__(self, cin, num_classes, channels=512, bins=(1, 2, 3, 6), dropout=0.1):
        super().__init__()
        self.stages = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(b), conv_bn_relu(cin, channels)) for b in bins
        )
        self.bottleneck = conv_bn_relu(cin + channels * len(bins), channels, 3)
        self.dropout = nn.Dropout2d(dropout)
        self.cls = nn.Conv2d(channels, num_classes, 1)
        self.channels = channels

    def forward(self, x):
        size = x.shape[2:]
        pyramid = [F.interpolate(s(x), size=size, mode="bilinear", align_corners=False) for s in self.stages]
        feat = self.bottleneck(torch.cat([x] + pyramid, dim=1))
        return feat, self.cls(self.dropout(feat))


class LRASPPHead(nn.Module):
    """Lite R-ASPP (MobileNetV3 paper): a gated high-level branch plus a low-level classifier.

    Takes the stage list; the low-level skip comes from the stride-8 stage so logits are at 1/8.
    """

    def __init__(self, low_channels, high_channels, num_classes, channels=128):
        super().__init__()
        self.cbr = conv_bn_relu(high_channels, channels)
        self.scale = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(high_channels, channels, 1), nn.Sigmoid())
        self.low_cls = nn.Conv2d(low_channels, num_classes, 1)
        self.high_cls = nn.Conv2d(channels, num_classes, 1)
        self.channels = channels

    def forward(self, low, high):
        feat = self.cbr(high) * self.scale(high)
        feat = F.interpolate(feat, size=low.shape[2:], mode="bilinear", align_corners=False)
        return feat, self.low_cls(low) + self.high_cls(feat)


class FCNHead(nn.Module):
    """Auxiliary head on the third stage (training only; weight 0.4 in the standard recipe)."""

    def __init__(self, cin, num_classes, channels=256, dropout=0.1):
        super().__init__()
        self.conv = conv_bn_relu(cin, channels, 3)
        self.dropout = nn.Dropout2d(dropout)
        self.cls = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x):
        return self.cls(self.dropout(self.conv(x)))


def separable_conv_bn_relu(cin, cout, dilation=1):
    """3x3 depthwise (dilated) then 1x1 pointwise, each with BN and ReLU (mmseg's DepthwiseSeparableConvModule)."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, padding=dilation, dilation=dilation, groups=cin, bias=False),
        nn.BatchNorm2d(cin),
        nn.ReLU(inplace=True),
        conv_bn_relu(cin, cout),
    )


class DeepLabV3PlusHead(nn.Module):
    """DeepLabV3+ (Chen et al., ECCV 2018; mmseg's DepthwiseSeparableASPPHead): separable ASPP with image
    pooling on the high-level feature, then a decoder that fuses it with a stride-4 low-level feature projected
    to `low_proj` channels, through two separable 3x3 convs. Feature and logits are at the low-level stride,
    which is the fine path a stride-16 backbone lacks for thin classes and boundaries."""

    def __init__(self, low_channels, high_channels, num_classes, channels=256, low_proj=48,
                 dilations=(1, 6, 12, 18), dropout=0.1):
        super().__init__()
        self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), conv_bn_relu(high_channels, channels))
        self.branches = nn.ModuleList(
            conv_bn_relu(high_channels, channels) if d == 1 else separable_conv_bn_relu(high_channels, channels, d)
            for d in dilations)
        self.bottleneck = conv_bn_relu(channels * (len(dilations) + 1), channels, 3)
        self.low_proj = conv_bn_relu(low_channels, low_proj)
        self.fuse = nn.Sequential(separable_conv_bn_relu(channels + low_proj, channels),
                                  separable_conv_bn_relu(channels, channels))
        self.dropout = nn.Dropout2d(dropout)
        self.cls = nn.Conv2d(channels, num_classes, 1)
        self.channels = channels

    def forward(self, low, high):
        pooled = F.interpolate(self.image_pool(high), size=high.shape[2:], mode="bilinear", align_corners=False)
        aspp = self.bottleneck(torch.cat([pooled] + [b(high) for b in self.branches], dim=1))
        aspp = F.interpolate(aspp, size=low.shape[2:], mode="bilinear", align_corners=False)
        feat = self.fuse(torch.cat([self.low_proj(low), aspp], dim=1))
        return feat, self.cls(self.dropout(feat))
