"""Shared fixtures: tiny spaces and networks that run in milliseconds on a CPU."""

import pytest
import torch

from ifnas.nn.macro import MacroConfig
from ifnas.nn.supernet import Supernet
from ifnas.space.lchain import LChainSpace


@pytest.fixture
def tiny_macro() -> MacroConfig:
    return MacroConfig(in_channels=1, num_classes=10, input_size=8, width=4, stem_strides=(1,))


def make_supernet(L=3, stages=(7, 6), macro=None, seed=0, **kwargs) -> Supernet:
    """A small supernet with fixed weights (seeded) on the CPU."""
    torch.manual_seed(seed)
    macro = macro or MacroConfig(in_channels=1, num_classes=10, input_size=8, width=4)
    return Supernet(LChainSpace(L, tuple(stages)), macro, **kwargs)


@pytest.fixture
def supernet() -> Supernet:
    return make_supernet()
