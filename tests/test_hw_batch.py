"""The vectorized batch path equals the per-design path, on many seeded random designs.

Random networks (conv / max-pool / dense stacks, valid by construction) and random foldings --
legal and illegal PE/SIMD, every memory and multiplier style, per-layer bits, every board --
scored once by `CostModel.evaluate_dataflow` / `evaluate_tiled` over the whole batch and once by
`estimate()` per design must agree on II, FPS, latency, every resource and feasibility.
"""

from __future__ import annotations

import numpy as np
import pytest

from hw_space.boards import all_boards
from hw_space.design import PORT_WIDTHS, Design, Engine, Hardware, InputSpec, Layer, LayerFold, Network
from hw_space.estimate import estimate
from hw_space.folding import divisors
from hw_space.memory import MEM_CODES
from hw_space.model import RESOURCE_NAMES, CostModel

BOARDS = all_boards()
MEM_NAMES = {v: k for k, v in MEM_CODES.items()}
MAC_NAMES = {0: "auto", 1: "lut", 2: "dsp"}
N_NETWORKS = 30
DESIGNS_PER_NETWORK = 24


def random_network(rng: np.random.Generator) -> Network:
    """A conv/pool stack then 1-3 dense layers; every shape stays >= 1 by construction."""
    c = int(rng.choice([1, 2, 3, 4, 8]))
    size = int(rng.integers(4, 17))
    layers: list[Layer] = []
    h = size
    for i in range(int(rng.integers(0, 4))):
        k = int(rng.integers(1, min(3, h) + 1))
        pad = int(rng.integers(0, k))
        stride = int(rng.choice([1, 1, 2]))
        out = (h + 2 * pad - k) // stride + 1
        if out < 1:
            break
        cout = int(rng.choice([2, 4, 6, 8, 12, 16, 32]))
        layers.append(Layer(f"conv{i}", "conv", out_channels=cout, kernel=k, stride=stride, padding=pad,
                            weight_bits=int(rng.integers(1, 9)), act_bits=int(rng.integers(1, 9))))
        h = out
        if h >= 2 and rng.random() < 0.5:
            pk = int(rng.integers(2, min(3, h) + 1))
            layers.append(Layer(f"pool{i}", "maxpool", kernel=pk, stride=int(rng.integers(1, pk + 1))))
            h = (h - pk) // layers[-1].stride + 1
    n_dense = int(rng.integers(1, 4))
    for i in range(n_dense):
        last = i == n_dense - 1
        layers.append(Layer(f"fc{i}", "dense", out_features=10 if last else int(rng.choice([4, 10, 16, 64, 100])),
                            weight_bits=int(rng.integers(1, 9)), act_bits=None if last else int(rng.integers(1, 9))))
    return Network(InputSpec(c, size, size, int(rng.integers(1, 9))), tuple(layers))


def _pick(rng: np.random.Generator, legal: list[int], top: int) -> int:
    """Mostly a legal divisor, sometimes any value (often illegal) up to 2x the top divisor."""
    if rng.random() < 0.8:
        return int(rng.choice(legal))
    return int(rng.integers(1, 2 * top + 1))


def random_dataflow_batch(rng: np.random.Generator, net: Network, n: int) -> dict[str, np.ndarray]:
    """(n, L) arrays of PE, SIMD, bits, memory and multiplier codes."""
    L = len(net.layers)
    out = {k: np.zeros((n, L), dtype=np.int64) for k in ("pe", "simd", "weight_bits", "act_bits", "mem", "mac")}
    shapes = net.shapes()
    for j, (layer, (ishape, _)) in enumerate(zip(net.layers, shapes)):
        if layer.type == "maxpool":
            pes = divisors(ishape.channels)
            out["pe"][:, j] = [_pick(rng, pes, pes[-1]) for _ in range(n)]
            # ignored by the model for a pool: random junk must not change anything
            out["simd"][:, j] = rng.integers(1, 9, n)
            out["mem"][:, j] = rng.integers(0, 5, n)
            out["mac"][:, j] = rng.integers(0, 3, n)
            continue
        mh = layer.out_channels or layer.out_features
        pes = divisors(mh)
        simds = divisors(ishape.channels if layer.type == "conv" else ishape.size)
        out["pe"][:, j] = [_pick(rng, pes, pes[-1]) for _ in range(n)]
        out["simd"][:, j] = [_pick(rng, simds, simds[-1]) for _ in range(n)]
        out["weight_bits"][:, j] = rng.integers(1, 9, n)
        out["act_bits"][:, j] = 0 if j == L - 1 else rng.integers(1, 9, n)
        out["mem"][:, j] = rng.integers(0, 5, n)   # auto, bram, lutram, uram, external
        out["mac"][:, j] = rng.integers(0, 3, n)   # auto, lut, dsp
    return out


