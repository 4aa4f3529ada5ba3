"""Candidate ops of an edge: `sep_conv_3x3` and `skip_connect` (as in DARTS and R-DARTS)."""

from torch import nn

SEP_CONV = "sep_conv_3x3"
SKIP = "skip_connect"


class SepConv3x3(nn.Module):
    """DARTS' separable 3x3 convolution without its leading ReLU.

    DARTS applies `ReLU, depthwise 3x3, pointwise 1x1, BN` twice. The first ReLU of every
    `sep_conv_3x3` leaving a node acts on the same tensor, so the stage computes it once per
    source node and passes the result here; the op itself starts at the depthwise convolution.
    `stride=2` (the first depthwise convolution) serves the reduction cells of the cell spaces.
    """

    def __init__(self, channels: int, stride: int = 1):
        super().__init__()
        C = channels
        self.dw1 = nn.Conv2d(C, C, 3, stride=stride, padding=1, groups=C, bias=False)
        self.pw1 = nn.Conv2d(C, C, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(C)
        self.relu = nn.ReLU(inplace=True)  # the BN output is not needed by any backward
        self.dw2 = nn.Conv2d(C, C, 3, padding=1, groups=C, bias=False)
        self.pw2 = nn.Conv2d(C, C, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(C)

    def forward(self, relu_x):
        y = self.bn1(self.pw1(self.dw1(relu_x)))
        y = self.relu(y)
        return self.bn2(self.pw2(self.dw2(y)))
