"""The whole-design cost model, vectorized: a fold over the hardware layers of one network skeleton.

`CostModel(network, board)` builds the hardware stages of a network once; `evaluate_*` then
scores N foldings / bit settings of that skeleton at once with numpy (arrays of shape (N, L),
L = number of network layers). The per-design `estimate()` is this same code with N = 1, so the
search's inner loop and the user's report never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hw_space.boards import Board
from hw_space.design import Design, Network
from hw_space.layers import (
    FIFO_REGISTER_DEPTH,
    MAC_CODES,
    MVAU,
    PLATFORM_SHELL,
    Fifo,
    MaxPool,
    Resources,
    SlidingWindow,
    StreamIO,
    TiledConv,
    TiledEngine,
    TiledPool,
    WidthConverter,
    dot_bits,
    largest_divisor_at_most,
)
from hw_space.memory import MEM_CODES, cdiv
from hw_space.widths import AP_INT_MAX_W

DEFAULT_MAX_UTIL = 0.85
RESOURCE_NAMES = Resources.NAMES


@dataclass
class StageResult:
    """Cycles and resources of one hardware stage for every design in the batch."""

    name: str
    layer: str
    kind: str
    template: str
    cycles: np.ndarray
    res: Resources
    legal: np.ndarray
    rule: str = ""
    width: np.ndarray | int = 0  # widest ap_uint the kernel instantiates (bits); an (N,) array after init
    active: np.ndarray | None = None  # False where the stage is not built (a width converter not needed)
    detail: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.active is None:
            self.active = np.ones(np.shape(self.cycles), dtype=bool)
        self.width = np.broadcast_to(np.asarray(self.width, dtype=np.int64), np.shape(self.cycles))


@dataclass
class BatchResult:
    """Whole-design figures for N designs: (N,) arrays plus the per-stage breakdown."""

    stages: list[StageResult]
    ii_cycles: np.ndarray
    latency_cycles: np.ndarray
    fps: np.ndarray
    resources: dict[str, np.ndarray]
    utilization: dict[str, np.ndarray]
    legal: np.ndarray
    fits: np.ndarray
    meets_target: np.ndarray
    clock_mhz: float
    max_util: float
    lutram: np.ndarray

    @property
    def feasible(self) -> np.ndarray:
        return self.legal & self.fits & self.meets_target

    def __len__(self) -> int:
        return len(self.ii_cycles)


def _col(values, n: int, L: int, default) -> np.ndarray:
    """Broadcast a per-layer array (L,), a batch (N, L) or None (the default) to (N, L) int64."""
    if values is None:
        values = default
    arr = np.asarray(values, dtype=np.int64)
    return np.broadcast_to(arr, (n, L)) if arr.ndim <= 1 else arr


class CostModel:
    """Analytical cycles and resources of one network skeleton on one board, for batches of designs.

    The skeleton fixes shapes (channels, kernels, strides); folding, memory style, multiplier style
    and per-layer bits vary per design. target_fps (optional) makes designs below it infeasible.
    """

    def __init__(self, network: Network, board: Board, clock_mhz: float | None = None,
                 max_util: float = DEFAULT_MAX_UTIL, target_fps: float | None = None):
        if not 0 < max_util <= 1:
            raise ValueError(f"max_util must be in (0, 1], got {max_util}")
        self.network = network
        self.board = board
        self.clock_mhz = float(clock_mhz or board.clock_mhz)
        self.max_util = max_util
        self.target_fps = target_fps
        self.L = len(network.layers)
        self.shapes = network.shapes()
        # maxpool stages default to all channels per cycle (FINN's StreamingMaxPool takes a whole
        # pixel per cycle; comparators are cheap), every other layer to PE = SIMD = 1
        self.default_pe = np.array([s[0].channels if l.type == "maxpool" else 1
                                    for l, s in zip(network.layers, self.shapes)], dtype=np.int64)
        self.weight_bits = np.array([l.weight_bits if l.is_compute else 0 for l in network.layers], dtype=np.int64)
        self.act_bits = np.array([(l.act_bits or 0) if l.is_compute else 0 for l in network.layers], dtype=np.int64)
        # index of the compute layer whose activations feed layer j (-1: the network input)
        self.feeder = network.feeders()
        self._build_dataflow()
        self._build_tiled()

    # ------------------------------------------------------------------ skeletons
    def _build_dataflow(self) -> None:
        self.df_layers: list[tuple[int, object, object]] = []  # (layer index, swg or None, mvau/pool)
        for j, (layer, (ishape, oshape)) in enumerate(zip(self.network.layers, self.shapes)):
            if layer.type == "conv":
                p = layer.padding
                swg = SlidingWindow(f"{layer.name}_swg", ishape.height + 2 * p, ishape.width + 2 * p,
                                    ishape.channels, layer.kernel, layer.stride, oshape.height, oshape.width)
                mvau = MVAU(layer.name, layer.kernel * layer.kernel * ishape.channels, layer.out_channels,
                            oshape.height * oshape.width)
                self.df_layers.append((j, swg, mvau))
            elif layer.type == "dense":
                self.df_layers.append((j, None, MVAU(layer.name, ishape.size, layer.out_features, 1)))
            else:
                self.df_layers.append((j, None, MaxPool(layer.name, ishape.height, ishape.width, ishape.channels,
                                                        layer.kernel, layer.stride)))
        self._df_index = {j: k for k, (j, _, _) in enumerate(self.df_layers)}
        net = self.network
        self.io_in = StreamIO("input", net.input.channels * net.input.height * net.input.width, "input")
        self.io_out = StreamIO("output", net.num_classes, "output")

    def _build_tiled(self) -> None:
        self.tiled_layers: list[tuple[int, object]] = []
        max_k = max_mw = max_mh = 1
        for j, (layer, (ishape, _)) in enumerate(zip(self.network.layers, self.shapes)):
            if layer.type == "conv":
                p = layer.padding
                op = TiledConv(layer.name, ishape.height + 2 * p, ishape.width + 2 * p, ishape.channels,
                               layer.out_channels, layer.kernel, layer.stride)
                max_k = max(max_k, layer.kernel)
                max_mw = max(max_mw, layer.kernel * layer.kernel * ishape.channels)
                max_mh = max(max_mh, layer.out_channels)
            elif layer.type == "dense":
                op = TiledConv(layer.name, 1, 1, ishape.size, layer.out_features, 1, 1)
                max_mw = max(max_mw, ishape.size)
                max_mh = max(max_mh, layer.out_features)
            else:
                op = TiledPool(layer.name, ishape.size)
            self.tiled_layers.append((j, op))
        self.engine = TiledEngine(max_k, max_mw, max_mh)

    # ------------------------------------------------------------------ helpers
    def _input_bits(self, abits: np.ndarray) -> np.ndarray:
        """(N, L) bits of the values entering each layer."""
        n = abits.shape[0]
        cols = [abits[:, f] if f >= 0 else np.full(n, self.network.input.bits, dtype=np.int64) for f in self.feeder]
        return np.stack(cols, axis=1)

    def _logit_bits(self, wbits: np.ndarray, in_bits: np.ndarray) -> np.ndarray:
        """Bits per output logit on the stream: the last accumulator rounded up to whole bytes."""
        last = self.L - 1
        mw = self.shapes[last][0].size
        return 8 * cdiv(dot_bits(mw, wbits[:, last], in_bits[:, last]), 8)

    @staticmethod
    def _shell_stage(n: int) -> StageResult:
        shell = Resources(*(np.full(n, PLATFORM_SHELL[k], dtype=np.int64) for k in RESOURCE_NAMES),
                          LUTRAM=np.zeros(n, dtype=np.int64))
        return StageResult("platform", "platform", "shell", "axi_dma", np.zeros(n, dtype=np.int64), shell,
                           np.ones(n, dtype=bool))

    def _finish(self, stages: list[StageResult], n: int, ii: np.ndarray, latency: np.ndarray) -> BatchResult:
        total = Resources.zeros(n)
        for st in stages:
            total = total + st.res
        legal = np.ones(n, dtype=bool)
        narrow = np.ones(n, dtype=bool)
        for st in stages:
            legal &= st.legal
            narrow &= st.width <= AP_INT_MAX_W
        resources = total.as_dict()
        util = {}
        fits = np.ones(n, dtype=bool)
        for k in RESOURCE_NAMES:
            cap = self.board.capacity(k)
            util[k] = resources[k] / cap if cap else np.where(resources[k] > 0, np.inf, 0.0)
            fits &= resources[k] <= self.max_util * cap
        # distributed RAM must fit the memory-capable (SLICEM) LUTs, whatever the total LUT count
        lutram = total.LUTRAM
        fits &= lutram <= self.max_util * self.board.lutram_capacity
        fps = self.clock_mhz * 1e6 / np.maximum(ii, 1)
        meets = fps >= self.target_fps if self.target_fps else np.ones(n, dtype=bool)
        return BatchResult(stages, ii, latency, fps, resources, util, legal & narrow, fits, meets, self.clock_mhz,
                           self.max_util, lutram)

    # ------------------------------------------------------------------ dataflow template
    def evaluate_dataflow(self, pe=None, simd=None, weight_bits=None, act_bits=None, mem=None, mac=None,
                          n: int | None = None, swg_simd=None, fifo_depths=None) -> BatchResult:
        """Score N dataflow designs. Each argument is (N, L), (L,) or None (PE = SIMD = 1, the
        network's bits, 'auto' memory and multipliers). Entries of maxpool layers: pe only (default:
        all channels). swg_simd: the sliding windows' SIMD (0 or None: layers.largest_divisor_at_most).
        fifo_depths: (N, F) depths of the F potential FIFOs in stream order (None: 2 words each,
        the smallest full-rate FIFO; the per-design estimate passes the simulated depths).

        The stages are the kernels the HLS writer emits, in stream order, each followed by the FIFO
        it writes into; width converters (and the FIFO after them) are inactive where the two
        sides' words hold the same number of elements."""
        arrays = [a for a in (pe, simd, weight_bits, act_bits, mem, mac, swg_simd) if a is not None and np.ndim(a) == 2]
        n = n or (arrays[0].shape[0] if arrays else 1)
        L = self.L
        pe, simd = _col(pe, n, L, self.default_pe), _col(simd, n, L, 1)
        wb, ab = _col(weight_bits, n, L, self.weight_bits), _col(act_bits, n, L, self.act_bits)
        mem, mac = _col(mem, n, L, 0), _col(mac, n, L, 0)
        swg_simd = _col(swg_simd, n, L, 0)
        in_bits = self._input_bits(ab)
        axi = self.board.axi_width
        ones = np.ones(n, dtype=bool)
        # (stage, elements per output word, bits per output element) of every kernel in stream order
        flow: list[tuple[StageResult, np.ndarray, np.ndarray]] = []

        def add(stage: StageResult, out_elems: np.ndarray, out_bits: np.ndarray) -> None:
            flow.append((stage, np.broadcast_to(out_elems, (n,)), np.broadcast_to(out_bits, (n,))))

        def convert(name: str, layer: str, total: int, n_in, n_out, bits) -> None:
            dwc = WidthConverter(name, total)
            add(StageResult(name, layer, dwc.kind, dwc.template, dwc.cycles(n_in, n_out), dwc.resources(n_in, n_out, bits),
                            ones.copy(), width=dwc.width(n_in, n_out, bits), active=dwc.active(n_in, n_out),
                            detail={"in_elems": n_in, "out_elems": n_out, "total": total}), n_out, bits)

        in_el_bits = np.full(n, self.network.input.bits, dtype=np.int64)
        first_elems = self._consumer_elems(0, pe, simd, swg_simd)
        add(StageResult("input", "input", "io", self.io_in.template, self.io_in.cycles(in_el_bits, axi, first_elems),
                        self.io_in.resources(in_el_bits, axi, first_elems), ones.copy(),
                        width=self.io_in.width(in_el_bits, axi, first_elems),
                        detail={"per_word": self.io_in.per_word(in_el_bits, axi), "elems": first_elems,
                                "total": self.io_in.elements}), first_elems, in_el_bits)
        for j, swg, op in self.df_layers:
            name = self.network.layers[j].name
            prev_elems, prev_bits = flow[-1][1], flow[-1][2]
            want = self._consumer_elems(j, pe, simd, swg_simd)
            if j > 0:
                convert(f"{name}_in_dwc", name, self.shapes[j][0].size, prev_elems, want, prev_bits)
            if isinstance(op, MaxPool):
                p = pe[:, j]
                add(StageResult(f"{name}_rows", name, "pool_rows", op.template, op.cycles(p), Resources.zeros(n),
                                op.legal(p), f"{name}: channels ({op.channels}) must be divisible by PE",
                                width=op.width(p, in_bits[:, j]),
                                detail={"outer": op.ifm_h, "n": op.ifm_w, "inner": cdiv(op.channels, p), "k": op.kernel,
                                        "stride": op.stride, "pe": p}), p, in_bits[:, j])
                add(StageResult(name, name, op.kind, op.template, op.cols_cycles(p), op.resources(p, in_bits[:, j]),
                                op.legal(p), f"{name}: channels ({op.channels}) must be divisible by PE",
                                width=op.width(p, in_bits[:, j]),
                                detail={"outer": 1, "n": op.ifm_h, "inner": op.ofm_w * cdiv(op.channels, p), "k": op.kernel,
                                        "stride": op.stride, "pe": p}), p, in_bits[:, j])
                continue
            mvau_in_bits = in_bits[:, j]
            if swg is not None:
                s = self._swg_simd(j, simd, swg_simd)
                # a bipolar map with padding is widened to 2-bit codes so that padding can be 0
                out_b = np.where((in_bits[:, j] == 1) & (self.network.layers[j].padding > 0), 2, in_bits[:, j])
                add(StageResult(swg.name, name, swg.kind, swg.template, swg.cycles(s),
                                swg.resources(s, in_bits[:, j]), swg.legal(s),
                                f"{name}: input channels ({swg.channels}) must be divisible by the sliding window's SIMD",
                                width=swg.width(s, in_bits[:, j], out_b),
                                detail={"simd": s, "h": swg.ifm_h, "w": swg.ifm_w, "c": swg.channels, "k": swg.kernel,
                                        "stride": swg.stride, "pad": self.network.layers[j].padding}), s, out_b)
                convert(f"{name}_dwc", name, swg.ofm_h * swg.ofm_w * swg.kernel * swg.kernel * swg.channels,
                        s, simd[:, j], out_b)
                mvau_in_bits = out_b
            last = j == L - 1
            out_bits = dot_bits(op.mw, wb[:, j], mvau_in_bits) if last else ab[:, j]
            add(StageResult(
                name, name, op.kind, op.template, op.cycles(pe[:, j], simd[:, j], wb[:, j], mem[:, j], axi),
                op.resources(pe[:, j], simd[:, j], wb[:, j], mvau_in_bits, ab[:, j], mem[:, j], mac[:, j]),
                op.legal(pe[:, j], simd[:, j]),
                f"{name}: MH ({op.mh}) must be divisible by PE and MW ({op.mw}) by SIMD",
                width=op.width(pe[:, j], simd[:, j], wb[:, j], mvau_in_bits, out_bits),
                detail={"mw": op.mw, "mh": op.mh, "reps": op.ofm, "pe": pe[:, j], "simd": simd[:, j]}), pe[:, j], out_bits)
        last_elems, last_bits = flow[-1][1], flow[-1][2]
        out_bits = self._logit_bits(wb, in_bits)
        add(StageResult("output", "output", "io", self.io_out.template,
                        self.io_out.cycles(out_bits, axi, last_elems), self.io_out.resources(out_bits, axi, last_elems),
                        ones.copy(), width=np.maximum(self.io_out.port_bits(out_bits, axi), last_elems * last_bits),
                        detail={"per_word": self.io_out.per_word(out_bits, axi), "elems": last_elems,
                                "total": self.io_out.elements}), last_elems, out_bits)
        fifos = self._fifos(flow[:-1], n, fifo_depths)
        stages: list[StageResult] = []
        for k, (st, _, _) in enumerate(flow):
            stages.append(st)
            if k < len(fifos):
                stages.append(fifos[k])
        stages.append(self._shell_stage(n))
        cycles = np.stack([st.cycles for st in stages], axis=1)
        # Streaming stages overlap: the slowest sets the initiation interval; the sum of all stage
        # cycles bounds the latency of one frame from above (stages start before their producers end;
        # hw_space.simulate gives the simulated latency).
        return self._finish(stages, n, cycles.max(axis=1), cycles.sum(axis=1))

    def _fifos(self, flow, n: int, depths) -> list[StageResult]:
        """The FIFO after every kernel but the output: its word is the kernel's output word."""
        F = len(flow)
        depths = np.full((n, F), FIFO_REGISTER_DEPTH, dtype=np.int64) if depths is None else \
            np.broadcast_to(np.asarray(depths, dtype=np.int64), (n, F))
        out = []
        for k, (st, elems, bits) in enumerate(flow):
            width = elems * bits
            fifo = Fifo(f"{st.name}_fifo")
            res = fifo.resources(width, depths[:, k], st.active)
            out.append(StageResult(fifo.name, st.layer, fifo.kind, fifo.template, np.zeros(n, dtype=np.int64), res,
                                   np.ones(n, dtype=bool), width=np.where(st.active, width, 0), active=st.active.copy(),
                                   detail={"depth": depths[:, k], "producer": st.name}))
        return out

    def _swg_simd(self, j: int, simd: np.ndarray, swg_simd: np.ndarray) -> np.ndarray:
        swg = self.df_layers[self._df_index[j]][1]
        return np.where(swg_simd[:, j] > 0, swg_simd[:, j], largest_divisor_at_most(swg.channels, simd[:, j]))

    def _consumer_elems(self, j: int, pe: np.ndarray, simd: np.ndarray, swg_simd: np.ndarray) -> np.ndarray:
        """Elements per word that layer j's first kernel reads."""
        layer = self.network.layers[j]
        if layer.type == "conv":
            return self._swg_simd(j, simd, swg_simd)
        return pe[:, j] if layer.type == "maxpool" else simd[:, j]

    def evaluate_designs(self, designs: list[Design], fifo_depths=None) -> BatchResult:
        """Score designs that share this skeleton (same template) in one vectorized call
        (fifo_depths: see evaluate_dataflow)."""
        if not designs:
            raise ValueError("no designs to evaluate")
        template = designs[0].hardware.template
        if any(d.hardware.template != template for d in designs):
            raise ValueError("evaluate_designs needs designs of one template")
        cols = [design_arrays(d) for d in designs]
        stack = {k: np.stack([c[k] for c in cols]) for k in cols[0]}
        if template == "tiled":
            return self.evaluate_tiled(stack["tm"], stack["tn"], stack["tr"], stack["tc"], stack["ports"],
                                       stack["weight_bits"], stack["act_bits"])
        return self.evaluate_dataflow(stack["pe"], stack["simd"], stack["weight_bits"], stack["act_bits"],
                                      stack["mem"], stack["mac"], swg_simd=stack["swg_simd"], fifo_depths=fifo_depths)

    # ------------------------------------------------------------------ tiled template
    def evaluate_tiled(self, tm, tn, tr, tc, ports=64, weight_bits=None, act_bits=None) -> BatchResult:
        """Score N tiled-engine designs: tm, tn, tr, tc are (N,) arrays; ports (N, 3) or a scalar
        width for the input, weight and output ports; layers run one after another."""
        tm, tn, tr, tc = (np.atleast_1d(np.asarray(v, dtype=np.int64)) for v in (tm, tn, tr, tc))
        n = max(len(tm), len(tn), len(tr), len(tc))
        tm, tn, tr, tc = (np.broadcast_to(v, (n,)) for v in (tm, tn, tr, tc))
        ports = np.broadcast_to(np.asarray(ports, dtype=np.int64), (n, 3)) if np.ndim(ports) != 2 else np.asarray(ports)
        L = self.L
        wb, ab = _col(weight_bits, n, L, self.weight_bits), _col(act_bits, n, L, self.act_bits)
        in_bits = self._input_bits(ab)
        logit_bits = self._logit_bits(wb, in_bits)
        stages: list[StageResult] = []
        ok = (tm >= 1) & (tn >= 1) & (tr >= 1) & (tc >= 1)
        compute = [j for j, layer in enumerate(self.network.layers) if layer.is_compute]
        for j, op in self.tiled_layers:
            name = self.network.layers[j].name
            if isinstance(op, TiledPool):
                cyc = op.cycles(in_bits[:, j], ports[:, 2])
            else:
                out_bits = logit_bits if j == L - 1 else ab[:, j]
                cyc = op.cycles(tm, tn, tr, tc, in_bits[:, j], wb[:, j], out_bits, ports[:, 0], ports[:, 1], ports[:, 2])
            stages.append(StageResult(name, name, op.kind, op.template, cyc, Resources.zeros(n), np.ones(n, dtype=bool)))
        w_max = wb[:, compute].max(axis=1)
        a_max = in_bits[:, compute].max(axis=1)
        o_max = ab[:, compute].max(axis=1)
        eng = self.engine.resources(tm, tn, tr, tc, w_max, a_max, o_max)
        stages.append(StageResult("engine", "engine", "engine", self.engine.template, np.zeros(n, dtype=np.int64),
                                  eng, ok, "engine: tm, tn, tr and tc must be >= 1"))
        stages.append(self._shell_stage(n))
        total = np.stack([st.cycles for st in stages], axis=1).sum(axis=1)
        # Layer after layer on one engine: a frame's latency is the sum, and so is the II.
        return self._finish(stages, n, total, total)


