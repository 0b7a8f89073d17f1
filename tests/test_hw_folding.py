"""Resource-aware folding: feasible, fast, cheap under a target, honest when it cannot be done."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pytest

from hw_space.boards import load_board
from hw_space.design import Design, Engine, Hardware, InputSpec, Layer, Network, load_design
from hw_space.errors import CodesignError
from hw_space.estimate import estimate
from hw_space.folding import divisors, fold, greedy_fold, legal_folds

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _mlp() -> Design:
    # a W4A4 MLP on 8x8 digits: 64 -> 32 -> 10
    net = Network(InputSpec(1, 8, 8, 8), (
        Layer("fc0", "dense", out_features=32, weight_bits=4, act_bits=4),
        Layer("fc1", "dense", out_features=10, weight_bits=4),
    ))
    return Design(net, Hardware())


def _cifar_w4a4() -> Design:
    # a small W4A4 CIFAR-10 CNN (same-padded 3x3 convs, two pools)
    net = Network(InputSpec(3, 32, 32, 8), (
        Layer("conv0", "conv", out_channels=16, kernel=3, padding=1, weight_bits=4, act_bits=4),
        Layer("pool0", "maxpool", kernel=2, stride=2),
        Layer("conv1", "conv", out_channels=32, kernel=3, padding=1, weight_bits=4, act_bits=4),
        Layer("pool1", "maxpool", kernel=2, stride=2),
        Layer("conv2", "conv", out_channels=64, kernel=3, padding=1, weight_bits=4, act_bits=4),
        Layer("fc0", "dense", out_features=64, weight_bits=4, act_bits=4),
        Layer("fc1", "dense", out_features=10, weight_bits=4),
    ))
    return Design(net, Hardware())


DESIGNS = {
    "digits": lambda: load_design(EXAMPLES / "digits_w4a4.yaml"),
    "cnv": lambda: load_design(EXAMPLES / "cnv_w1a1.yaml").with_hardware(layers={}),  # FINN's folding removed
    "mlp": _mlp,
    "cifar_w4a4": _cifar_w4a4,
}
CASES = [("digits", "pynq-z2"), ("digits", "zcu104"), ("cnv", "pynq-z2"),
         pytest.param("cnv", "zc706", marks=pytest.mark.slow),  # cnv is folded on pynq-z2 by default
         ("mlp", "ultra96"), ("cifar_w4a4", "kv260"), ("cifar_w4a4", "pynq-z1")]


@cache
def _folded(name: str, board: str, target: float | None = None) -> Design:
    return fold(DESIGNS[name](), load_board(board), target_fps=target)


def _cost(est) -> float:
    """Resources weighted by the board's capacity (the measure fold minimises under a target)."""
    return sum(est.resources[k] / est.capacity[k] for k in est.resources if est.capacity[k])


@pytest.mark.parametrize("name, board", CASES)
def test_fold_is_feasible_and_beats_the_baselines(name, board):
    b = load_board(board)
    d = DESIGNS[name]()
    folded = _folded(name, board)
    est = estimate(folded, b)
    assert est.feasible, est.violations
    unfolded = estimate(d.with_hardware(layers={}), b)
    assert est.fps >= unfolded.fps
    assert est.fps >= estimate(greedy_fold(d, b), b).fps
    # every chosen PE/SIMD is one of the legal values
    legal = legal_folds(d.network)
    for layer in d.network.layers:
        f = folded.hardware.fold(layer.name)
        pes, simds = legal[layer.name]
        assert f.pe in pes and f.simd in simds, (layer.name, f)


def test_fold_speeds_up_the_unfolded_examples_by_known_floors():
    # digits on pynq-z2: the fastest stage that no folding can shorten is conv0's SWG with one
    # input channel (SIMD <= C = 1): 10·3·1 + 8·max(8·9·1, 10·1) = 606 cycles -> 100e6/606 FPS
    est = estimate(_folded("digits", "pynq-z2"), load_board("pynq-z2"))
    assert est.ii_cycles == 606
    # CNV on zc706: conv0's SWG with SIMD = C = 3 -> 8,196 cycles (see test_hw_formulas)
    est = estimate(_folded("cnv", "zc706"), load_board("zc706"))
    assert est.ii_cycles == 8196


