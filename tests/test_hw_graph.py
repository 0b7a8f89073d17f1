"""The network as a graph: layers name their inputs; shapes, feeders and graph queries follow them,
a fork is representable, joins and bad `inputs` are refused in one line, chains hash as before."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hw_space.design import (
    LAYER_KINDS,
    LAYER_TYPES,
    Layer,
    Shape,
    design_from_dict,
    load_design,
)
from hw_space.errors import CodesignError
from hw_space.layer_kinds import ConvKind, DenseKind, MaxPoolKind

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

CHAIN = """\
network:
  input: {channels: 3, height: 16, width: 16, bits: 4}
  layers:
    - {name: conv0, type: conv, out_channels: 8, kernel: 3, padding: 1, weight_bits: 2, act_bits: 3}
    - {name: conv1, type: conv, out_channels: 8, kernel: 3, stride: 2, weight_bits: 2, act_bits: 2}
    - {name: pool0, type: maxpool, kernel: 2}
    - {name: fc0, type: dense, out_features: 16, weight_bits: 1, act_bits: 1}
    - {name: fc1, type: dense, out_features: 10, weight_bits: 4}
"""

# conv0 forks: conv1 and the add read it; add0 joins conv1's branch back (a residual block)
FORK = """\
network:
  input: {channels: 3, height: 16, width: 16, bits: 4}
  layers:
    - {name: conv0, type: conv, out_channels: 8, kernel: 3, padding: 1, weight_bits: 2, act_bits: 3}
    - {name: conv1, type: conv, out_channels: 8, kernel: 3, padding: 1, weight_bits: 2, act_bits: 3}
    - {name: add0, type: add, inputs: [conv1, conv0], act_bits: 2}
    - {name: pool0, type: maxpool, kernel: 2}
    - {name: fc0, type: dense, out_features: 16, weight_bits: 1, act_bits: 1}
    - {name: fc1, type: dense, out_features: 10, weight_bits: 4}
