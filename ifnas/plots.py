"""Pictures: the derived architecture (`arch.png`)."""

import logging
from pathlib import Path

from ifnas.genotype import Genotype, StageGenotype
from ifnas.space.lchain import OPS

_logger = logging.getLogger(__name__)

OP_COLORS = {"sep_conv_3x3": "tab:blue", "skip_connect": "tab:orange"}


def plot_genotype(genotype: Genotype, path: str | Path, title: str | None = None) -> None:
    """Draw each stage as a row of nodes left to right with one arc per kept `(edge, op)`.

    `sep_conv_3x3` arcs bend above the chain and `skip_connect` arcs below it; nodes that the
    genotype drops are drawn hollow.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    stages = genotype.stages
    widest = max(stage.nodes for stage in stages)
    fig, axes = plt.subplots(
        len(stages),
        1,
        figsize=(max(6.0, 0.45 * widest + 1.5), 2.3 * len(stages) + 0.6),
        squeeze=False,
    )
    for s, (stage, ax) in enumerate(zip(stages, axes[:, 0], strict=True)):
        _draw_stage(ax, stage, genotype.L, widest)
        ax.set_title(
            f"stage {s}: {len(stage.inputs)}/{stage.nodes - 1} nodes kept, depth {stage.depth()}",
            fontsize=9,
            loc="left",
        )
    handles = [Line2D([], [], color=c, lw=2, label=op) for op, c in OP_COLORS.items()]
    fig.legend(handles=handles, loc="upper right", fontsize=8, frameon=False)
    fig.suptitle(
        title or f"L = {genotype.L}, depth {genotype.depth()}", fontsize=10, x=0.02, ha="left"
    )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    _logger.info("wrote %s", path)


def _draw_stage(
    ax, stage: StageGenotype, L: int, widest: int, sources: tuple[int, ...] = (0,)
) -> None:
    """One stage on `ax`: nodes left to right, `sep_conv_3x3` arcs above, `skip_connect` below;
    `sources` are input nodes (always drawn kept)."""
    from matplotlib.patches import Arc

    reach = L + 1
    for j, pairs in stage.inputs.items():
        for i, op in pairs:
            above = op == OPS[0]
            span = j - i
            ax.add_patch(
                Arc(
                    ((i + j) / 2, 0),
                    span,
                    span * 0.9,
                    theta1=0 if above else 180,
                    theta2=180 if above else 360,
                    color=OP_COLORS[op],
                    lw=1.4,
                )
            )
    kept = set(sources) | set(stage.inputs)
    xs = list(range(stage.nodes))
    ax.scatter(
        [x for x in xs if x in kept], [0] * len(kept & set(xs)), s=36, zorder=3, color="black"
    )
    dropped = [x for x in xs if x not in kept]
    ax.scatter(dropped, [0] * len(dropped), s=36, zorder=3, facecolors="white", edgecolors="grey")
    for x in xs:
        ax.annotate(
            str(x),
            (x, 0),
            xytext=(0, -9),
            textcoords="offset points",
            ha="center",
            va="top",
            fontsize=7,
            color="dimgrey",
        )
    ax.set_xlim(-0.7, widest - 0.3)
    ax.set_ylim(-0.5 * reach, 0.5 * reach)
    ax.set_axis_off()


def plot_genotype_grid(
    columns: dict[str, list[tuple[str, Genotype]]], path: str | Path, title: str = ""
) -> None:
    """Genotypes side by side: one column per name (a strategy), one block of stage rows per
    entry of its list (a seed), each entry `(caption, genotype)`; empty entries stay blank."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    entries = [g for runs in columns.values() for _, g in runs]
    if not entries:
        raise ValueError("plot_genotype_grid: no genotype to draw")
    num_stages = max(len(g.stages) for g in entries)
    blocks = max(len(runs) for runs in columns.values())
    widest = max(stage.nodes for g in entries for stage in g.stages)
    fig, axes = plt.subplots(
        blocks * num_stages,
        len(columns),
        figsize=(max(3.0, 0.3 * widest + 0.8) * len(columns), 1.0 * blocks * num_stages + 1.0),
        squeeze=False,
    )
    for ax in axes.flat:
        ax.set_axis_off()
    for c, (name, runs) in enumerate(columns.items()):
        for b, (caption, genotype) in enumerate(runs):
            for s, stage in enumerate(genotype.stages):
                ax = axes[b * num_stages + s, c]
                _draw_stage(ax, stage, genotype.L, widest)
                if s == 0:
                    head = f"{name}\n" if b == 0 else ""
                    ax.set_title(f"{head}{caption}", fontsize=8, loc="left")
    handles = [Line2D([], [], color=c, lw=2, label=op) for op, c in OP_COLORS.items()]
    fig.legend(handles=handles, loc="lower right", fontsize=8, frameon=False, ncols=2)
    if title:
        fig.suptitle(title, fontsize=9, x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0.03, 1, 0.97))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    _logger.info("wrote %s", path)