@pytest.mark.parametrize("name, board", [("cnv", "pynq-z2"), ("cifar_w4a4", "kv260"), ("digits", "zcu104")])
@pytest.mark.parametrize("fraction", [0.5, pytest.param(0.1, marks=pytest.mark.slow)])
def test_target_fps_is_met_at_no_more_cost(name, board, fraction):
    b = load_board(board)
    fastest = estimate(_folded(name, board), b)
    target = fastest.fps * fraction
    est = estimate(_folded(name, board, target), b)
    assert est.feasible
    assert est.fps >= target
    assert estimate(_folded(name, board, target), b, target_fps=target).feasible
    assert _cost(est) <= _cost(fastest)
    assert est.ii_cycles >= fastest.ii_cycles


@pytest.mark.slow  # the MLP's I/O bound (test_target_above_the_io_bound_is_unreachable) covers the message fast
def test_unreachable_target_says_the_fastest_reachable_fps():
    b = load_board("pynq-z2")
    fastest = estimate(_folded("cnv", "pynq-z2"), b).fps
    with pytest.raises(CodesignError) as exc:
        fold(DESIGNS["cnv"](), b, target_fps=10 * fastest)
    msg = str(exc.value)
    assert "pynq-z2" in msg and "\n" not in msg
    assert f"reaches {fastest:,.0f} FPS" in msg, msg


def test_target_above_the_io_bound_is_unreachable():
    # the MLP's frame enters in 8·8·8/64 = 8 cycles on zc706 (100 MHz): nothing exceeds 12.5 M FPS
    with pytest.raises(CodesignError) as exc:
        fold(_mlp(), load_board("zc706"), target_fps=13e6)
    assert "fastest folding that fits reaches 12,500,000 FPS" in str(exc.value)


def test_non_positive_target_is_rejected():
    with pytest.raises(CodesignError, match="target-fps must be positive"):
        fold(_mlp(), load_board("zc706"), target_fps=0)


def _huge() -> Design:
    # 64x64 8-bit input -> dense 4096 -> 4096 -> 10 at 8 bits: 4096·4096·8 = 134 Mbit of weights
    # against 280 BRAM18 (5.2 Mbit) and 53,200 LUTs: no folding can hold them on a PYNQ-Z1
    net = Network(InputSpec(1, 64, 64, 8), (
        Layer("fc0", "dense", out_features=4096, weight_bits=8, act_bits=8),
        Layer("fc1", "dense", out_features=10, weight_bits=8),
    ))
    return Design(net, Hardware(board="pynq-z1"))


def test_nothing_fits_raises():
    b = load_board("pynq-z1")
    with pytest.raises(CodesignError) as exc:
        fold(_huge(), b)
    msg = str(exc.value)
    assert "no folding of this network fits board pynq-z1" in msg and "\n" not in msg
    with pytest.raises(CodesignError, match="nothing fits board pynq-z1"):
        greedy_fold(_huge(), b)
    with pytest.raises(CodesignError, match="no folding reaches 1,000 FPS on board pynq-z1"):
        fold(_huge(), b, target_fps=1000)


@pytest.mark.parametrize("name, board", [("digits", "pynq-z2"), ("cnv", "pynq-z2"), ("cifar_w4a4", "kv260")])
def test_folding_never_changes_the_network(name, board):
    d = DESIGNS[name]()
    assert _folded(name, board).network == d.network
    assert greedy_fold(d, load_board(board)).network == d.network
    tiled = d.with_hardware(template="tiled")
    assert fold(tiled, load_board(board)).network == d.network


@pytest.mark.parametrize("name", sorted(DESIGNS))
def test_legal_folds_are_all_the_divisors(name):
    net = DESIGNS[name]().network

    def brute(n: int) -> list[int]:
        return [v for v in range(1, n + 1) if n % v == 0]

    folds = legal_folds(net)
    for layer, (ishape, _) in zip(net.layers, net.shapes()):
        pes, simds = folds[layer.name]
        if layer.type == "conv":
            # PE divides Cout; the MVAU's SIMD divides MW = K·K·Cin (the sliding window has its own
            # SIMD, a divisor of Cin, and a width converter joins the two)
            assert pes == brute(layer.out_channels)
            assert simds == brute(layer.kernel ** 2 * ishape.channels)
        elif layer.type == "dense":
            assert pes == brute(layer.out_features)
            assert simds == brute(ishape.size)
        else:
            assert pes == brute(ishape.channels) and simds == [1]


