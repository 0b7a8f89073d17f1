"""The analytical formulas of hw_space, checked against numbers worked out by hand.

Every expected value below is computed in the comment next to it, from the formulas of DESIGN.md
section 4 (FINN's MVAU / SWG cost models, the RAMB18 aspect-ratio ladder, FNAS/Zhang's tiled
model); none is obtained by calling the code under test a second time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hw_space.boards import load_board
from hw_space.design import Design, Engine, Hardware, InputSpec, Layer, LayerFold, Network, load_design
from hw_space.estimate import estimate
from hw_space.layers import (
    MAC_AUTO,
    MAC_DSP,
    MAC_LUT,
    MVAU,
    WIDE,
    MaxPool,
    SlidingWindow,
    StreamIO,
    TiledConv,
    TiledPool,
    acc_bits,
    mac_array_luts,
    use_dsp,
)
from hw_space.layers.mvau import MVAU_LUT_FACTOR
from hw_space.memory import (
    AUTO,
    BRAM,
    EXTERNAL,
    LUTRAM,
    URAM,
    bram18_count,
    lutram_luts,
    memory_cost,
    resolve_style,
    uram_count,
)
from hw_space.model import CostModel

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _int(x) -> int:
    return int(np.asarray(x).reshape(-1)[0])


# ----------------------------------------------------------------------------- MVAU cycles

@pytest.mark.parametrize("mw, mh, ofm, pe, simd, expected", [
    # dense 36 -> 8, PE 2, SIMD 4: (8/2)·(36/4)·1 = 4·9 = 36
    (36, 8, 1, 2, 4, 36),
    # dense 36 -> 8 unfolded: 8·36 = 288
    (36, 8, 1, 1, 1, 288),
    # dense fully parallel: (8/8)·(36/36) = 1
    (36, 8, 1, 8, 36, 1),
    # CNV conv2: MW = 3·3·64 = 576, MH = 128, OFM = 12·12 = 144, PE 16, SIMD 32:
    # (128/16)·(576/32)·144 = 8·18·144 = 20,736
    (576, 128, 144, 16, 32, 20736),
    # CNV conv0: MW = 3·3·3 = 27, MH = 64, OFM = 30·30 = 900, PE 16, SIMD 3: 4·9·900 = 32,400
    (27, 64, 900, 16, 3, 32400),
])
def test_mvau_cycles(mw, mh, ofm, pe, simd, expected):
    assert _int(MVAU("l", mw, mh, ofm).compute_cycles(pe, simd)) == expected
    # on-chip weights: cycles are the compute cycles
    assert _int(MVAU("l", mw, mh, ofm).cycles(pe, simd, 4, BRAM, 64)) == expected


def test_mvau_cycles_vectorized_over_designs():
    # MW 64, MH 16, OFM 4; (PE, SIMD) = (1,1): 16·64·4 = 4096; (4,8): 4·8·4 = 128; (16,64): 1·1·4 = 4
    m = MVAU("l", 64, 16, 4)
    assert m.compute_cycles(np.array([1, 4, 16]), np.array([1, 8, 64])).tolist() == [4096, 128, 4]


def test_mvau_external_weights_are_bound_by_the_weight_stream():
    # dense 256 -> 64, 4-bit weights from DRAM through a 64-bit port: 256·64·4 / 64 = 1,024 cycles
    # per frame. PE = SIMD = 1 computes in 64·256 = 16,384 > 1,024 -> compute bound;
    # PE = 64, SIMD = 16 computes in 1·16 = 16 < 1,024 -> stream bound.
    m = MVAU("fc", 256, 64, 1)
    assert m.cycles(np.array([1, 64]), np.array([1, 16]), 4, EXTERNAL, 64).tolist() == [16384, 1024]
    # the same fast folding with on-chip weights: 16 cycles
    assert _int(m.cycles(64, 16, 4, BRAM, 64)) == 16


# ----------------------------------------------------------------------------- SWG cycles

@pytest.mark.parametrize("ifm, c, k, s, simd, expected", [
    # CNV conv0: IFM 32x32, C 3, K 3, S 1, SIMD 3, OFM 30x30:
    # 32·3·3/3 + 30·max(30·3·3·3/3, 1·32·3/3) = 96 + 30·max(270, 32) = 96 + 8,100 = 8,196
    (32, 3, 3, 1, 3, 8196),
    # CNV conv1: IFM 30, C 64, K 3, SIMD 32, OFM 28:
    # 30·3·64/32 + 28·max(28·9·64/32, 30·64/32) = 180 + 28·max(504, 60) = 180 + 14,112 = 14,292
    (30, 64, 3, 1, 32, 14292),
    # stride 2: IFM 9 (padded), C 4, K 3, SIMD 2, OFM (9-3)//2+1 = 4:
    # 9·3·4/2 + 4·max(4·9·4/2, 2·9·4/2) = 54 + 4·max(72, 36) = 54 + 288 = 342
    (9, 4, 3, 2, 2, 342),
    # 1x1 kernel, stride 2 (the stride term wins): IFM 8, C 8, SIMD 8, OFM 4:
    # 8·1·8/8 + 4·max(4·1·8/8, 2·8·8/8) = 8 + 4·max(4, 16) = 8 + 64 = 72
    (8, 8, 1, 2, 8, 72),
])
def test_swg_cycles(ifm, c, k, s, simd, expected):
    ofm = (ifm - k) // s + 1
    swg = SlidingWindow("swg", ifm, ifm, c, k, s, ofm, ofm)
    assert _int(swg.cycles(simd)) == expected


def test_swg_line_buffer_has_k_over_s_plus_1_row_blocks():
    # finn-hlslib's ConvolutionInputGenerator (slidingwindow.h) keeps
    #   inputBuf[ConvKernelDim/Stride + 1][Stride * IFMDim * IFMChannels/SIMD]
    # partitioned completely along the first dimension: K/S + 1 separate memories, each
    # SIMD·A bits wide and S·IFMw·C/SIMD words deep (K + S rows in all; FINN's SWG
    # bram_estimation counts the same K + S row memories). Never fewer BRAMs than that.
    #   IFM 34x34 (padded), C 64, K 3, S 1, SIMD 1, 4-bit input, BRAM style:
    #   4 blocks of 4 bits x 34·64 = 2,176 words; 4Kx4 rung: 1 BRAM18 each -> 4 BRAM18.
    swg = SlidingWindow("swg", 34, 34, 64, 3, 1, 32, 32)
    assert _int(swg.resources(1, 4, BRAM).BRAM18) >= 4
    #   CNV conv1: IFM 30, C 64, SIMD 32, 1-bit: 4 blocks of 32 bits x 30·64/32 = 60 words;
    #   BRAM style -> 512x36 rung, 1 each -> 4 BRAM18
    swg = SlidingWindow("swg", 30, 30, 64, 3, 1, 28, 28)
    assert _int(swg.resources(32, 1, BRAM).BRAM18) >= 4


# ----------------------------------------------------------------------------- max-pool, I/O

@pytest.mark.parametrize("pe, expected", [
    (64, 784),      # IFM 28x28, C 64, PE 64: 28·28·64/64 = 784
    (8, 6272),      # 28·28·64/8 = 784·8 = 6,272
    (1, 50176),     # 28·28·64 = 50,176
])
def test_maxpool_cycles(pe, expected):
    assert _int(MaxPool("pool", 28, 28, 64, 2, 2).cycles(pe)) == expected


@pytest.mark.parametrize("elements, bits, axi, expected", [
    (3 * 32 * 32, 8, 64, 384),    # CIFAR frame: 3·32·32·8 = 24,576 bits / 64 = 384
    (3 * 32 * 32, 8, 128, 192),   # 24,576 / 128 = 192
    (784, 8, 64, 98),             # MNIST frame: 784·8 = 6,272 / 64 = 98
    (10, 16, 64, 3),              # 10 logits of 16 bits: 160 / 64 = 2.5 -> 3
    (3, 1, 64, 1),                # 3 bits still take one beat
])
def test_stream_io_cycles(elements, bits, axi, expected):
    assert _int(StreamIO("input", elements, "input").cycles(bits, axi)) == expected


# ----------------------------------------------------------------------------- memories

@pytest.mark.parametrize("width, depth, expected", [
    # one rung at a time: 16Kx1, 8Kx2, 4Kx4, 2Kx9, 1Kx18, 512x36 each fill exactly one RAMB18
    (1, 16384, 1), (2, 8192, 1), (4, 4096, 1), (3, 4096, 1), (9, 2048, 1), (5, 2048, 1),
    (18, 1024, 1), (10, 1024, 1), (36, 512, 1), (19, 512, 1),
    # one word deeper than the rung needs a second block
    (1, 16385, 2), (2, 8193, 2), (4, 4097, 2), (9, 2049, 2), (18, 1025, 2),
    # 36 wide and 513 deep no longer fits 512x36: two 1Kx18 side by side, ceil(513/1024)·ceil(36/18) = 2
    (36, 513, 2),
    # wider: 72 x 512 = two 512x36 blocks side by side
    (72, 512, 2),
    # 20 x 600: deeper than 512, so 1Kx18 blocks, ceil(600/1024)·ceil(20/18) = 1·2 = 2
    (20, 600, 2),
    # 64 x 4096: ceil(4096/1024)·ceil(64/18) = 4·4 = 16
    (64, 4096, 16),
    # 8 x 100,000: 2Kx9 rung, ceil(100000/2048) = 49
    (8, 100000, 49),
    # 37 x 100: ceil(100/512)·ceil(37/36) = 2
    (37, 100, 2),
    # empty memories
    (0, 100, 0), (8, 0, 0),
])
def test_bram18_ladder(width, depth, expected):
    assert _int(bram18_count(width, depth)) == expected


def test_bram18_ladder_never_below_the_bit_count():
    # A RAMB18 holds at most 18,432 bits (16 Kib data + 2 Kib parity), so no ladder answer may be
    # below ceil(width·depth / 18,432) -- the model must never under-estimate BRAM.
    rng = np.random.default_rng(0)
    width = rng.integers(1, 300, 5000)
    depth = rng.integers(2, 70000, 5000)
    assert np.all(bram18_count(width, depth) >= -(-(width * depth) // 18432))


@pytest.mark.parametrize("width, depth, expected", [
    (72, 4096, 1),     # one 4Kx72 block
    (73, 4096, 2),     # ceil(73/72)·1 = 2
    (72, 4097, 2),     # 1·ceil(4097/4096) = 2
    (144, 8192, 4),    # 2·2 = 4
    (1, 1, 1),
    (0, 10, 0),
])
def test_uram_count(width, depth, expected):
    assert _int(uram_count(width, depth)) == expected


@pytest.mark.parametrize("width, depth, expected", [
    (16, 36, 16),     # ceil(36/64)·16 = 16
    (16, 64, 16),     # ceil(64/64)·16 = 16
    (16, 65, 32),     # ceil(65/64)·16 = 32
    (3, 200, 12),     # ceil(200/64)·3 = 4·3 = 12
])
def test_lutram_luts(width, depth, expected):
    assert _int(lutram_luts(width, depth)) == expected


@pytest.mark.parametrize("width, depth, expected", [
    # 'auto': LUTRAM up to 1,024 bits, BRAM above, however shallow (calibrated, issue 9)
    (64, 16, LUTRAM),     # 64·16 = 1,024 bits
    (32, 32, LUTRAM),     # 1,024 bits
    (1, 1024, LUTRAM),    # 1,024 bits
    (32, 33, BRAM),       # 1,056 bits
    (1, 1025, BRAM),
    (128, 64, BRAM),      # 8,192 bits, 64 deep: the cybersecurity MLP's fc1 memory, BRAM in FINN's build
    (4096, 64, BRAM),     # shallow but wide
])
def test_auto_memory_rule(width, depth, expected):
    assert _int(resolve_style(AUTO, width, depth)) == expected
    # explicit styles are never changed
    for style in (BRAM, LUTRAM, URAM, EXTERNAL):
        assert _int(resolve_style(style, width, depth)) == style


def test_memory_cost_per_style():
    # 16 x 36 auto -> LUTRAM, ceil(36/64)·16 = 16 LUTs
    assert [_int(v) for v in memory_cost(AUTO, 16, 36)] == [16, 0, 0]
    # 32 x 129 auto -> BRAM, ceil(129/512)·ceil(32/36) = 1
    assert [_int(v) for v in memory_cost(AUTO, 32, 129)] == [0, 1, 0]
    # 72 x 5000 in URAM: ceil(72/72)·ceil(5000/4096) = 2
    assert [_int(v) for v in memory_cost(URAM, 72, 5000)] == [0, 0, 2]
    # external weights cost no on-chip RAM
    assert [_int(v) for v in memory_cost(EXTERNAL, 72, 5000)] == [0, 0, 0]
    # a depth-1 memory is constants in logic: no RAM even when BRAM is asked for
    assert [_int(v) for v in memory_cost(BRAM, 512, 1)] == [0, 0, 0]


# ----------------------------------------------------------------------------- accumulator, LUTs, DSPs

@pytest.mark.parametrize("mw, w, a, expected", [
    (36, 2, 2, 10),    # W + A + ceil(log2 36) = 2 + 2 + 6 = 10
    (64, 4, 4, 14),    # 4 + 4 + 6 = 14
    (784, 1, 8, 19),   # not XNOR (8-bit input): 1 + 8 + ceil(log2 784) = 9 + 10 = 19
    (1, 8, 8, 16),     # 8 + 8 + 0
    (576, 1, 1, 10),   # XNOR popcount: ceil(log2 577) = 10 (512 < 577 <= 1024)
    (512, 1, 1, 10),   # ceil(log2 513) = 10
    (511, 1, 1, 9),    # ceil(log2 512) = 9
    (64, 1, 1, 7),     # ceil(log2 65) = 7
])
def test_accumulator_width(mw, w, a, expected):
    assert _int(acc_bits(mw, w, a)) == expected


def test_mvau_lut_formula_by_hand():
    # FINN-R: 300 + 1.1·PE·(mult + adder + acc + thr + comp), PE 2, SIMD 4, W = A = 2, MW 36, MH 8,
    # 2-bit output:
    #   mult  = SIMD·(2·ceil((W+A)/6) - 1)·(W+A) = 4·(2·1 - 1)·4 = 16
    #   adder = (W+A)·(2·SIMD - 1) = 4·7 = 28
    #   acc   = W + A + ceil(log2 36) = 10
    #   thr   = (2^2 - 1)·acc·ceil(TMEM/64), TMEM = MH/PE = 4 -> 3·10·1 = 30
    #   comp  = (2^2 - 1)·acc = 30
    #   total = 300 + 1.1·2·(16 + 28 + 10 + 30 + 30) = 300 + 2.2·114 = 550.8
    assert float(mac_array_luts(2, 4, 2, 2, 10, 2, 4, False)) == pytest.approx(550.8)
    # the MVAU uses the calibrated c1 = 0.65 (MVAU_LUT_FACTOR): 300 + 0.65·2·114 = 300 + 148.2 = 448.2
    assert float(mac_array_luts(2, 4, 2, 2, 10, 2, 4, False, MVAU_LUT_FACTOR)) == pytest.approx(448.2)
    # and adds its weight memories, one per PE by default (the kernel partitions its weights by PE):
    # width SIMD·W = 8 bits, depth MW·MH/(PE·SIMD) = 288/8 = 36, 288 bits -> 'auto' LUTRAM (<= 1,024 bits):
    # 2 PEs · ceil(36/64)·8 = 16 LUTs; 448.2 + 16 = 464.2 -> 465
    m = MVAU("l", 36, 8, 1)
    res = m.resources(2, 4, 2, 2, 2, AUTO, MAC_AUTO)
    assert _int(res.LUT) == 465
    assert (_int(res.BRAM18), _int(res.URAM), _int(res.DSP)) == (0, 0, 0)
    n, w, d = m.weight_memory(2, 4, 2)
    assert (_int(n), _int(w), _int(d)) == (2, 8, 36)
    # wide: one memory of PE·SIMD·W = 16 bits, the same 36 words (576 bits -> LUTRAM, ceil(36/64)·16 = 16)
    n, w, d = m.weight_memory(2, 4, 2, WIDE)
    assert (_int(n), _int(w), _int(d)) == (1, 16, 36)
    assert _int(m.resources(2, 4, 2, 2, 2, AUTO, MAC_AUTO, WIDE).LUT) == 465


def test_mvau_dsp_path():
    # the same MVAU with mac: dsp -- no multiplier LUTs:
    #   300 + 0.65·2·(0 + 28 + 10 + 30 + 30) = 300 + 127.4 = 427.4, + 16 LUTRAM = 443.4 -> 444
    #   DSPs = PE·SIMD·ceil((W+A)/48) = 2·4·1 = 8
    m = MVAU("l", 36, 8, 1)
    res = m.resources(2, 4, 2, 2, 2, AUTO, MAC_DSP)
    assert (_int(res.LUT), _int(res.DSP)) == (444, 8)
    # forced LUT multipliers: no DSP
    assert _int(m.resources(2, 4, 2, 2, 2, AUTO, MAC_LUT).DSP) == 0


@pytest.mark.parametrize("mac, w, a, expected", [
    (MAC_AUTO, 8, 8, True),    # W + A = 16 >= 12: DSP
    (MAC_AUTO, 4, 8, True),    # 12 >= 12
    (MAC_AUTO, 4, 4, False),   # 8 < 12: LUTs
    (MAC_LUT, 8, 8, False),
    (MAC_DSP, 2, 2, True),
    (MAC_DSP, 1, 1, False),    # XNOR-popcount never uses a DSP
])
def test_dsp_choice(mac, w, a, expected):
    assert bool(use_dsp(mac, w, a)) is expected


def test_xnor_mvau_luts_by_hand():
    # TFC fc1: MW = MH = 64, PE = SIMD = 8, W = A = 1 (XNOR), 1-bit output:
    #   mult = 8·(2·ceil(2/6) - 1)·2 = 16; adder = 2·(2·8 - 1) = 30; acc = ceil(log2 65) = 7
    #   thr = 1·7·ceil((64/8)/64) = 7; comp = 7
    #   300 + 0.65·8·(16 + 30 + 7 + 7 + 7) = 300 + 5.2·67 = 648.4
    #   weights: 8 PE memories of 8 bits x 64 words (512 bits -> LUTRAM): 8·ceil(64/64)·8 = 64;
    #   648.4 + 64 = 712.4 -> 713
    res = MVAU("fc1", 64, 64, 1).resources(8, 8, 1, 1, 1, AUTO, MAC_AUTO)
    assert (_int(res.LUT), _int(res.DSP), _int(res.BRAM18)) == (713, 0, 0)
    # wide: one memory of 64 bits x 64 words = 4,096 bits > 1,024 -> BRAM: 64 <= 512 deep and
    # 64 > 36 bits wide: ceil(64/512)·ceil(64/36) = 2 BRAM18, no LUTRAM: 648.4 -> 649
    res = MVAU("fc1", 64, 64, 1).resources(8, 8, 1, 1, 1, AUTO, MAC_AUTO, WIDE)
    assert (_int(res.LUT), _int(res.BRAM18)) == (649, 2)
    # last layer (no activation, out_bits 0): MW 64, MH 10, PE 10, SIMD 8:
    #   300 + 0.65·10·(16 + 30 + 7) = 300 + 344.5 = 644.5; weights 10 memories of 8 bits x 640/80 = 8
    #   words -> 10·ceil(8/64)·8 = 80 LUTs; 724.5 -> 725
    res = MVAU("fc3", 64, 10, 1).resources(10, 8, 1, 1, 0, AUTO, MAC_AUTO)
    assert _int(res.LUT) == 725


def test_w8a8_dsp_count_through_the_model():
    # dense 64 -> 16, W = A = 8, PE 4, SIMD 8, 'auto' -> DSP: 4·8·ceil(16/48) = 32 DSPs
    res = MVAU("fc", 64, 16, 1).resources(4, 8, 8, 8, 8, AUTO, MAC_AUTO)
    assert _int(res.DSP) == 32


# ----------------------------------------------------------------------------- tiled template

def _tiled(layer, tm, tn, tr, tc, in_bits, wbits, out_bits, ports):
    return _int(layer.cycles(tm, tn, tr, tc, in_bits, wbits, out_bits, *ports))


def test_tiled_conv_layer_by_hand():
    # conv with an 8x8 output map (10x10 padded input), N = 16 -> M = 32, K 3, S 1; Tm 8, Tn 4,
    # Tr = Tc = 5; 4-bit inputs/weights/outputs; ports 64/32/16 bits -> I_p = 16, W_p = 8, O_p = 4
    #   input tile (5-1)·1 + 3 = 7 rows and columns; steps = ceil(16/4) = 4 groups per tile
    #   Lat_I = 7·7·ceil(4/16) = 49;  Lat_W = 9·ceil(8·4/8) = 36;  Lat_C = 9·5·5 = 225
    #   Lat_O = 25 pixels · min(8/4, ceil(32/4)) = 2 groups · ceil(4/4) = 50
    #   L1 = 225; T1 = (4 + 1)·225 = 1,125; tiles = ceil(8/5)·ceil(8/5)·ceil(32/8) = 16
    #   cycles = 1,125 + 15·max(1,125, 50) + 50 = 18,050
    layer = TiledConv("c", 8, 8, 16, 32, 3, 1)
    assert _tiled(layer, 8, 4, 5, 5, 4, 4, 4, (64, 32, 16)) == 18050


def test_tiled_weight_bound_tile():
    # same layer, Tr = Tc = 1: input tile 3x3 -> Lat_I = 9, Lat_W = 36, Lat_C = 9, Lat_O = 1·2·1 = 2
    #   L1 = 36; T1 = 5·36 = 180; tiles = 8·8·4 = 256; cycles = 180 + 255·180 + 2 = 46,082
    layer = TiledConv("c", 8, 8, 16, 32, 3, 1)
    assert _tiled(layer, 8, 4, 1, 1, 4, 4, 4, (64, 32, 16)) == 46082


def test_tiled_input_bound_tile():
    # 1x1 conv, 8x8 map, N = M = 16, Tm = Tn = 16, Tr = Tc = 8, 8-bit input on an 8-bit port (I_p 1)
    #   Lat_I = 64 pixels · ceil(16/1) = 1,024; Lat_W = ceil(256/16) = 16; Lat_C = 64
    #   Lat_O = 64 · 1 group · ceil(16/16) = 64; L1 = 1,024; T1 = 2·1,024; one tile
    #   cycles = 2,048 + 64 = 2,112
    layer = TiledConv("c", 8, 8, 16, 16, 1, 1)
    assert _tiled(layer, 16, 16, 8, 8, 8, 4, 4, (8, 64, 64)) == 2112


def test_tiled_output_bound_tile():
    # 1x1 conv, 4x4 map, N 4 -> M 128, Tm 64, Tn 4, Tr = Tc = 4, 8-bit everything, output port 8 bits
    #   I_p = 8, W_p = 8, O_p = 1; Lat_I = 16·ceil(4/8) = 16; Lat_W = 256/8 = 32; Lat_C = 16
    #   Lat_O = 16 pixels · 16 groups · ceil(4/1) = 1,024; L1 = 32; T1 = 2·32 = 64; 2 tiles
    #   cycles = 64 + 1·max(64, 1,024) + 1,024 = 2,112 (the second tile waits for the first's outputs)
    layer = TiledConv("c", 4, 4, 4, 128, 1, 1)
    assert _tiled(layer, 64, 4, 4, 4, 8, 8, 8, (64, 64, 8)) == 2112


def test_tiled_strided_tile():
    # 8x8 map, N = M = 2, K 3, S 2, no padding: 3x3 output; Tm = Tn = 2, Tr = Tc = 8 (clipped to 3),
    # 8-bit, 64-bit ports (8 elements per word)
    #   input tile (3-1)·2 + 3 = 7: Lat_I = 49·ceil(2/8) = 49; Lat_W = 9·ceil(4/8) = 9
    #   Lat_C = 9·9 = 81; Lat_O = 9·1·1 = 9; L1 = 81; T1 = 2·81 = 162; cycles = 162 + 9 = 171
    layer = TiledConv("c", 3, 3, 2, 2, 3, 2)
    assert _tiled(layer, 2, 2, 8, 8, 8, 8, 8, (64, 64, 64)) == 171


def test_tiled_dense_layer():
    # dense 256 -> 10 as a 1x1 conv on a 1x1 map, Tm 16, Tn 8, Tr = Tc = 8 (clipped to the 1x1 map),
    # 4-bit in/weights, 16-bit logits: I_p = 16, W_p = 16, O_p = 4
    #   steps = 256/8 = 32; Lat_I = 1; Lat_W = 128/16 = 8; Lat_C = 1; L1 = 8; T1 = 33·8 = 264
    #   Lat_O = 1 · min(2, ceil(10/8)) = 2 groups · ceil(8/4) = 4; cycles = 264 + 4 = 268
    layer = TiledConv("fc", 1, 1, 256, 10, 1, 1)
    assert _tiled(layer, 16, 8, 8, 8, 4, 4, 16, (64, 64, 64)) == 268


def test_tiled_dense_after_a_map_reads_each_pixel_as_groups():
    # dense after a 2x2x6 map (pixels 4), Tn 4: ceil(6/4) = 2 groups per pixel -> steps 8 (the
    # channel padding of the second group costs its share), same as 32 channels of a 1x1 map
    after_map = TiledConv("fc", 1, 1, 6, 8, 1, 1, pixels=4)
    flat = TiledConv("fc", 1, 1, 32, 8, 1, 1)
    assert _tiled(after_map, 8, 4, 1, 1, 4, 4, 4, (64, 64, 64)) == _tiled(flat, 8, 4, 1, 1, 4, 4, 4, (64, 64, 64))
    # steps 8, Lat_W = ceil(32/16) = 2 = L1, T1 = 9·2 = 18, Lat_O = 2·1 = 2 -> 20
    assert _tiled(after_map, 8, 4, 1, 1, 4, 4, 4, (64, 64, 64)) == 20


def test_tiled_pool_reads_each_window_word():
    # 2x2 pool to 4x4 on 16 channels of 4 bits, Tn 4, 64-bit port (16 per word -> 1 word per group)
    #   ceil(16/4) = 4 groups · 16 pixels · 1 word · 4 window positions = 256
    assert _int(TiledPool("p", 4, 4, 16, 2).cycles(4, 4, 64)) == 256
    # Tn 8 with 16-bit elements on a 64-bit port: 2 words per group -> 2 · 16 · 2 · 4 = 256
    assert _int(TiledPool("p", 4, 4, 16, 2).cycles(8, 16, 64)) == 256


def test_tiled_network_by_hand():
    # examples/digits_tiled.yaml: Tm 16, Tn 4, Tr = Tc = 8, 64-bit ports, 100 MHz
    #   conv0: 8x8 output, input tile 10x10, N 1, M 16, 8-bit input (I_p 8), W4 (W_p 16), A4 (O_p 16)
    #     Lat_I = 100·ceil(4/8) = 100, Lat_W = 9·ceil(64/16) = 36, Lat_C = 9·64 = 576, L1 = 576
    #     steps 1: T1 = 2·576 = 1,152; Lat_O = 64·min(4, 4)·1 = 256; one tile -> 1,152 + 256 = 1,408
    #   pool0: 4 groups · 4·4 pixels · 1 word · 4 = 256
    #   conv1: 4x4 output (tile clipped to 4), input tile 6x6, N 16 (4 steps), M 32, 4-bit in (I_p 16)
    #     Lat_I = 36, Lat_W = 36, Lat_C = 9·16 = 144 = L1; T1 = 5·144 = 720; Lat_O = 16·4 = 64
    #     2 tiles: 720 + 720 + 64 = 1,504
    #   pool1: 8 groups · 2·2 · 1 · 4 = 128
    #   fc0: 32 channels x 4 pixels -> 8·4 = 32 steps, M 64: Lat_W = 4 = L1, T1 = 33·4 = 132,
    #     Lat_O = 4 groups · 1 = 4, 4 tiles: 132 + 3·132 + 4 = 532
    #   fc1: N 64 (16 steps), M 10, logits 8·ceil((4 + 4 + 6)/8) = 16 bits (O_p 4): T1 = 17·4 = 68,
    #     Lat_O = min(4, ceil(10/4)) = 3 groups · 1 = 3 -> 71
    #   II = latency = 1,408 + 256 + 1,504 + 128 + 532 + 71 = 3,899 -> 100e6/3,899 FPS
    est = estimate(load_design(EXAMPLES / "digits_tiled.yaml"))
    cycles = {layer.name: layer.cycles for layer in est.layers}
    assert [cycles[n] for n in ("conv0", "pool0", "conv1", "pool1", "fc0", "fc1")] == [1408, 256, 1504, 128, 532, 71]
    assert est.ii_cycles == est.latency_cycles == 3899
    assert est.fps == pytest.approx(100e6 / 3899)
    # the 8-bit network input puts the engine's Tm·Tn = 64 multipliers on DSPs
    assert est.resources["DSP"] == 64


def test_tiled_engine_legality():
    # Tm must be a multiple of Tn, and the activation ports equally wide
    d = load_design(EXAMPLES / "digits_tiled.yaml")
    assert estimate(d).feasible
    assert not estimate(d.with_hardware(engine=Engine(tm=6, tn=4, tr=8, tc=8))).feasible
    assert not estimate(d.with_hardware(engine=Engine(tm=16, tn=4, tr=8, tc=8, output_port=32))).feasible


def test_tiled_engine_without_8bit_operands_uses_luts():
    # digits network with a 4-bit input: every operand is < 8 bits -> no DSP at all
    d = load_design(EXAMPLES / "digits_tiled.yaml")
    d4 = Design(Network(InputSpec(1, 8, 8, 4), d.network.layers), d.hardware)
    assert estimate(d4).resources["DSP"] == 0


# ----------------------------------------------------------------------------- whole dataflow design

def test_dataflow_stage_cycles_and_latency_by_hand():
    # examples/digits_w4a4.yaml, every layer PE = SIMD = 1 (pools: all channels), zc706, 64-bit AXI.
    # The I/O adapters and width converters are the gearbox kernel (layers.gearbox_cycles):
    #   input   64 elements, 8 per AXI word, to the SWG's 1 per word: one per iteration = 64
    #   conv0_swg  10x10 padded, C 1, K 3, OFM 8: 10·3·1 + 8·max(8·9·1, 10·1) = 30 + 576 = 606
    #   conv0   MW 9, MH 16, OFM 64: 16·9·64 = 9,216
    #   pool0_in_dwc  1 -> 16 per word over 1,024 elements: 1,023 reads + 1 = 1,024
    #   pool0_rows  8·8·16/16 = 64;  pool0 (columns)  8·4·16/16 = 32
    #   conv1_in_dwc  16 -> 1 per word over 256 elements: 256 writes
    #   conv1_swg  6x6 padded, C 16, OFM 4: 6·3·16 + 4·max(4·9·16, 6·16) = 288 + 2,304 = 2,592
    #   conv1   MW 144, MH 32, OFM 16: 32·144·16 = 73,728
    #   pool1_in_dwc  1 -> 32 over 512: 512;  pool1_rows 4·4·32/32 = 16;  pool1 4·2·32/32 = 8
    #   fc0_in_dwc  32 -> 1 over 128: 128;  fc0  MW 128, MH 64: 8,192;  fc1  MW 64, MH 10: 640
    #   (fc0 PE 1 -> fc1 SIMD 1 needs no converter)
    #   output  10 logits of 16 bits (8·ceil((4+4+6)/8)), 4 per AXI word, from 1 per word: 10
    #   II = 73,728 (conv1); latency bound = sum = 97,088 cycles
    est = estimate(load_design(EXAMPLES / "digits_w4a4.yaml"))
    cycles = {layer.name: layer.cycles for layer in est.layers if layer.kind != "fifo"}
    assert cycles == {"input": 64, "conv0_swg": 606, "conv0": 9216, "pool0_in_dwc": 1024, "pool0_rows": 64,
                      "pool0": 32, "conv1_in_dwc": 256, "conv1_swg": 2592, "conv1": 73728, "pool1_in_dwc": 512,
                      "pool1_rows": 16, "pool1": 8, "fc0_in_dwc": 128, "fc0": 8192, "fc1": 640, "output": 10,
                      "platform": 0}
    assert est.ii_cycles == 73728
    assert est.latency_cycles == 97088
    assert est.fps == pytest.approx(100e6 / 73728)
    assert est.feasible


def _cnv(**folds) -> Design:
    d = load_design(EXAMPLES / "cnv_w1a1.yaml")
    layers = dict(d.hardware.layers)
    layers.update(folds)
    return d.with_hardware(layers=layers)


@pytest.mark.parametrize("layer, fold, rule", [
    # MH = 64 is not divisible by PE = 3
    ("conv1", LayerFold(pe=3, simd=32), "conv1: MH (64) must be divisible by PE"),
    # MW = 3·3·64 = 576 IS divisible by 48 (the MVAU is legal), but a sliding window of SIMD 48 is
    # not: C = 64 % 48 = 16 (without swg_simd the window takes 32, the largest divisor of 64 <= 48)
    ("conv1", LayerFold(pe=32, simd=48, swg_simd=48),
     "conv1: input channels (64) must be divisible by the sliding window's SIMD"),
    # dense MW = 256·1·1 = 256: SIMD 3 is illegal
    ("fc0", LayerFold(pe=1, simd=3), "fc0: MH (512) must be divisible by PE and MW (256) by SIMD"),
    # PE larger than MH: 10 % 20 != 0
    ("fc2", LayerFold(pe=20, simd=1), "fc2: MH (10)"),
    # max-pool over 64 channels with PE 3
    ("pool0", LayerFold(pe=3), "pool0: channels (64) must be divisible by PE"),
])
def test_illegal_folding_is_infeasible_and_names_the_layer(layer, fold, rule):
    est = estimate(_cnv(**{layer: fold}))
    assert not est.feasible
    assert any(v.startswith(rule) for v in est.violations), est.violations
    # the resources still fit zc706: the only reason is the folding rule
    assert all(est.resources[k] <= 0.85 * est.capacity[k] for k in est.resources)


def test_legal_folding_of_the_same_layer_is_feasible():
    assert estimate(_cnv(conv1=LayerFold(pe=32, simd=64))).feasible


def test_resource_overflow_is_named():
    # TFC-like dense 784 -> 1024 at 8-bit weights fully in LUTRAM on a PYNQ-Z2:
    # 784·1024·8 bits = 6.4 Mbit -> with PE = SIMD = 1 the memory is 8 bits x 802,816 words:
    # LUTRAM ceil(802816/64)·8 = 12,544·8 = 100,352 LUTs > 0.85·53,200 = 45,220
    net = Network(InputSpec(1, 28, 28, 8), (
        Layer("fc0", "dense", out_features=1024, weight_bits=8, act_bits=8),
        Layer("fc1", "dense", out_features=10, weight_bits=8),
    ))
    hw = Hardware(board="pynq-z2", layers={"fc0": LayerFold(weight_memory="lutram")})
    est = estimate(Design(net, hw))
    assert not est.feasible
    assert est.resources["LUT"] > 100352
    assert any(v.startswith("LUT: ") and "45,220 allowed" in v for v in est.violations), est.violations


def test_uram_on_a_board_without_uram_is_infeasible():
    # digits conv1 weights in URAM on pynq-z2 (0 URAM): 4 bits x 144·32 = 4,608 words
    # -> ceil(4/72)·ceil(4608/4096) = 2 URAM > 0
    d = load_design(EXAMPLES / "digits_w4a4.yaml").with_hardware(
        board="pynq-z2", layers={"conv1": LayerFold(weight_memory="uram")})
    est = estimate(d, load_board("pynq-z2"))
    assert not est.feasible
    assert any("no URAM" in v for v in est.violations)


def test_lutram_beyond_the_slicem_luts_is_infeasible():
    # Only SLICEM LUTs can be distributed RAM: the xc7z020 has 4,350 SLICEMs x 4 LUTs = 17,400 of
    # its 53,200 LUTs. Dense 1024 -> 256 with 8-bit weights in LUTRAM at PE = SIMD = 1:
    # 8 bits x 262,144 words -> ceil(262144/64)·8 = 32,768 LUTs of distributed RAM, almost twice
    # what the device has -- Vivado cannot place it, whatever the total LUT count says. The rest of
    # the design is small (~36.5 k LUTs in all < 45,220), so only a LUTRAM capacity check can
    # catch it; a design that "fits" by the model but fails placement is the worst outcome.
    net = Network(InputSpec(1, 32, 32, 8), (
        Layer("fc0", "dense", out_features=256, weight_bits=8, act_bits=2),
        Layer("fc1", "dense", out_features=10, weight_bits=2),
    ))
    d = Design(net, Hardware(board="pynq-z2", layers={"fc0": LayerFold(weight_memory="lutram")}))
    est = estimate(d)
    assert {l.name: l.resources["LUT"] for l in est.layers}["fc0"] > 32768
    assert not est.feasible, "32,768 LUTs of LUTRAM on a device with 17,400 SLICEM LUTs"


def test_target_fps_makes_slow_designs_infeasible():
    # digits at PE = SIMD = 1 runs at 100e6/73,728 = 1,356.3 FPS
    d = load_design(EXAMPLES / "digits_w4a4.yaml")
    assert estimate(d, target_fps=1356).feasible
    est = estimate(d, target_fps=1357)
    assert not est.feasible and any("below the target" in v for v in est.violations)


def test_clock_scales_fps():
    # II 73,728 cycles at 200 MHz: 200e6 / 73,728 = 2,712.7 FPS
    d = load_design(EXAMPLES / "digits_w4a4.yaml").with_hardware(clock_mhz=200.0)
    assert estimate(d).fps == pytest.approx(200e6 / 73728)


def test_max_util_limits_feasibility():
    # CNV-w1a1 as folded by FINN uses 121 BRAM18 on zc706 (limit 0.85·1,090 = 926); with
    # max_util 0.1 the limit is 109 < 121
    d = load_design(EXAMPLES / "cnv_w1a1.yaml")
    assert estimate(d).feasible
    est = estimate(d, max_util=0.1)
    assert not est.feasible and any(v.startswith("BRAM18:") for v in est.violations)


def test_cost_model_defaults_are_pe_simd_one():
    # evaluate_dataflow() with no arrays = PE = SIMD = 1, pools at all channels: same II as the
    # unfolded digits example (73,728)
    d = load_design(EXAMPLES / "digits_w4a4.yaml")
    r = CostModel(d.network, load_board("zc706")).evaluate_dataflow()
    assert int(r.ii_cycles[0]) == 73728


def test_engine_default_ports():
    # port_bits default to 64: the digits_tiled engine written without ports gives the same cycles
    d = load_design(EXAMPLES / "digits_tiled.yaml")
    d2 = d.with_hardware(engine=Engine(tm=16, tn=4, tr=8, tc=8))
    assert estimate(d2).ii_cycles == 3899