def plot_gate_curves(results: dict, path: str | Path) -> None:
    """The diagnostic's gate curves (`ifnas.diagnose`), one panel per setting, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = results["settings"]
    fig, axes = plt.subplots(1, len(settings), figsize=(3.6 * len(settings), 3.2), squeeze=False)
    shades = plt.get_cmap("Reds")
    names = results["candidates"]
    for ax, setting in zip(axes[0], settings, strict=True):
        for k, name in enumerate(names):
            # the nearer the input, the darker the line (as in the paper's Figure 5)
            color = shades(0.9 - 0.55 * k / max(len(names) - 1, 1))
            ax.plot(setting["iters"], setting["gates"][name], color=color, lw=1.6, label=name)
        ax.axvline(setting["warmup_iters"], color="grey", lw=0.8, ls=":")
        added = ", ".join(f"({a}, {b})" for a, b in setting["interleaved"]) or "none"
        ax.set_title(f"{setting['setting']} interleaved: {added}", fontsize=9)
        ax.set_xlabel("iteration", fontsize=8)
        ax.set_ylim(0, 1)
        ax.tick_params(labelsize=7)
    axes[0, 0].set_ylabel("edge gate sigmoid(beta)", fontsize=8)
    axes[0, 0].legend(fontsize=8, frameon=False)
    fig.suptitle(
        f"node {results['node']} of stage {results['stage']}: its candidate inputs",
        fontsize=10,
        x=0.02,
        ha="left",
    )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    _logger.info("wrote %s", path)


def plot_cells(genotype, path: str | Path, title: str | None = None) -> None:
    """A cell genotype (`ifnas.cell_genotype`): one row per searched cell, inputs 0 and 1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    space = genotype.space
    n = space.nodes + 2
    rows = len(genotype.slots)
    fig, axes = plt.subplots(rows, 1, figsize=(max(4.0, 0.6 * n + 1.5), 1.5 * rows + 0.8))
    axes = [axes] if rows == 1 else list(axes)
    for k, (slot, ax) in enumerate(zip(genotype.slots, axes, strict=True)):
        _draw_stage(ax, StageGenotype(n, dict(slot)), n - 1, n, sources=(0, 1))
        ax.set_title(f"cell {k} ({space.slot_kind(k)})", fontsize=9, loc="left")
    handles = [Line2D([], [], color=c, lw=2, label=op) for op, c in OP_COLORS.items()]
    fig.legend(handles=handles, loc="lower right", fontsize=8, frameon=False, ncols=2)
    fig.suptitle(
        title or f"{space.kind}: depth {genotype.depth():g}", fontsize=9, x=0.02, ha="left"
    )
    fig.tight_layout(rect=(0, 0.03, 1, 0.97))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    _logger.info("wrote %s", path)
