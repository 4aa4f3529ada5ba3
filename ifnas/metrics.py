"""Counting: MAdds, parameters and accuracy."""

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ifnas.genotype import Genotype, StageGenotype
from ifnas.nn.macro import MacroConfig


def count_madds(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-adds of one forward pass of a single input, counted by `torch.utils.flop_counter`.

    The flop counter counts convolutions and matrix products (2 FLOPs per multiply-add);
    BN, ReLU and additions are not MAdds. The model is run in eval mode on a zero input of
    `input_shape` (without batch dimension) on the model's own device, meta included.
    """
    param = next(model.parameters())
    x = torch.zeros((1, *input_shape), device=param.device, dtype=param.dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def genotype_cost(genotype: Genotype) -> dict[str, int]:
    """`madds`, `params` and `depth` of the network a genotype (or a cell genotype) describes.

    The network is built on the meta device: no memory is allocated and nothing is computed.
    """
    from ifnas.spaces import network_of

    with torch.device("meta"):
        net = network_of(genotype)
    macro = genotype.macro
    shape = (macro.in_channels, macro.input_size, macro.input_size)
    return {
        "madds": count_madds(net, shape),
        "params": count_params(net),
        "depth": genotype.depth(),
    }


class MaddsTable:
    """MAdds of L-chain networks from two numbers per stage, exact and without building them.

    Every `sep_conv_3x3` of stage `s` has the same shape, and `skip_connect` costs nothing, so
    a network's MAdds are `fixed + sum_s per_sep[s] * (its sep_conv_3x3 count in stage s)`:
    `fixed` counts the stem, the reductions and the classifier. Both numbers come from the
    flop counter, once.
    """

    def __init__(self, macro: MacroConfig, num_stages: int):
        from ifnas.nn.ops import SepConv3x3

        widths = macro.stage_widths(num_stages)
        sizes = macro.stage_resolutions(num_stages)
        with torch.device("meta"):
            self.per_sep = [
                count_madds(SepConv3x3(c), (c, r, r)) for c, r in zip(widths, sizes, strict=True)
            ]
        skips = tuple(StageGenotype(2, {1: ((0, "skip_connect"),)}) for _ in range(num_stages))
        self.fixed = genotype_cost(Genotype(L=1, macro=macro, stages=skips))["madds"]

    def of_sep_counts(self, sep_counts: list[int]) -> int:
        """MAdds of a network with `sep_counts[s]` sep_conv_3x3 ops in stage `s`."""
        return self.fixed + sum(n * m for n, m in zip(sep_counts, self.per_sep, strict=True))

    def of_genotype(self, genotype: Genotype) -> int:
        return self.of_sep_counts(
            [
                sum(op == "sep_conv_3x3" for pairs in stage.inputs.values() for _, op in pairs)
                for stage in genotype.stages
            ]
        )


def top1(logits: torch.Tensor, target: torch.Tensor) -> float:
    """Fraction of rows whose largest logit is the target class."""
    return (logits.argmax(dim=1) == target).float().mean().item()


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches, device: torch.device) -> None:
    """Recompute every BN layer's running statistics as the plain average over `batches`.

    A supernet trained on changing sub-supernets has running statistics that mix them; before
    evaluating one particular set of active edges, we re-estimate them on that set. Only the
    running statistics change: no weight moves.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    was_training = model.training
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch counts the same
    model.train()
    try:
        for x, _ in batches:
            model(x.to(device, non_blocking=True))
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        model.train(was_training)


@torch.no_grad()
def evaluate(model: nn.Module, loader, device: torch.device) -> float:
    """Top-1 accuracy of `model` over `loader`, in eval mode.

    When `loader` reads one shard of several (its sampler has `num_replicas > 1`, as the
    evaluation loaders of `ifnas.data.make_loader` under torchrun), every process evaluates
    its shard and the counts are summed over the processes: each returns the accuracy over
    the whole set.
    """
    was_training = model.training
    model.eval()
    correct = total = 0
    try:
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            correct += (model(x).argmax(dim=1) == y).sum().item()
            total += y.numel()
    finally:
        model.train(was_training)
    if getattr(getattr(loader, "sampler", None), "num_replicas", 1) > 1:
        from ifnas.distributed import sum_over_ranks

        correct, total = sum_over_ranks([correct, total])
    return correct / max(total, 1)
