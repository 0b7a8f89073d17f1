"""The shipped MobileNet-style search space: separable blocks and a global-average-pool head, every
sampled design priced by the cost model and round-tripped through encode; the default space is unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from codesign.search.space import Context, load_space
from hw_space.boards import load_board
from hw_space.model import CostModel

SPACE = Path(__file__).resolve().parents[1] / "codesign" / "data" / "mobilenet_space.yaml"


def test_mobilenet_space_samples_separable_blocks_that_the_model_prices():
    space = load_space(SPACE, Context(1, 8, 8, 10, board="zc706"))
    names = [d.name for d in space.decisions]
    assert "conv0.block" in names and "head" in names
    # the default space offers neither, so its tokens are what they were
    default = load_space(None)
    assert not any(d.name.endswith(".block") or d.name == "head" for d in default.decisions)
    assert "block" not in default.to_dict()["network"] and space.to_dict()["network"]["block"] == ["conv", "separable"]
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(60):
        tokens = space.sample(rng)
        design = space.decode(tokens)
        layers = design.network.layers
        for j, layer in enumerate(layers):
            if layer.groups > 1:  # a depthwise conv on its block's input channels, then a pointwise 1x1
                assert layer.out_channels == design.network.shapes()[j][0].channels
                assert layers[j + 1].kernel == 1 and layers[j + 1].type == "conv"
        seen |= {("depthwise" if l.groups > 1 else l.type) for l in layers}
        result = CostModel(design.network, load_board("zc706")).evaluate_designs([design])
        assert all(bool(st.legal[0]) for st in result.stages)  # every folding divides its loop (widths may not fit)
        assert space.decode(space.encode(design)) == design
    assert {"depthwise", "global_avgpool", "conv", "maxpool", "dense"} <= seen
