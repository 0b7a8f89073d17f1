"""QONNX model -> integer dataflow graph, its Network view, and the Design that folds it."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx

from codesign.backend import transforms
from codesign.backend.frontend import import_graph, load_qonnx
from codesign.backend.graph import MVAU, InputStage, MaxReduce, SlidingWindow, chain, op
from codesign.backend.names import sanitize
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


def _square(item: MVAU | MaxReduce) -> tuple[int, int, int]:
    kh, kw = item.kernel
    sh, sw = item.stride
    pads = item.pads if isinstance(item, MVAU) else (0, 0, 0, 0)
    if kh != kw or sh != sw or len(set(pads)) != 1:
        raise CodesignError(f"node {item.name!r}: kernel {kh}x{kw}, stride {sh}x{sw}, pads {list(pads)}: only square "
                            "kernels and strides with equal padding on every side can be described as a Design")
    return kh, sh, pads[0]


def network_of(g: nx.DiGraph) -> Network:
    """The Network the lowered graph computes (default names conv0.., pool0.., fc0..)."""
    keys = chain(g)
    first = op(g, keys[0])
    assert isinstance(first, InputStage)
    h, w, c = first.shape
    fmt = first.fmt
    spec = InputSpec(channels=c, height=h, width=w, bits=1 if fmt.bipolar else fmt.bits)
    hw = [op(g, k) for k in keys if isinstance(op(g, k), (MVAU, MaxReduce))]
    counters = {"conv": 0, "dense": 0, "maxpool": 0}
    prefix = {"conv": "conv", "dense": "fc", "maxpool": "pool"}
    last_compute = max(i for i, item in enumerate(hw) if isinstance(item, MVAU))
    layers = []
    for i, item in enumerate(hw):
        kind = item.kind if isinstance(item, MVAU) else "maxpool"
        name = f"{prefix[kind]}{counters[kind]}"
        counters[kind] += 1
        if isinstance(item, MaxReduce):
            k, s, _ = _square(item)
            layers.append(Layer(name=name, type="maxpool", kernel=k, stride=s))
            continue
        act = None
        if i != last_compute and item.out_fmt is not None:
            act = 1 if item.out_fmt.bipolar else item.out_fmt.bits
        if kind == "conv":
            k, s, p = _square(item)
            layers.append(Layer(name=name, type="conv", out_channels=item.mh, kernel=k, stride=s, padding=p,
                                weight_bits=item.weight_bits, act_bits=act))
        else:
            layers.append(Layer(name=name, type="dense", out_features=item.mh, weight_bits=item.weight_bits,
                                act_bits=act))
    return Network(input=spec, layers=tuple(layers))


def _describe(layer: Layer) -> str:
    if layer.type == "conv":
        return (f"conv, {layer.out_channels} output channels, kernel {layer.kernel}, stride {layer.stride}, "
                f"padding {layer.padding}")
    if layer.type == "dense":
        return f"dense, {layer.out_features} outputs"
    return f"maxpool, kernel {layer.kernel}, stride {layer.stride}"


def match_design(g: nx.DiGraph, design: Design, source: str = "design") -> None:
    """Check that the Design describes the graph layer for layer (in order) or raise one clear line."""
    model = network_of(g)
    net = design.network
    i_m, i_d = model.input, net.input
    if (i_m.channels, i_m.height, i_m.width) != (i_d.channels, i_d.height, i_d.width):
        raise CodesignError(f"network.input: the design takes {i_d.channels}x{i_d.height}x{i_d.width}, the model "
                            f"{i_m.channels}x{i_m.height}x{i_m.width}", source=source)
    for kind, what in (("compute", "Conv/MatMul/Gemm"), ("maxpool", "MaxPool")):
        mine = [layer for layer in model.layers if (layer.type == "maxpool") == (kind == "maxpool")]
        theirs = [layer for layer in net.layers if (layer.type == "maxpool") == (kind == "maxpool")]
        if len(mine) != len(theirs):
            raise CodesignError(f"network.layers: the design has {len(theirs)} {kind} layers, the model "
                                f"{len(mine)} {what} nodes", source=source)
        for n, (m, d) in enumerate(zip(mine, theirs)):
            keys = ("type", "out_channels", "out_features", "kernel", "stride", "padding")
            if any(getattr(m, k) != getattr(d, k) for k in keys):
                raise CodesignError(f"network.layers ({d.name}): the design's layer ({_describe(d)}) does not match "
                                    f"the model's {what} node #{n + 1} ({_describe(m)})", source=source)


def name_layers(g: nx.DiGraph, network: Network) -> nx.DiGraph:
    """Give the graph's layers the Network's layer names (i-th conv/dense to i-th MVAU, i-th pool to
    i-th max-pool); node names become sanitized C identifiers."""
    g = copy.deepcopy(g)
    compute = iter(layer.name for layer in network.layers if layer.is_compute)
    pools = iter(layer.name for layer in network.layers if layer.type == "maxpool")
    taken: set[str] = {"input", "output"}
    keys = chain(g)
    for i, key in enumerate(keys):
        item = op(g, key)
        if isinstance(item, (MVAU, MaxReduce)):
            item.layer = next(compute if isinstance(item, MVAU) else pools)
            item.name = sanitize(item.layer, taken)
            prev = op(g, keys[i - 1])
            if isinstance(prev, SlidingWindow):
                prev.name = sanitize(f"{item.name}_swg", taken)
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
        match_design(g, design, design_source)
        if design.hardware.template != "dataflow":
            raise CodesignError(f"hardware.template: {design.hardware.template!r}; emit writes the dataflow "
                                "template (one engine per layer)", source=design_source)
        if board is not None:
            design = design.with_hardware(board=board)
        folded_by = "design"
    else:
        design = Design(network=network_of(g), hardware=Hardware(board=board or "zc706"))
        design, folded_by = _fold_with_board(design, target_fps, max_util)
    g = name_layers(g, design.network)
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
