"""Depthwise convolutions, average pools and global means end to end: a MobileNet-style Brevitas
model written by hand (not by quant.build) through lowering, the integer reference (against
Brevitas), emit and C-simulation (bit-exact); and a small folded design whose every kernel takes the
cost model's cycles."""

from __future__ import annotations

import shutil

import onnx
import pytest
import torch
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from test_backend_kernel_cycles import stage_iterations
from test_backend_models import (
    FixedUint8Input,
    check_against_brevitas,
    digits,
    emits_and_verifies,
    export,
    randomize,
    train_briefly,
)
from torch import nn

from codesign.backend.csim import verify
from codesign.backend.emit import emit
from codesign.backend.frontend import import_graph, load_qonnx
from codesign.backend.lower import lower_model, network_of
from hw_space.boards import load_board
from hw_space.design import Design, Hardware, LayerFold
from hw_space.errors import CodesignError
from hw_space.model import evaluate_design

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="C-simulation needs g++")


class MobileByHand(nn.Module):
    """Written as a Brevitas user writes a small MobileNet: an 8-bit input, a W4A4 stem conv, two
    depthwise (QuantConv2d(groups=C)) + pointwise blocks with BatchNorm and QuantReLU, an AvgPool2d
    and a global mean (torch.mean: ONNX ReduceMean), each followed by a requantizing QuantIdentity
    (Brevitas' default signed 8-bit quantizer at 4 bits), a QuantLinear classifier with bias."""

    def __init__(self, c: tuple[int, int, int] = (8, 16, 32), stride: int = 1):
        super().__init__()
        self.quant_in = QuantIdentity(act_quant=FixedUint8Input)
        self.stem = QuantConv2d(1, c[0], 3, padding=1, weight_bit_width=4, bias=False)
        self.bn0 = nn.BatchNorm2d(c[0])
        self.relu0 = QuantReLU(bit_width=4)
        self.dw1 = QuantConv2d(c[0], c[0], 3, padding=1, groups=c[0], weight_bit_width=4, bias=False)
        self.bn1 = nn.BatchNorm2d(c[0])
        self.relu1 = QuantReLU(bit_width=4)
        self.pw1 = QuantConv2d(c[0], c[1], 1, weight_bit_width=4, bias=False)
        self.bn2 = nn.BatchNorm2d(c[1])
        self.relu2 = QuantReLU(bit_width=4)
        self.pool = nn.AvgPool2d(2)
        self.pool_q = QuantIdentity(bit_width=4)
        self.dw2 = QuantConv2d(c[1], c[1], 3, stride=stride, padding=1, groups=c[1], weight_bit_width=4, bias=False)
        self.bn3 = nn.BatchNorm2d(c[1])
        self.relu3 = QuantReLU(bit_width=4)
        self.pw2 = QuantConv2d(c[1], c[2], 1, weight_bit_width=4, bias=False)
        self.bn4 = nn.BatchNorm2d(c[2])
        self.relu4 = QuantReLU(bit_width=4)
        self.mean_q = QuantIdentity(bit_width=6)
        self.fc = QuantLinear(c[2], 10, weight_bit_width=4, bias=True)

    def forward(self, x):
        x = self.relu0(self.bn0(self.stem(self.quant_in(x))))
        x = self.relu2(self.bn2(self.pw1(self.relu1(self.bn1(self.dw1(x))))))
        x = self.pool_q(self.pool(x))
        x = self.relu4(self.bn4(self.pw2(self.relu3(self.bn3(self.dw2(x))))))
        x = self.mean_q(torch.mean(x, dim=(2, 3)))
        return self.fc(x)


def test_hand_written_mobilenet_exports_the_ops_the_backend_reads(tmp_path):
    path = export(randomize(MobileByHand(), 1), tmp_path / "m.onnx")
    nodes = onnx.load(str(path)).graph.node
    assert {"AveragePool", "ReduceMean"} <= {n.op_type for n in nodes}
    assert sorted(a.i for n in nodes if n.op_type == "Conv" for a in n.attribute if a.name == "group") == [1, 1, 1, 8, 16]
    net = network_of(lower_model(path))
    assert [(layer.type, layer.groups) for layer in net.layers] == [
        ("conv", 1), ("conv", 8), ("conv", 1), ("avgpool", 1), ("conv", 16), ("conv", 1), ("global_avgpool", 1),
        ("dense", 1)]


@pytest.mark.slow
def test_trained_hand_written_mobilenet_is_bit_exact_and_agrees_with_brevitas(tmp_path):
    torch.manual_seed(0)
    model = train_briefly(MobileByHand(), steps=80)
    emits_and_verifies(model, export(model, tmp_path / "m.onnx"), tmp_path)


