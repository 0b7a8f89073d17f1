"""The model against FINN's published designs and measurements.

CNV-w1a1 (BNN-PYNQ) with the folding of FINN's cnv end-to-end example: FINN measured 3,020
images/s at 100 MHz. TFC-w1a1 with the folding of FINN's tfc end-to-end example
(notebooks/end2end_example/bnn-pynq/tfc_end2end_example.ipynb in Xilinx/finn: PE/SIMD
(16, 49), (8, 8), (8, 8), (10, 8), ram_style block / auto / auto / distributed): FINN's own
compute-only model predicts 1.56 M FPS (every layer folds to 64 cycles), 837 k FPS were measured.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hw_space.boards import load_board
from hw_space.design import Design, Hardware, InputSpec, Layer, LayerFold, Network, load_design
from hw_space.estimate import estimate

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

CNV_MEASURED_FPS = 3020.0
TFC_MEASURED_FPS = 837_000.0
TFC_FINN_PREDICTED_FPS = 100e6 / 64  # FINN's compute-only II of 64 cycles: 1,562,500 FPS


@pytest.mark.parametrize("board", ["zc706", "pynq-z1"])
def test_cnv_w1a1_matches_finn_measurement(board):
    # The slowest stages are fc0 = (512/1)·(256/4) = 32,768 and fc1 = (512/1)·(512/8) = 32,768
    # cycles; every other stage is shorter (conv0 (64/16)·(27/3)·900 = 32,400 is next).
    # II = 32,768 cycles -> 100e6 / 32,768 = 3,051.76 FPS, 1.05 % above the 3,020 FINN measured.
    # The input frame (3·32·32·8 / 64 = 384 cycles) is far from the bottleneck.
    est = estimate(load_design(EXAMPLES / "cnv_w1a1.yaml"), load_board(board))
    assert est.ii_cycles == 32768
    assert est.fps == pytest.approx(3051.7578125)
    assert abs(est.fps - CNV_MEASURED_FPS) / CNV_MEASURED_FPS < 0.02
    cycles = {layer.name: layer.cycles for layer in est.layers}
    assert cycles["fc0"] == cycles["fc1"] == 32768
    assert cycles["conv0"] == 32400
    assert cycles["input"] == 1024
    # FINN built this very folding for the PYNQ-Z1 (xc7z020): the model must say it fits there
    assert est.feasible, est.violations


def _tfc(input_bits: int = 8) -> Design:
    # FINN's TFC: 784 inputs (MNIST 28x28), three hidden layers of 64, 10 outputs, 1-bit weights
    # and activations. FINN's BNN-PYNQ input is UINT8 (the notebook marks the global input as
    # DataType UINT8 and thresholds it to bipolar inside the accelerator), so the frame enters
    # through the DMA as 784 bytes: input bits = 8. (fc0 therefore counts as 1-bit x 8-bit MACs,
    # not XNOR; that changes its LUTs, not its cycles.)
    net = Network(InputSpec(1, 28, 28, input_bits), (
        Layer("fc0", "dense", out_features=64, weight_bits=1, act_bits=1),
        Layer("fc1", "dense", out_features=64, weight_bits=1, act_bits=1),
        Layer("fc2", "dense", out_features=64, weight_bits=1, act_bits=1),
        Layer("fc3", "dense", out_features=10, weight_bits=1),
    ))
    folds = {
        "fc0": LayerFold(pe=16, simd=49, weight_memory="bram"),
        "fc1": LayerFold(pe=8, simd=8),
        "fc2": LayerFold(pe=8, simd=8),
        "fc3": LayerFold(pe=10, simd=8, weight_memory="lutram"),
    }
    return Design(net, Hardware(board="pynq-z1", clock_mhz=100.0, layers=folds))


def test_tfc_w1a1_is_io_bound():
    est = estimate(_tfc())
    cycles = {layer.name: layer.cycles for layer in est.layers}
    # compute stages, all folded to 64 cycles as in FINN's notebook ("a total folding of 16"):
    #   fc0 (64/16)·(784/49) = 4·16 = 64; fc1 = fc2 = (64/8)·(64/8) = 64; fc3 (10/10)·(64/8) = 8
    assert [cycles[n] for n in ("fc0", "fc1", "fc2", "fc3")] == [64, 64, 64, 8]
    # but the frame must first enter through the 64-bit AXI stream: 784·8 / 64 = 98 cycles,
    # and the 10 logits (popcount of 64 -> ceil(log2 65) = 7 bits, sent as 8) leave in 80/64 -> 2
    assert cycles["input"] == 98
    assert cycles["output"] == 2
    # II = 98 cycles -> 100e6/98 = 1,020,408 FPS; latency bound 98 + 64·3 + 8 + 2 = 300 cycles = 3 us
    assert est.ii_cycles == 98
    assert est.fps == pytest.approx(100e6 / 98)
    assert est.latency_cycles == 308
    # FINN's compute-only figure (II 64 -> 1.56 M FPS) is 1.87x the 837 k measured; ours is 1.22x,
    # lower than FINN's prediction and closer to the measurement (the rest is DMA/driver overhead
    # that no per-stage model sees).
    assert est.fps < TFC_FINN_PREDICTED_FPS
    assert abs(est.fps - TFC_MEASURED_FPS) < abs(TFC_FINN_PREDICTED_FPS - TFC_MEASURED_FPS)
    assert est.fps / TFC_MEASURED_FPS == pytest.approx(1.219, abs=0.001)


def test_tfc_w1a1_luts_with_an_8bit_first_layer():
    # The model has no standalone input-thresholding stage: with 8-bit input, fc0 multiplies 1-bit
    # weights by 8-bit values (FINN binarizes the input first with a Thresholding_Batch and runs
    # fc0 as XNOR). FINN-R's LUT formula for fc0 (PE 16, SIMD 49, W 1, A 8, W+A = 9) with the
    # calibrated c1 = 0.65 (hw_space.layers.mvau.MVAU_LUT_FACTOR):
    #   mult  = 49·(2·ceil(9/6) - 1)·9 = 49·3·9 = 1,323;  adder = 9·(2·49 - 1) = 873
    #   acc   = 1 + 8 + ceil(log2 784) = 19;  thr = 1·19·ceil(4/64) = 19;  comp = 19
    #   300 + 0.65·16·(1,323 + 873 + 19 + 19 + 19) = 300 + 10.4·2,253 = 23,731.2 -> 23,732
    # (weights in BRAM: no LUTRAM). Whole design: input gearbox 60 + (8 + 49)·8 = 516, 23,732,
    # fc0 -> fc1 width converter 20 + (16 + 8)·1 = 44, 713 + 713 + 725 (fc1..fc3, see test_hw_formulas),
    # output gearbox 60 + (8 + 10)·8 = 204, 2,500 (shell); FIFOs of depth 2 are registers (no LUT):
    # 29,147 LUTs, 55 % of the Z1's 53,200. With FINN's c1 = 1.1 the same sum was 46,088, above
    # the 85 % limit (45,220): the uncalibrated model called FINN's own TFC build infeasible.
    est = estimate(_tfc())
    res = {layer.name: layer.resources for layer in est.layers}
    assert res["fc0"]["LUT"] == 23732
    assert est.resources["LUT"] == 29147
    assert est.feasible and est.violations == []


def test_tfc_w1a1_bipolar_input_would_be_compute_bound():
    # Had the input arrived already binarized (1 bit), the frame would take 784/64 -> 13 cycles
    # and the compute II of 64 would set the FPS: exactly FINN's 1,562,500 -- the I/O stage is
    # what separates the two predictions.
    est = estimate(_tfc(input_bits=1))
    assert est.ii_cycles == 64
    assert est.fps == pytest.approx(TFC_FINN_PREDICTED_FPS)


def test_tfc_weight_memories_follow_finn_ram_styles():
    est = estimate(_tfc())
    res = {layer.name: layer.resources for layer in est.layers}
    # fc0 in BRAM, one memory per PE (as the kernel partitions them, and as FINN-R/BNN-PYNQ build
    # them): width 49·1 = 49 bits, depth 784·64/(16·49) = 64 words; 512x36 rung:
    # 16 PEs · ceil(64/512)·ceil(49/36) = 16·2 = 32 BRAM18 (FINN's estimate: 26, see the crosscheck)
    assert res["fc0"]["BRAM18"] == 32
    # fc3 in LUTRAM: width 10·8 = 80, depth 640/80 = 8 -> no BRAM
    assert res["fc3"]["BRAM18"] == 0
    # fc1/fc2 'auto': 8 PE memories of 8 bits x 64 words = 512 bits <= 1,024 -> LUTRAM, no BRAM
    assert res["fc1"]["BRAM18"] == res["fc2"]["BRAM18"] == 0
    # XNOR layers never use DSPs
    assert est.resources["DSP"] == 0
