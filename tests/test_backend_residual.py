"""Residual networks end to end: lowering of an Add of two quantized streams and of forks, the
integer reference against Brevitas, emit and C-simulation (bit-exact), for a network built from a
Design YAML (quant.build) and for a ResNet-style model written by hand in Brevitas; and the cases
the backend cannot build, each with one clear error."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
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
from codesign.backend.dag import op, producers, topological
from codesign.backend.emit import emit
from codesign.backend.frontend import import_graph, load_qonnx
from codesign.backend.lower import lower, lower_model, match_design, name_layers, network_of
from codesign.backend.ops.streams import AddStreams, DuplicateStreams
from hw_space.boards import load_board
from hw_space.design import Design, Hardware, LayerFold, load_design
from hw_space.errors import CodesignError
from hw_space.model import evaluate_design
from quant.build import build
from quant.export import export_qonnx

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT / "tests" / "data" / "digits_residual.yaml"  # 8/16 channels: a quick C-simulation
RESNET = ROOT / "examples" / "digits_resnet.yaml"
needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="C-simulation needs g++")


class ResByHand(nn.Module):
    """Written as a Brevitas user writes a small ResNet ("ReLU before addition"): an 8-bit input, a
    stem conv, a basic block with an identity shortcut, a basic block with a stride-2 1x1 projection
    shortcut, global average pooling and a QuantLinear classifier with bias. Each add's two inputs
    come out of ONE QuantReLU instance (one scale); a QuantReLU after the add requantizes the sum."""

    def __init__(self, c: tuple[int, int] = (8, 16)):
        super().__init__()
        a, b = c
        self.quant_in = QuantIdentity(act_quant=FixedUint8Input)
        self.stem = QuantConv2d(1, a, 3, padding=1, weight_bit_width=4, bias=False)
        self.bn0 = nn.BatchNorm2d(a)
        self.join1 = QuantReLU(bit_width=4)  # shared: the stem's output and block 1's second conv
        self.conv1a = QuantConv2d(a, a, 3, padding=1, weight_bit_width=4, bias=False)
        self.bn1a = nn.BatchNorm2d(a)
        self.relu1a = QuantReLU(bit_width=4)
        self.conv1b = QuantConv2d(a, a, 3, padding=1, weight_bit_width=4, bias=False)
        self.bn1b = nn.BatchNorm2d(a)
        self.add1 = QuantReLU(bit_width=4)
        self.conv2a = QuantConv2d(a, b, 3, stride=2, padding=1, weight_bit_width=4, bias=False)
        self.bn2a = nn.BatchNorm2d(b)
        self.relu2a = QuantReLU(bit_width=4)
        self.conv2b = QuantConv2d(b, b, 3, padding=1, weight_bit_width=4, bias=False)
        self.bn2b = nn.BatchNorm2d(b)
        self.shortcut = QuantConv2d(a, b, 1, stride=2, weight_bit_width=4, bias=False)
        self.bn_sc = nn.BatchNorm2d(b)
        self.join2 = QuantReLU(bit_width=4)  # shared: block 2's second conv and its projection
        self.add2 = QuantReLU(bit_width=4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.pool_q = QuantIdentity(bit_width=6)
        self.fc = QuantLinear(b, 10, weight_bit_width=4, bias=True)

    def forward(self, x):
        x = self.join1(self.bn0(self.stem(self.quant_in(x))))
        y = self.relu1a(self.bn1a(self.conv1a(x)))
        x = self.add1(self.join1(self.bn1b(self.conv1b(y))) + x)
        y = self.relu2a(self.bn2a(self.conv2a(x)))
        x = self.add2(self.join2(self.bn2b(self.conv2b(y))) + self.join2(self.bn_sc(self.shortcut(x))))
        return self.fc(torch.flatten(self.pool_q(self.pool(x)), 1))


def _kinds(g) -> list[str]:
    return [type(op(g, k)).__name__ for k in topological(g)]


def test_hand_written_resnet_lowers_to_adds_and_forks_exact_against_brevitas(tmp_path):
    model = randomize(ResByHand(), 4)
    g = lower_model(export(model, tmp_path / "r.onnx"))
    kinds = _kinds(g)
    assert kinds.count("AddStreams") == 2 and kinds.count("DuplicateStreams") == 2
    for key in topological(g):  # every fork goes through a duplicator; every add reads two streams
        item = op(g, key)
        assert g.out_degree(key) <= 1 or isinstance(item, DuplicateStreams)
        assert len(producers(g, key)) == (2 if isinstance(item, AddStreams) else int(key != "input"))
    net = network_of(g)
    assert [(layer.type, layer.inputs) for layer in net.layers] == [
        ("conv", ()), ("conv", ()), ("conv", ()), ("add", ("conv2", "conv0")), ("conv", ()),
        ("conv", ("add0",)), ("conv", ("conv3",)), ("add", ("conv5", "conv4")), ("global_avgpool", ()), ("dense", ())]
    _, _, x_test, _ = digits()
    assert check_against_brevitas(model, g, x_test[:120])["argmax"] == 1.0


def test_a_design_built_residual_net_matches_its_design_and_brevitas(tmp_path):
    design = load_design(SMALL)
    torch.manual_seed(1)
    model = randomize(build(design.network), 5)
    assert model.block("b0c1").act is model.block("stem").act  # the add's two inputs: one quantizer
    assert model.block("b1c1").act is model.block("b1sc").act
    path = tmp_path / "m.onnx"
    export_qonnx(model, design.network, path)
    g = lower_model(path)
    match_design(g, design)
    _, _, x_test, _ = digits()
    assert check_against_brevitas(model, g, x_test[:120])["argmax"] == 1.0
    # an add's inputs listed the other way round are the same network: matched through the graph
    layers = list(design.network.layers)
    layers[3] = replace(layers[3], inputs=("stem", "b0c1"))
    swapped = replace(design, network=replace(design.network, layers=tuple(layers)))
    match_design(g, swapped)
    named = name_layers(g, swapped.network)
    first = [k for k in topological(named) if getattr(op(named, k), "layer", "")][0]
    assert op(named, first).layer == "stem" and op(named, first).mw == 9  # the 3x3 conv on the 1-channel input
    # the same layers read in another order are another network: one clear line
    layers = list(design.network.layers)
    layers[6] = replace(layers[6], kernel=3, padding=1)
    bad = replace(design, network=replace(design.network, layers=tuple(layers)))
    with pytest.raises(CodesignError, match=r"network.layers \(b1sc\): the design's layer \(conv, 16 output channels, "
                                            r"kernel 3, stride 2, padding 1\) does not match the model's"):
        match_design(g, bad)


def test_an_add_of_two_scales_and_other_unbuildable_cases_get_one_clear_error(tmp_path):
    class TwoScales(nn.Module):
        def __init__(self):
            super().__init__()
            self.q = QuantIdentity(act_quant=FixedUint8Input)
            self.conv = QuantConv2d(1, 4, 3, padding=1, weight_bit_width=4, bias=False)
            self.relu_a = QuantReLU(bit_width=4)
            self.relu_b = QuantReLU(bit_width=4)
            self.add_q = QuantReLU(bit_width=4)
            self.fc = QuantLinear(256, 10, weight_bit_width=4, bias=False)

        def forward(self, x):
            y = self.conv(self.q(x))
            return self.fc(torch.flatten(self.add_q(self.relu_a(y) + self.relu_b(2 * y)), 1))

    path = export(randomize(TwoScales(), 6), tmp_path / "s.onnx")
    with pytest.raises(CodesignError, match=r"^the two inputs of Add '[^']+' have different scales \(.*\); give them "
                                            r"one shared quantizer$"):
        lower_model(path)

    class NoRequantizer(nn.Module):  # the sum goes on unquantized: refused where it is read
        def __init__(self):
            super().__init__()
            self.q = QuantIdentity(act_quant=FixedUint8Input)
            self.conv = QuantConv2d(1, 4, 3, padding=1, weight_bit_width=4, bias=False)
            self.join = QuantReLU(bit_width=4)
            self.fc = QuantLinear(4, 10, weight_bit_width=4, bias=False)

        def forward(self, x):
            x = self.join(self.conv(self.q(x)))
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x + self.join(2 * x), 1), 1))

    path = export(randomize(NoRequantizer(), 1), tmp_path / "n.onnx")
    with pytest.raises(CodesignError, match=r"\(GlobalAveragePool\): its input is not quantized; put a Quant"):
        lower_model(path)

    class Broadcast(nn.Module):
        def __init__(self):
            super().__init__()
            self.q = QuantIdentity(act_quant=FixedUint8Input)
            self.relu = QuantReLU(bit_width=4)

        def forward(self, x):
            x = self.q(x)
            return torch.flatten(self.relu(x + x.mean(dim=(2, 3), keepdim=True)), 1)

    path = export(Broadcast().eval(), tmp_path / "b.onnx")
    with pytest.raises(CodesignError, match=r"an add of tensors of shapes \[1, 1, 8, 8\] and \[1, 1, 1, 1\] is not "
                                            r"supported; both inputs need one shape"):
        import_graph(load_qonnx(path))

    class Doubled(nn.Module):
        def __init__(self):
            super().__init__()
            self.q = QuantIdentity(act_quant=FixedUint8Input)
            self.add_q = QuantReLU(bit_width=4)

        def forward(self, x):
            x = self.q(x)
            return torch.flatten(self.add_q(x + x), 1)

    path = export(Doubled().eval(), tmp_path / "d.onnx")
    with pytest.raises(CodesignError, match=r"an add of a tensor with itself is not supported"):
        import_graph(load_qonnx(path))

    tiled = Design(network=load_design(SMALL).network, hardware=Hardware(board="pynq-z1", template="tiled"))
    with pytest.raises(CodesignError, match=r"tiled engine runs a chain of layers; .* needs template: dataflow"):
        lower(tmp_path / "not_read.onnx", design=tiled)  # refused before the model is read


@needs_gxx
@pytest.mark.slow
def test_folded_residual_net_is_bit_exact_in_csim(tmp_path):
    """Every add reads one port through a width converter and the other directly, a fork feeds a
    1x1 stride-2 projection and a 3x3 conv at different PEs; C-simulated against the reference, and
    the add and duplicate kernels take the cost model's cycles."""
    design = load_design(SMALL)
    model = randomize(build(design.network), 7)
    path = tmp_path / "m.onnx"
    export_qonnx(model, design.network, path)
    folds = {"stem": LayerFold(pe=8, simd=3), "b0c0": LayerFold(pe=2, simd=8), "b0c1": LayerFold(pe=4, simd=4),
             "add0": LayerFold(pe=2), "b1c0": LayerFold(pe=4, simd=8), "b1sc": LayerFold(pe=8, simd=2),
             "b1c1": LayerFold(pe=2, simd=16), "add1": LayerFold(pe=4), "gap": LayerFold(pe=2),
             "fc0": LayerFold(pe=5, simd=4)}
    design = design.with_hardware(layers=folds)
    project = tmp_path / "hls"
    emit(path, project, design=design, samples=30, seed=3)
    text = (project / "src" / "codesign_top.cpp").read_text()
    assert "codesign::add_streams<" in text and "codesign::dup_streams2<" in text
    assert "add0_in1_dwc" in text and "add1_in_dwc" in text
    verdict = verify(project)
    assert verdict.bit_exact and verdict.mismatches == 0 and verdict.samples == 30
    # each add and duplicator loops exactly the cost model's cycles (counted in C-simulation)
    counts = stage_iterations(project)
    result = evaluate_design(design, load_board(design.hardware.board))
    cycles = {st.name: int(st.cycles[0]) for st in result.stages if st.kind in ("add", "dup")}
    assert {name: counts[name] for name in cycles} == cycles
    # add0: H*W * C/PE = 64 * 8/2 = 256; add1: 16 * 16/4 = 64; stem_dup: stem's words 64 * 8/8 = 64;
    # add0_dup: add0's words 64 * 8/2 = 256
    assert cycles == {"add0": 256, "add1": 64, "stem_dup": 64, "add0_dup": 256}


