"""One machine: what the cost model prices is what the HLS builds (issue: widths, the sliding window
folded apart from its MVAU, width converters, memory and multiplier pragmas)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from brevitas.nn import QuantIdentity, QuantLinear, QuantReLU
from brevitas.quant import Int8WeightPerTensorFloat, Uint8ActPerTensorFloat
from test_backend_models import FixedUint8Input, HandNet, export, randomize
from torch import nn

from codesign.backend.csim import verify
from codesign.backend.emit import emit
from codesign.backend.lower import lower_model, network_of
from hw_space.boards import load_board
from hw_space.design import Design, Hardware, InputSpec, Layer, LayerFold, Network
from hw_space.errors import CodesignError
from hw_space.estimate import estimate
from hw_space.folding import fold
from hw_space.model import evaluate_design
from hw_space.widths import AP_INT_MAX_W

needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="C-simulation needs g++")


class Mlp(nn.Module):
    """784 inputs -> hidden dense layers with BatchNorm and ReLU -> 10 logits (FINN's TFC shape)."""

    def __init__(self, wbits: int, abits: int, in_bits: int, hidden: tuple[int, ...] = (64,)):
        super().__init__()
        quant = FixedUint8Input if in_bits == 8 else Uint8ActPerTensorFloat
        self.inp = QuantIdentity(act_quant=quant, bit_width=in_bits)
        layers: list[nn.Module] = []
        n = 784
        for h in hidden:
            layers += [QuantLinear(n, h, bias=True, weight_quant=Int8WeightPerTensorFloat, weight_bit_width=wbits),
                       nn.BatchNorm1d(h), QuantReLU(act_quant=Uint8ActPerTensorFloat, bit_width=abits)]
            n = h
        layers.append(QuantLinear(n, 10, bias=True, weight_quant=Int8WeightPerTensorFloat, weight_bit_width=wbits))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.inp(torch.flatten(x, 1)))


def _calibrated(model: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(64, 1, 28, 28))
    return model.eval()


def _mlp_design(simd: int, bits: int = 8) -> Design:
    net = Network(input=InputSpec(1, 28, 28, bits), layers=(
        Layer(name="fc0", type="dense", out_features=64, weight_bits=bits, act_bits=bits),
        Layer(name="fc1", type="dense", out_features=10, weight_bits=bits)))
    return Design(network=net, hardware=Hardware(board="zc706", layers={"fc0": LayerFold(pe=1, simd=simd)}))


def test_a_word_over_the_limit_is_infeasible_and_named():
    # fc0 at SIMD 784 reads 784 8-bit inputs per word: 6,272 bits > 4,096
    est = estimate(_mlp_design(784))
    assert not est.feasible
    assert any(v.startswith("fc0: fc0 needs a 6,272-bit word") and "4,096" in v for v in est.violations), est.violations
    # SIMD 392: 3,136 bits, within the limit
    assert estimate(_mlp_design(392)).feasible


@pytest.mark.parametrize("board", ["zc706", "pynq-z1", "zcu104"])
def test_fold_never_returns_a_word_over_the_limit(board):
    folded = fold(_mlp_design(1), load_board(board))
    result = evaluate_design(folded, load_board(board))
    assert bool(result.feasible[0])
    assert max(int(np.max(st.width)) for st in result.stages) <= AP_INT_MAX_W
    assert folded.hardware.fold("fc0").simd * 8 <= AP_INT_MAX_W


@needs_gxx
# by default one wide MLP (w2a2 on pynq-z1); the other three pairs are slow
@pytest.mark.parametrize("kind, board", [pytest.param("w8a8", "zc706", marks=pytest.mark.slow), ("w2a2", "pynq-z1"),
                                         pytest.param("w8a8", "pynq-z1", marks=pytest.mark.slow),
                                         pytest.param("w2a2", "zc706", marks=pytest.mark.slow)])
def test_wide_mlps_emit_and_verify_with_a_board(tmp_path, kind, board):
    """An 8-bit 784->64->10 MLP and a 2-bit 784->64->64->64->10 MLP, folded by `--board`: every
    ap_uint fits AP_INT_MAX_W, every header defines it, and the C-simulation is bit-exact."""
    model = Mlp(8, 8, 8) if kind == "w8a8" else Mlp(2, 2, 2, (64, 64, 64))
    path = export(_calibrated(model), tmp_path / "m.onnx", shape=(1, 1, 28, 28))
    emit(path, tmp_path / "hls", board=board, samples=8)
    for header in (tmp_path / "hls" / "src").glob("*.h"):
        text = header.read_text()
        if "#include <ap_int.h>" in text:
            assert text.index(f"#define AP_INT_MAX_W {AP_INT_MAX_W}") < text.index("#include <ap_int.h>"), header.name
    widths = [int(w) for f in (tmp_path / "hls" / "src").iterdir() for w in re.findall(r"ap_u?int<(\d+)>", f.read_text())]
    assert max(widths) <= AP_INT_MAX_W
    result = verify(tmp_path / "hls")
    assert result.bit_exact and result.samples == 8


