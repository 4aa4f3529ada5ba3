"""What depends on `model.space` outside the search: the space, its genotypes, their networks.

`ifnas.run`, `ifnas.metrics` and `ifnas.compare` go through these functions so that the
L-chain space and the cell spaces (`ifnas.space.cells`) share one pipeline.
"""

from pathlib import Path

from torch import nn

from ifnas.cell_genotype import FORMAT as CELL_FORMAT
from ifnas.cell_genotype import CellGenotype
from ifnas.config import ModelConfig
from ifnas.genotype import Genotype, GenotypeError, read_genotype_json
from ifnas.nn.macro import MacroConfig
from ifnas.space.cells import CellSpace
from ifnas.space.lchain import LChainSpace

AnySpace = LChainSpace | CellSpace
AnyGenotype = Genotype | CellGenotype


def build_space(model: ModelConfig) -> AnySpace:
    """The space `model.space` names, with its settings."""
    if model.space == "lchain":
        return LChainSpace(model.L, tuple(model.stages))
    return CellSpace(model.space, tuple(model.cells))


def num_stages(space: AnySpace) -> int:
    """Resolutions of the network: the L-chain's stages, or the cell stages."""
    return len(space.cells) if isinstance(space, CellSpace) else len(space.stages)


def describe(space: AnySpace) -> str:
    if isinstance(space, CellSpace):
        return f"{space.kind}, cells {list(space.cells)}, {space.nodes} nodes"
    return f"L = {space.L}, stages {list(space.stages)}"


def smallest_madds(space: AnySpace, macro: MacroConfig) -> int:
    """MAdds of the cheapest network of the space (the floor of any budget)."""
    if isinstance(space, CellSpace):
        from ifnas.nn.cells import CellCosts

        return CellCosts(space, macro).smallest()
    from ifnas.metrics import MaddsTable

    return MaddsTable(macro, len(space.stages)).fixed


def network_of(genotype: AnyGenotype, auxiliary: bool = False) -> nn.Module:
    """The derived network of a genotype (to retrain, or to count on the meta device);
    `auxiliary` adds the L-chain network's auxiliary head."""
    if isinstance(genotype, CellGenotype):
        from ifnas.config import ConfigError
        from ifnas.nn.cells import CellNetwork

        if auxiliary:
            # Not built for cell networks: DARTS puts it after the second reduction cell.
            raise ConfigError(
                "retrain.auxiliary_weight: the auxiliary head is built for the L-chain network "
                "only; set it to 0 for a cell genotype"
            )
        return CellNetwork(genotype)
    from ifnas.nn.derived import DerivedNetwork

    return DerivedNetwork(genotype, auxiliary=auxiliary)


def genotype_from_dict(data: dict) -> AnyGenotype:
    if isinstance(data, dict) and data.get("format") == CELL_FORMAT:
        return CellGenotype.from_dict(data)
    return Genotype.from_dict(data)


def load_genotype(path: str | Path) -> AnyGenotype:
    """The genotype of a `genotype.json`, of either format; `GenotypeError` naming the file
    when it cannot be read as one."""
    data = read_genotype_json(path)
    try:
        return genotype_from_dict(data)
    except GenotypeError as error:
        raise GenotypeError(f"genotype file {path}: {error}") from error


def plot_any(genotype: AnyGenotype, path: str | Path, title: str | None = None) -> None:
    """`arch.png`: the L-chain drawing, or one row per searched cell."""
    from ifnas.plots import plot_cells, plot_genotype

    if isinstance(genotype, CellGenotype):
        plot_cells(genotype, path, title)
    else:
        plot_genotype(genotype, path, title)
