"""Resource-aware folding: the fastest per-layer PE/SIMD (or tiled engine) that fits the board, or
the cheapest that meets a target FPS.

Dataflow: the II is the slowest stage and resources add up over layers, so for a cycle budget T
each layer independently takes its cheapest option (PE, SIMD, memory style, multiplier style)
with cycles <= T. We score every layer's options at once with the vectorized model, sweep every
candidate T, and keep the smallest T whose total fits. "Cheapest" weighs each resource by the
board's capacity; when the sum does not fit, the weight of the resource that overflows is raised
and the sweep repeated. FINN's SetFolding, by contrast, walks divisors toward a cycle target and
ignores resources; `greedy_fold` is that walk (with a fit check) and serves as the baseline.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from hw_space.boards import Board
from hw_space.design import Design, Engine, LayerFold, Network
from hw_space.errors import CodesignError
from hw_space.fold_axes import divisors as divisors  # re-exported: the one divisor list
from hw_space.layers import MAC_AUTO, MAC_DSP, MAC_LUT, Role
from hw_space.lowering import fold_specs
from hw_space.memory import AUTO, BRAM, LUTRAM, URAM
from hw_space.model import DEFAULT_MAX_UTIL, RESOURCE_NAMES, BatchResult, CostModel, design_arrays

_MEM_NAMES = {AUTO: "auto", BRAM: "bram", LUTRAM: "lutram", URAM: "uram"}
_MAC_NAMES = {MAC_AUTO: "auto", MAC_LUT: "lut", MAC_DSP: "dsp"}
_REWEIGHT_ROUNDS = 12
# what the optimizer budgets: the board resources plus distributed RAM (SLICEM LUTs)
_BUDGETED = RESOURCE_NAMES + ("LUTRAM",)


def _capacities(board: Board) -> np.ndarray:
    return np.array([board.capacity(k) for k in RESOURCE_NAMES] + [board.lutram_capacity], dtype=float)


def _stage_sum(stages, k: str):
    return sum(st.res.LUTRAM if k == "LUTRAM" else st.res.as_dict()[k] for st in stages)


def legal_folds(network: Network) -> dict[str, tuple[list[int], list[int]]]:
    """Legal (PE values, SIMD values) per layer, from the folding axes of the kinds it lowers to
    (hw_space.lowering): PE divides the output channels, the MVAU's SIMD divides K*K*Cin of a conv
    (as in FINN: the sliding window has its own SIMD, a divisor of Cin, and a width converter joins
    the two) or the input features of a dense layer; a max-pool has PE only (divisors of its
    channels)."""
    return {layer.name: (spec.values("pe"), spec.values("simd"))
            for layer, spec in zip(network.layers, fold_specs(network))}


class _LayerOptions:
    """Every option of one layer with its stage cycles and resources (arrays over options)."""

    def __init__(self, model: CostModel, j: int, mem_styles: list[int], mac_styles: list[int], layout: np.ndarray):
        spec = model.fold_specs[j]
        mems = mem_styles if "weight_memory" in spec.styles else [AUTO]
        macs = mac_styles if "mac" in spec.styles else [MAC_AUTO]
        grid = np.array(np.meshgrid(spec.values("pe"), spec.values("simd"), mems, macs, indexing="ij")).reshape(4, -1)
        self.pe, self.simd, self.mem, self.mac = grid
        n = self.pe.size
        cols = {k: np.tile(model.default_pe if k == "pe" else np.full(model.L, v), (n, 1))
                for k, v in (("pe", 1), ("simd", 1), ("mem", AUTO), ("mac", MAC_AUTO))}
        for key, values in (("pe", self.pe), ("simd", self.simd), ("mem", self.mem), ("mac", self.mac)):
            cols[key][:, j] = values

        def stages_of(pe: np.ndarray) -> list:
            result = model.evaluate_dataflow(pe, cols["simd"], mem=cols["mem"], mac=cols["mac"], n=n, layout=layout)
            return [st for st in result.stages if _owner(model, st) == j]

        stages = stages_of(cols["pe"])
        self.res = np.stack([_stage_sum(stages, k) for k in _BUDGETED], axis=1)
        producers = [p for p in model.network.producers(j) if p >= 0]
        if producers:
            # cycles with the producers writing their widest words: a width converter reads one word per
            # word its producer writes, and a producer never writes more words than it takes cycles,
            # so the producer's own folding bounds that side; priced at the producer's default (PE 1)
            # it would make every layer after a wide one look slow (CNV's conv1: 57,600 cycles at best).
            # An add has two producers (each behind its own converter).
            wide = cols["pe"].copy()
            for p in producers:
                wide[:, p] = model.fold_specs[p].values("pe")[-1]
            self.cycles = np.max([st.cycles for st in stages_of(wide)], axis=0)
        else:
            self.cycles = np.max([st.cycles for st in stages], axis=0)
        keep = np.all([st.legal for st in stages], axis=0)
        for arr in ("pe", "simd", "mem", "mac", "cycles", "res"):
            setattr(self, arr, getattr(self, arr)[keep])
        order = np.argsort(self.cycles, kind="stable")
        for arr in ("pe", "simd", "mem", "mac", "cycles", "res"):
            setattr(self, arr, getattr(self, arr)[order])

    def cheapest_under(self, budgets: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Index of the cheapest option with cycles <= each budget (-1 where none is fast enough)."""
        cost = self.res @ weights
        best = np.minimum.accumulate(cost)
        # argmin prefix: position of the running minimum
        idx = np.arange(cost.size)
        is_new_min = np.r_[True, cost[1:] < best[:-1]]
        arg_prefix = np.maximum.accumulate(np.where(is_new_min, idx, 0))
        pos = np.searchsorted(self.cycles, budgets, side="right") - 1
        return np.where(pos >= 0, arg_prefix[np.maximum(pos, 0)], -1)


