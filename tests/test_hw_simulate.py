"""The cycle-level stream simulator (hw_space.simulate): per-kernel schedules against the cost
model and against the loops of hls_templates/kernels.h.j2, the event simulation against a literal
cycle-by-cycle one, hand-checked chains, and the sized FIFOs of the examples (no deadlock, the
analytical II within 1 %)."""

from __future__ import annotations

import json
import shutil
import subprocess
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from test_simulate_dag import naive_graph

from hw_space.boards import Board, load_board
from hw_space.design import Design, Hardware, InputSpec, Layer, LayerFold, Network, load_design
from hw_space.errors import CodesignError
from hw_space.folding import fold
from hw_space.layers import MVAU, MaxPool, SlidingWindow, gearbox_cycles
from hw_space.model import CostModel, evaluate_design
from hw_space.simulate import (
    KernelSchedule,
    build_chain,
    critical_fifos,
    depth_levels,
    design_chain,
    gearbox_flags,
    max_pool_axis_flags,
    mvau_flags,
    run_chain,
    run_unbounded,
    simulate,
    simulate_chain,
    size_fifos,
    sliding_window_flags,
    timelines,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# (H, W, C, K, S, pad, SIMD) of the unpadded map: padding, stride 2, K not a multiple of S,
# emitting slower than reading and the other way round, SIMD > 1 (as test_backend_kernel_cycles)
SWG_SHAPES = [(6, 6, 2, 3, 1, 0, 1), (5, 7, 4, 3, 1, 1, 2), (8, 8, 2, 3, 2, 1, 2), (7, 9, 3, 2, 2, 0, 3),
              (9, 9, 2, 1, 2, 0, 1), (6, 5, 4, 5, 3, 2, 4), (30, 30, 64, 3, 1, 0, 32)]
# (H, W, C, K, S, PE): non-overlapping, overlapping (k=3 s=2), partly covered pools
POOL_SHAPES = [(8, 8, 4, 2, 2, 2), (7, 7, 2, 3, 2, 1), (6, 9, 3, 2, 2, 3), (5, 5, 2, 3, 1, 2), (28, 28, 64, 2, 2, 64)]
# (MW, MH, REPS, PE, SIMD)
MVAU_SHAPES = [(9, 16, 64, 1, 1), (27, 64, 900, 16, 3), (576, 64, 4, 32, 32), (256, 512, 1, 1, 4), (512, 10, 1, 5, 1),
               (8, 8, 3, 8, 8)]
# (total elements, n_in, n_out): n_in < n_out and n_in > n_out, ragged last words
GEARBOX_SHAPES = [(64, 8, 1), (63, 4, 2), (60, 4, 8), (10, 4, 2), (9, 3, 4), (17, 8, 3), (57600, 16, 32), (3, 1, 5)]


# ---------------------------------------------------------------- literal transcriptions of the C++ loops

def _swg_loop(h, w, c, k, s, pad, simd):
    """sliding_window of kernels.h.j2, iteration by iteration (padded map h x w)."""
    cf, hp, wp = c // simd, h, w
    oh, ow = (hp - k) // s + 1, (wp - k) // s + 1
    row = wp * cf
    fill, emit = k * row, ow * k * k * cf
    phase = max(emit, s * row)
    rr = rc = rcf = 0
    limit, fill_on, p = k, True, 0
    reads, writes = [], []
    for _ in range(fill + oh * phase):
        r = False
        if rr < limit:
            r = pad <= rr < hp - pad and pad <= rc < wp - pad
            rcf += 1
            if rcf == cf:
                rcf = 0
                rc += 1
                if rc == wp:
                    rc, rr = 0, rr + 1
        reads.append(r)
        writes.append(not fill_on and p < emit)
        p += 1
        if p == (fill if fill_on else phase):
            p, fill_on = 0, False
            limit = min(limit + s, hp)
    return np.array(reads), np.array(writes)


def _pool_loop(outer, n, inner, k, s):
    """max_pool_axis of kernels.h.j2: which iterations close a window (and so write)."""
    on, opened = (n - k) // s + 1, (k + s - 1) // s
    writes = []
    pos = i = phase = 0
    for _ in range(outer * n * inner):
        done = False
        for j in range(opened):
            start = pos - phase - j * s
            if start >= 0 and pos < start + k and start // s < on and pos == start + k - 1:
                done = True
        writes.append(done)
        i += 1
        if i == inner:
            i, phase = 0, phase + 1
            if phase == s:
                phase = 0
            pos += 1
            if pos == n:
                pos, phase = 0, 0
    return np.ones(len(writes), dtype=bool), np.array(writes)


def _mvau_loop(mw, mh, reps, pe, simd):
    sf_n, nf_n = mw // simd, mh // pe
    reads, writes = [], []
    sf = nf = 0
    for _ in range(reps * nf_n * sf_n):
        reads.append(nf == 0)
        writes.append(sf == sf_n - 1)
        sf += 1
        if sf == sf_n:
            sf = 0
            nf += 1
            if nf == nf_n:
                nf = 0
    return np.array(reads), np.array(writes)


def _cdiv(a, b):
    return -(-a // b)


# ---------------------------------------------------------------- per-kernel schedules

@pytest.mark.parametrize("shape", SWG_SHAPES)
def test_sliding_window_flags_follow_the_loop_and_the_model(shape):
    h, w, c, k, s, p, simd = shape
    hp, wp = h + 2 * p, w + 2 * p
    oh, ow = (hp - k) // s + 1, (wp - k) // s + 1
    reads, writes = sliding_window_flags(hp, wp, c, k, s, p, simd)
    assert len(reads) == int(SlidingWindow("swg", hp, wp, c, k, s, oh, ow).cycles(simd))
    assert reads.sum() == h * w * c // simd  # real pixels only
    assert writes.sum() == oh * ow * k * k * c // simd
    if hp * wp * c < 5000:
        ref_r, ref_w = _swg_loop(hp, wp, c, k, s, p, simd)
        assert np.array_equal(reads, ref_r) and np.array_equal(writes, ref_w)


@pytest.mark.parametrize("shape", POOL_SHAPES)
def test_max_pool_flags_of_both_passes(shape):
    h, w, c, k, s, pe = shape
    ow, oh = (w - k) // s + 1, (h - k) // s + 1
    model = MaxPool("pool", h, w, c, k, s)
    rows_r, rows_w = max_pool_axis_flags(h, w, c // pe, k, s)
    cols_r, cols_w = max_pool_axis_flags(1, h, ow * c // pe, k, s)
    assert len(rows_r) == rows_r.sum() == int(model.cycles(pe))
    assert len(cols_r) == cols_r.sum() == int(model.cols_cycles(pe)) == rows_w.sum() == h * ow * c // pe
    assert cols_w.sum() == oh * ow * c // pe
    for args, flags in (((h, w, c // pe, k, s), (rows_r, rows_w)), ((1, h, ow * c // pe, k, s), (cols_r, cols_w))):
        ref = _pool_loop(*args)
        assert np.array_equal(flags[0], ref[0]) and np.array_equal(flags[1], ref[1])


@pytest.mark.parametrize("shape", MVAU_SHAPES)
def test_mvau_flags(shape):
    mw, mh, reps, pe, simd = shape
    reads, writes = mvau_flags(mw, mh, reps, pe, simd)
    assert len(reads) == int(MVAU("m", mw, mh, reps).compute_cycles(pe, simd))
    assert reads.sum() == reps * mw // simd and writes.sum() == reps * mh // pe
    ref_r, ref_w = _mvau_loop(mw, mh, reps, pe, simd)
    assert np.array_equal(reads, ref_r) and np.array_equal(writes, ref_w)
    # weights from external memory: the stage's cycles, the same words
    slow_r, slow_w = mvau_flags(mw, mh, reps, pe, simd, 3 * len(reads) + 1)
    assert len(slow_r) == 3 * len(reads) + 1 and slow_r.sum() == reads.sum() and slow_w.sum() == writes.sum()


@pytest.mark.parametrize("shape", GEARBOX_SHAPES)
def test_gearbox_flags(shape):
    total, n_in, n_out = shape
    reads, writes = gearbox_flags(total, n_in, n_out)
    assert len(reads) == int(gearbox_cycles(total, n_in, n_out))
    assert reads.sum() == _cdiv(total, n_in) and writes.sum() == _cdiv(total, n_out)
    assert not (~reads & ~writes).any()  # every iteration moves a word


def test_gearbox_flags_match_the_model_on_a_sweep():
    for total in range(1, 40):
        for n_in in range(1, 9):
            for n_out in range(1, 9):
                reads, writes = gearbox_flags(total, n_in, n_out)
                assert len(reads) == int(gearbox_cycles(total, n_in, n_out))
                assert reads.sum() == _cdiv(total, n_in) and writes.sum() == _cdiv(total, n_out)


@cache
def _example(name: str, folded: bool = False) -> tuple[Design, Board]:
    """An example design on its board, as written (CNV-w1a1: FINN's folding) or folded to fit."""
    design = load_design(EXAMPLES / f"{name}.yaml")
    board = load_board(design.hardware.board)
    return (fold(design, board) if folded else design), board


FAST_EXAMPLES = [("digits_w4a4", False), ("digits_w4a4", True), ("digits_w1a1", False), ("digits_w1a1", True),
                 ("cnv_w1a1", False)]


def test_every_kernel_of_the_examples_takes_the_model_cycles_and_words():
    for name, folded in FAST_EXAMPLES:
        design, board = _example(name, folded)
        result = evaluate_design(design, board)
        chain = build_chain(result)
        for ks, cycles in zip(chain.kernels, chain.cycles):
            assert ks.iterations == cycles, (name, ks.name)
        for a, b in zip(chain.kernels[:-1], chain.kernels[1:]):
            assert a.words_out == b.words_in, (name, a.name)
        stages = {st.name: st for st in result.stages}
        for ks in chain.kernels:
            d = {k: int(np.asarray(v).reshape(-1)[0]) for k, v in stages[ks.name].detail.items()}
            if ks.kind == "mvau":
                assert ks.words_in == d["reps"] * d["mw"] // d["simd"] and ks.words_out == d["reps"] * d["mh"] // d["pe"]
        active = [st for st in result.stages if st.kind == "fifo" and bool(st.active[0])]
        assert chain.fifo_names == [st.name for st in active]
        assert chain.analytical_ii == int(result.ii_cycles[0])


# ---------------------------------------------------------------- the event simulation

def _naive(kernels, depths, frames, pace=None):
    """The rules, literally: every cycle each kernel tries its next iteration against the FIFO
    occupancies at the start of the cycle (test_simulate_dag.naive_graph on the chain's edges)."""
    return naive_graph(kernels, [(k, k + 1) for k in range(len(kernels) - 1)], depths, frames, pace)


def _random_chain(rng, K):
    kernels, prev_words = [], int(rng.integers(1, 6))
    for k in range(K):
        n = int(rng.integers(prev_words, prev_words + 8))
        r = np.zeros(n, dtype=bool)
        r[rng.choice(n, prev_words, replace=False)] = True
        words = int(rng.integers(1, n + 1))
        w = np.zeros(n, dtype=bool)
        w[rng.choice(n, words, replace=False)] = True
        kernels.append(KernelSchedule(f"k{k}", "test", r, w))
        prev_words = words
    return kernels


def test_event_simulation_equals_the_cycle_by_cycle_rules_on_random_chains():
    rng = np.random.default_rng(8)
    for case in range(60):
        kernels = _random_chain(rng, int(rng.integers(2, 6)))
        depths = [int(d) for d in rng.integers(1, 5, len(kernels) - 1)]
        if case % 5 == 0:
            depths[0] = None
        frames = int(rng.integers(1, 4))
        pace = int(rng.integers(5, 30)) if case % 3 == 0 else None
        run = run_chain(kernels, depths, frames, pace)
        R, W = _naive(kernels, depths, frames, pace)
        assert not run.deadlock
        assert [list(x) for x in run.read_times] == R and [list(x) for x in run.write_times] == W, case
        # every event at max(previous + gap, data, room): the invariant the critical path walks
        for x in timelines(kernels, run, depths):
            assert np.array_equal(x.t, np.maximum(np.maximum(x.seq, x.data), x.room))
        free = run_unbounded(kernels, frames, pace)
        ref = run_chain(kernels, [None] * len(depths), frames, pace)
        assert all(np.array_equal(a, b) for a, b in zip(free.write_times + free.read_times,
                                                           ref.write_times + ref.read_times))


def _passthrough(name, n):
    return KernelSchedule(name, "test", np.ones(n, dtype=bool), np.ones(n, dtype=bool))


def test_two_kernels_hand_checked_and_depth_one_halves_the_rate():
    a, b = _passthrough("a", 4), _passthrough("b", 4)
    run = run_chain([a, b], [2], frames=2)
    assert run.write_times[0] == [0, 1, 2, 3, 4, 5, 6, 7]  # a never waits: depth 2 sustains a word per cycle
    assert run.read_times[1] == [1, 2, 3, 4, 5, 6, 7, 8]  # a word written in t is read in t + 1
    half = run_chain([a, b], [1], frames=2)
    assert half.write_times[0] == [0, 2, 4, 6, 8, 10, 12, 14]  # the slot frees at the end of b's read cycle
    assert half.read_times[1] == [1, 3, 5, 7, 9, 11, 13, 15]
    assert half.stall_write == [7, 0] and half.stall_read == [0, 8]
    # a burst producer into a consumer reading every other iteration: the producer waits for room
    burst = KernelSchedule("burst", "test", np.array([True, False, False, False]), np.ones(4, dtype=bool))
    slow = KernelSchedule("slow", "test", np.array([True, False] * 4), np.array([False, True] * 4))
    run = run_chain([burst, slow], [2], frames=1)
    assert run.write_times[0] == [0, 1, 2, 4]  # write 2 needs slow's read 0 (cycle 1); write 3 its read 1 (3)
    assert run.read_times[1] == [1, 3, 5, 7]
    assert run.write_times[1] == [2, 4, 6, 8]
    # the same at depth 4 takes the burst at once
    assert run_chain([burst, slow], [4], frames=1).write_times[0] == [0, 1, 2, 3]


def test_source_pacing_and_frame_intervals():
    a, b = _passthrough("a", 4), _passthrough("b", 4)
    run = run_chain([a, b], [2], frames=3, pace=10)
    assert run.read_times[0] == [0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23]
    assert not run.deadlock


def test_word_count_mismatch_starves_and_is_reported_as_deadlock():
    a = KernelSchedule("a", "test", np.ones(2, dtype=bool), np.array([True, False]))
    b = KernelSchedule("b", "test", np.ones(2, dtype=bool), np.ones(2, dtype=bool))  # wants 2 words, gets 1
    run = run_chain([a, b], [2], frames=2)
    assert run.deadlock and run.done == [True, False]
    with pytest.raises(ValueError):
        run_chain([a, b], [0], frames=1)


# ---------------------------------------------------------------- designs

def _small_conv(pe: int) -> Design:
    net = Network(InputSpec(1, 8, 8, 8), (Layer("conv0", "conv", out_channels=4, kernel=3, weight_bits=4, act_bits=4),
                                          Layer("fc0", "dense", out_features=10, weight_bits=4)))
    return Design(net, Hardware(board="zc706", layers={"conv0": LayerFold(pe=pe, simd=1), "fc0": LayerFold(pe=10, simd=4)}))


def test_a_fill_phase_swg_feeding_a_slower_mvau_needs_more_than_two_words():
    # conv0: SWG 8*3 + 6*max(6*9, 8) = 348 cycles; MVAU (4/2)*(9/1)*36 = 648 cycles, reading 9 words
    # then computing 9 cycles per pixel. At depth 2 the SWG, throttled to the MVAU, starts its fill
    # phase of the next frame (3 rows = 24 iterations without a write) with only 2 words queued: the
    # MVAU starves 24 - 9 = 15 cycles per frame.
    board = load_board("zc706")
    design = _small_conv(pe=2)
    shallow = simulate(design, board)
    assert shallow.analytical_ii == 648 and shallow.ii_cycles == 648 + 15 and not shallow.deadlock
    sized = size_fifos(design, board)
    assert sized.ii_cycles == 648 and not sized.deadlock
    depth = {f["name"]: f["depth"] for f in sized.fifos}
    assert depth["conv0_swg_fifo"] > 2 and depth["input_fifo"] == 2
    # the critical path of the depth-2 run goes through that FIFO's full slots, and only through them
    chain = design_chain(design, board)
    depths = [2] * len(chain.fifo_names)
    blamed = critical_fifos(chain.kernels, run_chain(chain.kernels, depths, 3), depths)
    assert [chain.fifo_names[i] for i in blamed] == ["conv0_swg_fifo"]
    # with a single output fold the MVAU's 27 idle cycles per pixel hide the fill: depth 2 is enough
    assert simulate(_small_conv(pe=1), board).ii_cycles == 1296


@pytest.mark.parametrize("name", ["digits_w4a4", "digits_w1a1"])
@pytest.mark.parametrize("folded", [False, True])
def test_sized_fifos_of_the_digits_examples_reach_the_analytical_ii(name, folded):
    design, board = _example(name, folded)
    sized = size_fifos(design, board)
    assert not sized.deadlock
    assert abs(sized.ii_cycles - sized.analytical_ii) <= 0.01 * sized.analytical_ii
    assert sized.latency_cycles > sized.analytical_ii // 2
    # the depths hold for more frames, and the model prices them
    again = simulate(design, board, depths=sized.depths, frames=5)
    assert not again.deadlock and abs(again.ii_cycles - sized.analytical_ii) <= 0.01 * sized.analytical_ii
    model = CostModel(design.network, board, design.hardware.clock_mhz)
    priced = model.evaluate_designs([design], fifo_depths=np.array([sized.depths]))
    fifo_depths = [int(st.detail["depth"][0]) for st in priced.stages if st.kind == "fifo"]
    assert fifo_depths == sized.depths


_SWEEP_NETS = [
    Network(InputSpec(3, 12, 12, 8), (Layer("conv0", "conv", out_channels=8, kernel=3, stride=2, padding=1, weight_bits=2,
                                            act_bits=2),
                                      Layer("pool0", "maxpool", kernel=3, stride=2),
                                      Layer("conv1", "conv", out_channels=12, kernel=2, weight_bits=3, act_bits=3),
                                      Layer("fc0", "dense", out_features=10, weight_bits=4))),
    Network(InputSpec(1, 28, 28, 8), (Layer("fc0", "dense", out_features=64, weight_bits=1, act_bits=1),
                                      Layer("fc1", "dense", out_features=64, weight_bits=1, act_bits=1),
                                      Layer("fc2", "dense", out_features=10, weight_bits=1))),
    Network(InputSpec(4, 10, 10, 4), (Layer("pool0", "maxpool", kernel=2, stride=2),
                                      Layer("conv0", "conv", out_channels=6, kernel=3, padding=2, weight_bits=2, act_bits=1),
                                      Layer("fc0", "dense", out_features=5, weight_bits=2))),
]


def test_random_foldings_size_to_the_analytical_ii():
    """Stride 2 with padding, an overlapping pool, a pool or a dense layer first, sliding windows
    folded apart from their MVAU, weights in external memory: every kernel takes the model's cycles
    and the sized FIFOs reach the analytical II."""
    from hw_space.folding import legal_folds

    rng = np.random.default_rng(5)
    board = load_board("zcu104")
    checked = 0
    for net in _SWEEP_NETS:
        opts = legal_folds(net)
        shapes = dict(zip([layer.name for layer in net.layers], net.shapes()))
        for _ in range(4):
            folds = {}
            for layer in net.layers:
                pes, simds = opts[layer.name]
                swg = None
                if layer.type == "conv" and rng.random() < 0.5:
                    c = shapes[layer.name][0].channels
                    swg = int(rng.choice([d for d in range(1, c + 1) if c % d == 0]))
                folds[layer.name] = LayerFold(pe=int(rng.choice(pes)), simd=int(rng.choice(simds)) if layer.is_compute else 1,
                                              weight_memory="external" if layer.is_compute and rng.random() < 0.2 else "auto",
                                              swg_simd=swg)
            design = Design(net, Hardware(board="zcu104", layers=folds))
            if not evaluate_design(design, board).legal[0]:
                continue
            chain = design_chain(design, board)
            assert [ks.iterations for ks in chain.kernels] == chain.cycles
            sized = size_fifos(design, board)
            assert not sized.deadlock and sized.ii_cycles == sized.analytical_ii, folds
            checked += 1
    assert checked >= 8


def test_cnv_w1a1_at_depth_two_runs_below_the_analytical_ii():
    design, board = _example("cnv_w1a1")
    res = simulate(design, board)
    assert res.analytical_ii == 32768 and not res.deadlock
    assert res.ii_cycles > 1.5 * res.analytical_ii  # fc0 -> fc1 must buffer a frame of fc0's output


@pytest.mark.slow
@pytest.mark.parametrize("folded", [False, True])
def test_sized_fifos_of_cnv_w1a1_reach_the_analytical_ii(folded):
    design, board = _example("cnv_w1a1", folded)
    chain = build_chain(evaluate_design(design, board))
    assert [ks.iterations for ks in chain.kernels] == chain.cycles
    sized = size_fifos(design, board, max_probes=60)
    assert not sized.deadlock and abs(sized.ii_cycles - sized.analytical_ii) <= 0.01 * sized.analytical_ii
    again = simulate(design, board, depths=sized.depths, frames=5)
    assert not again.deadlock and abs(again.ii_cycles - sized.analytical_ii) <= 0.01 * sized.analytical_ii
    if not folded:  # FINN's folding: fc1 reads fc0's whole output in its first 64 iterations
        depth = {f["name"]: f["depth"] for f in sized.fifos}
        assert depth["fc1_in_dwc_fifo"] >= 63


def test_depth_levels_are_the_price_steps():
    assert depth_levels(8, 2) == [2]
    levels = depth_levels(32, 2000)
    assert levels[0] == 2 and levels[-1] == 2000 and 512 in levels and 1024 in levels
    assert levels == sorted(set(levels))


def test_bad_input_is_one_line():
    board = load_board("zc706")
    tiled = load_design(EXAMPLES / "digits_tiled.yaml")
    with pytest.raises(CodesignError, match="tiled"):
        simulate(tiled, board)
    design = load_design(EXAMPLES / "digits_w4a4.yaml")
    with pytest.raises(CodesignError, match="FIFO depths"):
        simulate(design, board, depths=[2, 2])
    with pytest.raises(CodesignError, match="frames"):
        simulate(design, board, frames=1)
    bad = design.with_hardware(layers={"conv0": LayerFold(pe=3)})
    with pytest.raises(CodesignError, match="not legal"):
        design_chain(bad, board)


def test_simulate_chain_with_uniform_depth_one_is_slower():
    design, board = _example("digits_w4a4", True)
    chain = design_chain(design, board)
    two = simulate_chain(chain, [2] * len(chain.fifo_names))
    one = simulate_chain(chain, [1] * len(chain.fifo_names))
    assert one.ii_cycles > two.ii_cycles and not one.deadlock


# ---------------------------------------------------------------- the command

def test_cli_simulate(capsys):
    from codesign.cli import main

    assert main(["simulate", str(EXAMPLES / "digits_w4a4.yaml"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ii_cycles"] == out["analytical_ii_cycles"] == 73728 and out["deadlock"] is False
    assert {"latency_cycles", "latency_us", "fifos", "depths"} <= set(out)
    assert set(out["fifos"][0]) == {"name", "width", "depth", "max_occupancy"}
    assert main(["simulate", str(EXAMPLES / "digits_w4a4.yaml"), "--depth", "1", "--frames", "2"]) == 0
    text = capsys.readouterr().out
    assert "analytical II 73,728 cycles" in text and "deadlock: no" in text and "input_fifo" in text
    assert main(["simulate", str(EXAMPLES / "digits_tiled.yaml")]) == 2
    assert "tiled" in capsys.readouterr().err


# ---------------------------------------------------------------- against the C++ kernels

_LOGGING_STREAM = """#ifndef HLS_STREAM_H
#define HLS_STREAM_H
// A stand-in for hls::stream that records, for each read and write, the iteration counter of the
// kernel loop (codesign::iterations(), counted with -DCODESIGN_COUNT_ITERATIONS).
#include <deque>
#include <vector>
namespace hls_log { extern long (*clock)(); }
namespace hls {
template <typename T> class stream {
  public:
    stream() {}
    explicit stream(const char *) {}
    T read() { T v = q.front(); q.pop_front(); reads.push_back(hls_log::clock()); return v; }
    void read(T &v) { v = read(); }
    void write(const T &v) { q.push_back(v); writes.push_back(hls_log::clock()); }
    bool empty() const { return q.empty(); }
    bool full() const { return false; }
    unsigned size() const { return q.size(); }
    std::deque<T> q;
    std::vector<long> reads, writes;
};
}  // namespace hls
#endif
"""


def _harness(cases) -> str:
    bits = 8
    calls = []
    for n, (kind, args) in enumerate(cases):
        if kind == "swg":
            h, w, c, k, s, p, simd = args
            calls.append(f"    swg<{h}, {w}, {c}, {k}, {s}, {p}, {simd}>({n});")
        elif kind == "pool":
            calls.append(f"    pool<{', '.join(map(str, args))}>({n});")
        elif kind == "mvau":
            calls.append(f"    mv<{', '.join(map(str, args))}>({n});")
        else:
            total, n_in, n_out = args
            fn = "gb" if kind == "gearbox" else "wc"
            calls.append(f"    {fn}<{total}, {n_in}, {n_out}, {int(gearbox_cycles(total, n_in, n_out))}>({n});")
    body = "\n".join(calls)
    return f"""#include <cstdio>
#include "kernels.h"
namespace hls_log {{ long (*clock)() = [] {{ return codesign::iterations(); }}; }}
typedef codesign::UintFmt<{bits}> F;

template <typename S> void fill(S &s, int words) {{ for (int i = 0; i < words; i++) s.write(i); s.reads.clear(); s.writes.clear(); }}
template <typename A, typename B> void dump(int id, A &in, B &out) {{
    std::printf("%d R", id); for (long v : in.reads) std::printf(" %ld", v);
    std::printf("\\n%d W", id); for (long v : out.writes) std::printf(" %ld", v);
    std::printf("\\n");
}}
template <int H, int W, int C, int K, int S, int P, int SIMD> void swg(int id) {{
    hls::stream<ap_uint<SIMD * {bits}> > in, out;
    fill(in, H * W * C / SIMD); codesign::iterations() = 0;
    codesign::sliding_window<H, W, C, K, K, S, S, P, P, P, P, SIMD, F, F>(in, out);
    dump(id, in, out);
}}
template <int OUTER, int N, int INNER, int K, int S> void pool(int id) {{
    hls::stream<ap_uint<{bits}> > in, out;
    fill(in, OUTER * N * INNER); codesign::iterations() = 0;
    codesign::max_pool_axis<OUTER, N, INNER, K, S, 1, F>(in, out);
    dump(id, in, out);
}}
template <int MW, int MH, int REPS, int PE, int SIMD> void mv(int id) {{
    static ap_uint<SIMD * {bits}> weights[PE][(MH / PE) * (MW / SIMD)];
    static ap_uint<8> thresholds[PE][MH / PE][1];
    hls::stream<ap_uint<SIMD * {bits}> > in;
    hls::stream<ap_uint<PE * 16> > out;
    fill(in, REPS * MW / SIMD); codesign::iterations() = 0;
    codesign::mvau<MW, MH, SIMD, PE, REPS, 0, 0, 16, F, F, codesign::MulDot<SIMD, F, F, ap_int<32> >, ap_int<32>,
                   ap_int<32>, ap_uint<SIMD * {bits}>, ap_uint<8> >(in, out, weights, thresholds);
    dump(id, in, out);
}}
template <int TOTAL, int IN, int OUT, int ITERS> void gb(int id) {{
    hls::stream<ap_uint<IN * {bits}> > in;
    hls::stream<ap_uint<OUT * {bits}> > out;
    fill(in, (TOTAL + IN - 1) / IN); codesign::iterations() = 0;
    codesign::gearbox<IN * {bits}, IN, {bits}, OUT * {bits}, OUT, {bits}, false, TOTAL, ITERS>(in, out);
    dump(id, in, out);
}}
template <int TOTAL, int IN, int OUT, int ITERS> void wc(int id) {{
    hls::stream<ap_uint<IN * {bits}> > in;
    hls::stream<ap_uint<OUT * {bits}> > out;
    fill(in, (TOTAL + IN - 1) / IN); codesign::iterations() = 0;
    codesign::width_convert<IN, OUT, {bits}, TOTAL, ITERS>(in, out);
    dump(id, in, out);
}}
int main() {{
{body}
    return 0;
}}
"""


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None, reason="the kernel harness needs g++")
def test_flags_equal_the_reads_and_writes_of_the_cpp_kernels(tmp_path):
    """Run the kernels of kernels.h.j2 (the code synthesis sees: -DCODESIGN_CSIM_PLAIN) with a
    logging hls::stream: the iteration of every read and write is the one the simulator's flags say."""
    from codesign.backend.csim import ap_types_dir
    from codesign.backend.writer import _environment

    cases = [("swg", s) for s in SWG_SHAPES[:6]]
    cases += [("pool", (h, w, c, k, s)) for h, w, c, k, s, _ in POOL_SHAPES[:4]]
    cases += [("mvau", m) for m in ((9, 16, 4, 1, 1), (27, 64, 3, 16, 3), (8, 8, 3, 8, 8), (12, 6, 2, 3, 4))]
    cases += [("gearbox", g) for g in GEARBOX_SHAPES if g[0] < 1000]
    cases += [("dwc", g) for g in ((64, 1, 16), (60, 16, 4), (18, 4, 6))]
    inc = tmp_path / "inc"
    inc.mkdir()
    (inc / "hls_stream.h").write_text(_LOGGING_STREAM)
    (tmp_path / "kernels.h").write_text(_environment().get_template("kernels.h.j2").render(
        top="harness", guard="CODESIGN_KERNELS_H"))
    (tmp_path / "harness.cpp").write_text(_harness(cases))
    subprocess.run(["g++", "-std=c++14", "-O1", "-DCODESIGN_COUNT_ITERATIONS", "-DCODESIGN_CSIM_PLAIN", f"-I{inc}", "-I.",
                    "-isystem",
                    str(ap_types_dir()), "harness.cpp", "-o", "harness"], cwd=tmp_path, check=True,
                   capture_output=True, text=True)
    out = subprocess.run([str(tmp_path / "harness")], capture_output=True, text=True, check=True).stdout
    logged = {}
    for line in out.splitlines():
        n, what, *its = line.split()
        logged[(int(n), what)] = [int(v) - 1 for v in its]  # the counter is 1 in the first iteration
    for n, (kind, args) in enumerate(cases):
        if kind == "swg":
            h, w, c, k, s, p, simd = args
            reads, writes = sliding_window_flags(h + 2 * p, w + 2 * p, c, k, s, p, simd)
        elif kind == "pool":
            reads, writes = max_pool_axis_flags(*args)
        elif kind == "mvau":
            reads, writes = mvau_flags(*args)
        else:
            reads, writes = gearbox_flags(*args)
        assert logged[(n, "R")] == np.flatnonzero(reads).tolist(), (kind, args)
        assert logged[(n, "W")] == np.flatnonzero(writes).tolist(), (kind, args)
