"""Connectors: map student features to the teacher's width. Trained with the student, never exported."""
from __future__ import annotations

import torch.nn as nn


class Connector(nn.Sequential):
    """1x1 conv + BN (the FitNets/CIRKD "ConvReg" for equal resolutions)."""

    def __init__(self, cin: int, cout: int):
        super().__init__(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.cin, self.cout = cin, cout
