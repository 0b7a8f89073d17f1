"""The hardware steps on a lowered graph: arithmetic, folding, width converters and FIFO depths.

Each step walks the graph in topological order and asks the op (ops/): none knows op kinds.
"""

from __future__ import annotations

import networkx as nx

from codesign.backend.dag import chain as single_chain
from codesign.backend.dag import edges, insert_on_edge, op, topological
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
    """FIFO depth per stream (edge attribute `depth`), in stream order: the depths the cost model
    priced and the cycle-level simulation chose (hw_space.simulate.size_fifos). `kinds` and
    `widths` are the model's kernels and FIFO words: the graph must match them, or the model and
    the HLS disagree about what is built. The model's stages are a chain: so must the graph be."""

    def __init__(self, depths: list[int], kinds: list[str], widths: list[int]):
        self.depths, self.kinds, self.widths = depths, kinds, widths

    def run(self, g: nx.DiGraph) -> None:
        keys = single_chain(g)
        mine = [model_kind(g, k) for k in keys]
        if mine != self.kinds or len(self.depths) != len(keys) - 1:
            raise CodesignError(f"internal error: the HLS kernels ({', '.join(mine)}) are not the cost model's "
                                f"stages ({', '.join(self.kinds)}); please report this design")
        for (u, v), depth, width in zip(zip(keys, keys[1:]), self.depths, self.widths):
            fmt = op(g, u).stream_fmt
            bits = op(g, u).out_elems * fmt.code_bits
            # the model bounds the last accumulator's width (into the output adapter) from above;
            # every other word is exact
            if bits > width or (bits != width and g.out_degree(v) != 0):
                raise CodesignError(f"internal error: stream {op(g, u).name} -> {op(g, v).name} is {bits} bits wide "
                                    f"in the HLS, {width} in the cost model; please report this design")
            g.edges[u, v]["depth"] = int(depth)


def hardware_steps(folds: dict[str, LayerFold]) -> tuple[Transform, ...]:
    """The folding steps; the FIFO depths follow from the folded design (SetFifoDepths)."""
    return (MarkXnor(), ApplyFolding(folds), InsertWidthConverters())
