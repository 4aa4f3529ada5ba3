"""Genotype JSON: exact round trips, validation, depth."""

import json

import pytest

from ifnas.genotype import Genotype, GenotypeError, StageGenotype
from ifnas.nn.macro import MacroConfig
from ifnas.search.derive import derive
from tests.conftest import make_supernet

MACRO = MacroConfig(in_channels=1, num_classes=10, input_size=8, width=4)


def genotype(inputs, nodes=5, L=3):
    return Genotype(L=L, macro=MACRO, stages=(StageGenotype(nodes, inputs),))


def test_round_trip_is_exact(tmp_path):
    net = make_supernet()
    net.mask_edge(0, 1, 3)
    net.mask_op(1, 0, 2, "skip_connect")
    g = derive(net)
    assert Genotype.from_json(g.to_json()) == g
    g.save(tmp_path / "g.json")
    assert Genotype.load(tmp_path / "g.json") == g
    assert json.loads((tmp_path / "g.json").read_text())["format"] == "ifnas-genotype/1"


def test_depth_is_the_longest_path():
    chain = {
        1: ((0, "sep_conv_3x3"),),
        2: ((1, "skip_connect"),),
        3: ((2, "sep_conv_3x3"),),
        4: ((1, "sep_conv_3x3"), (3, "skip_connect")),
    }
    assert genotype(chain).depth() == 4
    shortcut = {1: ((0, "sep_conv_3x3"),), 4: ((1, "sep_conv_3x3"),)}
    assert genotype(shortcut).depth() == 2


@pytest.mark.parametrize(
    "inputs,message",
    [
        ({4: ((0, "sep_conv_3x3"),)}, "not in the 3-chain space"),
        ({1: ((0, "conv_7x7"),), 4: ((1, "sep_conv_3x3"),)}, "unknown op 'conv_7x7'"),
        ({2: ((1, "sep_conv_3x3"),), 4: ((2, "sep_conv_3x3"),)}, "starts at node 1, which has no"),
        ({1: ((0, "sep_conv_3x3"),)}, "output node 4 has no inputs"),
        (
            {1: ((0, "sep_conv_3x3"),), 2: ((1, "skip_connect"),), 4: ((1, "sep_conv_3x3"),)},
            r"nodes \[2\] have no path to the stage output",
        ),
        ({1: ((0, "sep_conv_3x3"), (0, "sep_conv_3x3")), 4: ((1, "skip_connect"),)}, "twice"),
        ({7: ((6, "skip_connect"),)}, "outside"),
    ],
)
def test_invalid_genotypes_name_the_problem(inputs, message):
    with pytest.raises(GenotypeError, match=message):
        genotype(inputs)


def test_malformed_json_is_a_clear_error(tmp_path):
    with pytest.raises(GenotypeError, match="not a genotype"):
        Genotype.from_json('{"stages": []}')
    with pytest.raises(GenotypeError, match="malformed genotype"):
        Genotype.from_json('{"format": "ifnas-genotype/1", "L": 2}')
    with pytest.raises(FileNotFoundError, match="nowhere.json"):
        Genotype.load(tmp_path / "nowhere.json")


def test_macro_that_cannot_pass_the_stride_two_path_is_refused():
    macro = MacroConfig(in_channels=1, num_classes=10, input_size=6, width=4)
    stage = StageGenotype(2, {1: ((0, "skip_connect"),)})
    with pytest.raises(GenotypeError, match="input_size 6 cannot pass the stride-2 path"):
        Genotype(L=1, macro=macro, stages=(stage, stage, stage))
