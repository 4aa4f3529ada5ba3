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


def _chain_json():
    return genotype({1: ((0, "sep_conv_3x3"),), 4: ((1, "skip_connect"),)}).to_dict()


@pytest.mark.parametrize("index", [0.5, True, "0", None])
def test_a_hand_edited_input_index_that_is_not_an_integer_is_refused(index):
    data = _chain_json()
    data["stages"][0]["inputs"]["1"] = [[index, "sep_conv_3x3"]]
    with pytest.raises(GenotypeError, match=r"stage 0: node 1: expected an integer node index"):
        Genotype.from_dict(data)


@pytest.mark.parametrize("key", ["1.5", "true", "-1", " 1"])
def test_a_hand_edited_node_key_that_is_not_an_integer_is_refused(key):
    data = _chain_json()
    data["stages"][0]["inputs"][key] = data["stages"][0]["inputs"].pop("1")
    with pytest.raises(GenotypeError, match="expected an integer node index"):
        Genotype.from_dict(data)


def test_a_hand_edited_node_count_that_is_not_an_integer_is_refused():
    data = _chain_json()
    data["stages"][0]["nodes"] = 5.0
    with pytest.raises(GenotypeError, match="stage 0 nodes: expected an integer node index"):
        Genotype.from_dict(data)


def _darts_cell_json():
    from ifnas.search.cell_search import derive_cells
    from tests.nn.test_cells_supernet import make

    return derive_cells(make("darts_cell", cells=(1, 0, 1), seed=5), "all").to_dict()


def test_a_darts_cell_node_keeps_two_inputs_one_op_each():
    from ifnas.cell_genotype import CellGenotype

    data = _darts_cell_json()
    assert CellGenotype.from_dict(data).to_dict() == data
    one = json.loads(json.dumps(data))
    one["slots"][0]["3"] = one["slots"][0]["3"][:1]  # what keep_one derives
    assert CellGenotype.from_dict(one).to_dict() == one
    three = json.loads(json.dumps(data))
    three["slots"][0]["3"] = [[0, "sep_conv_3x3"], [1, "sep_conv_3x3"], [2, "skip_connect"]]
    with pytest.raises(
        GenotypeError, match="keeps 2 inputs .1 with keep_one., one op each; node 3"
    ):
        CellGenotype.from_dict(three)
    same_input = json.loads(json.dumps(data))
    same_input["slots"][0]["2"] = [[0, "sep_conv_3x3"], [0, "skip_connect"]]
    with pytest.raises(GenotypeError, match="one op each; node 2"):
        CellGenotype.from_dict(same_input)
    fractional = json.loads(json.dumps(data))
    fractional["slots"][0]["3"][0][0] = 1.5
    with pytest.raises(GenotypeError, match="cell 0: node 3: expected an integer node index"):
        CellGenotype.from_dict(fractional)


@pytest.mark.parametrize(
    "content,message",
    [
        (b"", "is empty"),
        (b"  \n", "is empty"),
        (b'{"format": "ifnas-genotype/1", ', "is not valid JSON"),
        (b"\x89PNG\r\n\x1a\n\xff\xfe", "is not a text file"),
        (b"[1, 2]", "not a genotype"),
    ],
)
def test_an_unreadable_genotype_file_is_named(tmp_path, content, message):
    from ifnas.spaces import load_genotype

    path = tmp_path / "g.json"
    path.write_bytes(content)
    with pytest.raises(GenotypeError, match=message) as caught:
        load_genotype(path)
    assert str(path) in str(caught.value)
    with pytest.raises(GenotypeError, match=message):
        Genotype.load(path)
    with pytest.raises(GenotypeError, match="is a directory"):
        load_genotype(tmp_path)
