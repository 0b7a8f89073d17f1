"""Thresholds: the integer staircase equals the float64 chain for every accumulator value."""

from __future__ import annotations

import numpy as np
import pytest

from codesign.backend.activation import apply_thresholds, compose_affine, eval_chain, slope_sign, thresholds
from codesign.backend.graph import Affine, Quantizer, Relu
from hw_space.errors import CodesignError


def _quantizer(rng: np.random.Generator, channels: int) -> Quantizer:
    kind = rng.integers(0, 4)
    scale = rng.uniform(0.01, 2.0, size=channels if rng.random() < 0.3 else 1)
    if kind == 0:
        return Quantizer(name="q", scale=scale, bipolar=True, qmin=-1, qmax=1)
    bits = int(rng.integers(1, 9))
    if kind == 1:  # unsigned
        return Quantizer(name="q", scale=scale, qmin=0, qmax=2 ** bits - 1 - int(rng.integers(0, 2)))
    bits = max(bits, 2)
    narrow = int(rng.integers(0, 2))
    return Quantizer(name="q", scale=scale, zero_point=int(rng.integers(-2, 3)) if kind == 3 else 0,
                     qmin=-(2 ** (bits - 1)) + narrow, qmax=2 ** (bits - 1) - 1)


def _chain(rng: np.random.Generator, channels: int) -> list:
    ops = [Affine(name="scale", mul=rng.uniform(1e-3, 0.1, size=channels), add=np.zeros(1))]
    for i in range(int(rng.integers(0, 4))):
        if rng.random() < 0.25:
            ops.append(Relu(name=f"relu{i}"))
        else:  # BatchNorm-like, with negative and zero slopes
            mul = rng.normal(size=channels)
            mul[rng.random(channels) < 0.1] = 0.0
            ops.append(Affine(name=f"a{i}", mul=mul, add=rng.normal(size=channels)))
    return ops


@pytest.mark.parametrize("seed", range(40))
def test_thresholds_equal_the_float64_chain_for_every_accumulator(seed):
    rng = np.random.default_rng(seed)
    channels = int(rng.integers(1, 6))
    chain, quant = _chain(rng, channels), _quantizer(rng, channels)
    lo = rng.integers(-300, 1, size=channels)
    hi = lo + rng.integers(0, 600, size=channels)
    thr, sign = thresholds(chain, quant, lo, hi)
    assert thr.shape == (channels, quant.levels)
    assert np.all(np.diff(thr, axis=1) >= 0)  # sorted: the kernel counts them
    for c in range(channels):
        acc = np.arange(lo[c], hi[c] + 1)
        x = np.zeros((len(acc), channels))
        x[:, c] = acc
        want = quant.codes(eval_chain(chain, x))[:, c]
        got = apply_thresholds((sign[c] * acc)[:, None], thr[c:c + 1], quant.min_code)[:, 0]
        assert np.array_equal(got, want)


def test_ties_round_half_to_even_like_brevitas():
    # acc * 0.5: acc = 1 -> 0.5 -> 0, acc = 3 -> 1.5 -> 2, acc = 5 -> 2.5 -> 2
    quant = Quantizer(name="q", scale=np.ones(1), qmin=0, qmax=7)
    chain = [Affine(name="s", mul=np.array([0.5]), add=np.zeros(1))]
    thr, sign = thresholds(chain, quant, np.array([0]), np.array([14]))
    out = apply_thresholds(np.arange(15)[:, None], thr, 0)[:, 0]
    assert out.tolist() == [0, 0, 1, 2, 2, 2, 3, 4, 4, 4, 5, 6, 6, 6, 7]
    assert sign.tolist() == [1]


def test_negative_slope_channel_gets_sign_minus_one():
    quant = Quantizer(name="q", scale=np.ones(1), qmin=0, qmax=3)
    chain = [Affine(name="bn", mul=np.array([1.0, -1.0]), add=np.array([0.0, 3.0]))]
    thr, sign = thresholds(chain, quant, np.array([-5, -5]), np.array([5, 5]))
    assert sign.tolist() == [1, -1]
    # channel 1: 3 - acc, clipped to 0..3; with -acc >= T counting
    acc = np.arange(-5, 6)
    got = apply_thresholds((-acc)[:, None], thr[1:2], 0)[:, 0]
    assert got.tolist() == np.clip(3 - acc, 0, 3).tolist()


def test_unreachable_levels_get_thresholds_outside_the_range():
    quant = Quantizer(name="q", scale=np.ones(1), qmin=0, qmax=15)
    chain = [Affine(name="s", mul=np.array([0.01]), add=np.zeros(1))]  # acc in 0..100 -> 0..1
    thr, _ = thresholds(chain, quant, np.array([0]), np.array([100]))
    assert thr[0, 0] == 51  # acc 50 -> 0.5 rounds to 0 (even), acc 51 -> 0.51 to 1
    assert np.all(thr[0, 1:] == 101)  # never reached: hi + 1


def test_slope_sign_and_compose_affine():
    chain = [Affine(name="a", mul=np.array([2.0, -1.0]), add=np.array([1.0, 0.0])),
             Affine(name="b", mul=np.array([-3.0]), add=np.array([0.5]))]
    assert slope_sign(chain, 2).tolist() == [-1, 1]
    mul, add = compose_affine(chain, 2)
    x = np.array([[0.7, -1.3]])
    assert np.allclose(x * mul + add, eval_chain(chain, x))


def test_compose_affine_rejects_a_relu_after_the_last_layer():
    with pytest.raises(CodesignError, match="relu_9"):
        compose_affine([Relu(name="relu_9", onnx_op="Relu")], 3)