def design_of(net: Network, arrays: dict[str, np.ndarray], i: int, board: str, clock: float | None) -> Design:
    """Row i of the batch as a Design: the network with that row's bits, and its folding."""
    layers, folds = [], {}
    for j, layer in enumerate(net.layers):
        if layer.is_compute:
            ab = int(arrays["act_bits"][i, j])
            layers.append(Layer(layer.name, layer.type, layer.out_channels, layer.out_features, layer.kernel,
                                layer.stride, layer.padding, int(arrays["weight_bits"][i, j]), ab or None))
            folds[layer.name] = LayerFold(pe=int(arrays["pe"][i, j]), simd=int(arrays["simd"][i, j]),
                                          weight_memory=MEM_NAMES[int(arrays["mem"][i, j])],
                                          mac=MAC_NAMES[int(arrays["mac"][i, j])])
        else:
            layers.append(layer)
            folds[layer.name] = LayerFold(pe=int(arrays["pe"][i, j]))
    return Design(Network(net.input, tuple(layers)), Hardware(board=board, clock_mhz=clock, layers=folds))


def _assert_same(batch, i: int, est, what: str) -> None:
    assert est.ii_cycles == int(batch.ii_cycles[i]), what
    assert est.latency_cycles == int(batch.latency_cycles[i]), what
    assert est.fps == pytest.approx(float(batch.fps[i]), rel=1e-12), what
    for k in RESOURCE_NAMES:
        assert est.resources[k] == int(batch.resources[k][i]), f"{what}: {k}"
    assert est.feasible == bool(batch.feasible[i]), f"{what}: feasible (violations {est.violations})"


def _setting(rng: np.random.Generator):
    board = str(rng.choice(sorted(BOARDS)))
    clock = None if rng.random() < 0.5 else float(rng.choice([50.0, 125.0, 250.0]))
    max_util = float(rng.choice([0.5, 0.85, 1.0]))
    target = None if rng.random() < 0.6 else float(rng.choice([1e3, 1e4, 1e5]))
    return board, clock, max_util, target


@pytest.mark.parametrize("seed", range(N_NETWORKS))
def test_dataflow_batch_equals_per_design(seed):
    rng = np.random.default_rng(seed)
    net = random_network(rng)
    board, clock, max_util, target = _setting(rng)
    arrays = random_dataflow_batch(rng, net, DESIGNS_PER_NETWORK)
    model = CostModel(net, BOARDS[board], clock, max_util, target)
    batch = model.evaluate_dataflow(arrays["pe"], arrays["simd"], arrays["weight_bits"], arrays["act_bits"],
                                    arrays["mem"], arrays["mac"])
    assert len(batch) == DESIGNS_PER_NETWORK
    for i in range(DESIGNS_PER_NETWORK):
        d = design_of(net, arrays, i, board, clock)
        est = estimate(d, BOARDS[board], max_util=max_util, target_fps=target)
        _assert_same(batch, i, est, f"seed {seed} design {i}: {d.to_dict()}")


def test_the_random_cases_cover_both_outcomes():
    # the property above is only meaningful if the random designs are feasible and infeasible,
    # legal and illegal, in good numbers
    feasible = legal = total = 0
    for seed in range(N_NETWORKS):
        rng = np.random.default_rng(seed)
        net = random_network(rng)
        board, clock, max_util, target = _setting(rng)
        arrays = random_dataflow_batch(rng, net, DESIGNS_PER_NETWORK)
        batch = CostModel(net, BOARDS[board], clock, max_util, target).evaluate_dataflow(
            arrays["pe"], arrays["simd"], arrays["weight_bits"], arrays["act_bits"], arrays["mem"], arrays["mac"])
        feasible += int(batch.feasible.sum())
        legal += int(batch.legal.sum())
        total += len(batch)
    assert 0.1 * total < feasible < 0.9 * total
    assert 0.1 * total < legal < 0.9 * total


