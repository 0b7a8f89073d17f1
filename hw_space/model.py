"""The whole-design cost model, vectorized: a fold over the hardware layers of one network skeleton.

`CostModel(network, board)` builds the hardware stages of a network once; `evaluate_*` then
scores N foldings / bit settings of that skeleton at once with numpy (arrays of shape (N, L),
L = number of network layers). The per-design `estimate()` is this same code with N = 1, so the
search's inner loop and the user's report never disagree.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from hw_space.boards import Board
from hw_space.design import Design, Network
from hw_space.layers import (
    FIFO_REGISTER_DEPTH,
    LAYOUT_CODES,
    MAC_CODES,
    DuplicateStreams,
    Fifo,
    FoldArrays,
    HwKind,
    PlatformShell,
    Resources,
    StreamIO,
    TiledEngine,
    WidthConverter,
)
from hw_space.lowering import FoldSpec, fold_specs, lower_dataflow, lower_tiled
from hw_space.memory import MEM_CODES
from hw_space.power import PowerBreakdown, energy_batch1_mj, estimate_power
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
    op: HwKind | None = None  # the hardware kind behind the stage (its schedule and report fields)
    # the stages it reads, by input port: a FIFO reads the kernel or adapter that writes it, a kernel or
    # adapter its input FIFO(s); the input adapter and the platform shell read nothing. An inactive
    # stage keeps its reads (the simulator treats it as a wire), so the stream graph is the same for
    # every design of a batch.
    reads: tuple[str, ...] = ()

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
    power: PowerBreakdown  # estimated PL power (hw_space.power)
    model_bits: np.ndarray  # bits of all weights: sum over layers of weights x weight bits

    @property
    def feasible(self) -> np.ndarray:
        return self.legal & self.fits & self.meets_target

    @property
    def latency_us(self) -> np.ndarray:
        return self.latency_cycles / self.clock_mhz

    @property
    def power_w(self) -> np.ndarray:
        return self.power.total_w

    @property
    def energy_mj(self) -> np.ndarray:
        """Energy per inference at batch 1 (power x latency), mJ."""
        return energy_batch1_mj(self.power_w, self.latency_us)

    def __len__(self) -> int:
        return len(self.ii_cycles)


@dataclass(frozen=True)
class _Node:
    """A kernel or adapter of the stream graph: its layer (index, -1 for the adapters and the input's
    duplicator; name as StageResult.layer), its kind and the nodes whose streams it reads, by port."""

    j: int
    layer: str
    kind: HwKind
    inputs: tuple[int, ...]


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
    The stages come from the lowering registries (hw_space.lowering); every stage is scored
    through the one interface of hw_space.layers.HwKind.
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
        self.weight_bits = np.array([l.weight_bits if l.is_compute else 0 for l in network.layers], dtype=np.int64)
        # act_bits of compute layers, and of average pools that set their own (0: none)
        self.act_bits = np.array([l.act_bits or 0 for l in network.layers], dtype=np.int64)
        # index of the compute layer whose activations feed layer j (-1: the network input)
        self.feeder = network.feeders()
        self.weight_counts = np.array(network.weight_counts(), dtype=np.int64)  # (L,): learned weights per layer
        self._build_dataflow()
        self._build_tiled()

    # ------------------------------------------------------------------ skeletons
    def _build_dataflow(self) -> None:
        """The stream graph: the input adapter, each layer's stages behind one width converter per
        input edge (none between the input adapter and a first layer it alone feeds), a duplicator
        after every layer (or the input) that several stages read, the output adapter; then one FIFO
        per edge. Nodes are in a topological order that, for a chain, is the stream order."""
        per_layer = lower_dataflow(self.network)
        self.fold_specs: list[FoldSpec] = [FoldSpec.of(kinds) for kinds in per_layer]
        # a layer the design leaves out takes its kinds' defaults (a max-pool: all channels per cycle)
        self.default_pe = np.array([spec.default("pe") for spec in self.fold_specs], dtype=np.int64)
        net = self.network
        self.io_in = StreamIO("input", net.input.channels * net.input.height * net.input.width, "input")
        self.io_out = StreamIO("output", net.num_classes, "output")
        # how many input ports read each layer's values (key -1: the network input); an add may read
        # one layer on both ports, which makes two edges
        readers = Counter(p for j in net.order() for p in net.producers(j))
        nodes: list[_Node] = []

        def add(j: int, layer: str, kind: HwKind, inputs: tuple[int, ...]) -> int:
            nodes.append(_Node(j, layer, kind, inputs))
            return len(nodes) - 1

        def fork(p: int, layer: str, tail: int) -> int:
            """The node whose stream carries layer p's values: a duplicator after `tail` if several read them."""
            n = readers[p]
            if n < 2:
                return tail
            size = self.shapes[p][1].size if p >= 0 else self.io_in.elements
            return add(p, layer, DuplicateStreams(f"{layer}_dup", size, n), (tail,))

        tails = {-1: fork(-1, "input", add(-1, "input", self.io_in, ()))}
        input_forks = readers[-1] > 1
        for j, (layer, kinds) in enumerate(zip(net.layers, per_layer)):
            ports = []
            for q, p in enumerate(net.producers(j)):
                if p < 0 and not input_forks:  # the input adapter writes this layer's word itself
                    ports.append(tails[p])
                    continue
                name = f"{layer.name}_in_dwc" if q == 0 else f"{layer.name}_in{q}_dwc"
                ports.append(add(j, layer.name, WidthConverter(name, self.shapes[j][0].size), (tails[p],)))
            at = add(j, layer.name, kinds[0], tuple(ports))
            for kind in kinds[1:]:
                at = add(j, layer.name, kind, (at,))
            tails[j] = fork(j, layer.name, at)
        add(-1, "output", self.io_out, (tails[self.L - 1],))
        self.df_nodes = nodes
        # one FIFO per edge, in the order its producer comes (then its consumer and port): (src, dst, port)
        self.df_edges = sorted((src, k, q) for k, node in enumerate(nodes) for q, src in enumerate(node.inputs))
        out_degree = np.bincount([e[0] for e in self.df_edges], minlength=len(nodes))
        seen = np.zeros(len(nodes), dtype=np.int64)
        self.fifo_names: list[str] = []
        for src, _, _ in self.df_edges:
            base = f"{nodes[src].kind.name}_fifo"
            self.fifo_names.append(base if out_degree[src] == 1 else f"{base}{seen[src]}")
            seen[src] += 1
        # the FIFO each node reads on each port
        into: dict[tuple[int, int], str] = {(k, q): name for (_, k, q), name in zip(self.df_edges, self.fifo_names)}
        self.node_reads = [tuple(into[(k, q)] for q in range(len(node.inputs))) for k, node in enumerate(nodes)]

    def _build_tiled(self) -> None:
        self._tiled: tuple[list[tuple[int, HwKind]], TiledEngine] | None = None

    @property
    def tiled_layers(self) -> list[tuple[int, HwKind]]:
        """(layer index, kind) of every stage on the tiled engine (built on first use: a residual
        network has none, and lower_tiled says so in one line)."""
        return self._tiled_skeleton()[0]

    @property
    def engine(self) -> TiledEngine:
        """The tiled engine sized for every layer (see tiled_layers)."""
        return self._tiled_skeleton()[1]

    def _tiled_skeleton(self) -> tuple[list[tuple[int, HwKind]], TiledEngine]:
        if self._tiled is None:
            layers = [(j, kind) for j, kinds in enumerate(lower_tiled(self.network)) for kind in kinds]
            self._tiled = layers, TiledEngine.serving([kind.extent() for _, kind in layers])
        return self._tiled

    # ------------------------------------------------------------------ helpers
    def _input_bits(self, abits: np.ndarray) -> np.ndarray:
        """(N, L) bits of the values entering each layer."""
        n = abits.shape[0]
        cols = [abits[:, f] if f >= 0 else np.full(n, self.network.input.bits, dtype=np.int64) for f in self.feeder]
        return np.stack(cols, axis=1)

    @staticmethod
    def _stage(kind: HwKind, layer: str, a: FoldArrays, reads: tuple[str, ...] = ()) -> StageResult:
        """One stage's figures for the batch, through the uniform interface (a: resolved)."""
        return StageResult(kind.name, layer, kind.kind, kind.template, kind.stage_cycles(a), kind.stage_resources(a),
                           kind.stage_legal(a), kind.rule(layer), width=kind.stage_width(a),
                           active=kind.stage_active(a), detail=kind.detail(a), op=kind, reads=reads)

    def _shell_stage(self, n: int) -> StageResult:
        return self._stage(PlatformShell(), "platform", FoldArrays.blank(n))

    def _finish(self, stages: list[StageResult], n: int, ii: np.ndarray, latency: np.ndarray,
                wbits: np.ndarray) -> BatchResult:
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
        power = estimate_power(resources, self.clock_mhz, self.board)
        model_bits = (np.asarray(wbits, dtype=np.int64) * self.weight_counts).sum(axis=1)
        return BatchResult(stages, ii, latency, fps, resources, util, legal & narrow, fits, meets, self.clock_mhz,
                           self.max_util, lutram, power, model_bits)

    # ------------------------------------------------------------------ dataflow template
    def evaluate_dataflow(self, pe=None, simd=None, weight_bits=None, act_bits=None, mem=None, mac=None,
                          n: int | None = None, swg_simd=None, fifo_depths=None, layout=None) -> BatchResult:
        """Score N dataflow designs. Each argument is (N, L), (L,) or None (PE = SIMD = 1, the
        network's bits, 'auto' memory and multipliers, per-PE weight memories; layout: the codes of
        hw_space.layers.LAYOUT_CODES). Entries of maxpool layers: pe only (default:
        all channels). swg_simd: the sliding windows' SIMD (0 or None: layers.largest_divisor_at_most).
        fifo_depths: (N, F) depths of the F potential FIFOs in the order of the FIFO stages of the
        result (None: 2 words each, the smallest full-rate FIFO; the per-design estimate passes the
        simulated depths).

        The stages are the kernels the HLS writer emits, in a topological order of the stream graph
        (stream order for a chain), each followed by the FIFOs it writes into (one per reader; the
        duplicator after a fork writes several); StageResult.reads gives the graph. Width converters
        (and the FIFO after them) are inactive where the two sides' words hold the same number of
        elements."""
        arrays = [a for a in (pe, simd, weight_bits, act_bits, mem, mac, swg_simd, layout)
                  if a is not None and np.ndim(a) == 2]
        n = n or (arrays[0].shape[0] if arrays else 1)
        L = self.L
        pe, simd = _col(pe, n, L, self.default_pe), _col(simd, n, L, 1)
        wb, ab = _col(weight_bits, n, L, self.weight_bits), _col(act_bits, n, L, self.act_bits)
        mem, mac, layout = _col(mem, n, L, 0), _col(mac, n, L, 0), _col(layout, n, L, 0)
        swg_simd = _col(swg_simd, n, L, 0)
        io = FoldArrays.blank(n, self.board.axi_width)
        layer_cols = [io.with_(pe=pe[:, j], simd=simd[:, j], swg_simd=swg_simd[:, j], wbits=wb[:, j], abits=ab[:, j],
                               mem=mem[:, j], mac=mac[:, j], layout=layout[:, j]) for j in range(L)]
        nodes = self.df_nodes
        cols = [node.kind.resolve(io if node.j < 0 else layer_cols[node.j]) for node in nodes]
        # what each node writes: its consumer's word (an adapter passes on its consumer's; a duplicator,
        # which takes any word, its first consumer's)
        wants = [node.kind.in_elems(a) for node, a in zip(nodes, cols)]
        first_reader = {}
        for src, dst, _ in self.df_edges:
            first_reader.setdefault(src, dst)
        next_elems: list[np.ndarray] = [io.pe] * len(nodes)
        for k in range(len(nodes) - 1, -1, -1):
            r = first_reader.get(k)
            if r is not None:
                next_elems[k] = wants[r] if wants[r] is not None else next_elems[r]
        # every node in topological order: its input word is the word its port-0 producer writes (the
        # ports of an add carry one word); its input bits the widest any port carries
        elems: list[np.ndarray] = []
        bits: list[np.ndarray] = []
        node_stages: list[StageResult] = []
        in_bits0 = np.full(n, self.network.input.bits, dtype=np.int64)
        for k, (node, a) in enumerate(zip(nodes, cols)):
            srcs = node.inputs
            a = a.with_(in_elems=elems[srcs[0]] if srcs else io.pe,
                        in_bits=in_bits0 if not srcs else bits[srcs[0]] if len(srcs) == 1 else
                        np.maximum.reduce([bits[p] for p in srcs]),
                        next_elems=next_elems[k])
            node_stages.append(self._stage(node.kind, node.layer, a, self.node_reads[k]))
            elems.append(np.broadcast_to(node.kind.out_elems(a), (n,)))
            bits.append(np.broadcast_to(node.kind.out_bits(a), (n,)))
        fifos = self._fifos(node_stages, elems, bits, n, fifo_depths)
        # stages: every node followed by the FIFOs it writes
        by_src: list[list[StageResult]] = [[] for _ in nodes]
        for (src, _, _), fifo in zip(self.df_edges, fifos):
            by_src[src].append(fifo)
        stages: list[StageResult] = []
        for st, written in zip(node_stages, by_src):
            stages.append(st)
            stages.extend(written)
        stages.append(self._shell_stage(n))
        cycles = np.stack([st.cycles for st in stages], axis=1)
        # Streaming stages overlap: the slowest sets the initiation interval; the longest path of stage
        # cycles through the graph (for a chain: their sum) bounds the latency of one frame from above
        # (stages start before their producers end; hw_space.simulate gives the simulated latency).
        return self._finish(stages, n, cycles.max(axis=1), self._longest_path(node_stages, fifos), wb)

    def _longest_path(self, node_stages: list[StageResult], fifos: list[StageResult]) -> np.ndarray:
        """Per design, the largest sum of stage cycles along a path from the input to the output
        adapter (FIFOs included; they take no cycles of their own). Edges run forward in node order."""
        incoming: list[list[tuple[int, StageResult]]] = [[] for _ in node_stages]
        for (src, dst, _), fifo in zip(self.df_edges, fifos):
            incoming[dst].append((src, fifo))
        reach: list[np.ndarray] = []
        for st, arrive in zip(node_stages, incoming):
            before = [reach[src] + fifo.cycles for src, fifo in arrive]
            reach.append(st.cycles + np.maximum.reduce(before) if before else st.cycles)
        return reach[-1]

    def _fifos(self, node_stages: list[StageResult], elems: list[np.ndarray], bits: list[np.ndarray], n: int,
               depths) -> list[StageResult]:
        """The FIFO of every edge, in df_edges order: its word is its producer's output word."""
        F = len(self.df_edges)
        depths = np.full((n, F), FIFO_REGISTER_DEPTH, dtype=np.int64) if depths is None else \
            np.broadcast_to(np.asarray(depths, dtype=np.int64), (n, F))
        blank = FoldArrays.blank(n)
        out = []
        for f, ((src, _, _), name) in enumerate(zip(self.df_edges, self.fifo_names)):
            st = node_stages[src]
            out.append(self._stage(Fifo(name, st.name), st.layer, blank.with_(
                in_elems=elems[src], in_bits=bits[src], in_active=st.active, depth=depths[:, f]), (st.name,)))
        return out

    def evaluate_designs(self, designs: list[Design], fifo_depths=None) -> BatchResult:
        """Score designs that share this skeleton (same template) in one vectorized call
        (fifo_depths: see evaluate_dataflow)."""
        if not designs:
            raise ValueError("no designs to evaluate")
        template = designs[0].hardware.template
        if any(d.hardware.template != template for d in designs):
            raise ValueError("evaluate_designs needs designs of one template")
        cols = [design_arrays(d, self.fold_specs) for d in designs]
        stack = {k: np.stack([c[k] for c in cols]) for k in cols[0]}
        if template == "tiled":
            return self.evaluate_tiled(stack["tm"], stack["tn"], stack["tr"], stack["tc"], stack["ports"],
                                       stack["weight_bits"], stack["act_bits"])
        return self.evaluate_dataflow(stack["pe"], stack["simd"], stack["weight_bits"], stack["act_bits"],
                                      stack["mem"], stack["mac"], swg_simd=stack["swg_simd"], fifo_depths=fifo_depths,
                                      layout=stack["layout"])

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
        engine = FoldArrays.blank(n, tm=tm, tn=tn, tr=tr, tc=tc, in_port=ports[:, 0], w_port=ports[:, 1],
                                  out_port=ports[:, 2])
        stages = [self._stage(kind, self.network.layers[j].name,
                              engine.with_(wbits=wb[:, j], abits=ab[:, j], in_bits=in_bits[:, j]))
                  for j, kind in self.tiled_layers]
        compute = [j for j, layer in enumerate(self.network.layers) if layer.is_compute]
        sizes = engine.with_(wbits=wb[:, compute].max(axis=1), in_bits=in_bits[:, compute].max(axis=1),
                             abits=ab[:, compute].max(axis=1))
        stages.append(self._stage(self.engine, "engine", sizes))
        stages.append(self._shell_stage(n))
        total = np.stack([st.cycles for st in stages], axis=1).sum(axis=1)
        # Layer after layer on one engine: a frame's latency is the sum, and so is the II.
        return self._finish(stages, n, total, total, wb)


