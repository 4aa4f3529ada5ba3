"""The diagnostic of the paper's Figure 1: interleaved edges sway one node's choice of input.

One node `j` of one stage chooses among its candidate inputs pre-1, pre-3 and pre-6 (edges
`(j - 1, j)`, `(j - 3, j)`, `(j - 6, j)`; its other inputs are removed). Every other node runs
on its pre-1 edge alone, so the network is a chain plus the candidates, and no two of its
edges interleave. In setting `n` (0 to 3) the paper's Figure 1 adds `n` interleaved edges:
(b) `(3, 7)`; (c) `(1, 4)`, `(3, 7)`; (d) `(1, 4)`, `(2, 6)`, `(3, 7)`, for `j = 8`; for
another `j` they are shifted by `j - 8`. Each of them interleaves with a candidate.

Training, per setting and from the same seed: the weights alone for `warmup_epochs` (the
figure's "warm-up"), then the weights and the candidates' edge gates `beta` together
(one-level SGD, `search.lr` and `search.arch_lr`, no regularizer) for `epochs`. Every other
gate is frozen at its initial value, the added edges' included, and so are the candidates' op
gates: the figure plots edge weights. The candidates' gates `sigmoid(beta)` are recorded every
`record_every` iterations into `curves.json`, and drawn in `curves.png`, one panel per setting.
"""

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ifnas._io import atomic_write_text
from ifnas.checkpoint import seed_everything
from ifnas.config import Config, ConfigError
from ifnas.data import load_data, make_loader
from ifnas.nn.macro import MacroConfig
from ifnas.nn.supernet import Activation, Supernet
from ifnas.space.interleave import interleave
from ifnas.space.lchain import LChainSpace

_logger = logging.getLogger(__name__)

FIGURE1_NODE = 8
FIGURE1_INTERLEAVED = ((1, 4), (2, 6), (3, 7))  # Figure 1 (d); (b) and (c) take a part of it
FIGURE1_SETTINGS = ((), ((3, 7),), ((1, 4), (3, 7)), ((1, 4), (2, 6), (3, 7)))


