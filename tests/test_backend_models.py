"""Hand-written Brevitas models (not built by the tool's own builder) for the backend tests, the
helpers that compare the integer reference with Brevitas, and tests of those helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from brevitas.core.scaling import ScalingImplType
from brevitas.export import export_qonnx
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from brevitas.quant import (
    Int8ActPerTensorFloat,
    Int8WeightPerChannelFloat,
    Int8WeightPerTensorFloat,
    SignedBinaryActPerTensorConst,
    SignedBinaryWeightPerTensorConst,
    Uint8ActPerTensorFloat,
)
from torch import nn

from codesign.backend import activation, reference
from codesign.backend.graph import MVAU, op, producers, topological
from codesign.backend.ops.streams import AddStreams


class FixedUint8Input(Uint8ActPerTensorFloat):
    """Pixels in [0, 1] to 0..255 with the constant scale 1/255."""

    scaling_impl_type = ScalingImplType.CONST
    scaling_const = 1.0
    max_val = 1.0


class Shift(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - 0.5


def act(bits: int, signed: bool = False) -> nn.Module:
    if bits == 1:
        return QuantIdentity(act_quant=SignedBinaryActPerTensorConst)
    if signed:
        return QuantIdentity(act_quant=Int8ActPerTensorFloat, bit_width=bits)
    return QuantReLU(act_quant=Uint8ActPerTensorFloat, bit_width=bits)


def weight(bits: int, per_channel: bool = False) -> dict:
    if bits == 1:
        return {"weight_quant": SignedBinaryWeightPerTensorConst}
    quant = Int8WeightPerChannelFloat if per_channel else Int8WeightPerTensorFloat
    return {"weight_quant": quant, "weight_bit_width": bits}


def input_quant(kind: str) -> nn.Module:
    if kind == "fixed":
        return QuantIdentity(act_quant=FixedUint8Input)
    if kind == "uint8":
        return QuantIdentity(act_quant=Uint8ActPerTensorFloat)
    if kind == "int8":
        return QuantIdentity(act_quant=Int8ActPerTensorFloat)
    if kind == "bipolar":
        return nn.Sequential(Shift(), QuantIdentity(act_quant=SignedBinaryActPerTensorConst))
    raise ValueError(kind)


class HandNet(nn.Module):
    """input quant -> conv/BN/act -> max-pool -> conv/BN/act -> flatten -> dense/BN/act -> dense
    [-> per-class Mul/Add]. `pool_first` pools the conv output before BN and activation."""

    def __init__(self, wbits=(4, 4, 4, 4), abits=(4, 4, 4), channels=(8, 12), in_kind="fixed", padding=(1, 1),
                 stride=(1, 1), per_channel=False, signed=False, pool_first=False, conv_bias=False,
                 final_affine=False, hidden=16):
        super().__init__()
        self.pool_first, self.final_affine = pool_first, final_affine
        self.inp = input_quant(in_kind)
        self.conv0 = QuantConv2d(1, channels[0], 3, padding=padding[0], stride=stride[0], bias=conv_bias,
                                 **weight(wbits[0], per_channel))
        self.bn0 = nn.BatchNorm2d(channels[0])
        self.act0 = act(abits[0], signed)
        self.pool = nn.MaxPool2d(2)
        self.conv1 = QuantConv2d(channels[0], channels[1], 3, padding=padding[1], stride=stride[1], bias=False,
                                 **weight(wbits[1], per_channel))
        self.bn1 = nn.BatchNorm2d(channels[1])
        self.act1 = act(abits[1], signed)
        size = (8 + 2 * padding[0] - 3) // stride[0] + 1
        size = size // 2
        size = (size + 2 * padding[1] - 3) // stride[1] + 1
        self.fc0 = QuantLinear(channels[1] * size * size, hidden, bias=True, **weight(wbits[2], per_channel))
        self.bn2 = nn.BatchNorm1d(hidden)
        self.act2 = act(abits[2], signed)
        self.fc1 = QuantLinear(hidden, 10, bias=True, **weight(wbits[3], per_channel))
        self.register_buffer("gain", torch.linspace(0.5, 2.0, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv0(self.inp(x))
        if self.pool_first:
            x = self.act0(self.bn0(self.pool(x)))
        else:
            x = self.pool(self.act0(self.bn0(x)))
        x = self.act1(self.bn1(self.conv1(x)))
        x = torch.flatten(x, 1)
        x = self.fc1(self.act2(self.bn2(self.fc0(x))))
        if self.final_affine:
            x = x * self.gain + 0.25
        return x


def digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """scikit-learn's embedded digits: (x_train, y_train, x_test, y_test), x in [0, 1], 1x8x8."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(data.target, dtype=torch.int64)
    return x[:1400], y[:1400], x[1400:], y[1400:]


def randomize(model: nn.Module, seed: int, positive_gamma: bool = False) -> nn.Module:
    """Random BatchNorm affine parameters (negative slopes unless positive_gamma), statistics and
    activation scales from a few train-mode passes over random data; returns the model in eval mode."""
    torch.manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.momentum = None  # cumulative average of the calibration passes
            with torch.no_grad():
                m.weight.copy_(torch.rand_like(m.weight) + 0.2 if positive_gamma else torch.randn_like(m.weight))
                m.bias.copy_(0.3 * torch.randn_like(m.bias))
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.rand(64, 1, 8, 8))
    return model.eval()


