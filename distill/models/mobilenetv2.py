"""Dilated MobileNetV2 (torchvision layout), output stride 8 by default."""
from __future__ import annotations

import torch
import torch.nn as nn


def _make_divisible(v, divisor=8):
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin, cout, kernel=3, stride=1, groups=1, dilation=1):
        pad = (kernel - 1) // 2 * dilation
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, pad, dilation=dilation, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand_ratio, dilation=1):
        super().__init__()
        hidden = int(round(cin * expand_ratio))
        self.use_res = stride == 1 and cin == cout
        layers = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU(cin, hidden, kernel=1))
        layers += [
            ConvBNReLU(hidden, hidden, stride=stride, groups=hidden, dilation=dilation),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


# t, c, n, s  (torchvision's table)
_SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


class MobileNetV2(nn.Module):
    """`features` indices match torchvision's, so its ImageNet weights load by name.

    Stages for distillation: features[:4] (1/4), [:7] (1/8), [:14] (1/8 or 1/16), [:18] (1/OS).
    """

    stage_ends = (4, 7, 14, 18)

    def __init__(self, width_mult=1.0, output_stride=8):
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        cin = _make_divisible(32 * width_mult)
        features = [ConvBNReLU(3, cin, stride=2)]
        stride, dilation = 2, 1
        for t, c, n, s in _SETTINGS:
            cout = _make_divisible(c * width_mult)
            for i in range(n):
                block_stride = s if i == 0 else 1
                block_dilation = dilation
                if block_stride > 1 and stride >= output_stride:
                    # trade this stride for dilation; the first block keeps the previous rate
                    dilation *= block_stride
                    block_stride = 1
                elif block_stride > 1:
                    stride *= block_stride
                features.append(InvertedResidual(cin, cout, block_stride, t, block_dilation if i == 0 else dilation))
                cin = cout
        self.features = nn.Sequential(*features)
        self.channels = [self.features[e - 1].conv[-1].num_features for e in self.stage_ends]
        self.strides = [4, 8, min(16, output_stride), output_stride]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return stage_outputs(self.features, self.stage_ends, x)


def stage_outputs(features: nn.Sequential, stage_ends, x: torch.Tensor) -> list[torch.Tensor]:
    """The outputs of features[:e] for each stage end e (a MobileNet's distillation taps)."""
    outs, start = [], 0
    for end in stage_ends:
        x = features[start:end](x)
        outs.append(x)
        start = end
    return outs
