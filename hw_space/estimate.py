"""The per-design estimate: cycles, FPS, latency, resources and feasibility of one Design, with
the reasons when it does not fit. All figures are analytical ESTIMATES, not synthesis results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hw_space.boards import Board, load_board
from hw_space.calibration import statement_line
from hw_space.design import Design
from hw_space.model import DEFAULT_MAX_UTIL, RESOURCE_NAMES, BatchResult, evaluate_design
from hw_space.power import DEFAULT_ACTIVITY, energy_batch1_mj, energy_stream_mj, estimate_power
from hw_space.widths import AP_INT_MAX_W, too_wide


@dataclass(frozen=True)
class LayerEstimate:
    """One hardware stage of the design (an SWG, an MVAU, a pool, the I/O or the engine)."""

    name: str
    layer: str
    kind: str
    template: str
    cycles: int
    resources: dict[str, int]
    pe: int | None = None
    simd: int | None = None
    shape: str = ""
    width: int = 0  # widest ap_uint the kernel instantiates, bits
    depth: int | None = None  # FIFOs: words

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "layer": self.layer, "kind": self.kind, "template": self.template,
                "pe": self.pe, "simd": self.simd, "shape": self.shape, "cycles": self.cycles, "width": self.width,
                "depth": self.depth, **self.resources}


@dataclass(frozen=True)
class Estimate:
    """Whole-design figures. latency_cycles is an upper bound for the dataflow template (the sum
    of stage cycles along the longest path of the stream graph, for a chain all of them; stages
    overlap in hardware) and exact for the tiled one (layers run in turn)."""

    board: str
    template: str
    clock_mhz: float
    max_util: float
    ii_cycles: int
    fps: float
    latency_cycles: int
    resources: dict[str, int]
    capacity: dict[str, int]
    utilization: dict[str, float]
    feasible: bool
    violations: list[str] = field(default_factory=list)
    layers: list[LayerEstimate] = field(default_factory=list)
    simulated: bool = False  # II, latency and FIFO depths from the cycle-level simulation
    analytical_ii_cycles: int = 0  # the slowest stage (equals ii_cycles unless the simulation disagrees)
    # estimated PL power (hw_space.power: static + dynamic at the clock and activity), W
    static_w: float = 0.0
    dynamic_w: float = 0.0
    activity: float = DEFAULT_ACTIVITY
    model_bits: int = 0    # bits of all learned weights (sum of weights x weight bits; no thresholds)
    model_params: int = 0  # learned weights (conv K*K*Cin*Cout, dense in*out; no biases, BN or thresholds)

    @property
    def latency_us(self) -> float:
        return self.latency_cycles / self.clock_mhz

    @property
    def power_w(self) -> float:
        return self.static_w + self.dynamic_w

    @property
    def energy_mj(self) -> float:
        """Energy of one inference at batch 1: power x latency, mJ."""
        return float(energy_batch1_mj(self.power_w, self.latency_us))

    @property
    def energy_stream_mj(self) -> float:
        """Energy per frame when streaming: power / FPS, mJ."""
        return float(energy_stream_mj(self.power_w, self.fps))

    def to_dict(self) -> dict[str, Any]:
        return {
            "board": self.board, "template": self.template, "clock_mhz": self.clock_mhz,
            "max_util": self.max_util,
            "layers": [layer.to_dict() for layer in self.layers],
            "ii_cycles": self.ii_cycles, "fps": self.fps, "latency_cycles": self.latency_cycles,
            "latency_us": self.latency_us, "resources": self.resources, "capacity": self.capacity,
            "utilization": self.utilization, "feasible": self.feasible, "violations": self.violations,
            "simulated": self.simulated, "analytical_ii_cycles": self.analytical_ii_cycles,
            "power_w": self.power_w, "static_w": self.static_w, "dynamic_w": self.dynamic_w,
            "activity": self.activity, "energy_mj": self.energy_mj, "energy_stream_mj": self.energy_stream_mj,
            "model_bits": self.model_bits, "model_params": self.model_params,
        }


def _shape_text(design: Design, layer_name: str) -> str:
    for layer, (i, o) in zip(design.network.layers, design.network.shapes()):
        if layer.name == layer_name:
            return f"{i.channels}x{i.height}x{i.width} -> {o.channels}x{o.height}x{o.width}"
    return ""


def _violations(design: Design, board: Board, result: BatchResult, fps: float, target_fps: float | None) -> list[str]:
    out = [st.rule + f" (PE={design.hardware.fold(st.layer).pe}, SIMD={design.hardware.fold(st.layer).simd})"
           for st in result.stages if not bool(st.legal[0])]
    for st in result.stages:
        width = int(st.width[0])
        if bool(st.active[0]) and too_wide(width):
            out.append(f"{st.layer}: {st.name} needs a {width:,}-bit word, over the {AP_INT_MAX_W:,}-bit ap_uint "
                       "limit of Vitis HLS (AP_INT_MAX_W); lower its SIMD or PE")
    for layer in design.network.layers:
        f = design.hardware.fold(layer.name)
        uses_uram = any(st.layer == layer.name and int(st.res.URAM[0]) > 0 for st in result.stages)
        if design.hardware.template == "dataflow" and f.weight_memory == "uram" and board.URAM == 0 and uses_uram:
            out.append(f"{layer.name}: weight_memory uram, but board {board.name} has no URAM")
    for k in RESOURCE_NAMES:
        used, cap = int(result.resources[k][0]), board.capacity(k)
        limit = result.max_util * cap
        if used > limit and not (k == "URAM" and cap == 0 and any("no URAM" in v for v in out)):
            out.append(f"{k}: {used:,} needed, {int(limit):,} allowed ({result.max_util:.0%} of {cap:,})")
    lutram, lutram_cap = int(result.lutram[0]), board.lutram_capacity
    if lutram > result.max_util * lutram_cap:
        out.append(f"LUTRAM: {lutram:,} LUTs of distributed RAM needed, {int(result.max_util * lutram_cap):,} allowed "
                   f"({result.max_util:.0%} of the {lutram_cap:,} memory-capable LUTs); use weight_memory bram")
    if target_fps and fps < target_fps:
        out.append(f"FPS {fps:,.0f} is below the target")
    return out


def estimate(design: Design, board: Board | None = None, max_util: float = DEFAULT_MAX_UTIL,
             target_fps: float | None = None, simulate: bool = False) -> Estimate:
    """Estimate one design on its board (or the board given). Never raises for an infeasible
    design: `feasible` is False and `violations` says why, one line per problem.

    simulate (dataflow): size the FIFOs by the cycle-level simulation (hw_space.simulate), price
    them at those depths (the depths `codesign emit` writes) and report the simulated II and
    first-frame latency instead of the analytical II and the sum-of-stages bound."""
    board = board or load_board(design.hardware.board)
    sim = None
    if simulate and design.hardware.template == "dataflow" and \
            bool(evaluate_design(design, board, max_util).legal[0]):
        from hw_space.simulate import size_fifos

        sim = size_fifos(design, board)
    result = evaluate_design(design, board, max_util, target_fps, fifo_depths=None if sim is None else [sim.depths])
    hw = design.hardware
    layers = []
    for st in result.stages:
        if not bool(st.active[0]):
            continue  # a width converter (and its FIFO) that this folding does not need
        # the stage's kind says which of pe, simd, shape and depth it reports
        d = {k: (v if isinstance(v, str) else int(np.asarray(v).reshape(-1)[0])) for k, v in st.detail.items()}
        shown = st.op.summary(d, int(st.width[0])) if st.op is not None else {}
        pe, simd, depth = shown.get("pe"), shown.get("simd"), shown.get("depth")
        shape = shown.get("shape") or _shape_text(design, st.layer)
        layers.append(LayerEstimate(
            name=st.name, layer=st.layer, kind=st.kind, template=st.template, cycles=int(st.cycles[0]),
            resources={k: int(v[0]) for k, v in st.res.as_dict().items()}, pe=pe, simd=simd, shape=shape,
            width=int(st.width[0]), depth=depth))
    ii, latency = int(result.ii_cycles[0]), int(result.latency_cycles[0])
    if sim is not None:
        ii, latency = sim.ii_cycles, sim.latency_cycles
    fps = result.clock_mhz * 1e6 / max(ii, 1)
    violations = _violations(design, board, result, fps, target_fps)
    if sim is not None and sim.deadlock:
        violations.append("the cycle-level simulation of the stream schedule deadlocks")
    return Estimate(
        board=board.name, template=hw.template, clock_mhz=result.clock_mhz, max_util=max_util,
        ii_cycles=ii, fps=fps, latency_cycles=latency, simulated=sim is not None,
        analytical_ii_cycles=int(result.ii_cycles[0]),
        resources={k: int(v[0]) for k, v in result.resources.items()},
        capacity={k: board.capacity(k) for k in RESOURCE_NAMES},
        utilization={k: float(v[0]) for k, v in result.utilization.items()},
        feasible=bool(result.feasible[0]) and not violations, violations=violations, layers=layers,
        static_w=float(result.power.static_w[0]), dynamic_w=float(result.power.dynamic_w[0]),
        activity=result.power.activity, model_bits=int(result.model_bits[0]),
        model_params=int(sum(design.network.weight_counts())))


ENERGY_KEYS = ("power_w", "static_w", "dynamic_w", "activity", "energy_mj", "energy_stream_mj", "model_bits",
               "model_params")


def energy_fields(est: dict[str, Any], design: Design, board: Board | None = None) -> dict[str, Any]:
    """The power, energy and model-size keys of an estimate dict that lacks them (one written before
    they existed), from its resources, clock, latency and FPS and the design's network."""
    board = board or load_board(design.hardware.board)
    power = estimate_power(est.get("resources") or {}, float(est["clock_mhz"]), board)
    total = float(power.total_w[0])
    wbits = [layer.weight_bits if layer.is_compute else 0 for layer in design.network.layers]
    counts = design.network.weight_counts()
    return {"power_w": total, "static_w": float(power.static_w[0]), "dynamic_w": float(power.dynamic_w[0]),
            "activity": power.activity,
            "energy_mj": float(energy_batch1_mj(total, float(est["latency_cycles"]) / float(est["clock_mhz"]))),
            "energy_stream_mj": float(energy_stream_mj(total, float(est["fps"]))),
            "model_bits": int(sum(w * c for w, c in zip(wbits, counts))), "model_params": int(sum(counts))}


