"""The Brevitas builder for depthwise convolutions and average pools: shapes and bits as hw_space says."""

from __future__ import annotations

import torch

from hw_space.design import Network, design_from_dict
from quant.build import build, describe


def make_network(layers: list[dict], in_bits: int) -> Network:
    data = {"network": {"input": {"channels": 1, "height": 8, "width": 8, "bits": in_bits}, "layers": layers}}
    return design_from_dict(data).network


def test_mobilenet_style_network_builds_and_matches_hw_space():
    for bits in (1, 4):
        net = make_network([
            {"type": "conv", "out_channels": 8, "kernel": 3, "padding": 1, "weight_bits": bits, "act_bits": bits},
            {"type": "conv", "out_channels": 8, "kernel": 3, "padding": 1, "groups": 8, "weight_bits": bits,
             "act_bits": bits},
            {"type": "conv", "out_channels": 16, "kernel": 1, "weight_bits": bits, "act_bits": bits},
            {"type": "avgpool", "kernel": 2},
            {"type": "global_avgpool"},
            {"type": "dense", "out_features": 10, "weight_bits": bits},
        ], in_bits=bits)
        model = build(net)
        assert model.blocks[1].conv.groups == 8
        out = model(torch.rand(3, 1, 8, 8))
        assert out.shape == (3, 10)
        out.sum().backward()
        infos = describe(model)
        for index, (info, layer, (shape_in, shape_out)) in enumerate(zip(infos, net.layers, net.shapes())):
            assert (info.type, info.in_shape, info.out_shape) == (layer.type, shape_in, shape_out)
            assert info.input_bits == net.input_bits_of(index) == bits
        assert [i.type for i in infos][3:5] == ["avgpool", "global_avgpool"]