@needs_gxx
@pytest.mark.slow
def test_trained_residual_design_yaml_emits_and_verifies_bit_exact(tmp_path, capsys):
    """examples/digits_resnet.yaml (identity and stride-2 projection shortcuts, global average pool,
    dense) through `codesign train --dataset digits`, `codesign emit --board pynq-z1` (folded by
    hw_space.folding, FIFOs sized by the simulator) and `codesign verify`."""
    from codesign.cli import main

    train = tmp_path / "train"
    assert main(["train", str(RESNET), "--dataset", "digits", "--epochs", "2", "--out", str(train)]) == 0
    metrics = json.loads((train / "metrics.json").read_text())
    assert metrics["accuracy"] > 0.5  # it learned: outputs are not degenerate
    hls = tmp_path / "hls"
    assert main(["emit", "--qonnx", str(train / "model.onnx"), "--board", "pynq-z1", "--test-data",
                 str(train / "test_data.npz"), "--out", str(hls)]) == 0
    capsys.readouterr()
    assert main(["verify", str(hls), "--json"]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["bit_exact"] is True and verdict["mismatches"] == 0 and verdict["samples"] == 360
    assert verdict["argmax_agreement"] == 1.0
    top = (hls / "src" / "codesign_top.cpp").read_text()
    # the identity shortcut's FIFO (stem's duplicator -> add) covers the branch it bypasses: deeper than 2
    skip = [line for line in top.splitlines() if "STREAM variable=s_conv0_dup_add0" in line]
    assert len(skip) == 1 and int(skip[0].rsplit("=", 1)[1]) > 2
    # the trained design's own names, matched to the graph through its branches
    assert main(["emit", "--qonnx", str(train / "model.onnx"), "--design", str(train / "design.yaml"),
                 "--samples", "20", "--out", str(tmp_path / "named")]) == 0
    layers = {e["layer"] for e in json.loads((tmp_path / "named" / "manifest.json").read_text())["layers"]}
    assert {"add1", "add2", "proj", "b2b"} <= layers


@needs_gxx
@pytest.mark.slow
def test_trained_hand_written_resnet_is_bit_exact_and_agrees_with_brevitas(tmp_path):
    torch.manual_seed(0)
    model = train_briefly(ResByHand(), steps=80)
    emits_and_verifies(model, export(model, tmp_path / "r.onnx"), tmp_path)


class InputShortcut(nn.Module):
    """An add that reads the network input: the input quantizer is applied to the conv's output too
    (one scale on both inputs), so the input forks through an input_dup stage."""

    def __init__(self):
        super().__init__()
        self.q = QuantIdentity(act_quant=FixedUint8Input)
        self.conv = QuantConv2d(1, 1, 3, padding=1, weight_bit_width=4, bias=False)
        self.bn = nn.BatchNorm2d(1)
        self.add_q = QuantReLU(bit_width=4)
        self.fc = QuantLinear(64, 10, weight_bit_width=4, bias=False)

    def forward(self, x):
        x = self.q(x)
        return self.fc(torch.flatten(self.add_q(self.q(self.bn(self.conv(x))) + x), 1))


@needs_gxx
@pytest.mark.slow
def test_an_add_reading_the_network_input_forks_the_input_bit_exact(tmp_path):
    from codesign.backend import reference

    model = randomize(InputShortcut(), 3, positive_gamma=True)
    path = export(model, tmp_path / "i.onnx")
    g = lower_model(path)
    assert [layer.inputs for layer in network_of(g).layers] == [(), ("conv0", "input"), ()]
    assert "input_dup" in [op(g, k).name for k in topological(g)]
    _, _, x_test, _ = digits()
    got = reference.logits(g, reference.run(g, reference.input_codes(g, x_test.numpy())))
    with torch.no_grad():
        want = model(x_test).numpy()
    assert np.abs(got - want).max() < 1e-5 * max(1.0, float(np.abs(want).max()))
    emit(path, tmp_path / "hls", board="pynq-z1", samples=20)  # the model's folding and FIFO depths
    assert verify(tmp_path / "hls").bit_exact
