"""The genotype of a cell space (`ifnas.space.cells`): the kept inputs of every searched cell.

JSON layout (`format` names the version)::

    {"format": "ifnas-cell-genotype/1", "space": "darts_cell", "cells": [2, 2, 2], "nodes": 4,
     "macro": {...as in ifnas-genotype/1...},
     "slots": [{"2": [[0, "sep_conv_3x3"], [1, "skip_connect"]], "3": [...], ...}, ...]}

`slots` holds one cell genotype per searched cell (`CellSpace.num_slots`): the normal and the
reduction cell in `darts_cell`, one per cell of the network in `goldnas_cell`. Node `j >= 2`
lists its `(input, op)` pairs; nodes 0 and 1 are the cell's inputs.
"""

import json
import os
import re
import statistics
from dataclasses import dataclass

from ifnas._io import atomic_write_text
from ifnas.genotype import GenotypeError, node_index, node_inputs, read_genotype_json
from ifnas.nn.macro import MacroConfig
from ifnas.space.cells import CellSpace
from ifnas.space.lchain import OPS

FORMAT = "ifnas-cell-genotype/1"

CellInputs = dict[int, tuple[tuple[int, str], ...]]


def cell_depth(inputs: CellInputs) -> int:
    """Edges on the longest path from a cell input (node 0 or 1) to an intermediate node."""
    longest = {0: 0, 1: 0}
    for j in sorted(inputs):
        longest[j] = 1 + max(longest[i] for i, _ in inputs[j])
    return max(longest.values())


@dataclass(frozen=True)
class CellGenotype:
    """A derived architecture of a cell space and the macro settings of its network."""

    space: CellSpace
    macro: MacroConfig
    slots: tuple[CellInputs, ...]

    def __post_init__(self):
        object.__setattr__(self, "slots", tuple(self.slots))
        self.validate()

    @property
    def L(self) -> int:
        """Groups of interleaving-free sampling: the intermediate nodes of a cell."""
        return self.space.L

    def depth(self) -> float:
        """The paper's cell depth (Table 6): the normal cell's in `darts_cell`, the mean over
        the network's cells in `goldnas_cell`."""
        if self.space.kind == "darts_cell":
            return cell_depth(self.slots[0])
        return statistics.fmean(cell_depth(s) for s in self.slots)

    def num_kept(self) -> int:
        return sum(len(p) for slot in self.slots for p in slot.values())

    def validate(self) -> None:
        """Raise `GenotypeError` naming the first thing that makes this genotype unbuildable."""
        space = self.space
        try:
            self.macro.stage_resolutions(len(space.cells))
        except ValueError as error:
            raise GenotypeError(f"cell genotype macro: {error}") from error
        if len(self.slots) != space.num_slots():
            raise GenotypeError(
                f"{space.kind} with cells {list(space.cells)} has {space.num_slots()} searched "
                f"cells, the genotype lists {len(self.slots)}"
            )
        for k, slot in enumerate(self.slots):
            where = f"cell {k} ({space.slot_kind(k)})"
            if sorted(slot) != list(range(2, space.nodes + 2)):
                raise GenotypeError(
                    f"{where}: expected inputs for nodes 2..{space.nodes + 1}, got {sorted(slot)}"
                )
            for j, pairs in slot.items():
                if not pairs or len(set(pairs)) != len(pairs):
                    raise GenotypeError(f"{where}: node {j} lists no input or a pair twice")
                for i, op in pairs:
                    if op not in OPS or not 0 <= i < j:
                        raise GenotypeError(
                            f"{where}: ({i}, {j}, {op!r}) is not an edge and op of the cell "
                            f"(inputs 0..{j - 1}, ops {list(OPS)})"
                        )
                # The DARTS space keeps 2 inputs per node, one op each; `keep_one` derives 1.
                if space.kind == "darts_cell" and (
                    len(pairs) > 2 or len({i for i, _ in pairs}) != len(pairs)
                ):
                    raise GenotypeError(
                        f"{where}: a DARTS cell node keeps 2 inputs (1 with keep_one), one op "
                        f"each; node {j} has {list(pairs)}"
                    )

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "space": self.space.kind,
            "cells": list(self.space.cells),
            "nodes": self.space.nodes,
            "macro": {
                "in_channels": self.macro.in_channels,
                "num_classes": self.macro.num_classes,
                "input_size": self.macro.input_size,
                "width": self.macro.width,
                "stem_strides": list(self.macro.stem_strides),
            },
            "slots": [
                {str(j): [[i, op] for i, op in slot[j]] for j in sorted(slot)}
                for slot in self.slots
            ],
        }

    @classmethod
    def from_dict(cls, data: dict) -> "CellGenotype":
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise GenotypeError(f"not a cell genotype: expected format {FORMAT!r}, found {found!r}")
        try:
            space = CellSpace(
                data["space"], tuple(data["cells"]), node_index(data["nodes"], "nodes")
            )
            macro = MacroConfig(
                **{**data["macro"], "stem_strides": tuple(data["macro"]["stem_strides"])}
            )
            slots = tuple(node_inputs(slot, f"cell {k}") for k, slot in enumerate(data["slots"]))
        except (KeyError, TypeError, ValueError) as error:
            if isinstance(error, GenotypeError):
                raise
            raise GenotypeError(f"malformed cell genotype: {error!r}") from error
        return cls(space=space, macro=macro, slots=slots)

    def to_json(self) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        return re.sub(r'\[\s+(\d+),\s+("\w+")\s+\]', r"[\1, \2]", text) + "\n"

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "CellGenotype":
        return cls.from_dict(read_genotype_json(path))