def _owner(model: CostModel, st) -> int:
    """The layer whose folding a stage depends on: its own layer, the first layer for the input
    adapter and the last for the output adapter (their words are that layer's); -1: none."""
    if st.op is not None and st.op.role is Role.FIXED:
        return -1
    if st.layer == "input":
        return 0
    if st.layer == "output":
        return model.L - 1
    return [l.name for l in model.network.layers].index(st.layer)


def _fixed_stages(model: CostModel) -> tuple[int, np.ndarray]:
    """Cycles and resources of the stages no folding changes: the platform shell."""
    base = model.evaluate_dataflow(n=1)
    fixed = [st for st in base.stages if _owner(model, st) < 0]
    cycles = max(int(st.cycles[0]) for st in fixed)
    res = np.array([int(np.asarray(_stage_sum(fixed, k))[0]) for k in _BUDGETED])
    return cycles, res


def _dataflow_options(model: CostModel, layout: np.ndarray) -> list[_LayerOptions]:
    """Every layer's options; each layer keeps the weight layout of the design (layout: (L,) codes)."""
    mem_styles = [AUTO, BRAM, LUTRAM] + ([URAM] if model.board.URAM > 0 else [])
    mac_styles = [MAC_LUT, MAC_DSP]
    return [_LayerOptions(model, j, mem_styles, mac_styles, layout) for j in range(model.L)]


def _apply_dataflow(design: Design, options: list[_LayerOptions], picks: list[int]) -> Design:
    # a layer without SIMD or styles (a max-pool) has options at their defaults: LayerFold(pe=...)
    hw = design.hardware
    folds = {layer.name: LayerFold(pe=int(opt.pe[k]), simd=int(opt.simd[k]), weight_memory=_MEM_NAMES[int(opt.mem[k])],
                                   mac=_MAC_NAMES[int(opt.mac[k])], weight_layout=hw.fold(layer.name).weight_layout)
             for layer, opt, k in zip(design.network.layers, options, picks)}
    return design.with_hardware(template="dataflow", layers=folds, engine=None)


def _fold_dataflow(design: Design, model: CostModel, target_cycles: int | None) -> Design | None:
    """The sweep below prices each layer with its neighbours at their defaults, so the width
    converters between two folded layers are approximate: re-check the whole design and tighten
    the budget of the resource that overflows until it fits."""
    options = _dataflow_options(model, design_arrays(design, model.fold_specs)["layout"])
    scale = np.ones(len(_BUDGETED))
    caps = _capacities(model.board)
    for _ in range(8):
        folded = _sweep_dataflow(design, model, target_cycles, options, scale)
        if folded is None:
            return None
        final = model.evaluate_designs([folded])
        meets = target_cycles is None or int(final.ii_cycles[0]) <= target_cycles
        if bool(final.legal[0] and final.fits[0]) and meets:
            return folded
        used = np.array([int(final.resources[k][0]) for k in RESOURCE_NAMES] + [int(final.lutram[0])], dtype=float)
        over = used / np.maximum(model.max_util * caps, 1)
        scale = scale * np.where(over > 1, 0.98 / np.maximum(over, 1), 1.0)
    return None


