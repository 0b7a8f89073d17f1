"""The hardware steps on a lowered graph: arithmetic, folding, width converters and FIFO depths.

Each step walks the graph in topological order and asks the op (ops/): none knows op kinds.
"""

from __future__ import annotations

import networkx as nx

from codesign.backend.dag import chain as single_chain
from codesign.backend.dag import consumers, edges, insert_on_edge, op, producers, topological
from codesign.backend.ops.base import Node
from codesign.backend.ops.dwc import WidthConverter
from codesign.backend.transforms.base import Transform
from hw_space.design import LayerFold
from hw_space.errors import CodesignError


class MarkXnor(Transform):
    """Each stage picks the arithmetic its formats allow (MVAUs with bipolar inputs and weights
    compute XNOR-popcount)."""

    def run(self, g: nx.DiGraph) -> None:
        for key in topological(g):
            op(g, key).choose_arithmetic()


class ApplyFolding(Transform):
    """Set PE/SIMD per layer (by Design layer name): each stage takes and checks its own folding,
    then the stream adapters match their neighbours' words."""

    def __init__(self, folds: dict[str, LayerFold]):
        self.folds = folds

    def run(self, g: nx.DiGraph) -> None:
        order = topological(g)
        for key in order:
            op(g, key).apply_fold(self.folds, Node(g, key))
        for key in order:
            op(g, key).after_fold(Node(g, key))


class InsertWidthConverters(Transform):
    """A WidthConverter on every edge whose producer's elements per word differ from its consumer's,
    named as the cost model names it (the consumer's converter_name)."""

    def run(self, g: nx.DiGraph) -> None:
        for u, v in edges(g):
            item, consumer = op(g, u), op(g, v)
            a, b = item.out_elems, consumer.in_elems
            if a != b:
                name = consumer.converter_name(item, g.edges[u, v].get("port", 0))
                insert_on_edge(g, u, v, WidthConverter(name=name, onnx_op="dwc", in_elems=a,
                                                       out_elems=b, total=item.frame_elems, fmt=item.stream_fmt))


def model_kind(g: nx.DiGraph, key: str) -> str:
    """The cost model's stage kind of a hardware node (hw_space.model): the two must list the same
    kernels in the same order."""
    return op(g, key).model_kind


class SetFifoDepths(Transform):
    """FIFO depth per stream (edge attribute `depth`): the depths the cost model priced and the
    cycle-level simulation chose (hw_space.simulate.size_fifos), one per active FIFO of the model.
    `kinds` and `widths` are the model's kernels and FIFO words; for a branching design `layers`
    (the model stage's layer of each kernel) and `edges` (the producer and consumer kernel of each
    FIFO, simulate.Chain.fifo_edges) match the graph's kernels by (layer, kind, occurrence within
    the layer) and its streams by their two ends. The graph must match, or the model and the HLS
    disagree about what is built."""

    def __init__(self, depths: list[int], kinds: list[str], widths: list[int], layers: list[str] | None = None,
                 edges: list[tuple[int, int]] | None = None):
        self.depths, self.kinds, self.widths = depths, kinds, widths
        self.layers, self.edges = layers, edges

    def run(self, g: nx.DiGraph) -> None:
        chain_edges = [(i, i + 1) for i in range(len(self.kinds) - 1)]
        if not self.edges or (self.edges == chain_edges and all(g.out_degree(k) <= 1 for k in g)):
            self._run_chain(g)
            return
        if self.layers is None or len(self.layers) != len(self.kinds):
            raise CodesignError("internal error: the cost model gave no layer per kernel for a branching design")
        index = _match_kernels(g, self.kinds, self.layers)
        slot = {edge: i for i, edge in enumerate(self.edges)}
        if g.number_of_edges() != len(self.edges):
            raise CodesignError(f"internal error: the HLS graph has {g.number_of_edges()} streams, the cost model "
                                f"{len(self.edges)} FIFOs; please report this design")
        for u, v in edges(g):
            i = slot.get((index[u], index[v]))
            if i is None:
                raise CodesignError(f"internal error: stream {op(g, u).name} -> {op(g, v).name} has no FIFO in the cost "
                                    "model; please report this design")
            self._set(g, u, v, self.depths[i], self.widths[i])

    def _run_chain(self, g: nx.DiGraph) -> None:
        keys = single_chain(g)
        mine = [model_kind(g, k) for k in keys]
        if mine != self.kinds or len(self.depths) != len(keys) - 1:
            raise CodesignError(f"internal error: the HLS kernels ({', '.join(mine)}) are not the cost model's "
                                f"stages ({', '.join(self.kinds)}); please report this design")
        for (u, v), depth, width in zip(zip(keys, keys[1:]), self.depths, self.widths):
            self._set(g, u, v, depth, width)

    @staticmethod
    def _set(g: nx.DiGraph, u: str, v: str, depth: int, width: int) -> None:
        fmt = op(g, u).stream_fmt
        bits = op(g, u).out_elems * fmt.code_bits
        # the model bounds the last accumulator's width (into the output adapter) from above;
        # every other word is exact
        if bits > width or (bits != width and g.out_degree(v) != 0):
            raise CodesignError(f"internal error: stream {op(g, u).name} -> {op(g, v).name} is {bits} bits wide "
                                f"in the HLS, {width} in the cost model; please report this design")
        g.edges[u, v]["depth"] = int(depth)


