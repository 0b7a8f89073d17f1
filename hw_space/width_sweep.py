"""How fast one layer can run within a share of the board: the cycles of its kernels at the fastest
folding whose resources fit a limit. The search space's HTAS rule (codesign.search.htas) sweeps a
layer's width through this to find the channel counts this board runs well.

For one layer on its input (a conv: sliding window, width converter, MVAU; a dense layer: MVAU) we
score every folding the optimizer considers (hw_space.folding: every legal PE x SIMD, memory styles
auto/BRAM/LUTRAM (+URAM where the board has it), LUT or DSP multipliers) with the kinds' own
formulas, keep the legal ones whose summed resources fit the limit, and return the fewest cycles
(the slowest of the layer's kernels, as in the dataflow II). The stream adapters, FIFOs and the
platform shell are left out: they belong to the whole design, not to the layer. An estimate from the
analytical model, not a board measurement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields, replace

import numpy as np

from hw_space.boards import Board
from hw_space.design import InputSpec, Layer, Network
from hw_space.layers import MAC_AUTO, MAC_DSP, MAC_LUT, FoldArrays, HwKind, Resources
from hw_space.lowering import FoldSpec, lower_dataflow
from hw_space.memory import AUTO, BRAM, LUTRAM, URAM
from hw_space.widths import AP_INT_MAX_W

# what a share limits: the board's resources, then distributed RAM (SLICEM LUTs), as the optimizer budgets
LIMITED = Resources.NAMES + ("LUTRAM",)


def share_limit(board: Board, share: float) -> np.ndarray:
    """The resources (LIMITED order) of `share` (a fraction in (0, 1]) of the board."""
    caps = [board.capacity(k) for k in Resources.NAMES] + [board.lutram_capacity]
    return share * np.array(caps, dtype=float)


def _options(spec: FoldSpec, board: Board) -> tuple[np.ndarray, ...]:
    mems = [AUTO, BRAM, LUTRAM] + ([URAM] if board.URAM > 0 else []) if "weight_memory" in spec.styles else [AUTO]
    macs = [MAC_LUT, MAC_DSP] if "mac" in spec.styles else [MAC_AUTO]
    grid = np.array(np.meshgrid(spec.values("pe"), spec.values("simd"), mems, macs, indexing="ij"))
    return tuple(grid.reshape(4, -1).astype(np.int64))


def _layer_figures(kinds: list[HwKind], resolved: list[FoldArrays], in_bits: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cycles, resources (n, 6), legal) of a layer's kernels for n foldings (`resolved`: each kind's
    resolved columns). The word entering the layer is the one its first kernel reads; inside it each
    kernel feeds the next, as in the model's stream (hw_space.model.CostModel.evaluate_dataflow)."""
    n = len(in_bits)
    wants = [kind.in_elems(a) for kind, a in zip(kinds, resolved)]
    elems, bits = wants[0], in_bits
    cycles = np.zeros(n, dtype=np.int64)
    res = np.zeros((n, len(LIMITED)), dtype=np.int64)
    legal = np.ones(n, dtype=bool)
    for k, (kind, a) in enumerate(zip(kinds, resolved)):
        later = [w for w in wants[k + 1:] if w is not None]
        a = a.with_(in_elems=elems, in_bits=bits, next_elems=later[0] if later else a.pe)
        active = kind.stage_active(a)
        active = np.ones(n, dtype=bool) if active is None else np.broadcast_to(active, (n,))
        cycles = np.maximum(cycles, np.where(active, kind.stage_cycles(a), 0))
        r = kind.stage_resources(a)
        res += np.stack([np.broadcast_to(r.LUTRAM if key == "LUTRAM" else getattr(r, key), (n,)) for key in LIMITED],
                        axis=1)
        legal &= np.broadcast_to(kind.stage_legal(a), (n,)) & (np.broadcast_to(kind.stage_width(a), (n,)) <= AP_INT_MAX_W)
        elems = np.broadcast_to(kind.out_elems(a), (n,))
        bits = np.broadcast_to(kind.out_bits(a), (n,))
    return cycles, res, legal


def _stacked(kinds: list[HwKind], sizes: np.ndarray) -> HwKind:
    """One kind standing for several of one class: each shape field that differs becomes an array
    repeated over its kind's foldings (the kinds' formulas broadcast over shapes as over foldings)."""
    first = kinds[0]
    changes = {}
    for f in fields(first):
        values = [getattr(kind, f.name) for kind in kinds]
        if any(v != values[0] for v in values):
            changes[f.name] = np.repeat(np.array(values), sizes)
    return replace(first, **changes) if changes else first


def sweep(layers: Sequence[tuple[Layer, InputSpec]], board: Board, limit: np.ndarray) -> np.ndarray:
    """For each (layer, source): the cycles of `layer` reading `source` (source.bits: the bits of the
    values it reads) at its fastest folding whose resources fit `limit` (share_limit); inf where no
    folding fits. The layers must be of one type: they are scored in one batch."""
    lowered = [lower_dataflow(Network(input=source, layers=(layer,)))[0] for layer, source in layers]
    if len({tuple(type(k) for k in kinds) for kinds in lowered}) > 1:
        raise ValueError("sweep: the layers must lower to the same hardware kinds (one layer type)")
    grids, derived = [], []
    for kinds in lowered:
        grid = _options(FoldSpec.of(kinds), board)
        n = grid[0].size
        base = FoldArrays.blank(n, board.axi_width, pe=grid[0], simd=grid[1])
        # a kind may derive a fold value from its own shape (the sliding window's SIMD): per layer
        derived.append([{k: v for k, v in kind.resolve(base).__dict__.items() if v is not base.__dict__[k]}
                        for kind in kinds])
        grids.append(grid)
    counts = np.array([g[0].size for g in grids])
    pe, simd, mem, mac = (np.concatenate([g[i] for g in grids]) for i in range(4))
    per_row = {key: np.repeat([getattr(layer, key) or 0 for layer, _ in layers], counts)
               for key in ("weight_bits", "act_bits")}
    base = FoldArrays.blank(pe.size, board.axi_width, pe=pe, simd=simd, mem=mem, mac=mac, wbits=per_row["weight_bits"],
                            abits=per_row["act_bits"])
    kinds = [_stacked([per[j] for per in lowered], counts) for j in range(len(lowered[0]))]
    cols = []
    for j in range(len(kinds)):
        keys = {key for per in derived for key in per[j]}
        cols.append(base.with_(**{key: np.concatenate([per[j][key] for per in derived]) for key in keys}))
    in_bits = np.repeat([source.bits for _, source in layers], counts)
    cycles, res, legal = _layer_figures(kinds, cols, in_bits)
    ok = legal & np.all(res <= limit, axis=1)
    owner = np.repeat(np.arange(len(layers)), counts)
    out = np.full(len(layers), np.inf)
    np.minimum.at(out, owner[ok], cycles[ok].astype(float))
    return out


def fastest_cycles(layer: Layer, source: InputSpec, board: Board, limit: np.ndarray) -> float:
    """The cycles of one layer at its fastest folding within `limit` (see sweep)."""
    return float(sweep([(layer, source)], board, limit)[0])


__all__ = ["LIMITED", "fastest_cycles", "share_limit", "sweep"]