def design_arrays(design: Design) -> dict[str, np.ndarray]:
    """The per-layer arrays (L,) of one design, in the form CostModel.evaluate_* takes."""
    layers = design.network.layers
    hw = design.hardware
    folds = [hw.fold(l.name) for l in layers]
    shapes = design.network.shapes()
    out = {
        "pe": np.array([shapes[j][0].channels if l.type == "maxpool" and l.name not in hw.layers else f.pe
                        for j, (f, l) in enumerate(zip(folds, layers))], dtype=np.int64),
        "simd": np.array([f.simd if l.is_compute else 1 for f, l in zip(folds, layers)], dtype=np.int64),
        "weight_bits": np.array([l.weight_bits if l.is_compute else 0 for l in layers], dtype=np.int64),
        "act_bits": np.array([(l.act_bits or 0) if l.is_compute else 0 for l in layers], dtype=np.int64),
        "mem": np.array([MEM_CODES[f.weight_memory] for f in folds], dtype=np.int64),
        "mac": np.array([MAC_CODES[f.mac] for f in folds], dtype=np.int64),
        "swg_simd": np.array([(f.swg_simd or 0) if l.type == "conv" else 0 for f, l in zip(folds, layers)], dtype=np.int64),
    }
    e = hw.engine
    if e is not None:
        out.update(tm=np.int64(e.tm), tn=np.int64(e.tn), tr=np.int64(e.tr), tc=np.int64(e.tc),
                   ports=np.array([e.input_port, e.weight_port, e.output_port], dtype=np.int64))
    return out


def evaluate_design(design: Design, board: Board, max_util: float = DEFAULT_MAX_UTIL,
                    target_fps: float | None = None, fifo_depths=None) -> BatchResult:
    """One design through the vectorized model (N = 1)."""
    model = CostModel(design.network, board, design.hardware.clock_mhz, max_util, target_fps)
    return model.evaluate_designs([design], fifo_depths)
