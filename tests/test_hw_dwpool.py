"""Depthwise convolution (VVAU), average pooling and global average pooling in the cost model:
hand-computed formulas, the lowering, the folding optimizer and the simulator on such a design."""

from __future__ import annotations

import numpy as np
import pytest

from hw_space.boards import load_board
from hw_space.design import design_from_dict
from hw_space.errors import CodesignError
from hw_space.folding import fold
from hw_space.layers import VVAU, AvgPool, DepthwiseWindow, FoldArrays, GlobalAvgPool
from hw_space.lowering import lower_dataflow
from hw_space.model import CostModel
from hw_space.simulate import design_chain, size_chain

NET = {
    "input": {"channels": 1, "height": 8, "width": 8, "bits": 8},
    "layers": [
        {"name": "conv0", "type": "conv", "out_channels": 8, "kernel": 3, "padding": 1, "weight_bits": 4, "act_bits": 4},
        {"name": "dw0", "type": "conv", "out_channels": 8, "kernel": 3, "padding": 1, "groups": 8,
         "weight_bits": 4, "act_bits": 4},
        {"name": "pw0", "type": "conv", "out_channels": 16, "kernel": 1, "weight_bits": 4, "act_bits": 4},
        {"name": "ap0", "type": "avgpool", "kernel": 2},
        {"name": "gap", "type": "global_avgpool"},
        {"name": "fc0", "type": "dense", "out_features": 10, "weight_bits": 4},
    ],
}


def _design(layers=None, hardware=None, net=NET):
    data = {"network": dict(net, layers=layers or net["layers"]), "hardware": hardware or {"board": "zc706"}}
    return design_from_dict(data, "<test>")


def _cols(pe, simd=1, wbits=4, in_bits=4, abits=4):
    return FoldArrays.blank(1, 64, pe=np.array([pe]), simd=np.array([simd]), wbits=np.array([wbits]),
                            in_bits=np.array([in_bits]), abits=np.array([abits]))


def test_vvau_cycles_and_resources_by_hand():
    v = VVAU("dw0", channels=8, k2=9, ofm=64)
    # FINN VVAU: (C*K*K)/(PE*SIMD)*OFM: 8*9/(1*1)*64 = 4,608; 8*9/(8*9)*64 = 64; 8*9/(2*3)*64 = 768
    assert v.cycles(1, 1) == 4608 and v.cycles(8, 9) == 64 and v.cycles(2, 3) == 768
    # PE 2, SIMD 3, W = A = B = 4, auto memory and multipliers (W+A = 8 < 12: LUTs):
    #   acc = 4 + 4 + ceil(log2 9) = 12; one PE's weights: 3*4 = 12 bits x 8*9/(2*3) = 12 words -> LUTRAM
    #   (depth <= 64), ceil(12/64)*12 = 12 LUTs, 24 for both PEs
    #   per PE: mult 3*(2*ceil(8/6)-1)*8 = 72, adder 8*(2*3-1) = 40, acc 12, thresholds 15*12*ceil(4/64) = 180,
    #   comparators 15*12 = 180 -> 484; LUT = 300 + 1.1*2*484 + 24 = 1,388.8 -> 1,389
    #   FF = 200 + 2*(3*(4+4) + 2*12 + 4) = 304
    r = v.stage_resources(_cols(2, 3))
    assert (int(r.LUT[0]), int(r.FF[0]), int(r.BRAM18[0]), int(r.DSP[0]), int(r.LUTRAM[0])) == (1389, 304, 0, 0, 24)
    a = _cols(2, 3)
    assert int(v.in_elems(a)[0]) == 6 and int(v.out_elems(a)[0]) == 2
    # widest word: max(2*3*4 input, 3*4 weights, 2*4 output, 12 accumulator) = 24
    assert int(v.stage_width(a)[0]) == 24
    assert bool(v.stage_legal(a)[0]) and not bool(v.stage_legal(_cols(3, 3))[0]) and not bool(v.stage_legal(_cols(2, 2))[0])
    assert v.rule("dw0") == "dw0: channels (8) must be divisible by PE and kernel positions (K*K) (9) by SIMD"


def test_vvau_schedule_matches_its_cycles():
    v = VVAU("dw0", channels=8, k2=9, ofm=4)
    a = _cols(2, 3)
    reads, writes = v.schedule({k: int(np.asarray(x).reshape(-1)[0]) for k, x in v.detail(a).items()}, 0)
    # 4 pixels * 4 channel folds * 3 kernel folds = 48 iterations, a read each, a write every 3rd
    assert len(reads) == int(v.stage_cycles(a)[0]) == 48
    assert reads.all() and writes.sum() == 16 and writes[2] and not writes[0]


