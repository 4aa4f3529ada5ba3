"""Search spaces: the L-chain macro space, its interleaving rules, groups and sizes."""

from ifnas.space.counting import lchain_size, lchain_stage_size, scientific
from ifnas.space.interleave import group_nodes, group_of, interleave, sub_supernet_edges
from ifnas.space.lchain import DEFAULT_STAGES, OPS, LChainSpace

__all__ = [
    "DEFAULT_STAGES",
    "OPS",
    "LChainSpace",
    "group_nodes",
    "group_of",
    "interleave",
    "lchain_size",
    "lchain_stage_size",
    "scientific",
    "sub_supernet_edges",
]
