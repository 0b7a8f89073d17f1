"""Designs scored per second: the vectorized batch path vs `estimate()` one design at a time.

    python benchmarks/estimate_speed.py [--n 100000] [--per-design 300] [--seed 0]

A 6-layer W4A4 CIFAR-sized network (conv, conv, pool, conv, dense, dense) on zc706. The batch
path scores N random legal foldings (PE, SIMD, memory and multiplier styles) in one
`CostModel.evaluate_dataflow` call; the per-design path calls `estimate()` in a loop, as a user's
`codesign estimate` does. Both run in this process on one core. The tiled template's batch path
(`evaluate_tiled` over N random engines) is timed too. DESIGN.md 4.4 asks for >= 100,000
designs/s on one core for the batch path.
"""

from __future__ import annotations

import argparse
import os
import time

# one core: keep numpy's BLAS pools (unused here, but cheap insurance) to a single thread
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from hw_space.boards import load_board  # noqa: E402
from hw_space.design import Design, Engine, Hardware, InputSpec, Layer, LayerFold, Network  # noqa: E402
from hw_space.estimate import estimate  # noqa: E402
from hw_space.folding import legal_folds  # noqa: E402
from hw_space.memory import MEM_CODES  # noqa: E402
from hw_space.model import CostModel  # noqa: E402

TARGET = 100_000
MEM_NAMES = {v: k for k, v in MEM_CODES.items() if k != "external"}
MAC_NAMES = {0: "auto", 1: "lut", 2: "dsp"}


def network() -> Network:
    return Network(InputSpec(3, 32, 32, 8), (
        Layer("conv0", "conv", out_channels=32, kernel=3, padding=1, weight_bits=4, act_bits=4),
        Layer("conv1", "conv", out_channels=32, kernel=3, padding=1, weight_bits=4, act_bits=4),
        Layer("pool0", "maxpool", kernel=2, stride=2),
        Layer("conv2", "conv", out_channels=64, kernel=3, padding=1, weight_bits=4, act_bits=4),
        Layer("fc0", "dense", out_features=128, weight_bits=4, act_bits=4),
        Layer("fc1", "dense", out_features=10, weight_bits=4),
    ))


def random_foldings(net: Network, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """(n, L) arrays of random legal PE/SIMD and random memory/multiplier styles."""
    folds = legal_folds(net)
    L = len(net.layers)
    pe = np.empty((n, L), dtype=np.int64)
    simd = np.empty((n, L), dtype=np.int64)
    for j, layer in enumerate(net.layers):
        pes, simds = folds[layer.name]
        pe[:, j] = rng.choice(pes, n)
        simd[:, j] = rng.choice(simds, n)
    mem = rng.choice(sorted(MEM_NAMES), (n, L))
    mac = rng.integers(0, 3, (n, L))
    return {"pe": pe, "simd": simd, "mem": mem, "mac": mac}


def to_design(net: Network, arrays: dict[str, np.ndarray], i: int) -> Design:
    layers = {}
    for j, layer in enumerate(net.layers):
        if layer.is_compute:
            layers[layer.name] = LayerFold(int(arrays["pe"][i, j]), int(arrays["simd"][i, j]),
                                           MEM_NAMES[int(arrays["mem"][i, j])], MAC_NAMES[int(arrays["mac"][i, j])])
        else:
            layers[layer.name] = LayerFold(pe=int(arrays["pe"][i, j]))
    return Design(net, Hardware(board="zc706", layers=layers))


def best_rate(fn, count: int, repeats: int) -> float:
    """Designs per second of the fastest of `repeats` runs (the least disturbed by other load)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return count / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="designs per batch call")
    ap.add_argument("--per-design", type=int, default=300, help="designs for the estimate() loop")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    net = network()
    board = load_board("zc706")
    model = CostModel(net, board)

    arrays = random_foldings(net, args.n, rng)
    result = model.evaluate_dataflow(arrays["pe"], arrays["simd"], mem=arrays["mem"], mac=arrays["mac"])
    batch = best_rate(lambda: model.evaluate_dataflow(arrays["pe"], arrays["simd"], mem=arrays["mem"],
                                                      mac=arrays["mac"]), args.n, 3)

    designs = [to_design(net, arrays, i) for i in range(args.per_design)]
    ests = [estimate(d, board) for d in designs]
    # the two paths agree on what they scored (the point of sharing one model)
    assert all(e.ii_cycles == int(result.ii_cycles[i]) for i, e in enumerate(ests))
    per_design = best_rate(lambda: [estimate(d, board) for d in designs], args.per_design, 2)
    design_list = best_rate(lambda: model.evaluate_designs(designs), args.per_design, 3)

    tm, tn = rng.choice([1, 2, 4, 8, 16, 32, 64], args.n), rng.choice([1, 2, 4, 8, 16, 32], args.n)
    tr = rng.choice([1, 2, 4, 8, 16, 34], args.n)
    ports = rng.choice([32, 64, 128], (args.n, 3))
    tiled = best_rate(lambda: model.evaluate_tiled(tm, tn, tr, tr, ports), args.n, 3)
    tiled_designs = [Design(net, Hardware(board="zc706", template="tiled",
                                          engine=Engine(int(tm[i]), int(tn[i]), int(tr[i]), int(tr[i]),
                                                        *(int(p) for p in ports[i]))))
                     for i in range(args.per_design)]
    tiled_one = best_rate(lambda: [estimate(d, board) for d in tiled_designs], args.per_design, 2)

    feasible = float(result.feasible.mean())
    print(f"network: 6 layers (conv, conv, pool, conv, dense, dense), W4A4, 3x32x32 input, board {board.name}")
    print(f"dataflow batch   CostModel.evaluate_dataflow, N = {args.n:,}: {batch:>12,.0f} designs/s "
          f"({feasible:.0%} of the random legal foldings fit)")
    print(f"dataflow list    CostModel.evaluate_designs, {args.per_design} Designs: {design_list:>9,.0f} designs/s")
    print(f"per design       estimate() loop, {args.per_design} designs:          {per_design:>12,.0f} designs/s")
    print(f"batch / per-design: {batch / per_design:,.0f}x")
    print(f"tiled batch      CostModel.evaluate_tiled, N = {args.n:,}:    {tiled:>12,.0f} designs/s")
    print(f"tiled per design estimate() loop, {args.per_design} designs:          {tiled_one:>12,.0f} designs/s"
          f"  ({tiled / tiled_one:,.0f}x)")
    verdict = "meets" if batch >= TARGET else "MISSES"
    print(f"target >= {TARGET:,} designs/s on one core for the batch path: {verdict}")


if __name__ == "__main__":
    main()
