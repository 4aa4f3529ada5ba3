"""The registry, and which gates learn in each step of IF-NAS and of "w/o IF"."""

import pytest
import torch
from torch.utils.data import TensorDataset

from ifnas.config import STRATEGIES, ConfigError, load_config
from ifnas.data import make_loader
from ifnas.nn.macro import MacroConfig
from ifnas.search.strategies import STRATEGIES as REGISTRY
from ifnas.search.strategies import get_strategy
from ifnas.space.lchain import LChainSpace


def test_registry_holds_every_configurable_strategy():
    assert tuple(REGISTRY) == STRATEGIES
    assert all(get_strategy(name).name == name for name in STRATEGIES)


def test_unknown_strategy():
    with pytest.raises(ValueError, match=r"unknown strategy 'enas'; expected one of \['ifnas'"):
        get_strategy("enas")
    with pytest.raises(ConfigError, match=r"strategy: expected one of \['ifnas', 'wo_if'"):
        load_config(None, ["strategy=enas"])
    with pytest.raises(ConfigError, match="compare.strategies"):
        load_config(None, ["compare.strategies=[ifnas, enas]"])


@pytest.mark.parametrize("name", ["ifnas", "wo_if", "goldnas"])
def test_each_step_reaches_exactly_the_learning_gates(name):
    """IF-NAS: warm-up steps reach no gate, S_lam steps reach G_lam alone; without IF, every
    learning step reaches every group."""
    cfg = load_config(
        None,
        [
            f"strategy={name}",
            "search.weight_warmup_epochs=0",
            "search.alpha_delay_epochs=0",
            "search.step_iters=1",
        ],
    )
    macro = MacroConfig(in_channels=1, num_classes=10, input_size=8, width=4)
    torch.manual_seed(0)
    strategy = get_strategy(name)
    net = strategy.build_supernet(cfg, LChainSpace(3, (7, 5)), macro)
    data = TensorDataset(torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,)))
    loop = strategy.build_loop(net, cfg, make_loader(data, 4, True, 0), torch.device("cpu"))
    x = torch.randn(4, 1, 8, 8)
    for t in range(8):
        activation = loop.activation_for(t)
        net.activate(activation)
        net.zero_grad(set_to_none=True)
        loss = net(x).logsumexp(1).mean()
        if activation.learn_beta:
            loss = loss + loop.regularizer()
        loss.backward()
        for key, gates in net.gates.items():
            lam = int(key.split("_g")[1])
            if name == "ifnas":
                learns = t % 4 != 0 and lam == t % 4 - 1
            else:
                learns = True
            assert (gates.beta.grad is not None) == learns, (t, key)
            assert (gates.alpha.grad is not None) == learns, (t, key)
            if learns:  # every live gate of a learning group, and no pruned one
                assert torch.equal(gates.beta.grad != 0, gates.beta_mask.bool())