"""


def _load(text: str, source: str = "g.yaml"):
    return design_from_dict(yaml.safe_load(text), source=source)


def _error(text: str) -> str:
    with pytest.raises(CodesignError) as exc:
        _load(text)
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith("g.yaml: "), msg
    return msg


# ------------------------------------------------------------------ the kinds


def test_every_layer_type_is_one_kind_object():
    assert LAYER_TYPES == ("conv", "dense", "maxpool", "avgpool", "global_avgpool", "add") == tuple(LAYER_KINDS)
    assert isinstance(LAYER_KINDS["conv"], ConvKind)
    assert isinstance(LAYER_KINDS["dense"], DenseKind)
    assert isinstance(LAYER_KINDS["maxpool"], MaxPoolKind)
    net = _load(CHAIN).network
    assert [l.kind for l in net.layers] == [LAYER_KINDS[t] for t in ("conv", "conv", "maxpool", "dense", "dense")]
    assert [l.is_compute for l in net.layers] == [True, True, False, True, True]
    # the dataflow folding fields each kind takes (what hardware.layers.<name> accepts)
    assert LAYER_KINDS["conv"].fold_fields == ("pe", "simd", "weight_memory", "mac", "swg_simd", "weight_layout")
    assert LAYER_KINDS["dense"].fold_fields == ("pe", "simd", "weight_memory", "mac", "weight_layout")
    assert LAYER_KINDS["maxpool"].fold_fields == ("pe",)
    assert [k.prefix for k in LAYER_KINDS.values()] == ["conv", "fc", "pool", "avgpool", "gap", "add"]


def test_kind_shapes():
    conv = Layer(name="c", type="conv", out_channels=5, kernel=3, stride=2, padding=1, weight_bits=2, act_bits=2)
    pool = Layer(name="p", type="maxpool", kernel=3, stride=2)
    dense = Layer(name="d", type="dense", out_features=7, weight_bits=2)
    x = Shape(4, 9, 11)
    assert conv.kind.output_shape(conv, x) == Shape(5, 5, 6)
    assert pool.kind.output_shape(pool, x) == Shape(4, 4, 5)
    assert dense.kind.output_shape(dense, x) == Shape(7, 1, 1)


def test_an_unknown_type_on_a_programmatic_layer_is_one_line():
    with pytest.raises(CodesignError, match=r"layer x: type 'lstm' is not allowed; allowed: conv, dense, maxpool"):
        Layer(name="x", type="lstm").kind  # noqa: B018


# ------------------------------------------------------------------ a chain is what it always was


def test_a_chain_answers_the_graph_queries():
    net = _load(CHAIN).network
    assert all(l.inputs == () for l in net.layers)
    assert net.order() == [0, 1, 2, 3, 4]
    assert [net.producers(j) for j in range(5)] == [[-1], [0], [1], [2], [3]]
    assert [net.consumers(j) for j in range(-1, 5)] == [[0], [1], [2], [3], [4], []]
    assert net.is_chain()
    assert not any(net.is_fork(j) or net.is_join(j) for j in range(-1, 5) if j >= 0) and not net.is_fork(-1)
    net.require_chain("anything")  # no error
    # the values the chain gave before layers named their inputs
    assert net.feeders() == [-1, 0, 1, 1, 3]
    assert [net.input_bits_of(j) for j in range(5)] == [4, 3, 2, 2, 1]
    assert [(i.channels, i.height, o.channels, o.height) for i, o in net.shapes()] == [
        (3, 16, 8, 16), (8, 16, 8, 7), (8, 7, 8, 3), (8, 3, 16, 1), (16, 1, 10, 1)]


@pytest.mark.parametrize("path, expected", [
    ("cnv_w1a1.yaml", "f0beb4bd9b363edb"),
    ("digits_w1a1.yaml", "73bb45a4a2768aa4"),
    ("digits_w4a4.yaml", "44ea2e4f0d91bc52"),
])
def test_content_hash_of_todays_networks_is_unchanged(path, expected):
    # pinned before layers had `inputs`: the hash keys the training cache and is in every journal
    assert load_design(EXAMPLES / path).network.content_hash() == expected


def test_content_hash_of_a_reference_chain_is_unchanged():
    assert _load(CHAIN).network.content_hash() == "bd26ddda271e4183"


def test_an_explicit_default_input_is_the_default():
    # naming the layer before (or the input, for the first layer) changes nothing, not even the file
    text = (CHAIN.replace("act_bits: 3}", "act_bits: 3, inputs: [input]}")
            .replace("act_bits: 2}", "act_bits: 2, inputs: [conv0]}"))
    assert text != CHAIN
    d = _load(text)
    assert d == _load(CHAIN)
    assert d.to_yaml() == _load(CHAIN).to_yaml()
    assert "inputs" not in d.to_yaml()
    assert d.network.content_hash() == "bd26ddda271e4183"


# ------------------------------------------------------------------ a fork


def test_a_fork_is_representable():
    net = _load(FORK).network
    assert net.layers[2].inputs == ("conv1", "conv0")
    assert net.order() == [0, 1, 2, 3, 4, 5]
    assert net.producers(2) == [1, 0]
    assert net.consumers(0) == [1, 2]
    assert net.consumers(1) == [2]
    assert net.is_fork(0) and not net.is_fork(1)
    assert net.is_join(2) and not any(net.is_join(j) for j in (0, 1, 3, 4, 5))
    assert not net.is_chain()
    # the add keeps the shape it reads (8x16x16), the pool halves it
    assert net.shapes()[2] == (Shape(8, 16, 16), Shape(8, 16, 16))
    assert net.shapes()[4][0].size == 8 * 8 * 8
    assert net.feeders() == [-1, 0, 1, 2, 2, 4]
    assert [net.input_bits_of(j) for j in range(6)] == [4, 3, 3, 2, 2, 1]
    assert [net.output_bits(j) for j in range(-1, 5)] == [4, 3, 3, 2, 2, 1]


def test_a_fork_round_trips_and_writes_inputs_only_where_not_the_default(tmp_path):
    d = _load(FORK)
    text = d.to_yaml()
    assert "{name: add0, type: add, act_bits: 2, inputs: [conv1, conv0]}" in text
    assert text.count("inputs") == 1
    again = design_from_dict(yaml.safe_load(text))
    assert again == d and again.to_yaml() == text


def test_a_fork_hashes_apart_from_the_chain_and_ignores_names():
    fork, chain = _load(FORK).network, _load(CHAIN).network
    assert fork.content_hash() != chain.content_hash()
    renamed = _load(FORK.replace("conv0", "stem").replace("add0", "a"))
    assert renamed.network.content_hash() == fork.content_hash()


def test_a_fork_at_the_network_input():
    text = CHAIN.replace("{name: conv0, type: conv, out_channels: 8, kernel: 3, padding: 1, weight_bits: 2, act_bits: 3}",
                         "{name: conv0, type: conv, out_channels: 3, kernel: 3, padding: 1, weight_bits: 2, act_bits: 4}\n"
                         "    - {name: add0, type: add, inputs: [conv0, input]}")
    net = _load(text).network
    assert net.producers(1) == [0, -1]
    assert net.consumers(-1) == [0, 1]
    assert net.is_fork(-1)
    assert net.shapes()[1] == (Shape(3, 16, 16), Shape(3, 16, 16))
    assert net.input_bits_of(2) == 4 and net.output_bits(1) == 4  # an add without act_bits keeps the bits it receives
    assert net.to_dict()["layers"][1]["inputs"] == ["conv0", "input"]


ADD_BAD = [
    ("shapes differ", FORK.replace("{name: conv1, type: conv, out_channels: 8, kernel: 3, padding: 1,",
                                   "{name: conv1, type: conv, out_channels: 8, kernel: 3, padding: 1, stride: 2,"),
     "network.layers[2] (add0).inputs: conv1 gives 8x8x8 and conv0 gives 8x16x16; an add needs one shape"),
    ("bits differ", FORK.replace("padding: 1, weight_bits: 2, act_bits: 3}\n    - {name: add0",
                                 "padding: 1, weight_bits: 2, act_bits: 4}\n    - {name: add0"),
     "network.layers[2] (add0).inputs: conv1 gives 4-bit and conv0 3-bit values; an add needs one bit width"),
    ("bipolar", FORK.replace("act_bits: 3}", "act_bits: 1}"),
     "network.layers[2] (add0).inputs: an add of 1-bit (bipolar) values is not supported"),
    ("three inputs", FORK.replace("inputs: [conv1, conv0]", "inputs: [conv1, conv0, input]"),
     "network.layers[2] (add0).inputs: an add layer reads 2 inputs, got 3"),
    ("one input", FORK.replace("inputs: [conv1, conv0]", "inputs: [conv1]"),
     "network.layers[2] (add0).inputs: an add layer reads 2 inputs, got 1"),
    ("a dangling branch", FORK.replace("inputs: [conv1, conv0]", "inputs: [conv0, conv0]"),
     "network.layers[1] (conv1): no layer reads its output; every layer but the last (fc1) must feed a later one"),
]


@pytest.mark.parametrize("text, expected", [b[1:] for b in ADD_BAD], ids=[b[0] for b in ADD_BAD])
def test_bad_adds_give_one_line_naming_the_layer_and_field(text, expected):
    assert expected in _error(text)


def test_features_that_need_a_chain_refuse_a_fork_in_one_line():
    net = _load(FORK).network
    with pytest.raises(CodesignError) as exc:
        net.require_chain("the cost model")
    msg = str(exc.value)
    assert msg == ("the cost model: network.layers[2] (add0) reads conv1, conv0, not conv1; branches are not "
                   "supported yet here, only a chain where each layer reads the one before it")


def test_quant_build_builds_a_fork_and_shares_the_add_inputs_quantizer():
    pytest.importorskip("torch")
    from quant.build import build

    model = build(_load(FORK).network)
    # add0 reads conv1 and conv0: the two blocks hold one activation quantizer (one scale)
    assert model.block("conv1").act is model.block("conv0").act
    assert model.block("add0").act is not model.block("conv0").act


# ------------------------------------------------------------------ bad inputs


def _with_inputs(layer: str, inputs: str) -> str:
    old = f"{{name: {layer}, type: "
    assert old in CHAIN
    return CHAIN.replace(old, f"{{name: {layer}, inputs: {inputs}, type: ")


BAD = [
    ("unknown name", _with_inputs("pool0", "[conv7]"),
     "network.layers[2] (pool0).inputs: 'conv7' is not a layer of this network; allowed: input, conv0, conv1"),
    ("a later layer", _with_inputs("conv1", "[fc0]"),
     "network.layers[1] (conv1).inputs: 'fc0' comes later (network.layers[3]); a layer reads only layers listed before it"),
    ("itself", _with_inputs("pool0", "[pool0]"),
     "network.layers[2] (pool0).inputs: 'pool0' is this layer itself; a layer reads only layers listed before it"),
    ("a join on a conv", _with_inputs("conv1", "[input, conv0]"),
     "network.layers[1] (conv1).inputs: a conv layer reads one input, got 2; two branches join in an add layer"),
    ("empty list", _with_inputs("pool0", "[]"),
     "network.layers[2] (pool0).inputs: expected a non-empty list of layer names such as [conv0], got []"),
    ("not a list", _with_inputs("pool0", "conv0"),
     "network.layers[2] (pool0).inputs: expected a non-empty list of layer names such as [conv0], got 'conv0'"),
    ("not a name", _with_inputs("pool0", "[3]"),
     "network.layers[2] (pool0).inputs: 3 is not a layer name"),
    ("a pool reading a dense layer", CHAIN.replace(
        "    - {name: fc1,", "    - {name: pool9, inputs: [fc0], type: maxpool}\n    - {name: fc1, inputs: [fc0],"),
     "network.layers[4] (pool9): a maxpool layer cannot follow a dense layer; convolutions and pools come first"),
    ("a conv reading a dense layer's fork", CHAIN.replace(
        "    - {name: fc1,", "    - {name: conv9, inputs: [fc0], type: conv, out_channels: 2, kernel: 1, weight_bits: 2, "
        "act_bits: 2}\n    - {name: fc1, inputs: [fc0],"),
     "network.layers[4] (conv9): a conv layer cannot follow a dense layer"),
]


@pytest.mark.parametrize("text, expected", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_inputs_give_one_line_naming_the_layer_and_field(text, expected):
    assert expected in _error(text)


def test_inputs_is_listed_among_the_allowed_fields():
    msg = _error(CHAIN.replace("{name: pool0, type: maxpool, kernel: 2}", "{name: pool0, type: maxpool, kernel: 2, from: conv0}"))
    assert "network.layers[2].from: unknown field; allowed: name, type, kernel, stride, inputs" in msg


def test_bad_inputs_on_a_programmatic_network_are_one_line():
    net = _load(CHAIN).network
    layers = list(net.layers)
    layers[2] = Layer(name="pool0", type="maxpool", kernel=2, stride=2, inputs=("nowhere",))
    bad = type(net)(input=net.input, layers=tuple(layers))
    with pytest.raises(CodesignError, match=r"^network.layers\[2\] \(pool0\).inputs: 'nowhere' is not a layer"):
        bad.shapes()


def test_the_cost_model_and_the_cli_estimate_a_fork(tmp_path):
    # the cost model prices a residual network (tests/test_hw_residual.py checks its stages); only the
    # tiled template still refuses one, in one line
    import subprocess
    import sys

    from hw_space.boards import load_board
    from hw_space.model import CostModel

    model = CostModel(_load(FORK).network, load_board("zc706"))
    names = [st.name for st in model.evaluate_dataflow(n=1).stages]
    assert {"conv0_dup", "add0_in_dwc", "add0_in1_dwc", "add0"} <= set(names)
    path = tmp_path / "fork.yaml"
    path.write_text(FORK)
    run = subprocess.run([sys.executable, "-m", "codesign", "estimate", "--no-simulate", str(path)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "conv0_dup" in run.stdout and "add0" in run.stdout
    tiled = tmp_path / "fork_tiled.yaml"
    tiled.write_text(FORK + "hardware: {template: tiled, engine: {tm: 4, tn: 4, tr: 4, tc: 4}}\n")
    run = subprocess.run([sys.executable, "-m", "codesign", "estimate", str(tiled)], capture_output=True, text=True)
    assert run.returncode == 2 and "Traceback" not in run.stderr and run.stderr.strip().count("\n") == 0
    assert ("the tiled template: network.layers[2] (add0) reads conv1, conv0; the tiled engine runs chains of "
            "layers only") in run.stderr and "need the dataflow template" in run.stderr
