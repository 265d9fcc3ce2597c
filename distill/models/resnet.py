"""Dilated ResNet backbones with the stem of the ImageNet file in use (mmseg v1c, CIRKD v1s, torchvision 7x7),
output stride 8 or 16."""
from __future__ import annotations

import torch
import torch.nn as nn


def conv3x3(cin, cout, stride=1, dilation=1):
    return nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride=1, dilation=1, downsample=None, conv2_dilation=None):
        super().__init__()
        self.conv1 = conv3x3(cin, planes, stride, dilation)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, 1, conv2_dilation or dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride=1, dilation=1, downsample=None):
        super().__init__()
        # stride on the 3x3 conv (ResNet "v1b"/torchvision placement)
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


# The input stems of the ImageNet weight files in use (`width` = the first stage's planes, 64 for them):
#   "v1c": mmseg ResNetV1c, three 3x3 convs width/2, width/2, width (stem.0/1, stem.3/4, stem.6/7);
#   "v1s": CIRKD's ResNetV1b (its resnet*_v1s): deep stem of 3x3 convs width, width, 2*width, so layer1 starts
#          from 2*width channels and ResNet-18's layer1.0 has a downsample (same stem.N names here), and its
#          BasicBlock dilation (see _make_layer);
#   "7x7": torchvision, one 7x7 conv (conv1/bn1).
STEMS = ("v1c", "v1s", "7x7")


class ResNet(nn.Module):
    """ResNet whose last stages trade stride for dilation.

    `stem` is one of STEMS. `width` is the first stage's channel count (64 for the standard networks;
    smaller for the CPU demo models). `deep_stem=False` is the older spelling of `stem="7x7"` (kept so
    checkpoints that recorded it rebuild).
    """

    def __init__(self, block, layers, width=64, stem="v1c", output_stride=8, deep_stem=None):
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        if deep_stem is False:
            stem = "7x7"
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {', '.join(STEMS)}, got {stem!r}")
        self.stem_type = stem
        self.deep_stem = stem != "7x7"
        if self.deep_stem:
            c1, c3 = (width // 2, width) if stem == "v1c" else (width, 2 * width)
            self.stem = nn.Sequential(
                conv3x3(3, c1, 2), nn.BatchNorm2d(c1), nn.ReLU(inplace=True),
                conv3x3(c1, c1), nn.BatchNorm2d(c1), nn.ReLU(inplace=True),
                conv3x3(c1, c3), nn.BatchNorm2d(c3), nn.ReLU(inplace=True),
            )
            stem_out = c3
        else:
            self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.relu = nn.ReLU(inplace=True)
            stem_out = width
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        strides = {8: (1, 2, 1, 1), 16: (1, 2, 2, 1), 32: (1, 2, 2, 2)}[output_stride]
        dilations = {8: (1, 1, 2, 4), 16: (1, 1, 1, 2), 32: (1, 1, 1, 1)}[output_stride]
        self.inplanes = stem_out
        self.layer1 = self._make_layer(block, width, layers[0], strides[0], dilations[0])
        self.layer2 = self._make_layer(block, width * 2, layers[1], strides[1], dilations[1])
        self.layer3 = self._make_layer(block, width * 4, layers[2], strides[2], dilations[2])
        self.layer4 = self._make_layer(block, width * 8, layers[3], strides[3], dilations[3])
        self.channels = [width * m * block.expansion for m in (1, 2, 4, 8)]
        self.strides = [4, 8, 8 if output_stride == 8 else 16, output_stride]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, block, planes, blocks, stride, dilation):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        # first block of a dilated stage uses half the dilation (as in DeepLab / mmseg)
        first_dilation = max(1, dilation // 2) if dilation > 1 else 1
        # CIRKD halves only that block's first conv: BasicBlockV1b's conv2 keeps the stage's dilation
        # (`previous_dilation`, CIRKD models/base_models/resnetv1b.py:32-33, 163-168); a Bottleneck has one 3x3
        second = {"conv2_dilation": dilation} if self.stem_type == "v1s" and block is BasicBlock else {}
        layers = [block(self.inplanes, planes, stride, first_dilation, downsample, **second)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, 1, dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x) if self.deep_stem else self.relu(self.bn1(self.conv1(x)))
        x = self.maxpool(x)
        c1 = self.layer1(x)
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        c4 = self.layer4(c3)
        return [c1, c2, c3, c4]


DEPTHS = {
    10: (BasicBlock, (1, 1, 1, 1)),
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
}


def resnet(depth: int, **kwargs) -> ResNet:
    block, layers = DEPTHS[depth]
    return ResNet(block, layers, **kwargs)