def test_divisors():
    # 36 = 2²·3²: (2+1)(2+1) = 9 divisors
    assert divisors(36) == [1, 2, 3, 4, 6, 9, 12, 18, 36]
    assert divisors(1) == [1]
    assert divisors(97) == [1, 97]


@pytest.mark.parametrize("name, board", [("digits", "pynq-z2"), ("cnv", "zc706"), ("cifar_w4a4", "ultra96"),
                                         ("mlp", "kv260")])
def test_tiled_fold_is_feasible(name, board):
    b = load_board(board)
    d = DESIGNS[name]().with_hardware(template="tiled", layers={}, engine=Engine(1, 1, 1, 1))
    folded = fold(d, b)
    assert folded.hardware.template == "tiled" and folded.hardware.engine is not None
    est = estimate(folded, b)
    assert est.feasible, est.violations
    assert est.fps >= estimate(d, b).fps


def test_tiled_fold_at_least_matches_the_example_engine():
    # the example's engine (Tm 16, Tn 4, Tr = Tc = 8, 64-bit ports) lies in fold's search space
    b = load_board("pynq-z2")
    d = load_design(EXAMPLES / "digits_tiled.yaml")
    assert estimate(fold(d, b), b).ii_cycles <= estimate(d, b).ii_cycles == 3899


def test_tiled_fold_with_a_target():
    b = load_board("pynq-z2")
    d = load_design(EXAMPLES / "digits_tiled.yaml")
    fastest = estimate(fold(d, b), b)
    cheap = estimate(fold(d, b, target_fps=fastest.fps / 4), b)
    assert cheap.feasible and cheap.fps >= fastest.fps / 4
    assert _cost(cheap) <= _cost(fastest)


def test_fold_is_deterministic():
    b = load_board("pynq-z1")
    assert fold(DESIGNS["cifar_w4a4"](), b) == _folded("cifar_w4a4", "pynq-z1")


def test_greedy_fold_is_feasible_and_legal():
    b = load_board("pynq-z2")
    d = DESIGNS["cifar_w4a4"]()
    g = greedy_fold(d, b)
    est = estimate(g, b)
    assert est.feasible
    # greedy only ever walks divisors, so every value is legal; and it improves on PE = SIMD = 1
    assert est.fps > estimate(d, b).fps
    assert np.all([g.hardware.fold(l.name).pe in legal_folds(d.network)[l.name][0] for l in d.network.layers])


def test_fold_keeps_explicit_max_util():
    # a tighter budget gives a folding that fits it
    b = load_board("pynq-z2")
    d = DESIGNS["cifar_w4a4"]()
    folded = fold(d, b, max_util=0.4)
    est = estimate(folded, b, max_util=0.4)
    assert est.feasible
    assert all(est.resources[k] <= 0.4 * est.capacity[k] for k in est.resources)
    assert estimate(folded, b).fps <= estimate(_folded("cifar_w4a4", "pynq-z1"), b).fps


def test_a_target_after_a_wide_layer_is_met_by_the_sweep_not_the_greedy_walk():
    # 784 -> 256 -> 256 -> 10 (1-bit), target 64 cycles. fc1's input converter reads one word per
    # word fc0 writes: 256 words at fc0's default PE 1. Priced that way, no option of fc1 reaches 64
    # cycles, the sweep fails and fold falls back to the greedy walk (the fastest folding that fits,
    # not the cheapest that meets the target). Priced with fc0 writing its widest word, as the sweep
    # now does, fc1 has options at 64 cycles and the sweep's folding is much cheaper than the walk's.
    net = Network(InputSpec(784, 1, 1, 1), (Layer("fc0", "dense", out_features=256, weight_bits=1, act_bits=1),
                                            Layer("fc1", "dense", out_features=256, weight_bits=1, act_bits=1),
                                            Layer("fc2", "dense", out_features=10, weight_bits=1)))
    design = Design(net, Hardware(board="pynq-z1", clock_mhz=100.0))
    board = load_board("pynq-z1")
    folded, walked = estimate(fold(design, board, target_fps=100e6 / 64), board), estimate(greedy_fold(design, board), board)

    def cost(est) -> float:  # the sweep's measure: each resource over the board's capacity
        return sum(est.resources[k] / est.capacity[k] for k in ("LUT", "BRAM18", "DSP"))

    assert folded.ii_cycles <= 64 and folded.feasible
    assert cost(folded) < 0.6 * cost(walked), (folded.resources, walked.resources)