def stage_layer(g: nx.DiGraph, key: str) -> str:
    """The Design layer a hardware node belongs to, as the cost model's StageResult.layer names it:
    its own layer; the copied layer for a duplicator; the layer it feeds for a window or a width
    converter; "input" / "output" for the adapters."""
    item = op(g, key)
    if item.model_kind == "dup":
        return item.source
    if item.model_kind == "io":
        return "output" if g.out_degree(key) == 0 else "input"
    layer = getattr(item, "layer", "")
    if layer:
        return layer
    nxt = consumers(g, key)
    return stage_layer(g, nxt[0]) if nxt else item.name


def _match_kernels(g: nx.DiGraph, kinds: list[str], layers: list[str]) -> dict[str, int]:
    """Graph node -> index of the model's kernel with the same (layer, kind, occurrence); the
    occurrences of a layer's width converters count its input ports first, then the one inside it."""
    order = {k: i for i, k in enumerate(topological(g))}

    def rank(key: str) -> tuple[int, int, int]:
        if model_kind(g, key) != "dwc":
            return (0, 0, order[key])
        inside = getattr(op(g, producers(g, key)[0]), "is_window", False)
        port = g.edges[key, consumers(g, key)[0]].get("port", 0)
        return (int(inside), port, order[key])

    groups: dict[tuple[str, str], list[str]] = {}
    for key in sorted(g.nodes, key=rank):
        groups.setdefault((stage_layer(g, key), model_kind(g, key)), []).append(key)
    theirs: dict[tuple[str, str, int], int] = {}
    counts: dict[tuple[str, str], int] = {}
    for i, (layer, kind) in enumerate(zip(layers, kinds)):
        n = counts.get((layer, kind), 0)
        counts[layer, kind] = n + 1
        theirs[layer, kind, n] = i
    index: dict[str, int] = {}
    for (layer, kind), keys in groups.items():
        for n, key in enumerate(keys):
            i = theirs.get((layer, kind, n))
            if i is None:
                raise CodesignError(f"internal error: the HLS kernel {op(g, key).name} ({kind} of layer {layer}) is not "
                                    "among the cost model's stages; please report this design")
            index[key] = i
    if len(index) != len(kinds):
        missing = sorted(set(range(len(kinds))) - set(index.values()))
        raise CodesignError(f"internal error: the cost model's stage {kinds[missing[0]]} of layer "
                            f"{layers[missing[0]]} is not built in the HLS; please report this design")
    return index


def hardware_steps(folds: dict[str, LayerFold]) -> tuple[Transform, ...]:
    """The folding steps; the FIFO depths follow from the folded design (SetFifoDepths)."""
    return (MarkXnor(), ApplyFolding(folds), InsertWidthConverters())
