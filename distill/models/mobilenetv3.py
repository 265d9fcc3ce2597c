"""MobileNetV3-Large (Howard et al., "Searching for MobileNetV3", ICCV 2019), torchvision layout.

The block table, the squeeze-excitation (ReLU, then hard-sigmoid; squeeze to expanded/4 rounded to 8)
and the key names (`features.N.block.M...`) follow torchvision's `models/mobilenetv3.py`, so its
ImageNet file (mobilenet_v3_large-*.pth) loads by name. For segmentation the paper (section 6.4) and
torchvision's LR-ASPP trade the last stride for dilation (output stride 16); the paper also halves the
channels of the last block (`reduced_tail`, no ImageNet file has that tail).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .mobilenetv2 import _make_divisible, stage_outputs

# kernel, expanded, out, SE, activation, stride (torchvision's _mobilenet_v3_conf "mobilenet_v3_large")
_LARGE = [(3, 16, 16, False, "RE", 1),
          (3, 64, 24, False, "RE", 2), (3, 72, 24, False, "RE", 1),
          (5, 72, 40, True, "RE", 2), (5, 120, 40, True, "RE", 1), (5, 120, 40, True, "RE", 1),
          (3, 240, 80, False, "HS", 2), (3, 200, 80, False, "HS", 1), (3, 184, 80, False, "HS", 1),
          (3, 184, 80, False, "HS", 1), (3, 480, 112, True, "HS", 1), (3, 672, 112, True, "HS", 1),
          (5, 672, 160, True, "HS", 2), (5, 960, 160, True, "HS", 1), (5, 960, 160, True, "HS", 1)]


class ConvBNAct(nn.Sequential):
    """torchvision's Conv2dNormActivation: keys `0` (conv), `1` (BN)."""

    def __init__(self, cin, cout, kernel=1, stride=1, groups=1, dilation=1, act=nn.Hardswish):
        pad = (kernel - 1) // 2 * dilation
        layers = [nn.Conv2d(cin, cout, kernel, stride, pad, dilation=dilation, groups=groups, bias=False),
                  nn.BatchNorm2d(cout, eps=0.001, momentum=0.01)]
        if act is not None:
            layers.append(act(inplace=True))
        super().__init__(*layers)


class SqueezeExcitation(nn.Module):
    """torchvision.ops.SqueezeExcitation with MobileNetV3's hard-sigmoid gate: keys `fc1`, `fc2`."""

    def __init__(self, channels, squeeze):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.relu = nn.ReLU(inplace=True)
        self.gate = nn.Hardsigmoid(inplace=True)

    def forward(self, x):
        return x * self.gate(self.fc2(self.relu(self.fc1(self.avgpool(x)))))


class InvertedResidual(nn.Module):
    def __init__(self, cin, kernel, expanded, cout, use_se, act, stride, dilation):
        super().__init__()
        self.use_res = stride == 1 and cin == cout
        act = nn.Hardswish if act == "HS" else nn.ReLU
        layers = []
        if expanded != cin:
            layers.append(ConvBNAct(cin, expanded, act=act))
        layers.append(ConvBNAct(expanded, expanded, kernel, 1 if dilation > 1 else stride, groups=expanded,
                                dilation=dilation, act=act))
        if use_se:
            layers.append(SqueezeExcitation(expanded, _make_divisible(expanded // 4, 8)))
        layers.append(ConvBNAct(expanded, cout, act=None))
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.block(x) if self.use_res else self.block(x)


class MobileNetV3Large(nn.Module):
    """Stages for distillation: features[:4] (1/4, 24 ch), [4:7] (1/8, 40), [7:13] (1/16, 112),
    [13:17] (1/OS: the last blocks and the 1x1 conv to 960 channels that LR-ASPP reads)."""

    stage_ends = (4, 7, 13, 17)

    def __init__(self, width_mult=1.0, output_stride=16, reduced_tail=False):
        super().__init__()
        if output_stride not in (16, 32):
            raise ValueError(f"output_stride must be 16 or 32, got {output_stride}")
        div = 2 if reduced_tail else 1
        cin = _make_divisible(16 * width_mult)
        features = [ConvBNAct(3, cin, 3, stride=2)]
        for i, (k, exp, out, se, act, s) in enumerate(_LARGE):
            tail = i >= 12  # the last stage: dilated at OS16, halved with reduced_tail
            exp = exp // div if tail and i > 12 else exp
            out = out // div if tail else out
            exp, out = _make_divisible(exp * width_mult), _make_divisible(out * width_mult)
            features.append(InvertedResidual(cin, k, exp, out, se, act, s, 2 if tail and output_stride == 16 else 1))
            cin = out
        features.append(ConvBNAct(cin, 6 * cin))
        self.features = nn.Sequential(*features)
        self.channels = [_last_channels(self.features[e - 1]) for e in self.stage_ends]
        self.strides = [4, 8, 16, output_stride]
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return stage_outputs(self.features, self.stage_ends, x)


def _last_channels(module: nn.Module) -> int:
    return [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)][-1].num_features
