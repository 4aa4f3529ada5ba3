"""The fixed (not searched) reduction between two stages: stride 2, channels doubled."""

from torch import nn


class Reduction(nn.Sequential):
    """`ReLU, depthwise 3x3 stride 2, pointwise 1x1 to 2C, BN`: halves the resolution of the
    previous stage's output node and doubles its channels."""

    def __init__(self, channels: int):
        C = channels
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(C, C, 3, stride=2, padding=1, groups=C, bias=False),
            nn.Conv2d(C, 2 * C, 1, bias=False),
            nn.BatchNorm2d(2 * C),
        )
