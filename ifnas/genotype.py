"""The genotype: the derived architecture, as JSON that fully determines the derived network.

Per stage it lists, for every kept node `j >= 1`, the kept `(input, op)` pairs; with the macro
settings (input, stem, widths, classes) and `L` it fixes every layer of the network.

JSON layout (`format` names the version)::

    {"format": "ifnas-genotype/1", "L": 4,
     "macro": {"in_channels": 1, "num_classes": 10, "input_size": 8, "width": 16,
               "stem_strides": [1]},
     "stages": [{"nodes": 8, "inputs": {"1": [[0, "sep_conv_3x3"]], ...}}, ...]}
"""

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ifnas._io import atomic_write_text, read_text
from ifnas.nn.macro import MacroConfig
from ifnas.space.lchain import OPS

FORMAT = "ifnas-genotype/1"


class GenotypeError(ValueError):
    """A genotype that does not describe a buildable network."""


def node_index(value, what: str) -> int:
    """A node index of a genotype's JSON: an integer, or a JSON key of decimal digits.

    Anything else (0.5, true, "1" as an input) raises `GenotypeError` rather than being
    truncated or coerced into another node.
    """
    if isinstance(value, str) and re.fullmatch(r"[0-9]+", value):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise GenotypeError(f"{what}: expected an integer node index, got {value!r}")


def _pair(pair, where: str) -> tuple[int, str]:
    """An `[input, op]` pair of a genotype's JSON as `(input, op)`."""
    if not isinstance(pair, list | tuple) or len(pair) != 2:
        raise GenotypeError(f"{where}: expected an [input, op] pair, got {pair!r}")
    i, op = pair
    if isinstance(i, str):  # only JSON keys may spell an index as a string
        raise GenotypeError(f"{where}: expected an integer node index, got {i!r}")
    if not isinstance(op, str):
        raise GenotypeError(f"{where}: expected an op name, got {op!r}")
    return node_index(i, where), op


def node_inputs(inputs: dict, where: str) -> dict[int, tuple[tuple[int, str], ...]]:
    """The `{"j": [[i, op], ...]}` of a genotype's JSON as `{j: ((i, op), ...)}`, sorted."""
    if not isinstance(inputs, dict):
        raise GenotypeError(f"{where}: expected a mapping of node to inputs, got {inputs!r}")
    out = {}
    for key, pairs in inputs.items():
        j = node_index(key, f"{where}: node {key!r}")
        if not isinstance(pairs, list):
            raise GenotypeError(f"{where}: node {j}: expected a list of [input, op] pairs")
        out[j] = tuple(sorted(_pair(pair, f"{where}: node {j}") for pair in pairs))
    return out


def read_genotype_json(path: str | os.PathLike) -> dict:
    """The JSON object of a genotype file; `GenotypeError` naming the file when it is a
    directory, not text, empty or not JSON (`FileNotFoundError` when it does not exist)."""
    path = Path(path)
    expected = "the JSON of a genotype"
    text = read_text(path, "genotype file", expected, GenotypeError, FileNotFoundError)
    if not text.strip():
        raise GenotypeError(f"genotype file {path} is empty; expected the JSON of a genotype")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise GenotypeError(
            f"genotype file {path} is not valid JSON (line {error.lineno}, column "
            f"{error.colno}: {error.msg})"
        ) from error


@dataclass(frozen=True)
class StageGenotype:
    """Kept inputs of one stage: `inputs[j]` is a tuple of `(i, op)` pairs, sorted."""

    nodes: int
    inputs: dict[int, tuple[tuple[int, str], ...]]

    def edges(self) -> list[tuple[int, int]]:
        """Distinct kept edges `(i, j)`, ordered by end node then start node."""
        return sorted(
            {(i, j) for j, pairs in self.inputs.items() for i, _ in pairs},
            key=lambda e: (e[1], e[0]),
        )

    def depth(self) -> int:
        """Edges on the longest path from node 0 to the stage output."""
        longest = {0: 0}
        for j in sorted(self.inputs):
            sources = [longest[i] for i, _ in self.inputs[j] if i in longest]
            if sources:
                longest[j] = max(sources) + 1
        return longest.get(self.nodes - 1, 0)


