"""The derived network: built from a genotype alone, inputs summed with weight 1."""

import torch
from torch import nn

from ifnas.genotype import Genotype
from ifnas.nn.auxiliary import AuxiliaryHead, auxiliary_stage
from ifnas.nn.head import Head
from ifnas.nn.mixing import unit_mix
from ifnas.nn.ops import SEP_CONV
from ifnas.nn.reduction import Reduction
from ifnas.nn.stage import StageOps, schedule
from ifnas.nn.stem import Stem


class DerivedNetwork(nn.Module):
    """The network a genotype describes, to be trained from scratch.

    Module names match the supernet's (`stem`, `stages.{s}.ops.{i}_{j}.sep_conv_3x3`,
    `reductions`, `head`), so weights can move between the two with `load_state_dict`.

    With `auxiliary=True` an `AuxiliaryHead` (`aux_head`) reads the output of stage
    `auxiliary_stage(...)`, and in training mode `forward` returns `(logits, aux_logits)`; in
    eval mode it returns the logits alone.
    """

    def __init__(self, genotype: Genotype, auxiliary: bool = False):
        super().__init__()
        self.genotype = genotype
        macro = genotype.macro
        num_stages = len(genotype.stages)
        widths = macro.stage_widths(num_stages)

        self.stem = Stem(macro.in_channels, macro.width, macro.stem_strides)
        self.stages = nn.ModuleList()
        self._steps = []
        for s, stage in enumerate(genotype.stages):
            sep_edges = sorted(
                {(i, j) for j, pairs in stage.inputs.items() for i, op in pairs if op == SEP_CONV},
                key=lambda e: (e[1], e[0]),
            )
            self.stages.append(StageOps(sep_edges, widths[s]))
            self._steps.append(schedule(stage.inputs))
        self.reductions = nn.ModuleList(Reduction(widths[s - 1]) for s in range(1, num_stages))
        self.head = Head(widths[-1], macro.num_classes)
        self.aux_stage = auxiliary_stage(num_stages) if auxiliary else None
        self.aux_head = (
            AuxiliaryHead(widths[self.aux_stage], macro.num_classes) if auxiliary else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        aux = None
        x = self.stem(x)
        for s, stage in enumerate(self.stages):
            if s > 0:
                x = self.reductions[s - 1](x)
            steps = self._steps[s]
            x = stage.run(x, steps, [None] * len(steps), unit_mix)
            if s == self.aux_stage and self.training:
                aux = self.aux_head(x)
        logits = self.head(x)
        return logits if aux is None else (logits, aux)