def design_arrays(design: Design, specs: list[FoldSpec] | None = None) -> dict[str, np.ndarray]:
    """The per-layer arrays (L,) of one design, in the form CostModel.evaluate_* takes (specs: the
    network's hw_space.lowering.fold_specs, when the caller has them)."""
    layers = design.network.layers
    hw = design.hardware
    specs = specs if specs is not None else fold_specs(design.network)
    folds = [hw.fold(l.name) for l in layers]
    out = {
        "pe": np.array([f.pe if l.name in hw.layers else s.default("pe") for f, l, s in zip(folds, layers, specs)],
                       dtype=np.int64),
        "simd": np.array([f.simd if s.has("simd") else 1 for f, s in zip(folds, specs)], dtype=np.int64),
        "weight_bits": np.array([l.weight_bits if l.is_compute else 0 for l in layers], dtype=np.int64),
        "act_bits": np.array([l.act_bits or 0 for l in layers], dtype=np.int64),
        "mem": np.array([MEM_CODES[f.weight_memory] for f in folds], dtype=np.int64),
        "mac": np.array([MAC_CODES[f.mac] for f in folds], dtype=np.int64),
        "layout": np.array([LAYOUT_CODES[f.weight_layout] for f in folds], dtype=np.int64),
        "swg_simd": np.array([(f.swg_simd or 0) if s.has("swg_simd") else 0 for f, s in zip(folds, specs)],
                             dtype=np.int64),
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
