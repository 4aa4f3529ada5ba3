"""Search strategies, all in the same space and under the same budget (section 4 of the paper).

| name | what it is |
| --- | --- |
| `ifnas` | IF-NAS: interleaving-free sampling, eq. 3, progressive pruning (sections 3.4, 3.5) |
| `wo_if` | the same algorithm with every live edge in every step ("w/o IF", Table 4) |
| `goldnas` | GOLD-NAS-style: one-level sigmoid gates, no IF, a resource-aware penalty |
| `darts` | DARTS: softmax over sep_conv_3x3, skip_connect, none; first-order bi-level |
| `pcdarts` | PC-DARTS: DARTS with partial channels (1/K, channel shuffle), edge normalization |
| `random` | random architectures under the budget, seeded |

`get_strategy(cfg.strategy)` is the one dispatch `ifnas.run` makes.
"""

from ifnas.search.strategies.base import Strategy
from ifnas.search.strategies.darts import Darts
from ifnas.search.strategies.goldnas import GoldNAS
from ifnas.search.strategies.interleaving_free import IFNAS, WithoutIF
from ifnas.search.strategies.pcdarts import PCDarts
from ifnas.search.strategies.random_search import RandomSearch

STRATEGIES: dict[str, Strategy] = {
    strategy.name: strategy
    for strategy in (IFNAS(), WithoutIF(), GoldNAS(), Darts(), PCDarts(), RandomSearch())
}


def get_strategy(name: str) -> Strategy:
    """The strategy called `name`; `ValueError` naming the known ones otherwise."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; expected one of {list(STRATEGIES)}") from None


__all__ = ["STRATEGIES", "Strategy", "get_strategy"]
