"""QONNX model -> integer dataflow graph, its Network view, and the Design that folds it."""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import networkx as nx

from codesign.backend import transforms
from codesign.backend.dag import op, topological
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
LAYER_PREFIX = {"conv": "conv", "dense": "fc", "maxpool": "pool", "avgpool": "avgpool", "global_avgpool": "gap"}


def _layer_ops(g: nx.DiGraph) -> list[tuple[str, Any]]:
    """(key, op) of the stages that are Design layers (they have a layer family), in topological order."""
    return [(k, op(g, k)) for k in topological(g) if getattr(op(g, k), "layer_family", None)]


def network_of(g: nx.DiGraph) -> Network:
    """The Network the lowered graph computes (default names conv0.., pool0.., fc0..): each layer
    stage describes its own Design layer (to_layer)."""
    first = input_stage(g)
    h, w, c = first.shape
    spec = InputSpec(channels=c, height=h, width=w, bits=first.fmt.code_bits)
    hw = [item for _, item in _layer_ops(g)]
    last_compute = max(i for i, item in enumerate(hw) if item.layer_family == "compute")
    counters: dict[str, int] = {}
    layers = []
    for i, item in enumerate(hw):
        layer = item.to_layer("", i == last_compute)
        n = counters.get(layer.type, 0)
        counters[layer.type] = n + 1
        layers.append(replace(layer, name=f"{LAYER_PREFIX[layer.type]}{n}"))
    return Network(input=spec, layers=tuple(layers))


# one line per Design layer type, for messages
DESCRIBE_LAYER = {
    "conv": lambda layer: (f"conv, {layer.out_channels} output channels, kernel {layer.kernel}, stride "
                           f"{layer.stride}, padding {layer.padding}" + (f", groups {layer.groups}" if layer.groups > 1 else "")),
    "dense": lambda layer: f"dense, {layer.out_features} outputs",
    "maxpool": lambda layer: f"maxpool, kernel {layer.kernel}, stride {layer.stride}",
    "avgpool": lambda layer: f"avgpool, kernel {layer.kernel}, stride {layer.stride}",
    "global_avgpool": lambda layer: "global_avgpool",
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


def name_layers(g: nx.DiGraph, network: Network) -> nx.DiGraph:
    """Give the graph's layers the Network's layer names (i-th conv/dense to i-th MVAU, i-th pool to
    i-th max-pool: by layer family, in order); node names become sanitized C identifiers."""
    g = copy.deepcopy(g)
    names = {"compute": iter(layer.name for layer in network.layers if layer.is_compute),
             "pool": iter(layer.name for layer in network.layers if not layer.is_compute)}
    taken: set[str] = {"input", "output"}
    for key, item in _layer_ops(g):
        layer = next(names[item.layer_family])
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
    g = lower_model(model)
    if design is not None:
        design.network.require_chain("codesign emit (the HLS backend)")
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
    return transforms.SetFifoDepths(chain_.active_depths(sim.depths), kinds, chain_.fifo_widths)
