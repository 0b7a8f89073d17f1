"""QONNX model -> integer dataflow graph, its Network view, and the Design that folds it."""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import networkx as nx

from codesign.backend import transforms
from codesign.backend.dag import op, producers, topological
from codesign.backend.frontend import import_graph, load_qonnx
from codesign.backend.names import sanitize
from codesign.backend.ops.base import Node
from codesign.backend.reference import input_stage
from hw_space.design import Design, Hardware, InputSpec, Layer, Network
from hw_space.errors import CodesignError


@dataclass(frozen=True)
class Lowered:
    """The hardware graph (folded, with width converters and FIFO depths) and the Design it follows."""

    graph: nx.DiGraph
    design: Design
    folded_by: str  # "design", "fold" (hw_space.folding) or "unfolded"


def lower_model(model: str | Path | Any) -> nx.DiGraph:
    """A QONNX file or ModelWrapper -> the unfolded integer graph (every lowering step applied)."""
    g = import_graph(load_qonnx(model))
    for step in transforms.LOWERING:
        g = step().apply(g)
    return g


# the Design's default layer names (network_of): prefix per layer type
LAYER_PREFIX = {"conv": "conv", "dense": "fc", "maxpool": "pool", "avgpool": "avgpool", "global_avgpool": "gap",
                "add": "add"}


def _layer_ops(g: nx.DiGraph) -> list[tuple[str, Any]]:
    """(key, op) of the stages that are Design layers (they have a layer family), in topological order."""
    return [(k, op(g, k)) for k in topological(g) if getattr(op(g, k), "layer_family", None)]


def _layer_inputs(g: nx.DiGraph, keys: list[str]) -> list[list[int]]:
    """Per layer stage (index into keys), the layer stages it reads by port (-1: the network input),
    found through the stages between layers (windows, width converters, duplicators)."""
    index = {k: i for i, k in enumerate(keys)}
    out = []
    for key in keys:
        reads = []
        for k in producers(g, key):
            while k not in index and producers(g, k):
                k = producers(g, k)[0]
            reads.append(index.get(k, -1))
        out.append(reads)
    return out


def network_of(g: nx.DiGraph) -> Network:
    """The Network the lowered graph computes (default names conv0.., pool0.., fc0..): each layer
    stage describes its own Design layer (to_layer)."""
    first = input_stage(g)
    h, w, c = first.shape
    spec = InputSpec(channels=c, height=h, width=w, bits=first.fmt.code_bits)
    found = _layer_ops(g)
    hw = [item for _, item in found]
    reads = _layer_inputs(g, [k for k, _ in found])
    last_compute = max(i for i, item in enumerate(hw) if item.layer_family == "compute")
    counters: dict[str, int] = {}
    layers: list[Layer] = []
    for i, item in enumerate(hw):
        layer = item.to_layer("", i == last_compute)
        n = counters.get(layer.type, 0)
        counters[layer.type] = n + 1
        # a layer reading anything but the one before it names its inputs (a chain names none)
        inputs = () if reads[i] == [i - 1] else tuple(layers[p].name if p >= 0 else "input" for p in reads[i])
        layers.append(replace(layer, name=f"{LAYER_PREFIX[layer.type]}{n}", inputs=inputs))
    return Network(input=spec, layers=tuple(layers))


# one line per Design layer type, for messages
DESCRIBE_LAYER = {
    "conv": lambda layer: (f"conv, {layer.out_channels} output channels, kernel {layer.kernel}, stride "
                           f"{layer.stride}, padding {layer.padding}" + (f", groups {layer.groups}" if layer.groups > 1 else "")),
    "dense": lambda layer: f"dense, {layer.out_features} outputs",
    "maxpool": lambda layer: f"maxpool, kernel {layer.kernel}, stride {layer.stride}",
    "avgpool": lambda layer: f"avgpool, kernel {layer.kernel}, stride {layer.stride}",
    "global_avgpool": lambda layer: "global_avgpool",
    "add": lambda layer: "add",
}


