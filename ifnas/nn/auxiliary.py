"""DARTS' auxiliary classifier, attached during training to the stage at two thirds of the depth.

The auxiliary loss (weight 0.4 in DARTS and PC-DARTS) adds a gradient path into the middle of
the network; the head is dropped at evaluation and counts in no MAdds.
"""

from torch import nn


def auxiliary_stage(num_stages: int) -> int:
    """Index of the stage whose output feeds the auxiliary head: the one ending at two thirds of
    the stages (stage 1 of 3), as DARTS attaches it after the cell at two thirds of its cells."""
    return max(0, (2 * num_stages) // 3 - 1)


class AuxiliaryHead(nn.Sequential):
    """`ReLU, average pool to 2x2, conv 1x1 to 128, BN, ReLU, conv 2x2 to 768, BN, ReLU, linear`.

    DARTS pools with a 5x5 window (stride 3 on CIFAR's 8x8 maps, stride 2 on ImageNet's 14x14)
    down to 2x2; an adaptive pool gives the same 2x2 at any resolution, digits' 4x4 included.
    """

    def __init__(self, channels: int, num_classes: int):
        super().__init__(
            nn.ReLU(),  # not in place: the stage output also feeds the rest of the network
            nn.AdaptiveAvgPool2d(2),
            nn.Conv2d(channels, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=True),
            nn.Flatten(),
            nn.Linear(768, num_classes),
        )