@pytest.mark.parametrize("seed", range(100, 110))
def test_evaluate_designs_equals_per_design(seed):
    # the Design-list entry point (what the search uses on decoded designs) agrees too
    rng = np.random.default_rng(seed)
    net = random_network(rng)
    board, clock, max_util, target = _setting(rng)
    arrays = random_dataflow_batch(rng, net, 12)
    designs = [design_of(net, arrays, i, board, clock) for i in range(12)]
    batch = CostModel(net, BOARDS[board], clock, max_util, target).evaluate_designs(designs)
    for i, d in enumerate(designs):
        _assert_same(batch, i, estimate(d, BOARDS[board], max_util=max_util, target_fps=target), f"design {i}")


def test_a_batch_row_does_not_depend_on_its_neighbours():
    # scoring designs together or alone gives the same row (no cross-talk through broadcasting)
    rng = np.random.default_rng(7)
    net = random_network(rng)
    arrays = random_dataflow_batch(rng, net, 16)
    model = CostModel(net, BOARDS["zcu104"])
    full = model.evaluate_dataflow(**arrays)
    for i in (0, 5, 15):
        one = model.evaluate_dataflow(**{k: v[i:i + 1] for k, v in arrays.items()})
        assert int(one.ii_cycles[0]) == int(full.ii_cycles[i])
        for k in RESOURCE_NAMES:
            assert int(one.resources[k][0]) == int(full.resources[k][i])


@pytest.mark.parametrize("seed", range(200, 215))
def test_tiled_batch_equals_per_design(seed):
    rng = np.random.default_rng(seed)
    net = random_network(rng)
    board, clock, max_util, target = _setting(rng)
    n = 16
    tm, tn = rng.integers(1, 65, n), rng.integers(1, 65, n)
    tr, tc = rng.integers(1, 33, n), rng.integers(1, 33, n)
    ports = rng.choice(PORT_WIDTHS, (n, 3))
    bits = random_dataflow_batch(rng, net, n)
    model = CostModel(net, BOARDS[board], clock, max_util, target)
    batch = model.evaluate_tiled(tm, tn, tr, tc, ports, bits["weight_bits"], bits["act_bits"])
    for i in range(n):
        base = design_of(net, bits, i, board, clock)
        engine = Engine(int(tm[i]), int(tn[i]), int(tr[i]), int(tc[i]), *(int(p) for p in ports[i]))
        d = base.with_hardware(template="tiled", engine=engine, layers={})
        est = estimate(d, BOARDS[board], max_util=max_util, target_fps=target)
        _assert_same(batch, i, est, f"seed {seed} engine {engine}")


def test_uram_style_on_a_memory_that_needs_no_ram_agrees():
    # dense 4 -> 4 fully unrolled (PE 4 = MH, SIMD 4 = MW): the weight memory is 1 word deep,
    # constants in logic, 0 URAM (memory_cost: depth <= 1 -> no RAM). Asking for 'uram' on a
    # board without URAM therefore costs nothing; the batch path calls the design feasible, and
    # estimate() must agree instead of adding a "has no URAM" violation for a memory that uses none.
    net = Network(InputSpec(1, 2, 2, 8), (
        Layer("fc0", "dense", out_features=4, weight_bits=4, act_bits=4),
        Layer("fc1", "dense", out_features=10, weight_bits=4),
    ))
    d = Design(net, Hardware(board="pynq-z2", layers={"fc0": LayerFold(pe=4, simd=4, weight_memory="uram")}))
    batch = CostModel(net, BOARDS["pynq-z2"]).evaluate_designs([d])
    assert int(batch.resources["URAM"][0]) == 0
    _assert_same(batch, 0, estimate(d, BOARDS["pynq-z2"]), "fully unrolled fc0 in 'uram'")
