"""The classifier after the last stage."""

from torch import nn


class Head(nn.Sequential):
    """`BN, ReLU, global average pooling, linear`.

    The last stage's output node is a gated sum of unnormalized inputs; the BN puts it on one
    scale before pooling.
    """

    def __init__(self, channels: int, num_classes: int):
        super().__init__(
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(channels, num_classes),
        )