def _sweep_dataflow(design: Design, model: CostModel, target_cycles: int | None, options: list[_LayerOptions],
                    scale: np.ndarray) -> Design | None:
    io_cycles, fixed_res = _fixed_stages(model)
    caps = _capacities(model.board)
    limit = model.max_util * caps * scale
    if target_cycles is not None:
        budgets = np.array([target_cycles])
    else:
        budgets = np.unique(np.concatenate([opt.cycles for opt in options] + [[io_cycles]]))
        budgets = budgets[budgets >= io_cycles]
    if budgets.size == 0 or (target_cycles is not None and io_cycles > target_cycles):
        return None
    weights = np.where(caps > 0, 1.0 / np.maximum(caps, 1), 1e6)
    best: tuple[int, float, list[int]] | None = None
    for _ in range(_REWEIGHT_ROUNDS):
        picks = np.stack([opt.cheapest_under(budgets, weights) for opt in options])  # (L, B)
        ok = np.all(picks >= 0, axis=0)
        total = np.tile(fixed_res.astype(float), (budgets.size, 1))
        for opt, pk in zip(options, picks):
            total += np.where(ok[:, None], opt.res[np.maximum(pk, 0)], 0)
        fits = ok & np.all(total <= limit, axis=1)
        if fits.any():
            b = int(np.argmax(fits))  # smallest fitting budget (budgets ascend)
            ii = int(max(io_cycles, max(opt.cycles[p] for opt, p in zip(options, picks[:, b]))))
            peak = float(np.max(np.where(caps > 0, total[b] / np.maximum(caps, 1), 0)))
            if best is None or (ii, peak) < (best[0], best[1]):
                best = (ii, peak, [int(p) for p in picks[:, b]])
            if target_cycles is None and b == 0:
                break
        # raise the weight of the resource that overflows most at the budgets that did not fit
        over = np.where(ok[:, None], total / np.where(limit > 0, limit, 1), 0).max(axis=0)
        weights = weights * np.where(over > 1, 1 + over, 1.0)
    if best is None:
        return None
    return _apply_dataflow(design, options, best[2])


def greedy_fold(design: Design, board: Board, max_util: float = DEFAULT_MAX_UTIL) -> Design:
    """Baseline in the manner of FINN's SetFolding: repeatedly speed up the bottleneck layer by its
    next divisor (SIMD first, then PE), keeping only steps after which the design still fits."""
    model = CostModel(design.network, board, design.hardware.clock_mhz, max_util)
    folds = legal_folds(design.network)
    L = model.L
    pe, simd = model.default_pe.copy(), np.ones(L, dtype=np.int64)
    frozen = np.zeros(L, dtype=bool)

    layout = design_arrays(design, model.fold_specs)["layout"]

    def score(p: np.ndarray, s: np.ndarray) -> BatchResult:
        return model.evaluate_dataflow(p[None, :], s[None, :], n=1, layout=layout)

    current = score(pe, simd)
    if not current.fits[0]:
        raise CodesignError(f"nothing fits board {board.name}: even PE = SIMD = 1 exceeds "
                            f"{max_util:.0%} of a resource")
    names = [l.name for l in design.network.layers]
    while True:
        per_layer = np.zeros(L, dtype=np.int64)
        for st in current.stages:
            if st.layer in names:
                j = names.index(st.layer)
                per_layer[j] = max(per_layer[j], int(st.cycles[0]))
        per_layer[frozen] = -1
        j = int(np.argmax(per_layer))
        if per_layer[j] < 0:
            break
        pes, simds = folds[names[j]]
        p, s = pe.copy(), simd.copy()
        if s[j] < simds[-1]:
            s[j] = simds[simds.index(s[j]) + 1]
        elif p[j] < pes[-1]:
            p[j] = pes[pes.index(p[j]) + 1]
        else:
            frozen[j] = True
            continue
        trial = score(p, s)
        if trial.fits[0] and trial.legal[0]:  # legal: no word over the ap_uint limit
            pe, simd, current = p, s, trial
        else:
            frozen[j] = True
    # a layer without SIMD (a max-pool) keeps simd = 1, the default: LayerFold(pe=...)
    layers = {layer.name: LayerFold(pe=int(pe[j]), simd=int(simd[j]),
                                    weight_layout=design.hardware.fold(layer.name).weight_layout)
              for j, layer in enumerate(design.network.layers)}
    return design.with_hardware(template="dataflow", layers=layers, engine=None)