def _handnet(tmp_path: Path) -> tuple[Path, Network]:
    model = randomize(HandNet(wbits=(4, 4, 4, 4), abits=(4, 4, 4), channels=(8, 12)), 3)
    path = export(model, tmp_path / "m.onnx")
    return path, network_of(lower_model(path))


@needs_gxx
def test_the_mvau_folds_apart_from_its_sliding_window(tmp_path):
    """conv0 on the 8x8x1 input at PE 4, SIMD 3: the window emits one channel per word (SIMD 1), a
    width converter packs three, and the MVAU reads 9/3 = 3 words per pixel."""
    path, net = _handnet(tmp_path)
    design = Design(network=net, hardware=Hardware(board="pynq-z1", layers={"conv0": LayerFold(pe=4, simd=3)}))
    est = estimate(design)
    rows = {l.name: l for l in est.layers}
    assert est.feasible
    assert rows["conv0_swg"].simd == 1 and rows["conv0"].simd == 3 and rows["conv0"].pe == 4
    # the converter: 8·8 windows of 9 elements, 1 -> 3 per word: 576 reads, a write every third
    assert rows["conv0_dwc"].kind == "dwc" and rows["conv0_dwc"].cycles == 576
    assert rows["conv0"].cycles == (8 // 4) * (9 // 3) * 64
    emit(path, tmp_path / "hls", design=design, samples=6)
    top = (tmp_path / "hls" / "src" / "codesign_top.cpp").read_text()
    assert re.search(r"width_convert<1, 3, \d+, 576, 576>", top)
    assert verify(tmp_path / "hls").bit_exact


@needs_gxx
def test_memory_and_multiplier_styles_become_pragmas(tmp_path):
    """Memory style, multiplier style and weight layout per layer: pragmas in the top function, and
    the C-simulation stays bit-exact with both layouts (conv1 and fc0 wide, conv0 per PE)."""
    path, net = _handnet(tmp_path)
    folds = {"conv0": LayerFold(pe=2, simd=1, weight_memory="lutram", mac="lut"),
             "conv1": LayerFold(pe=4, simd=8, weight_memory="bram", mac="dsp", weight_layout="wide"),
             "fc0": LayerFold(pe=4, simd=4, weight_memory="auto", weight_layout="wide")}
    emit(path, tmp_path / "hls", design=Design(network=net, hardware=Hardware(board="zcu104", layers=folds)), samples=4)
    top = (tmp_path / "hls" / "src" / "codesign_top.cpp").read_text()
    binds = dict(re.findall(r"BIND_STORAGE variable=(\w+)_weights type=rom_np impl=(\w+)", top))
    assert binds == {"conv0": "lutram", "conv1": "bram"}  # auto leaves the choice to the tool
    for layer, impl in binds.items():
        assert f"BIND_STORAGE variable={layer}_thresholds type=rom_np impl={impl}" in top
    # per_pe: one memory per PE (partitioned); wide: all PE words of an address in one (reshaped)
    layouts = {layer: kind for kind, layer in re.findall(
        r"#pragma HLS (ARRAY_PARTITION|ARRAY_RESHAPE) variable=(\w+)_weights complete dim=1", top)}
    assert layouts == {"conv0": "ARRAY_PARTITION", "conv1": "ARRAY_RESHAPE", "fc0": "ARRAY_RESHAPE",
                       "fc1": "ARRAY_PARTITION"}  # fc1: not in the folds, the default
    # the kernel itself no longer partitions its weights (the call site says how)
    kernels = next((tmp_path / "hls" / "src").glob("*kernels*.h")).read_text()
    assert "variable=weights" not in kernels
    # every FIFO the writer emits is a row of the estimate, with the same depth and word, in order
    design = Design(network=net, hardware=Hardware(board="zcu104", layers=folds))
    est = estimate(design, simulate=True)
    fifo_rows = [(row.depth, row.width) for row in est.layers if row.kind == "fifo"]
    streams = re.findall(r"hls::stream<ap_uint<(\d+)> > (\w+)\(\"\w+\"\);\n#pragma HLS STREAM variable=\w+ depth=(\d+)", top)
    assert [int(d) for _, _, d in streams] == [d for d, _ in fifo_rows]
    assert [int(w) for w, _, _ in streams][:-1] == [w for _, w in fifo_rows][:-1]  # the last: the logits' bound
    assert len(streams) == len([row for row in est.layers if row.kind not in ("fifo", "shell")]) - 1
    assert verify(tmp_path / "hls").bit_exact


def test_external_weights_are_refused_by_the_backend(tmp_path):
    path, net = _handnet(tmp_path)
    design = Design(network=net, hardware=Hardware(layers={"fc0": LayerFold(pe=1, simd=1, weight_memory="external")}))
    with pytest.raises(CodesignError, match=r"hardware\.layers\.fc0\.weight_memory: 'external' cannot be emitted"):
        emit(path, tmp_path / "hls", design=design)
    assert not (tmp_path / "hls").exists()