@dataclass(frozen=True)
class Genotype:
    """A derived architecture of the L-chain space and the macro settings of its network."""

    L: int
    macro: MacroConfig
    stages: tuple[StageGenotype, ...]

    def __post_init__(self):
        object.__setattr__(self, "stages", tuple(self.stages))
        self.validate()

    def depth(self) -> int:
        """Longest input-to-output path of each stage, in edges, summed over stages."""
        return sum(stage.depth() for stage in self.stages)

    def num_kept(self) -> int:
        """Kept `(edge, op)` pairs over all stages."""
        return sum(len(p) for stage in self.stages for p in stage.inputs.values())

    def validate(self) -> None:
        """Raise `ValueError` naming the first thing that makes this genotype unbuildable."""
        if not isinstance(self.L, int) or self.L < 1:
            raise GenotypeError(f"genotype L must be an integer >= 1, got {self.L!r}")
        if not self.stages:
            raise GenotypeError("genotype has no stages")
        try:
            self.macro.stage_resolutions(len(self.stages))
        except ValueError as error:
            raise GenotypeError(f"genotype macro: {error}") from error
        for s, stage in enumerate(self.stages):
            where = f"stage {s}"
            if stage.nodes < 2:
                raise GenotypeError(f"{where}: nodes must be >= 2, got {stage.nodes}")
            for j, pairs in stage.inputs.items():
                if not 1 <= j < stage.nodes:
                    raise GenotypeError(f"{where}: node {j} is outside 1..{stage.nodes - 1}")
                if not pairs:
                    raise GenotypeError(f"{where}: node {j} is listed with no inputs")
                if len(set(pairs)) != len(pairs):
                    raise GenotypeError(f"{where}: node {j} lists an (input, op) pair twice")
                for i, op in pairs:
                    if op not in OPS:
                        raise GenotypeError(
                            f"{where}: edge ({i}, {j}) has unknown op {op!r}; "
                            f"expected one of {list(OPS)}"
                        )
                    if not max(0, j - self.L) <= i < j:
                        raise GenotypeError(
                            f"{where}: edge ({i}, {j}) is not in the {self.L}-chain "
                            f"space (inputs of node {j} lie in "
                            f"{max(0, j - self.L)}..{j - 1})"
                        )
                    if i != 0 and i not in stage.inputs:
                        raise GenotypeError(
                            f"{where}: edge ({i}, {j}) starts at node {i}, which has no inputs"
                        )
            if stage.nodes - 1 not in stage.inputs:
                raise GenotypeError(f"{where}: the output node {stage.nodes - 1} has no inputs")
            feeds = {stage.nodes - 1}
            for j in sorted(stage.inputs, reverse=True):
                if j in feeds:
                    feeds.update(i for i, _ in stage.inputs[j])
            dead_ends = sorted(set(stage.inputs) - feeds)
            if dead_ends:
                raise GenotypeError(f"{where}: nodes {dead_ends} have no path to the stage output")

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "L": self.L,
            "macro": {
                "in_channels": self.macro.in_channels,
                "num_classes": self.macro.num_classes,
                "input_size": self.macro.input_size,
                "width": self.macro.width,
                "stem_strides": list(self.macro.stem_strides),
            },
            "stages": [
                {
                    "nodes": stage.nodes,
                    "inputs": {
                        str(j): [[i, op] for i, op in stage.inputs[j]] for j in sorted(stage.inputs)
                    },
                }
                for stage in self.stages
            ],
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Genotype":
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise GenotypeError(f"not a genotype: expected format {FORMAT!r}, found {found!r}")
        try:
            stages = tuple(
                StageGenotype(
                    nodes=node_index(stage["nodes"], f"stage {s} nodes"),
                    inputs=node_inputs(stage["inputs"], f"stage {s}"),
                )
                for s, stage in enumerate(data["stages"])
            )
            macro = MacroConfig(
                **{**data["macro"], "stem_strides": tuple(data["macro"]["stem_strides"])}
            )
            L = data["L"]
        except (KeyError, TypeError, ValueError) as error:
            if isinstance(error, GenotypeError):
                raise
            raise GenotypeError(f"malformed genotype: {error!r}") from error
        return cls(L=L, macro=macro, stages=stages)

    def to_json(self) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        # One `[input, op]` pair per line keeps a genotype readable in a diff.
        return re.sub(r'\[\s+(\d+),\s+("\w+")\s+\]', r"[\1, \2]", text) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "Genotype":
        return cls.from_dict(json.loads(text))

    def save(self, path: str | os.PathLike) -> None:
        """Write the JSON atomically: a crash leaves either the old file or the new one."""
        atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Genotype":
        return cls.from_dict(read_genotype_json(path))
