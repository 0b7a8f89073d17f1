"""The shipped ResNet-style search space: residual basic blocks (identity and 1x1 projection shortcuts,
stride-2 downsampling blocks), every sampled design valid, priced by the cost model and round-tripped
through encode; spaces that cannot build a residual block are refused in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from codesign.search.space import Context, load_space, residual_block, space_from_dict
from hw_space.boards import load_board
from hw_space.design import design_from_dict
from hw_space.errors import CodesignError
from hw_space.model import CostModel

SPACE = Path(__file__).resolve().parents[1] / "codesign" / "data" / "resnet_space.yaml"


def test_residual_block_shortcuts():
    # same channels, stride 1, the add's bits: the shortcut is the block's input itself
    ident = residual_block(1, "add0", 16, 4, 16, 3, 1, 2, 4)
    assert [l.name for l in ident] == ["conv1a", "conv1", "add1"]
    assert ident[-1].inputs == ("conv1", "add0") and ident[-1].act_bits == 4
    # a stride-2 block: its first conv and a 1x1 projection of the block's input take the stride
    down = residual_block(2, "add1", 16, 4, 32, 3, 2, 2, 4)
    assert [l.name for l in down] == ["conv2a", "conv2", "proj2", "add2"]
    assert (down[0].stride, down[1].stride, down[2].stride, down[2].kernel) == (2, 1, 2, 1)
    assert down[2].inputs == ("add1",) and down[-1].inputs == ("conv2", "proj2")
    # other bits than the block's input also need a projection, and so does the network input (the QAT
    # model adds only quantized layer outputs); 1-bit activations become 2 (an add reads 2 bits or more)
    assert [l.name for l in residual_block(0, "conv0", 16, 8, 16, 3, 1, 2, 4)][2] == "proj0"
    assert [l.name for l in residual_block(0, "input", 16, 4, 16, 3, 1, 2, 4)][2] == "proj0"
    assert {l.act_bits for l in residual_block(0, "input", 1, 8, 8, 3, 1, 1, 1)} == {2}


def test_resnet_space_samples_residual_blocks_that_the_model_prices():
    space = load_space(SPACE, Context(1, 8, 8, 10, board="zc706"))
    assert space.block.values == ("conv", "residual") and space.templates.values == ("dataflow",)
    rng = np.random.default_rng(0)
    seen: set[str] = set()
    board = load_board("zc706")
    for _ in range(40):
        design = space.decode(space.sample(rng))
        net = design.network
        assert design_from_dict(yaml.safe_load(design.to_yaml())) == design  # valid, and it round-trips
        assert space.decode(space.encode(design)) == design
        for j, layer in enumerate(net.layers):
            if layer.type == "add":
                main, short = net.producers(j)
                seen.add("identity" if short < 0 or net.layers[short].type != "conv" or not net.layers[short].inputs else
                         f"projection/{net.layers[short].stride}")
        result = CostModel(net, board).evaluate_designs([design])
        assert all(bool(st.legal[0]) for st in result.stages)
    assert {"identity", "projection/1", "projection/2"} <= seen


@pytest.mark.parametrize("change, expected", [
    ({"hardware": {"templates": ["dataflow", "tiled"]}},
     "hardware.templates: tiled is not allowed with network.block residual"),
    ({"network": {"block": ["residual"], "kernel": [2, 3]}},
     "network.kernel: 2 is not allowed with network.block residual"),
])
def test_spaces_that_cannot_build_a_residual_block_are_refused(change, expected):
    data = yaml.safe_load(SPACE.read_text())
    for section, fields in change.items():
        data[section].update(fields)
    with pytest.raises(CodesignError) as exc:
        space_from_dict(data, source="r.yaml")
    assert str(exc.value).startswith("r.yaml: ") and expected in str(exc.value) and "\n" not in str(exc.value)


def test_adds_and_pools_take_the_lanes_of_the_layer_they_read():
    """An add or average pool has no decision of its own: its PE follows the compute layer (or add)
    whose values it reads, so a one-lane stage never paces a fast design."""
    space = load_space(SPACE, Context(1, 8, 8, 10, board="zc706"))
    rng = np.random.default_rng(3)
    checked = 0
    for _ in range(30):
        design = space.decode(space.sample(rng))
        net, hw = design.network, design.hardware
        feeders = net.feeders()
        for j, layer in enumerate(net.layers):
            if layer.type in ("add", "global_avgpool"):
                src = net.layers[feeders[j]].name
                assert hw.fold(layer.name).pe == hw.fold(src).pe  # the feeder's PE divides the same channels
                checked += 1
    assert checked > 10
