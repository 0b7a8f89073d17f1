"""quant.build: every layer type and bit width builds, runs, and matches what hw_space costs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hw_space.design import Network, design_from_dict, load_design
from hw_space.errors import CodesignError
from quant.build import QuantNet, build, describe, input_integers

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def make_network(layers: list[dict], channels: int = 1, size: int = 8, in_bits: int = 8) -> Network:
    data = {"network": {"input": {"channels": channels, "height": size, "width": size, "bits": in_bits},
                        "layers": layers}}
    return design_from_dict(data).network


def skeleton(w: int, a: int, in_bits: int = 8, last_w: int | None = None) -> Network:
    return make_network([
        {"type": "conv", "out_channels": 6, "kernel": 3, "padding": 1, "weight_bits": w, "act_bits": a},
        {"type": "maxpool", "kernel": 2},
        {"type": "conv", "out_channels": 8, "kernel": 3, "stride": 2, "weight_bits": w, "act_bits": a},
        {"type": "dense", "out_features": 12, "weight_bits": w, "act_bits": a},
        {"type": "dense", "out_features": 10, "weight_bits": last_w or w},
    ], in_bits=in_bits)


def _check_against_hw_space(model: QuantNet, net: Network) -> None:
    infos = describe(model)
    assert [i.name for i in infos] == [layer.name for layer in net.layers]
    for index, (info, layer, (shape_in, shape_out)) in enumerate(zip(infos, net.layers, net.shapes())):
        assert info.type == layer.type
        assert info.in_shape == shape_in, layer.name
        assert info.out_shape == shape_out, layer.name
        assert info.input_bits == net.input_bits_of(index), layer.name
        if layer.is_compute:
            assert info.weight_bits == layer.weight_bits
            assert info.act_bits == layer.act_bits
        else:
            assert info.weight_bits is None and info.act_bits is None


@pytest.mark.parametrize("bits", range(1, 9))
def test_every_bit_width_builds_runs_and_describes(bits):
    net = skeleton(bits, bits, in_bits=bits)
    model = build(net)
    x = torch.rand(5, 1, 8, 8)
    out = model(x)  # training mode
    assert out.shape == (5, 10)
    out.sum().backward()
    assert all(p.grad is not None for p in model.block("conv0").conv.parameters())
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (5, 10)
    _check_against_hw_space(model, net)


def test_mixed_bits_and_example_design_match_hw_space():
    mixed = make_network([
        {"type": "conv", "out_channels": 4, "kernel": 3, "weight_bits": 1, "act_bits": 3},
        {"type": "conv", "out_channels": 6, "kernel": 2, "stride": 2, "padding": 1, "weight_bits": 5, "act_bits": 1},
        {"type": "maxpool", "kernel": 3, "stride": 1},
        {"type": "dense", "out_features": 7, "weight_bits": 2, "act_bits": 6},
        {"type": "dense", "out_features": 3, "weight_bits": 8},
    ], channels=3, size=9, in_bits=5)
    _check_against_hw_space(build(mixed), mixed)
    example = load_design(EXAMPLES / "digits_w4a4.yaml").network
    _check_against_hw_space(build(example), example)


def test_dense_only_network_flattens_channels_first():
    net = make_network([{"type": "dense", "out_features": 4, "weight_bits": 8, "act_bits": 8},
                        {"type": "dense", "out_features": 2, "weight_bits": 8}], channels=2, size=3)
    model = build(net).eval()
    x = torch.rand(3, 2, 3, 3)
    linear = model.block("fc0").linear
    seen = {}

    def grab(module, inputs, output):
        seen["in"] = inputs[0]

    linear.register_forward_hook(grab)
    with torch.no_grad():
        model(x)
    # the flattened vector is the quantized input in (C, H, W) order
    expected = input_integers(model, x).float() / 255.0
    assert torch.allclose(seen["in"], expected.reshape(3, -1), atol=1e-6)


@pytest.mark.parametrize("w,a,in_bits", [(1, 1, 1), (2, 3, 4), (4, 4, 8), (8, 2, 2)])
def test_values_entering_compute_layers_are_on_the_integer_grid(w, a, in_bits):
    net = skeleton(w, a, in_bits=in_bits)
    torch.manual_seed(0)
    model = build(net)
    for _ in range(10):  # training-mode passes set activation scales and BatchNorm statistics
        model(torch.rand(16, 1, 8, 8))
    model.eval()
    entering = {}
    for name in ("conv0", "conv1", "fc0", "fc1"):
        block = model.block(name)
        core = block.conv if name.startswith("conv") else block.linear
        core.register_forward_hook(lambda m, i, o, name=name: entering.__setitem__(name, i[0]))
    with torch.no_grad():
        model(torch.rand(16, 1, 8, 8))
    for index, name in ((0, "conv0"), (2, "conv1"), (3, "fc0"), (4, "fc1")):
        bits = net.input_bits_of(index)
        values = torch.unique(entering[name])
        if bits == 1:
            assert set(values.tolist()) <= {-1.0, 1.0}, name
        else:
            assert len(values) <= 2**bits, name
            assert values.min() >= 0, name
            if name != "conv0":  # activations: multiples of one scale (the input grid is checked elsewhere)
                step = values[values > 0].min()
                assert torch.allclose(values / step, torch.round(values / step), atol=1e-3), name
    for name in ("conv0", "conv1", "fc0", "fc1"):
        block = model.block(name)
        q = (block.conv if name.startswith("conv") else block.linear).quant_weight()
        ints = q.value / q.scale
        assert torch.allclose(ints, torch.round(ints), atol=1e-4)
        if w == 1:
            assert set(torch.unique(q.value).tolist()) <= {-1.0, 1.0}
        else:
            assert ints.abs().max() <= 2 ** (w - 1) - 1 + 1e-4  # signed narrow range


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_input_quantizer_scale_is_fixed_and_maps_pixels_to_integers(bits):
    model = build(skeleton(4, 4, in_bits=bits))
    levels = 2**bits - 1
    pixels = torch.arange(levels + 1, dtype=torch.float32) / levels
    x = pixels.reshape(1, 1, 1, -1)  # only the input quantizer runs: any frame shape will do
    assert torch.equal(input_integers(model, x).flatten(), torch.arange(levels + 1))
    scale = model.input_quant.act_quant.scale()
    assert scale.item() == pytest.approx(1.0 / levels)
    before = [p.clone() for p in model.input_quant.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    model(torch.rand(8, 1, 8, 8)).sum().backward()
    opt.step()
    assert model.input_quant.act_quant.scale().item() == scale.item()  # not learned
    assert all(torch.equal(a, b) for a, b in zip(before, model.input_quant.parameters()))


def test_bipolar_input_thresholds_at_one_half():
    model = build(skeleton(1, 1, in_bits=1))
    x = torch.tensor([0.0, 0.49, 0.5, 0.51, 1.0]).repeat(13)[:64].reshape(1, 1, 8, 8)
    ints = input_integers(model, x).flatten()[:5]
    assert ints.tolist() == [-1, -1, 1, 1, 1]


def test_last_layer_has_no_activation_and_logits_are_raw():
    model = build(skeleton(4, 4))
    last = model.block("fc1")
    assert [name for name, _ in last.named_children()] == ["linear", "scale"]
    assert model.block("fc0").linear.bias is None and model.block("conv0").conv.bias is None
    model.eval()
    with torch.no_grad():
        out = model(torch.rand(32, 1, 8, 8))
    assert (out < 0).any()  # no ReLU / unsigned quantizer on the logits


def test_layer_names_that_are_module_attributes_are_fine():
    net = make_network([{"name": "eval", "type": "conv", "out_channels": 2, "kernel": 3, "weight_bits": 2,
                         "act_bits": 2},
                        {"name": "train", "type": "maxpool", "kernel": 2},
                        {"name": "forward", "type": "dense", "out_features": 3, "weight_bits": 2}])
    model = build(net)
    assert model(torch.rand(2, 1, 8, 8)).shape == (2, 3)
    assert isinstance(model.block("train"), torch.nn.MaxPool2d)
    _check_against_hw_space(model, net)


def test_residual_network_builds_with_one_quantizer_per_add_and_matches_hw_space():
    net = load_design(Path(__file__).parent / "data" / "digits_residual.yaml").network
    model = build(net)
    stem, b0c1, b1c0, b1c1, b1sc = (model.block(n) for n in ("stem", "b0c1", "b1c0", "b1c1", "b1sc"))
    assert b0c1.act is stem.act and b1c1.act is b1sc.act  # each add's inputs: ONE quantizer instance
    assert b1c0.act is not stem.act and b1c1.act is not stem.act
    out = model(torch.rand(3, 1, 8, 8))
    assert out.shape == (3, 10)
    out.sum().backward()
    infos = describe(model)
    for index, (info, layer, (shape_in, shape_out)) in enumerate(zip(infos, net.layers, net.shapes())):
        assert (info.name, info.type, info.in_shape, info.out_shape) == (layer.name, layer.type, shape_in, shape_out)
        assert info.input_bits == net.input_bits_of(index)
    assert [i.act_bits for i in infos if i.type == "add"] == [4, 4]
    # the add block sums its two inputs, then requantizes: act(a + b)
    model.eval()
    a, b = torch.rand(1, 8, 8, 8), torch.rand(1, 8, 8, 8)
    add0 = model.block("add0")
    assert torch.equal(add0(a, b), add0.act(a + b))
    data = {"network": {"input": {"channels": 4, "height": 4, "width": 4, "bits": 4}, "layers": [
        {"name": "c0", "type": "conv", "out_channels": 4, "kernel": 1, "weight_bits": 4, "act_bits": 4},
        {"name": "a0", "type": "add", "inputs": ["c0", "input"]},
        {"name": "fc", "type": "dense", "out_features": 10, "weight_bits": 4}]}}
    with pytest.raises(CodesignError, match=r"layers\[1\] \(a0\): an add reading the network input directly"):
        build(design_from_dict(data).network)