@dataclass
class DiagnoseSettings:
    """What `run_diagnose` studies (defaults: the paper's Figure 1).

    Attributes:
        stage: the stage of the node.
        node: the node `j` whose inputs compete.
        candidates: precursor distances of the candidate inputs.
        settings: how many interleaved edges each run adds (0 to 3, one panel each).
        warmup_epochs: epochs training the weights alone.
        epochs: epochs training the weights and the candidates' gates.
        record_every: iterations between two records of the gates.
    """

    stage: int = 0
    node: int = FIGURE1_NODE
    candidates: tuple[int, ...] = (1, 3, 6)
    settings: tuple[int, ...] = (0, 1, 2, 3)
    warmup_epochs: int = 5
    epochs: int = 20
    record_every: int = 5
    interleaved: tuple[tuple[tuple[int, int], ...], ...] = field(init=False)

    def __post_init__(self):
        j = self.node
        if any(n not in range(len(FIGURE1_SETTINGS)) for n in self.settings):
            raise ConfigError(f"diagnose settings: expected numbers in 0..3, got {self.settings}")
        for name in ("candidates", "settings"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise ConfigError(f"diagnose {name}: each may be listed once, got {values}")
        if not self.candidates or min(self.candidates) < 1 or max(self.candidates) > j:
            raise ConfigError(
                f"diagnose candidates: precursor distances in 1..{j} (node {j}), got "
                f"{self.candidates}"
            )
        shift = j - FIGURE1_NODE
        self.interleaved = tuple(
            tuple((a + shift, b + shift) for a, b in FIGURE1_SETTINGS[n]) for n in self.settings
        )
        if any(a < 0 for edges in self.interleaved for a, _ in edges):
            raise ConfigError(
                f"diagnose node: the interleaved edges of Figure 1 need node >= 7, got {j}"
            )
        if self.warmup_epochs < 0 or self.epochs < 1 or self.record_every < 1:
            raise ConfigError(
                "diagnose: expected warmup_epochs >= 0, epochs >= 1, record_every >= 1"
            )


def diagnostic_space(cfg: Config, d: DiagnoseSettings) -> LChainSpace:
    """The config's space with `L` large enough for every candidate and added edge."""
    reach = max(max(d.candidates), *(b - a for edges in d.interleaved for a, b in edges))
    stages = tuple(cfg.model.stages)
    if not 0 <= d.stage < len(stages) or d.node >= stages[d.stage]:
        raise ConfigError(
            f"diagnose: node {d.node} of stage {d.stage} is not in model.stages={list(stages)}"
        )
    return LChainSpace(max(cfg.model.L, reach), stages)


def build_diagnostic(cfg: Config, d: DiagnoseSettings, macro: MacroConfig, setting: int):
    """The supernet of one setting, masked to the chain, the candidates and the added edges.

    Returns the supernet and the `(i, j)` of the candidates, nearest first.
    """
    space = diagnostic_space(cfg, d)
    net = Supernet(space, macro, mixing=cfg.model.mixing)
    j = d.node
    candidates = [(j - l, j) for l in sorted(d.candidates)]
    added = d.interleaved[d.settings.index(setting)]
    keep = {(d.stage, i, k) for i, k in candidates + list(added)}
    for s in range(len(space.stages)):
        for i, k in space.edges(s):
            if (s, k) == (d.stage, j):
                kept = (i, k) in candidates
            else:
                kept = k - i == 1 or (s, i, k) in keep
            if not kept:
                net.mask_edge(s, i, k)
    for edge in added:
        if not any(interleave(edge, c) for c in candidates):
            raise ConfigError(f"diagnose: edge {edge} interleaves with no candidate of node {j}")
    return net, candidates


def run_setting(cfg, d, data, macro, device, setting: int) -> dict:
    """Train one setting and return its recorded curves."""
    seed_everything(cfg.seed)
    net, candidates = build_diagnostic(cfg, d, macro, setting)
    net.to(device).train()
    lam = d.node % net.space.L
    gates = net.group_gates(d.stage, lam)
    row = gates.nodes.index(d.node)
    learn = torch.zeros_like(gates.beta)
    for i, j in candidates:
        learn[row, j - i - 1] = 1.0
    gates.beta.register_hook(lambda grad: grad * learn)

    weight_optimizer = torch.optim.SGD(
        net.weight_parameters(),
        lr=cfg.search.lr,
        momentum=cfg.search.momentum,
        weight_decay=cfg.search.weight_decay,
    )
    arch_optimizer = torch.optim.SGD([gates.beta], lr=cfg.search.arch_lr, momentum=0.9)
    loader = make_loader(data.train, cfg.data.batch_size, True, cfg.seed, cfg.data.workers)

    def record() -> dict:
        with torch.no_grad():
            return {
                f"pre-{j - i}": torch.sigmoid(gates.beta[row, j - i - 1]).item()
                for i, j in candidates
            }

    iters, curves = [], {f"pre-{j - i}": [] for i, j in candidates}
    t = 0
    for epoch in range(d.warmup_epochs + d.epochs):
        learning = epoch >= d.warmup_epochs
        net.activate(Activation(None, learn_beta=learning))
        loader.sampler.set_epoch(epoch)
        for x, y in loader:
            if t % d.record_every == 0:
                iters.append(t)
                for key, value in record().items():
                    curves[key].append(value)
            x, y = x.to(device), y.to(device)
            loss = F.cross_entropy(net(x), y)
            weight_optimizer.zero_grad(set_to_none=True)
            arch_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            weight_optimizer.step()
            if learning:
                arch_optimizer.step()
            t += 1
    iters.append(t)
    for key, value in record().items():
        curves[key].append(value)
    final = {key: values[-1] for key, values in curves.items()}
    _logger.info(
        "setting %d (%s): final gates %s",
        setting,
        list(d.interleaved[d.settings.index(setting)]),
        {k: round(v, 3) for k, v in final.items()},
    )
    return {
        "setting": setting,
        "interleaved": [list(e) for e in d.interleaved[d.settings.index(setting)]],
        "warmup_iters": d.warmup_epochs * len(loader),
        "iters": iters,
        "gates": curves,
        "winner": max(final, key=final.get),
    }


def run_diagnose(cfg: Config, d: DiagnoseSettings, out: str | Path) -> dict:
    """Run every setting of `d`; write `curves.json` and `curves.png` into `out`, which must
    not hold the curves of another diagnostic."""
    from ifnas.plots import plot_gate_curves
    from ifnas.run import macro_of, refuse_existing_run, resolve_device

    refuse_existing_run(Path(out) / "curves.json", resumable=False)
    device = resolve_device(cfg.device)
    data = load_data(cfg.data)
    macro = macro_of(cfg, data)
    space = diagnostic_space(cfg, d)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = {
        "stage": d.stage,
        "node": d.node,
        "L": space.L,
        "stages": list(space.stages),
        "candidates": [f"pre-{l}" for l in sorted(d.candidates)],
        "settings": [run_setting(cfg, d, data, macro, device, n) for n in d.settings],
    }
    atomic_write_text(out / "curves.json", json.dumps(results, indent=2) + "\n")
    plot_gate_curves(results, out / "curves.png")
    return results