def format_estimate(est: Estimate) -> str:
    """A human-readable table of the estimate, per stage then totals."""
    head = f"{'stage':<22}{'kind':<10}{'shape':<22}{'PE':>5}{'SIMD':>6}{'cycles':>12}{'LUT':>9}{'FF':>9}" \
           f"{'BRAM18':>8}{'URAM':>6}{'DSP':>6}"
    lines = [f"board {est.board}, template {est.template}, clock {est.clock_mhz:g} MHz "
             f"(analytical estimate, not synthesis)", head, "-" * len(head)]
    for l in est.layers:
        r = l.resources
        lines.append(f"{l.name:<22}{l.kind:<10}{l.shape:<22}{'' if l.pe is None else l.pe:>5}"
                     f"{'' if l.simd is None else l.simd:>6}{l.cycles:>12,}{r['LUT']:>9,}{r['FF']:>9,}"
                     f"{r['BRAM18']:>8,}{r['URAM']:>6,}{r['DSP']:>6,}")
    lines.append("-" * len(head))
    how = " (simulated; the slowest stage takes " f"{est.analytical_ii_cycles:,})" if est.simulated else ""
    lines.append(f"initiation interval {est.ii_cycles:,} cycles -> {est.fps:,.1f} FPS at {est.clock_mhz:g} MHz{how}")
    bound = ("simulated first frame, FIFOs sized by simulation" if est.simulated else
             "upper bound: the sum of stage cycles along the longest path" if est.template == "dataflow" else
             "layers in sequence")
    lines.append(f"latency {est.latency_cycles:,} cycles = {est.latency_us:,.1f} us ({bound})")
    for k in RESOURCE_NAMES:
        lines.append(f"{k:<7}{est.resources[k]:>10,} / {est.capacity[k]:>9,}  ({est.utilization[k]:6.1%})")
    lines.append(statement_line(est.template))
    lines.append(f"power_w {est.power_w:.4f} W (estimate: static {est.static_w:.4f} + dynamic {est.dynamic_w:.4f} "
                 f"at {est.activity:.1%} toggle rate; programmable logic only, see docs/cost-model.md)")
    lines.append(f"energy_mj {est.energy_mj:.6g} mJ per inference at batch 1 (power x latency); "
                 f"streaming: {est.energy_stream_mj:.6g} mJ per frame (power / FPS)")
    lines.append(f"model_bits {est.model_bits:,} ({est.model_params:,} weights x their weight bits)")
    if est.feasible:
        lines.append(f"feasible: yes (every resource within {est.max_util:.0%} of the board)")
    else:
        lines.append("feasible: NO")
        lines.extend(f"  - {v}" for v in est.violations)
    return "\n".join(lines)


__all__ = ["ENERGY_KEYS", "Estimate", "LayerEstimate", "energy_fields", "estimate", "format_estimate"]
