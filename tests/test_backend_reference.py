"""The integer reference of the lowered graph equals the Brevitas model (random and trained models)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_backend_models import HandNet, check_against_brevitas, digits, export, randomize, train_briefly

from codesign.backend import reference
from codesign.backend.graph import MVAU, SlidingWindow, ops
from codesign.backend.lower import lower_model, network_of

CASES = {
    "w1a1": dict(wbits=(1, 1, 1, 1), abits=(1, 1, 1)),
    "w1a1_xnor_convs": dict(wbits=(1, 1, 1, 1), abits=(1, 1, 1), in_kind="bipolar", padding=(0, 0)),
    "w2a2": dict(wbits=(2, 2, 2, 2), abits=(2, 2, 2)),
    "w4a4": dict(wbits=(4, 4, 4, 4), abits=(4, 4, 4)),
    "mixed": dict(wbits=(3, 1, 5, 8), abits=(2, 6, 1)),
    "w8a8_per_channel": dict(wbits=(8, 8, 8, 8), abits=(8, 8, 8), per_channel=True, in_kind="uint8"),
    "signed_acts_bias_affine": dict(abits=(3, 4, 5), signed=True, conv_bias=True, final_affine=True, in_kind="int8"),
    "stride2_no_pad": dict(wbits=(4, 2, 4, 4), abits=(4, 2, 4), stride=(2, 1), padding=(0, 1)),
    "pool_before_bn": dict(pool_first=True),
}


@pytest.mark.parametrize("case", list(CASES))
def test_reference_equals_brevitas_on_random_models(tmp_path, case):
    torch.manual_seed(len(case))
    model = randomize(HandNet(**CASES[case]), seed=11, positive_gamma=case == "pool_before_bn")
    g = lower_model(export(model, tmp_path / "m.onnx"))
    x = torch.rand(600, 1, 8, 8)
    stats = check_against_brevitas(model, g, x)
    assert stats["argmax"] >= 0.99


def test_xnor_and_int2_window_paths_are_both_exercised(tmp_path):
    padded = lower_model(export(randomize(HandNet(**CASES["w1a1"]), 1), tmp_path / "a.onnx"))
    windows = [o for o in ops(padded) if isinstance(o, SlidingWindow) and o.in_fmt.bipolar]
    assert windows and all(w.out_fmt.bits == 2 and w.out_fmt.signed for w in windows if any(w.pads))
    xnor = lower_model(export(randomize(HandNet(**CASES["w1a1_xnor_convs"]), 1), tmp_path / "b.onnx"))
    mvaus = [o for o in ops(xnor) if isinstance(o, MVAU)]
    assert all(m.in_fmt.bipolar and m.w_fmt.bipolar for m in mvaus)


# the three cases share one code path (train, export, lower, compare); mixed (every kind of layer) runs by default
@pytest.mark.parametrize("case", [pytest.param("w1a1", marks=pytest.mark.slow), pytest.param("w4a4", marks=pytest.mark.slow),
                                  "mixed"])
def test_reference_equals_brevitas_after_training_on_digits(tmp_path, case):
    torch.manual_seed(0)
    model = train_briefly(HandNet(**CASES[case]), steps=40)
    g = lower_model(export(model, tmp_path / "m.onnx"))
    _, _, x_test, y_test = digits()
    stats = check_against_brevitas(model, g, x_test)
    assert stats["off"] == 0 and stats["argmax"] == 1.0
    pred = reference.logits(g, reference.run(g, reference.input_codes(g, x_test.numpy()))).argmax(axis=1)
    assert (pred == y_test.numpy()).mean() > 0.3  # it learned something: far above chance (0.1)


def test_network_view_of_the_graph(tmp_path):
    model = randomize(HandNet(wbits=(1, 2, 3, 4), abits=(1, 2, 3), stride=(2, 1), padding=(0, 1)), 0)
    net = network_of(lower_model(export(model, tmp_path / "m.onnx")))
    assert [(l.name, l.type) for l in net.layers] == [("conv0", "conv"), ("pool0", "maxpool"), ("conv1", "conv"),
                                                      ("fc0", "dense"), ("fc1", "dense")]
    conv0, _, conv1, fc0, fc1 = net.layers
    assert (conv0.stride, conv0.padding, conv0.weight_bits, conv0.act_bits) == (2, 0, 1, 1)
    assert (conv1.out_channels, conv1.padding, conv1.weight_bits, conv1.act_bits) == (12, 1, 2, 2)
    assert (fc0.out_features, fc0.act_bits, fc1.out_features, fc1.act_bits) == (16, 3, 10, None)
    assert (net.input.channels, net.input.height, net.input.bits) == (1, 8, 8)


def test_random_codes_cover_the_input_range(tmp_path):
    g = lower_model(export(randomize(HandNet(in_kind="int8"), 0), tmp_path / "m.onnx"))
    codes = reference.random_codes(g, 50, seed=3)
    assert codes.shape == (50, 64) and codes.min() == -128 and codes.max() == 127
    assert np.array_equal(codes, reference.random_codes(g, 50, seed=3))