def _describe(layer: Layer) -> str:
    return DESCRIBE_LAYER[layer.type](layer)


def match_design(g: nx.DiGraph, design: Design, source: str = "design") -> None:
    """Check that the Design describes the graph layer for layer (in order) or raise one clear line."""
    model = network_of(g)
    net = design.network
    i_m, i_d = model.input, net.input
    if (i_m.channels, i_m.height, i_m.width) != (i_d.channels, i_d.height, i_d.width):
        raise CodesignError(f"network.input: the design takes {i_d.channels}x{i_d.height}x{i_d.width}, the model "
                            f"{i_m.channels}x{i_m.height}x{i_m.width}", source=source)
    if not (model.is_chain() and net.is_chain()):
        match_dag(model, net, source)
        return
    for kind, what, compute in (("compute", "Conv/MatMul/Gemm", True),
                                ("pool", "MaxPool/AveragePool/GlobalAveragePool", False)):
        mine = [layer for layer in model.layers if layer.is_compute == compute]
        theirs = [layer for layer in net.layers if layer.is_compute == compute]
        if len(mine) != len(theirs):
            raise CodesignError(f"network.layers: the design has {len(theirs)} {kind} layers, the model "
                                f"{len(mine)} {what} nodes", source=source)
        for n, (m, d) in enumerate(zip(mine, theirs)):
            keys = ("type", "out_channels", "out_features", "kernel", "stride", "padding", "groups")
            if any(getattr(m, k) != getattr(d, k) for k in keys):
                raise CodesignError(f"network.layers ({d.name}): the design's layer ({_describe(d)}) does not match "
                                    f"the model's {what} node #{n + 1} ({_describe(m)})", source=source)


_KEYS = ("type", "out_channels", "out_features", "kernel", "stride", "padding", "groups")


def match_dag(model: Network, net: Network, source: str = "design") -> dict[int, int]:
    """Match a branching Design to the model's network from the output back (each layer's inputs
    port by port; an add's two inputs in either order): design layer index -> model layer index, or
    one clear line naming the first layer that differs."""
    found: dict[int, int] = {}

    def fail(d: int, m: int) -> CodesignError:
        if d < 0 or m < 0:
            what = "the network input" if d < 0 else f"layer {net.layers[d].name} ({_describe(net.layers[d])})"
            theirs = "the network input" if m < 0 else f"a layer ({_describe(model.layers[m])})"
            return CodesignError(f"network.layers: the design reads {what} where the model reads {theirs}",
                                 source=source)
        return CodesignError(f"network.layers ({net.layers[d].name}): the design's layer ({_describe(net.layers[d])}) "
                             f"does not match the model's ({_describe(model.layers[m])}) at that place in the graph",
                             source=source)

    def visit(d: int, m: int) -> None:
        if d < 0 or m < 0:
            if d != m:
                raise fail(d, m)
            return
        if d in found:
            if found[d] != m:
                raise CodesignError(f"network.layers ({net.layers[d].name}): the design reads it where the model reads "
                                    "two different layers; the branches differ", source=source)
            return
        a, b = net.layers[d], model.layers[m]
        if any(getattr(a, k) != getattr(b, k) for k in _KEYS):
            raise fail(d, m)
        found[d] = m
        pd, pm = net.producers(d), model.producers(m)
        if len(pd) != len(pm):
            raise fail(d, m)
        first: CodesignError | None = None  # an add's inputs in the design's order; the message names that try
        for order in [pm] if len(pm) < 2 else [pm, pm[::-1]]:
            saved = dict(found)
            try:
                for x, y in zip(pd, order):
                    visit(x, y)
                return
            except CodesignError as exc:
                found.clear()
                found.update(saved)
                first = first or exc
        assert first is not None
        raise first

    visit(len(net.layers) - 1, len(model.layers) - 1)
    if len(net.layers) != len(model.layers):
        raise CodesignError(f"network.layers: the design has {len(net.layers)} layers, the model {len(model.layers)}",
                            source=source)
    return found


