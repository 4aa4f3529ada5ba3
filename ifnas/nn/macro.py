"""The macro settings every network of a run shares: input, stem, widths, classes."""

from dataclasses import dataclass


@dataclass(frozen=True)
class MacroConfig:
    """What fixes a network's shape apart from its searched edges.

    Stage `s` has `width * 2**s` channels; a stride-2 reduction joins consecutive stages.

    Args:
        in_channels: channels of the input images (1 for digits, 3 for CIFAR and ImageNet).
        num_classes: size of the classifier's output.
        input_size: height and width of the (square) input images.
        width: channels of the first stage.
        stem_strides: stride of each stem convolution.
    """

    in_channels: int
    num_classes: int
    input_size: int
    width: int
    stem_strides: tuple[int, ...] = (1,)

    def __post_init__(self):
        object.__setattr__(self, "stem_strides", tuple(self.stem_strides))
        for name in ("in_channels", "num_classes", "input_size", "width"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not self.stem_strides or any(s not in (1, 2) for s in self.stem_strides):
            raise ValueError(
                f"stem_strides must be a non-empty list of 1s and 2s, got {list(self.stem_strides)}"
            )

    def stage_widths(self, num_stages: int) -> list[int]:
        return [self.width * 2**s for s in range(num_stages)]

    def stage_resolutions(self, num_stages: int) -> list[int]:
        """Resolution of each stage; raises `ValueError` if a stride-2 layer meets an odd size.

        Every stride-2 layer (stem or reduction) must halve its input exactly, so that no
        network silently drops a row or column of pixels.
        """
        size = self.input_size

        def halve(layer: str) -> int:
            if size % 2:
                raise ValueError(
                    f"input_size {self.input_size} cannot pass the stride-2 path: the {layer} "
                    f"gets a {size}x{size} map, which does not halve exactly; use an input_size "
                    f"divisible by {self.total_stride(num_stages)}"
                )
            return size // 2

        for k, stride in enumerate(self.stem_strides):
            if stride == 2:
                size = halve(f"stem conv {k}")
        resolutions = [size]
        for s in range(1, num_stages):
            size = halve(f"reduction before stage {s}")
            resolutions.append(size)
        return resolutions

    def total_stride(self, num_stages: int) -> int:
        stride = 2 ** (num_stages - 1)
        for s in self.stem_strides:
            stride *= s
        return stride