@pytest.mark.slow
def test_every_new_kernel_takes_the_model_cycles(tmp_path):
    """A folded design with a depthwise VVAU at SIMD 3 behind a width converter, a stride-2 depthwise
    conv, an average pool at PE 4 and a global mean at PE 2: C-simulated bit-exact, and each kernel's
    loop iterations equal the model's stage cycles."""
    model = randomize(MobileByHand(c=(6, 8, 12), stride=2), 2)
    path = export(model, tmp_path / "m.onnx")
    folds = {"conv0": LayerFold(pe=3, simd=3), "conv1": LayerFold(pe=2, simd=3), "conv2": LayerFold(pe=4, simd=2),
             "avgpool0": LayerFold(pe=4), "conv3": LayerFold(pe=4, simd=9), "conv4": LayerFold(pe=6, simd=8),
             "gap0": LayerFold(pe=2), "fc0": LayerFold(pe=5, simd=3)}
    design = Design(network=network_of(lower_model(path)), hardware=Hardware(board="zcu104", layers=folds))
    project = tmp_path / "hls"
    emit(path, project, design=design, samples=30, seed=1)
    assert verify(project).bit_exact
    counts = stage_iterations(project)
    result = evaluate_design(design, load_board("zcu104"))
    cycles = {st.name: int(st.cycles[0]) for st in result.stages if st.kind not in ("fifo", "shell") and st.active[0]}
    assert counts == cycles
    # VVAU conv1: C/PE * K*K/SIMD * OFM = 6/2 * 9/3 * 64 = 576; conv3 (stride 2 on 4x4): 8/4 * 9/9 * 4 = 8
    # avgpool0: C/PE * K*K * OFM = 8/4 * 4 * 16 = 128; gap0: pixels * C/PE = 4 * 12/2 = 24
    assert (counts["conv1"], counts["conv3"], counts["avgpool0"], counts["gap0"]) == (576, 8, 128, 24)
    assert counts["conv1_dwc"] > 0 and result.stages[[s.name for s in result.stages].index("conv1_dwc")].active[0]


class TinyDepthwise(nn.Module):
    """The smallest chain through every new kernel: a 2-bit stem, a depthwise conv, an average pool,
    a global average pool (nn.AdaptiveAvgPool2d: ONNX GlobalAveragePool), a classifier."""

    def __init__(self):
        super().__init__()
        self.quant_in = QuantIdentity(act_quant=FixedUint8Input)
        self.stem = QuantConv2d(1, 4, 3, stride=2, weight_bit_width=2, bias=False)
        self.relu0 = QuantReLU(bit_width=2)
        self.dw = QuantConv2d(4, 4, 3, padding=1, groups=4, weight_bit_width=3, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.relu1 = QuantReLU(bit_width=3)
        self.pool = nn.AvgPool2d(2, stride=1)
        self.pool_q = QuantIdentity(bit_width=3)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.gap_q = QuantReLU(bit_width=4)
        self.fc = QuantLinear(4, 10, weight_bit_width=3, bias=False)

    def forward(self, x):
        x = self.relu1(self.bn(self.dw(self.relu0(self.stem(self.quant_in(x))))))
        return self.fc(torch.flatten(self.gap_q(self.gap(self.pool_q(self.pool(x)))), 1))


def test_tiny_depthwise_and_pools_are_bit_exact_in_csim(tmp_path):
    model = randomize(TinyDepthwise(), 3)
    path = export(model, tmp_path / "m.onnx")
    g = lower_model(path)
    _, _, x_test, _ = digits()
    assert check_against_brevitas(model, g, x_test)["argmax"] == 1.0
    folds = {"conv1": LayerFold(pe=2, simd=3), "avgpool0": LayerFold(pe=2), "gap0": LayerFold(pe=4)}
    design = Design(network=network_of(g), hardware=Hardware(board="pynq-z1", layers=folds))
    emit(path, tmp_path / "hls", design=design, samples=20, seed=2)
    verdict = verify(tmp_path / "hls")
    assert verdict.bit_exact and verdict.samples == 20


def test_unsupported_groupings_and_means_get_one_clear_error(tmp_path):
    class Grouped(nn.Module):
        def __init__(self):
            super().__init__()
            self.q = QuantIdentity(act_quant=FixedUint8Input)
            self.conv = QuantConv2d(1, 4, 3, weight_bit_width=4, bias=False)
            self.relu = QuantReLU(bit_width=4)
            self.grouped = QuantConv2d(4, 4, 3, groups=2, weight_bit_width=4, bias=False)

        def forward(self, x):
            return self.grouped(self.relu(self.conv(self.q(x)))).flatten(1)

    path = export(Grouped().eval(), tmp_path / "g.onnx")
    with pytest.raises(CodesignError, match=r"a convolution of 2 groups from 4 to 4 channels is not supported"):
        import_graph(load_qonnx(path))

    class ChannelMean(nn.Module):
        def __init__(self):
            super().__init__()
            self.q = QuantIdentity(act_quant=FixedUint8Input)

        def forward(self, x):
            return torch.mean(self.q(x), dim=1).flatten(1)

    path = export(ChannelMean().eval(), tmp_path / "c.onnx")
    with pytest.raises(CodesignError, match=r"ReduceMean over axes \[1\] is not supported; only over H and W"):
        import_graph(load_qonnx(path))
