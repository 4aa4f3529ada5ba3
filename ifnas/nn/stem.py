"""The stem: plain 3x3 convolutions before the first searched stage."""

from torch import nn


class Stem(nn.Sequential):
    """One `conv 3x3, BN` per entry of `strides`, with a ReLU between them.

    The last layer ends at BN: the first stage's node 0 is the stem's output, and every op
    that reads it applies its own (shared) ReLU.

    Args:
        in_channels: channels of the input images.
        width: channels of the first stage.
        strides: stride of each convolution (e.g. `(1,)` for 8x8 digits, `(2, 2)` for 224x224).
    """

    def __init__(self, in_channels: int, width: int, strides: tuple[int, ...]):
        layers = []
        channels = in_channels
        for k, stride in enumerate(strides):
            if k > 0:
                layers.append(nn.ReLU(inplace=True))
            layers += [
                nn.Conv2d(channels, width, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(width),
            ]
            channels = width
        super().__init__(*layers)
