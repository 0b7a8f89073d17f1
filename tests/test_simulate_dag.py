"""The stream simulator on kernel DAGs (hw_space.simulate): a fork (a kernel writing every output
FIFO in one iteration) and a join (a kernel reading every input FIFO in one iteration). Hand-built
schedules, no cost model: the skip FIFO that bypasses a branch, checked by hand and against a
literal cycle-by-cycle simulation of the rules; a chain through the graph code as before."""

from __future__ import annotations

import copy
import dataclasses
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from hw_space.boards import load_board
from hw_space.design import load_design
from hw_space.model import evaluate_design
from hw_space.simulate import (
    Chain,
    KernelSchedule,
    build_chain,
    critical_fifos,
    deadlock_fifos,
    fifo_occupancy,
    format_simulation,
    run_chain,
    run_graph,
    run_unbounded,
    simulate_chain,
    size_chain,
    size_fifos,
    timelines,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _passthrough(name: str, n: int) -> KernelSchedule:
    return KernelSchedule(name, "test", np.ones(n, dtype=bool), np.ones(n, dtype=bool))


def _delay(name: str, n: int, fill: int) -> KernelSchedule:
    """A branch of latency `fill` words: it reads `fill` words before it writes its first one
    (like a sliding window's fill), then reads and writes, then writes the last `fill` words."""
    reads = np.r_[np.ones(n, dtype=bool), np.zeros(fill, dtype=bool)]
    writes = np.r_[np.zeros(fill, dtype=bool), np.ones(n, dtype=bool)]
    return KernelSchedule(name, "test", reads, writes)


# in -> dup -> branch -> add -> out, and dup -> add directly (the skip FIFO, index 2)
N, F = 64, 20  # words per frame, the branch's latency in words
RESIDUAL_EDGES = [(0, 1), (1, 2), (1, 3), (2, 3), (3, 4)]
SKIP = 2


def _residual() -> list[KernelSchedule]:
    return [_passthrough("in", N), _passthrough("dup", N), _delay("branch", N, F), _passthrough("add", N),
            _passthrough("out", N)]


def _residual_chain() -> Chain:
    ks = _residual()
    names = ["in_fifo", "branch_in_fifo", "skip_fifo", "branch_fifo", "add_fifo"]
    return Chain(ks, names, [8] * 5, list(range(5)), 5, [2] * 5, N + F, 100.0, [k.iterations for k in ks],
                 RESIDUAL_EDGES, [k.name for k in ks])


def _frame_done(run, frames):
    out = run.write_times[-1]
    return [out[(f + 1) * N - 1] for f in range(frames)]


# ---------------------------------------------------------------- the skip FIFO, by hand

def test_skip_fifo_depth_is_the_branch_latency_in_words():
    """Unthrottled, `in` reads word j at cycle j and writes it at j; `dup` reads and writes it (to
    both FIFOs) at j + 1; `branch` reads it at j + 2 and writes its output word j in iteration
    F + j, at cycle F + j + 2; `add` reads word j of both inputs at F + j + 3. So the skip FIFO,
    written at j + 1 and read at F + j + 3, holds F + 2 words whenever dup writes into it (and at
    the end of every cycle): depth F + 3 = 23 lets dup run at one word per cycle. The branch's
    iterations set the analytical II: N + F = 84 cycles a frame."""
    ks = _residual()
    paced = run_unbounded(ks, 3, pace=N + F, edges=RESIDUAL_EDGES)
    assert fifo_occupancy(paced, SKIP) == (F + 2, F + 2)
    assert [fifo_occupancy(paced, i)[0] for i in (0, 1, 3, 4)] == [1, 1, 1, 1]
    run = run_graph(ks, RESIDUAL_EDGES, [2, 2, F + 3, 2, 2], frames=3)
    assert not run.deadlock
    assert run.write_times[1][:3] == [1, 2, 3] and run.read_times[3][:3] == [F + 3, F + 4, F + 5]
    assert np.diff(_frame_done(run, 3)).tolist() == [N + F, N + F]
    # a frame's latency: N + F branch iterations plus a cycle per hop in -> dup -> branch -> add -> out
    assert _frame_done(run, 3)[0] == N + F + 3


def test_a_shallow_skip_fifo_deadlocks_or_throttles():
    ks = _residual()
    # depth F: dup can put only F words into the skip FIFO before add reads one, and add reads none
    # before branch writes its first word, which needs word F (the F + 1-th) from dup: deadlock
    run = run_graph(ks, RESIDUAL_EDGES, [2, 2, F, 2, 2], frames=3)
    assert run.deadlock and run.events_done[:3] == [F + 2, F, F]  # `in` wrote 2 more into its FIFO
    assert deadlock_fifos(run, [2, 2, F, 2, 2]) == [SKIP]  # in_fifo is full too, but only behind dup
    # depth F + 1 runs, but in the branch's read-and-write region every word goes round the loop
    # dup writes word w (cycle T) -> branch reads it (T + 1) and writes w - F -> add reads w - F
    # (T + 2), freeing the slot dup's write of w + 1 needs (T + 3): 3 cycles a word for N - F words
    run = run_graph(ks, RESIDUAL_EDGES, [2, 2, F + 1, 2, 2], frames=3)
    ii = int(np.diff(_frame_done(run, 3))[-1])
    assert not run.deadlock and ii >= 3 * (N - F) > N + F
    assert ii == 3 * N - F - 2  # the simulated figure (the literal cycle-by-cycle rules agree, below)
    # the critical path of that run goes through the skip FIFO's full slots, and only through them
    assert list(critical_fifos(ks, run, [2, 2, F + 1, 2, 2])) == [SKIP]
    # depth F + 2: two words round the 3-cycle loop, still short of the analytical II
    run = run_graph(ks, RESIDUAL_EDGES, [2, 2, F + 2, 2, 2], frames=3)
    assert N + F < int(np.diff(_frame_done(run, 3))[-1]) < ii


def test_sizing_finds_the_skip_fifo_and_the_analytical_ii():
    res = size_chain(_residual_chain())
    depth = {f["name"]: f["depth"] for f in res.fifos}
    # step 1 gives F + 3 (the occupancy F + 2 + 1); the bisection's probes at the cheaper price
    # levels below it (8 and 16 words) deadlock and blame the skip FIFO, so F + 3 stays
    assert depth == {"in_fifo": 2, "branch_in_fifo": 2, "skip_fifo": F + 3, "branch_fifo": 2, "add_fifo": 2}
    assert not res.deadlock and res.ii_cycles == res.analytical_ii == N + F
    assert res.max_occupancy[SKIP] == F + 2
    assert res.fifo_edges[SKIP] == ("dup", "add")
    text = format_simulation(res)
    assert "from -> to" in text and "dup -> add" in text
    # at depth 2 everywhere the fork deadlocks, and the report says so
    shallow = simulate_chain(_residual_chain(), [2] * 5)
    assert shallow.deadlock and shallow.ii_cycles is None and shallow.blocking == ["skip_fifo"]
    assert "deadlock: YES (full, while the join it feeds waits on another input: skip_fifo)" in format_simulation(shallow)
    assert res.blocking == [] and res.to_dict()["blocking_fifos"] == []


def test_two_branches_of_different_latency_size_the_difference():
    """A fork into two delay branches (latencies 30 and 10 words) joining at an add: the faster
    branch's input waits for the slower one's output, so the FIFO after the fast branch holds the
    difference: its output word j is written at cycle 10 + j + 2, read by add at 30 + j + 3, so it
    holds 30 - 10 + 1 = 21 words at a write (and sizes to 22), the FIFO after the slow one 1."""
    ks = [_passthrough("in", N), _passthrough("dup", N), _delay("slow", N, 30), _delay("fast", N, 10),
          _passthrough("add", N), _passthrough("out", N)]
    edges = [(0, 1), (1, 2), (1, 3), (2, 4), (3, 4), (4, 5)]
    paced = run_unbounded(ks, 3, pace=N + 30, edges=edges)
    assert [fifo_occupancy(paced, i)[0] for i in range(6)] == [1, 1, 1, 1, 21, 1]
    chain = Chain(ks, [f"f{i}" for i in range(6)], [8] * 6, list(range(6)), 6, [2] * 6, N + 30, 100.0,
                  [k.iterations for k in ks], edges)
    res = size_chain(chain)
    assert not res.deadlock and res.ii_cycles == N + 30
    assert [f["depth"] for f in res.fifos] == [2, 2, 2, 2, 22, 2]


# ---------------------------------------------------------------- against the literal rules

def naive_graph(kernels, edges, depths, frames, pace=None):
    """The rules, literally, on a DAG: every cycle each kernel tries its next iteration against the
    FIFO occupancies at the start of the cycle; a read needs every input FIFO non-empty, a write
    every output FIFO below its depth."""
    K = len(kernels)
    ins = [[i for i, (_, c) in enumerate(edges) if c == k] for k in range(K)]
    outs = [[i for i, (p, _) in enumerate(edges) if p == k] for k in range(K)]
    reads = [np.tile(ks.reads, frames) for ks in kernels]
    writes = [np.tile(ks.writes, frames) for ks in kernels]
    rpf = kernels[0].words_in
    pos, occ = [0] * K, [0] * len(edges)
    R, W = [[] for _ in range(K)], [[] for _ in range(K)]
    t = last_move = 0
    while any(pos[k] < len(reads[k]) for k in range(K)):
        start = list(occ)
        moved = False
        for k in range(K):
            i = pos[k]
            if i >= len(reads[k]):
                continue
            r, w = bool(reads[k][i]), bool(writes[k][i])
            if r and k == 0 and pace is not None:
                j = len(R[0])
                if t < (j // rpf) * pace + j % rpf:
                    continue
            if r and any(start[e] == 0 for e in ins[k]):
                continue
            if w and any(depths[e] is not None and start[e] >= depths[e] for e in outs[k]):
                continue
            pos[k] += 1
            moved = True
            if r:
                R[k].append(t)
                for e in ins[k]:
                    occ[e] -= 1
            if w:
                W[k].append(t)
                for e in outs[k]:
                    occ[e] += 1
        last_move = t if moved else last_move
        if t - last_move > (pace or 0):
            break  # deadlock: nothing moved for longer than the source's pace
        t += 1
    return R, W


def _random_kernel(rng, name, words_in, words_out):
    """Random flags; half of the time a fill-like kernel that reads all its words before it writes."""
    if rng.random() < 0.5:
        gap = int(rng.integers(0, 3))
        r = np.r_[np.ones(words_in, dtype=bool), np.zeros(gap + words_out, dtype=bool)]
        w = np.r_[np.zeros(words_in + gap, dtype=bool), np.ones(words_out, dtype=bool)]
        return KernelSchedule(name, "test", r, w)
    n = int(rng.integers(max(words_in, words_out), max(words_in, words_out) + 8))
    r = np.zeros(n, dtype=bool)
    r[rng.choice(n, words_in, replace=False)] = True
    w = np.zeros(n, dtype=bool)
    w[rng.choice(n, words_out, replace=False)] = True
    return KernelSchedule(name, "test", r, w)


def _random_dag(rng):
    """in -> fork -> (two random branches, one possibly empty) -> join -> out, the words per frame
    changing along the branches and agreeing at the join."""
    words = int(rng.integers(1, 9))
    ks = [_random_kernel(rng, "in", words, words), _random_kernel(rng, "fork", words, words)]
    edges = [(0, 1)]
    join_words = int(rng.integers(1, 9))
    ends = []
    for b in range(2):
        prev, w_prev = 1, words
        for j in range(int(rng.integers(0 if b else 1, 3))):
            last = j == 2 or rng.random() < 0.5
            w_next = join_words if last else int(rng.integers(1, 9))
            ks.append(_random_kernel(rng, f"b{b}{j}", w_prev, w_next))
            edges.append((prev, len(ks) - 1))
            prev, w_prev = len(ks) - 1, w_next
            if last:
                break
        if w_prev != join_words:  # close the branch at the join's word count
            ks.append(_random_kernel(rng, f"b{b}z", w_prev, join_words))
            edges.append((prev, len(ks) - 1))
            prev = len(ks) - 1
        ends.append(prev)
    ks.append(_random_kernel(rng, "join", join_words, join_words))
    edges += [(e, len(ks) - 1) for e in ends]
    ks.append(_random_kernel(rng, "out", join_words, int(rng.integers(1, 4))))
    edges.append((len(ks) - 2, len(ks) - 1))
    return ks, edges


def test_event_simulation_equals_the_cycle_by_cycle_rules_on_random_dags():
    rng = np.random.default_rng(11)
    deadlocks = 0
    for case in range(40):
        ks, edges = _random_dag(rng)
        depths = [int(d) for d in rng.integers(1, 5, len(edges))]
        if case % 4 == 0:
            depths[int(rng.integers(len(edges)))] = None
        frames = int(rng.integers(1, 4))
        pace = int(rng.integers(5, 30)) if case % 3 == 0 else None
        run = run_graph(ks, edges, depths, frames, pace)
        R, W = naive_graph(ks, edges, depths, frames, pace)
        assert [list(x) for x in run.read_times] == R and [list(x) for x in run.write_times] == W, case
        deadlocks += run.deadlock
        for x in timelines(ks, run, depths):
            assert np.array_equal(x.t, np.maximum(np.maximum(x.seq, x.data), x.room))
        free = run_unbounded(ks, frames, pace, edges)
        ref = run_graph(ks, edges, [None] * len(edges), frames, pace)
        assert not ref.deadlock
        assert all(np.array_equal(a, b) for a, b in zip(free.write_times + free.read_times,
                                                           ref.write_times + ref.read_times)), case
    assert deadlocks > 0  # shallow FIFOs at a fork do deadlock; the naive rules agree on where


def test_the_residual_case_equals_the_cycle_by_cycle_rules():
    ks = _residual()
    for d in (F, F + 1, F + 2, F + 3):
        depths = [2, 2, d, 2, 2]
        run = run_graph(ks, RESIDUAL_EDGES, depths, 2)
        assert ([list(x) for x in run.read_times], [list(x) for x in run.write_times]) == \
            naive_graph(ks, RESIDUAL_EDGES, depths, 2), d


# ---------------------------------------------------------------- chains through the graph code

def test_chains_through_the_graph_code_follow_the_rules():
    rng = np.random.default_rng(3)
    for _ in range(20):
        words = [int(w) for w in rng.integers(1, 9, int(rng.integers(3, 7)))]
        ks = [_random_kernel(rng, f"k{k}", a, b) for k, (a, b) in enumerate(zip(words, words[1:]))]
        edges = [(k, k + 1) for k in range(len(ks) - 1)]
        depths = [int(d) for d in rng.integers(1, 4, len(ks) - 1)]
        run = run_chain(ks, depths, 2)
        assert run.edges == edges and not run.deadlock  # a chain whose word counts agree never deadlocks
        assert ([list(x) for x in run.read_times], [list(x) for x in run.write_times]) == \
            naive_graph(ks, edges, depths, 2)


@cache
def _digits():
    design = load_design(EXAMPLES / "digits_w4a4.yaml")
    board = load_board(design.hardware.board)
    return design, board, evaluate_design(design, board)


def test_the_sized_digits_example_is_what_the_chain_simulator_gave():
    # pinned from the chain-only simulator before the DAG generalization (main at 030d506)
    design, board, _ = _digits()
    res = size_fifos(design, board)
    assert res.ii_cycles == 73728 and res.latency_cycles == 89290 and res.runs == 7
    assert res.depths == [2, 2, 0, 2, 2, 2, 2, 2, 2, 0, 2, 2, 2, 2, 2, 2, 0, 2]
    assert res.stalls["conv1_swg"] == {"read": 9199, "write": 206628} and res.stalls["fc1"] == {"read": 234825, "write": 0}


def _with_reads(stages, reads):
    out = []
    for st, r in zip(stages, reads):
        st = copy.copy(st)
        st.reads = tuple(r)
        out.append(st)
    return out


def _with_stages(result, stages):
    return dataclasses.replace(result, stages=stages)


def test_build_chain_follows_the_stages_reads():
    _, _, result = _digits()
    stages = [st for st in result.stages if st.kind != "shell"]
    in_order = _with_reads(stages, [()] + [(st.name,) for st in stages[:-1]])  # inactive stages: wires
    plain = build_chain(result)
    named = build_chain(_with_stages(result, in_order))
    assert [k.name for k in named.kernels] == [k.name for k in plain.kernels]
    for field in ("fifo_names", "fifo_widths", "fifo_stage", "n_fifo_stages", "model_depths", "cycles", "fifo_edges"):
        assert getattr(named, field) == getattr(plain, field), field
    assert named.fifo_edges == [(k, k + 1) for k in range(len(plain.kernels) - 1)]
    assert named.kernel_layers[:3] == ["input", "conv0", "conv0"]
    # a diamond: conv0 writes a second FIFO, pool0_in_dwc reads both (a fork and a join)
    names = [st.name for st in stages]
    j = names.index("conv0_fifo")
    twin = copy.copy(stages[j])
    twin.name = "conv0_twin_fifo"
    reads = [st.reads for st in in_order]
    reads[names.index("pool0_in_dwc")] = ("conv0_fifo", "conv0_twin_fifo")
    diamond = _with_reads(stages[:j + 1] + [twin] + stages[j + 1:], reads[:j + 1] + [("conv0",)] + reads[j + 1:])
    chain = build_chain(_with_stages(result, diamond))
    k_conv0 = [k.name for k in chain.kernels].index("conv0")
    assert chain.fifo_names[:5] == plain.fifo_names[:3] + ["conv0_twin_fifo", plain.fifo_names[3]]
    assert chain.fifo_edges[2] == chain.fifo_edges[3] == (k_conv0, k_conv0 + 1)
    assert chain.n_fifo_stages == plain.n_fifo_stages + 1 and chain.fifo_stage[3] == plain.fifo_stage[2] + 1
    res = simulate_chain(chain, [4] * len(chain.fifo_names))
    assert not res.deadlock and res.ii_cycles == plain.analytical_ii
    # a FIFO read by two kernels is no stream of this hardware
    bad = [st.reads for st in in_order]
    bad[names.index("conv1_in_dwc")] = ("conv0_fifo",)
    with pytest.raises(ValueError, match="read by two kernels"):
        build_chain(_with_stages(result, _with_reads(stages, bad)))
    with pytest.raises(ValueError, match="conv0_twin_fifo.*no stage"):  # the twin's reader without the twin
        build_chain(_with_stages(result, _with_reads(stages, reads)))


# ---------------------------------------------------------------- a residual design of the cost model

RESNET_FOLDS = {"stem": dict(pe=2, simd=9), "b1a": dict(pe=2, simd=144), "b1b": dict(pe=2, simd=144),
                "add1": dict(pe=2), "b2a": dict(pe=2, simd=72), "b2b": dict(pe=2, simd=144),
                "proj": dict(pe=1, simd=16), "add2": dict(pe=1), "gap": dict(pe=1), "fc0": dict(pe=1)}


def test_the_skip_fifo_of_digits_resnet(tmp_path, capsys):
    """examples/digits_resnet.yaml as `codesign fold` folds it for the PYNQ-Z1 (II 606, the sliding
    windows), through `codesign simulate --json`. The stem writes 8 words a pixel (16 channels,
    PE 2), 64 a row of 8 pixels. b1b writes its first word after its window's fill (b1a's output
    rows 0 and 1), and b1a_swg emits row 1's windows while it reads stem row 3 (a read and a write
    share an iteration): the skip FIFO stem_dup -> add1 holds at least 4 stem rows = 256 words
    before add1 reads one. In the second block the projection (a 1x1 conv, quick to its first
    word) waits for b2b at add2: its output FIFO is the other deep one."""
    import json

    from codesign.cli import main
    from hw_space.design import LayerFold, save_design

    design = load_design(EXAMPLES / "digits_resnet.yaml")
    board = load_board(design.hardware.board)
    design = design.with_hardware(layers={k: LayerFold(**v) for k, v in RESNET_FOLDS.items()})
    save_design(design, tmp_path / "resnet.yaml")
    assert main(["simulate", str(tmp_path / "resnet.yaml"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["deadlock"] is False and res["ii_cycles"] == res["analytical_ii_cycles"] == 606
    edges = [tuple(e) for e in res["fifo_edges"]]
    skip = edges.index(("stem_dup", "add1"))
    depths = [f["depth"] for f in res["fifos"]]
    assert depths[skip] > 4 * 64
    deepest = sorted(range(len(depths)), key=depths.__getitem__)[-2:]
    assert {edges[i] for i in deepest} == {("stem_dup", "add1"), ("proj", "add2")}
    chain = build_chain(evaluate_design(design, board))
    assert [(chain.kernels[p].name, chain.kernels[c].name) for p, c in chain.fifo_edges] == edges
    at_four_rows = list(depths)
    at_four_rows[skip] = 4 * 64
    assert simulate_chain(chain, at_four_rows).deadlock
    assert simulate_chain(chain, [2] * len(depths)).deadlock