def train_briefly(model: nn.Module, steps: int = 60, seed: int = 0) -> nn.Module:
    """A few Adam steps on digits (enough for non-trivial scales and BN statistics); eval mode."""
    torch.manual_seed(seed)
    x, y, _, _ = digits()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (64,))
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def export(model: nn.Module, path: Path, shape=(1, 1, 8, 8)) -> Path:
    export_qonnx(model, torch.randn(*shape), str(path), dynamo=False)
    return path


def tie_distance(g, codes: np.ndarray) -> np.ndarray:
    """Per sample, the smallest distance (in quantization steps) of any activation from a rounding
    tie, recomputed in float64: where Brevitas' float32 may legitimately round the other way."""
    _, seen = reference.run(g, codes, trace=True)
    best = np.full(len(codes), np.inf)
    for key in topological(g):
        item = op(g, key)
        feeds = producers(g, key)
        if isinstance(item, AddStreams) and item.thresholds is not None:
            acc = sum(seen[k].reshape(len(codes), -1, item.mh) for k in feeds) * item.signs
        elif isinstance(item, MVAU) and item.thresholds is not None:
            acc = reference.mvau_acc(item, seen[feeds[0]].reshape(len(codes), -1, item.mw)) * item.signs
        else:
            continue
        quant = item.epilogue[-1]
        t = activation.eval_chain(item.epilogue[:-1], acc) / quant.scale + quant.zero_point
        dist = np.abs(t - np.floor(t) - 0.5).reshape(len(codes), -1).min(axis=1)
        best = np.minimum(best, dist)
    return best


def check_against_brevitas(model: nn.Module, g, x: torch.Tensor, tie: float = 1e-5) -> dict:
    """Reference logits equal Brevitas' (to float tolerance) and argmax agrees on every sample; the
    only samples allowed to differ sit within `tie` steps of a rounding tie. Returns counts."""
    with torch.no_grad():
        want = model(x).numpy().astype(np.float64)
    codes = reference.input_codes(g, x.numpy())
    got = reference.logits(g, reference.run(g, codes))
    scale = max(float(np.abs(want).max()), 1.0)
    off = np.abs(got - want).max(axis=1) > 1e-4 * scale
    if off.any():
        assert (tie_distance(g, codes)[off] < tie).all(), "a mismatch that no rounding tie explains"
    assert off.mean() <= 0.01
    same = got.argmax(axis=1) == want.argmax(axis=1)
    assert same[~off].all()
    return {"samples": len(x), "off": int(off.sum()), "argmax": float(same.mean())}


def emits_and_verifies(model: nn.Module, path: Path, out: Path) -> None:
    """A trained model exported to `path`: the reference agrees with Brevitas on digits' test set, the
    model learned something, and `emit --board pynq-z1` (folded by hw_space) verifies bit-exact."""
    from codesign.backend.csim import verify
    from codesign.backend.emit import emit
    from codesign.backend.lower import lower_model

    _, _, x_test, y_test = digits()
    assert check_against_brevitas(model, lower_model(path), x_test)["argmax"] == 1.0
    with torch.no_grad():
        logits = model(x_test).numpy()
    assert (logits.argmax(1) == y_test.numpy()).mean() > 0.3  # it learned something: outputs are not degenerate
    data = out / "test_data.npz"
    np.savez(data, x=x_test.numpy(), y=y_test.numpy(), logits=logits)
    assert emit(path, out / "hls", board="pynq-z1", test_data=data).folded_by == "fold"
    verdict = verify(out / "hls")
    assert verdict.bit_exact and verdict.mismatches == 0 and verdict.samples == len(x_test)
    assert verdict.argmax_agreement == 1.0


# ---------------------------------------------------------------- tests of the helpers themselves


def test_hand_net_exports_the_ops_the_backend_reads(tmp_path):
    model = randomize(HandNet(wbits=(1, 4, 2, 4), abits=(1, 4, 2), in_kind="bipolar", final_affine=True), 0)
    path = export(model, tmp_path / "m.onnx")
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"Quant", "BipolarQuant", "Conv", "Gemm", "BatchNormalization", "MaxPool", "Relu", "Mul", "Add"} <= ops


def test_tie_distance_flags_only_samples_near_a_rounding_tie(tmp_path):
    from codesign.backend.lower import lower_model

    model = randomize(HandNet(wbits=(8, 8, 8, 8), abits=(8, 8, 8)), 3)
    g = lower_model(export(model, tmp_path / "m.onnx"))
    codes = reference.random_codes(g, 200, seed=1)
    d = tie_distance(g, codes)
    assert d.shape == (200,) and np.all((d >= 0) & (d <= 0.5))
    assert np.quantile(d, 0.5) > 1e-5  # most samples are far from any tie


@pytest.mark.parametrize("kind", ["fixed", "uint8", "int8"])
def test_input_codes_equal_brevitas_input_integers(tmp_path, kind):
    from codesign.backend.lower import lower_model

    model = randomize(HandNet(in_kind=kind), 1)
    g = lower_model(export(model, tmp_path / "m.onnx"))
    x = torch.rand(300, 1, 8, 8) * 1.3 - 0.1
    with torch.no_grad():
        q = model.inp(x)
        ints = torch.round(q / model.inp.act_quant.scale()).to(torch.int64).permute(0, 2, 3, 1).reshape(300, -1)
    assert np.array_equal(reference.input_codes(g, x.numpy()), ints.numpy())