def name_layers(g: nx.DiGraph, network: Network) -> nx.DiGraph:
    """Give the graph's layers the Network's layer names (a chain: i-th conv/dense to i-th MVAU, i-th
    pool to i-th pool, by layer family in order; a DAG: matched through the graph, match_dag); node
    names become sanitized C identifiers."""
    g = copy.deepcopy(g)
    found = _layer_ops(g)
    model = network_of(g)
    if model.is_chain() and network.is_chain():
        names = {"compute": iter(layer.name for layer in network.layers if layer.is_compute),
                 "pool": iter(layer.name for layer in network.layers if not layer.is_compute)}
        chosen = [next(names[item.layer_family]) for _, item in found]
    else:
        to_design = {m: d for d, m in match_dag(model, network).items()}
        chosen = [network.layers[to_design[m]].name for m in range(len(found))]
    taken: set[str] = {"input", "output"}
    for (key, item), layer in zip(found, chosen):
        item.take_layer(layer, sanitize(layer, taken), Node(g, key), taken)
    return g


def _fold_with_board(design: Design, target_fps: float | None, max_util: float) -> tuple[Design, str]:
    try:
        from hw_space.folding import fold
    except ImportError:
        return design, "unfolded"
    from hw_space.boards import load_board
    return fold(design, load_board(design.hardware.board), target_fps=target_fps, max_util=max_util), "fold"


def lower(model: str | Path | Any, design: Design | None = None, board: str | None = None,
          target_fps: float | None = None, max_util: float = 0.85, design_source: str = "design") -> Lowered:
    """Lower a QONNX model and fold it: with a Design, by its hardware section (its layers must match
    the model); otherwise the network is read from the graph and hw_space.folding chooses PE/SIMD
    for `board`."""
    if design is not None and design.hardware.template == "tiled" and not design.network.is_chain():
        raise CodesignError("hardware.template: the tiled engine runs a chain of layers; a network with branches "
                            "(add layers) needs template: dataflow", source=design_source)
    g = lower_model(model)
    if design is not None:
        match_design(g, design, design_source)
        if board is not None:
            design = design.with_hardware(board=board)
        folded_by = "design"
    else:
        design = Design(network=network_of(g), hardware=Hardware(board=board or "zc706"))
        design, folded_by = _fold_with_board(design, target_fps, max_util)
    g = name_layers(g, design.network)
    if design.hardware.template == "tiled":  # one engine walks the layers: no folding, no streams
        g = transforms.MarkXnor().apply(g)
        return Lowered(graph=g, design=design, folded_by=folded_by)
    for step in transforms.hardware_steps(design.hardware.layers):
        g = step.apply(g)
    g = fifo_depths(design).apply(g)
    return Lowered(graph=g, design=design, folded_by=folded_by)


def fifo_depths(design: Design) -> transforms.SetFifoDepths:
    """The FIFO depths of the cycle-level simulation (hw_space.simulate), with the model's kernels
    and stream widths to check the graph against."""
    from hw_space.boards import load_board
    from hw_space.simulate import design_chain, size_chain

    board = load_board(design.hardware.board)
    chain_ = design_chain(design, board)
    sim = size_chain(chain_)
    kinds = [k.kind for k in chain_.kernels]
    # a branching design: kernels matched by layer, streams by their ends (helper fields of the DAG simulator)
    layers = list(getattr(chain_, "kernel_layers", []) or []) or None
    edges = [tuple(e) for e in getattr(chain_, "fifo_edges", []) or []] or None
    return transforms.SetFifoDepths(chain_.active_depths(sim.depths), kinds, chain_.fifo_widths, layers, edges)