def _pow2_upto(n: int) -> list[int]:
    out, v = [], 1
    while v < n:
        out.append(v)
        v *= 2
    return out + [n]


def _fold_tiled(design: Design, model: CostModel, target_cycles: int | None) -> Design | None:
    extents = [kind.extent() for _, kind in model.tiled_layers]
    max_m = max(e.mh for e in extents)
    max_n = max(e.n for e in extents)
    max_r = max(e.rows for e in extents)
    tm_opts = [v for v in _pow2_upto(max_m) if v <= 256]
    tn_opts = [v for v in _pow2_upto(max_n) if v <= 128]
    tr_opts = _pow2_upto(max_r)
    ports = sorted({64, model.board.axi_width})
    grid = np.array(np.meshgrid(tm_opts, tn_opts, tr_opts, ports, indexing="ij")).reshape(4, -1)
    tm, tn, tr, port = grid
    result = model.evaluate_tiled(tm, tn, tr, tr, np.stack([port, port, port], axis=1))
    ok = result.legal & result.fits
    if target_cycles is not None:
        ok &= result.ii_cycles <= target_cycles
    if not ok.any():
        return None
    caps = np.array([max(model.board.capacity(k), 1) for k in RESOURCE_NAMES], dtype=float)
    cost = np.stack([result.resources[k] for k in RESOURCE_NAMES], axis=1) @ (1.0 / caps)
    key = np.where(ok, cost if target_cycles is not None else result.ii_cycles + cost / (cost.max() + 1), np.inf)
    k = int(np.argmin(key))
    p = int(port[k])
    engine = Engine(tm=int(tm[k]), tn=int(tn[k]), tr=int(tr[k]), tc=int(tr[k]), input_port=p, weight_port=p, output_port=p)
    return design.with_hardware(template="tiled", engine=engine, layers={})


def fold(design: Design, board: Board, target_fps: float | None = None,
         max_util: float = DEFAULT_MAX_UTIL) -> Design:
    """The design with the fastest folding that fits the board (no target), or the cheapest that
    reaches target_fps; every layer keeps its weight_layout. Raises CodesignError, saying why, when nothing fits or the target is out
    of reach. The network (and its bits) is never changed."""
    model = CostModel(design.network, board, design.hardware.clock_mhz, max_util)
    target_cycles = None
    if target_fps is not None:
        if target_fps <= 0:
            raise CodesignError(f"--target-fps must be positive, got {target_fps}")
        target_cycles = int(np.floor(model.clock_mhz * 1e6 / target_fps))
    tiled = design.hardware.template == "tiled"
    folded = (_fold_tiled if tiled else _fold_dataflow)(design, model, target_cycles)
    if not tiled:
        try:
            greedy = greedy_fold(design, board, max_util)
        except CodesignError:
            greedy = None
        # keep the greedy walk's answer in the rare case the sweep's weighting misses it
        if greedy is not None:
            g = model.evaluate_designs([greedy])
            meets = target_cycles is None or int(g.ii_cycles[0]) <= target_cycles
            if meets and (folded is None or (target_cycles is None and
                                             int(g.ii_cycles[0]) < int(model.evaluate_designs([folded]).ii_cycles[0]))):
                folded = greedy
    if folded is None:
        if target_fps is None:
            raise CodesignError(f"no folding of this network fits board {board.name} within {max_util:.0%} of its "
                                "resources; use a bigger board, raise --max-util or shrink the network")
        best = None
        try:
            best = fold(design, board, None, max_util)
        except CodesignError:
            pass
        reach = "" if best is None else \
            f"; the fastest folding that fits reaches {float(model.evaluate_designs([best]).fps[0]):,.0f} FPS"
        raise CodesignError(f"no folding reaches {target_fps:,.0f} FPS on board {board.name} within "
                            f"{max_util:.0%} of its resources{reach}")
    final = model.evaluate_designs([folded])
    assert bool(final.legal[0] and final.fits[0]), "folding produced an infeasible design"
    return replace(folded)