def test_avgpool_and_global_pool_by_hand():
    p = AvgPool("ap0", channels=16, k2=4, ofm=16)
    # FINN Pool_Batch: C*K*K/PE*OFM = 16*4/4*16 = 256
    assert p.cycles(4) == 256
    # acc = 4 + ceil(log2 4) = 6; requant: 100 + 4*(6 + 15*6*ceil(4/64) + 15*6) = 100 + 4*186 = 844
    # FF = 64 + 4*(4 + 6 + 4) = 120
    r = p.stage_resources(_cols(4))
    assert (int(r.LUT[0]), int(r.FF[0]), int(r.BRAM18[0])) == (844, 120, 0)
    g = GlobalAvgPool("gap", channels=16, pixels=16)
    # H*W*C/PE = 16*16/4 = 64
    assert g.cycles(4) == 64
    # acc = 4 + log2 16 = 8; sums: 4 words of 4*8 = 32 bits -> LUTRAM ceil(4/64)*32 = 32
    # requant: 100 + 4*(8 + 15*8 + 15*8) = 1,092; LUT 1,124; FF 64 + 4*(4 + 8 + 4) = 128
    r = g.stage_resources(_cols(4))
    assert (int(r.LUT[0]), int(r.LUTRAM[0]), int(r.FF[0])) == (1124, 32, 128)
    reads, writes = g.schedule({"pixels": 16, "c": 16, "pe": 4}, 0)
    assert len(reads) == 64 and writes.sum() == 4 and writes[-4:].all()


def test_depthwise_lowering_and_window_cycles():
    design = _design()
    stages = lower_dataflow(design.network)
    assert [type(k).__name__ for k in stages[1]] == ["DepthwiseWindow", "WidthConverter", "VVAU"]
    assert [type(k).__name__ for k in stages[3]] == ["DepthwiseWindow", "AvgPool"]
    assert [type(k).__name__ for k in stages[4]] == ["GlobalAvgPool"]
    swg = stages[1][0]
    assert isinstance(swg, DepthwiseWindow)
    # the window takes the VVAU's PE channels per word; FINN's SWG formula on the padded 10x10 map,
    # C = 8, K = 3, S = 1, PE 8 (C/SIMD = 1): 10*3*1 + 8*max(8*9*1, 1*10*1) = 30 + 576 = 606
    a = swg.resolve(_cols(8, 9))
    assert int(a.swg_simd[0]) == 8 and int(swg.stage_cycles(a)[0]) == 606


def test_estimate_fold_and_simulate_a_depthwise_design():
    design = _design()
    board = load_board("pynq-z1")
    folded = fold(design, board)
    folds = folded.hardware.layers
    assert folds["dw0"].pe in (1, 2, 4, 8) and 9 % folds["dw0"].simd == 0
    res = CostModel(folded.network, board).evaluate_designs([folded])
    assert bool(res.feasible[0])
    chain = design_chain(folded, board)
    sim = size_chain(chain)
    assert sim.ii_cycles == int(res.ii_cycles[0])


@pytest.mark.parametrize("layer, message", [
    ({"name": "dw0", "type": "conv", "out_channels": 8, "kernel": 3, "groups": 3, "weight_bits": 4, "act_bits": 4},
     r"network.layers\[1\] \(dw0\).groups: 3 must divide the input channels \(8\) and out_channels \(8\)"),
    ({"name": "dw0", "type": "conv", "out_channels": 8, "kernel": 3, "groups": 0, "weight_bits": 4, "act_bits": 4},
     r"groups: 0 is out of range"),
])
def test_bad_groups_are_refused_in_one_line(layer, message):
    layers = [NET["layers"][0], layer, NET["layers"][-1]]
    with pytest.raises(CodesignError, match=message):
        _design(layers)


def test_grouped_conv_that_is_not_depthwise_is_refused_by_the_model():
    layers = [NET["layers"][0], dict(NET["layers"][1], groups=2), NET["layers"][-1]]
    design = _design(layers)  # valid network: groups divide both channel counts
    with pytest.raises(CodesignError, match=r"^layer dw0: groups 2 with 8 input and 8 output channels is not built"):
        CostModel(design.network, load_board("zc706"))


def test_swg_simd_on_a_depthwise_conv_is_refused():
    with pytest.raises(CodesignError, match=r"hardware.layers.dw0.swg_simd: a grouped \(depthwise\) conv's window"):
        _design(hardware={"board": "zc706", "layers": {"dw0": {"pe": 2, "simd": 3, "swg_simd": 2}}})


def test_plain_conv_files_do_not_write_groups():
    design = _design()
    text = design.to_yaml()
    assert text.count("groups") == 1 and "groups: 8" in text
    assert design_from_dict(__import__("yaml").safe_load(text)).network == design.network


def test_a_pool_act_bits_sets_the_bits_of_the_next_layer():
    layers = [dict(layer) for layer in NET["layers"]]
    layers[4]["act_bits"] = 6  # gap requantizes to 6 bits: the classifier reads 6-bit codes
    design = _design(layers)
    net = design.network
    assert [net.input_bits_of(j) for j in range(len(layers))] == [8, 4, 4, 4, 4, 6]
    res = CostModel(net, load_board("zc706")).evaluate_designs([design])
    gap = next(st for st in res.stages if st.name == "gap")
    fifo = next(st for st in res.stages if st.name == "gap_fifo")
    # PE 1 (the default of an average pool) of 6 bits = a 6-bit FIFO word; 2^6 - 1 = 63 thresholds per channel,
    # acc = 4 + log2(16) = 8: requant 100 + 1*(8 + 63*8*ceil(16/64) + 63*8) = 1,116 LUTs; the 16 sums are
    # 16 words of 8 bits -> LUTRAM (depth <= 64): ceil(16/64)*8 = 8; LUT = 1,124
    assert int(fifo.width[0]) == 6 and int(gap.res.LUT[0]) == 1124 and int(gap.res.LUTRAM[0]) == 8
    assert "act_bits: 6" in design.to_yaml()
