"""Which hardware kinds a network layer becomes, per template: the two lowering registries, and
what a layer's folding offers (read from those kinds).

DATAFLOW_LOWERING and TILED_LOWERING map a layer type to a function (layer, input shape, output
shape) -> the layer's stages in stream order. Adding a layer type is one entry in each; adding a
hardware kind is one class in hw_space.layers used by an entry. The cost model, the folding
optimizer and the per-design arrays ask these, never the layer type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from hw_space.design import NETWORK_INPUT, Layer, Network, Shape
from hw_space.errors import CodesignError
from hw_space.fold_axes import FoldAxis
from hw_space.layer_kinds import is_depthwise
from hw_space.layers import MVAU, HwKind, MaxPool, MaxPoolRows, SlidingWindow, TiledConv, TiledPool, WidthConverter
from hw_space.layers.addstreams import AddStreams
from hw_space.layers.avgpool import AvgPool, GlobalAvgPool
from hw_space.layers.mvau import AXIS_WHAT
from hw_space.layers.sliding_window import DepthwiseWindow
from hw_space.layers.vvau import VVAU

Lowering = Callable[[Layer, Shape, Shape], list[HwKind]]


def _check_groups(layer: Layer, ishape: Shape) -> None:
    """Refuse a grouped convolution the hardware does not build (only groups 1 and depthwise)."""
    if layer.groups > 1 and not is_depthwise(layer, ishape.channels):
        raise CodesignError(f"layer {layer.name}: groups {layer.groups} with {ishape.channels} input and "
                            f"{layer.out_channels} output channels is not built; the hardware builds groups 1 "
                            "and depthwise convolutions (groups = input channels = out_channels)")


def _conv_dataflow(layer: Layer, ishape: Shape, oshape: Shape) -> list[HwKind]:
    """Sliding window, width converter (its SIMD to the MVAU's, as in FINN), MVAU; a depthwise conv:
    depthwise window, width converter (PE to PE*SIMD elements), VVAU."""
    _check_groups(layer, ishape)
    if layer.groups > 1:
        return _depthwise_dataflow(layer, ishape, oshape)
    p, k = layer.padding, layer.kernel
    swg = SlidingWindow(f"{layer.name}_swg", ishape.height + 2 * p, ishape.width + 2 * p, ishape.channels, k,
                        layer.stride, oshape.height, oshape.width, p)
    dwc = WidthConverter(f"{layer.name}_dwc", oshape.height * oshape.width * k * k * ishape.channels)
    mvau = MVAU(layer.name, k * k * ishape.channels, layer.out_channels, oshape.height * oshape.width,
                logits=layer.act_bits is None, pe_what=AXIS_WHAT["conv"][0], simd_what=AXIS_WHAT["conv"][1])
    return [swg, dwc, mvau]


def _depthwise_dataflow(layer: Layer, ishape: Shape, oshape: Shape) -> list[HwKind]:
    p, k = layer.padding, layer.kernel
    swg = DepthwiseWindow(f"{layer.name}_swg", ishape.height + 2 * p, ishape.width + 2 * p, ishape.channels, k,
                          layer.stride, oshape.height, oshape.width, p)
    dwc = WidthConverter(f"{layer.name}_dwc", oshape.height * oshape.width * k * k * ishape.channels)
    vvau = VVAU(layer.name, ishape.channels, k * k, oshape.height * oshape.width, logits=layer.act_bits is None)
    return [swg, dwc, vvau]


def _avgpool_dataflow(layer: Layer, ishape: Shape, oshape: Shape) -> list[HwKind]:
    """The depthwise-order window (PE channels per word), then the accumulating pool."""
    k = layer.kernel
    swg = DepthwiseWindow(f"{layer.name}_swg", ishape.height, ishape.width, ishape.channels, k, layer.stride,
                          oshape.height, oshape.width)
    return [swg, AvgPool(layer.name, ishape.channels, k * k, oshape.height * oshape.width)]


def _global_avgpool_dataflow(layer: Layer, ishape: Shape, oshape: Shape) -> list[HwKind]:
    return [GlobalAvgPool(layer.name, ishape.channels, ishape.height * ishape.width)]


def _dense_dataflow(layer: Layer, ishape: Shape, oshape: Shape) -> list[HwKind]:
    return [MVAU(layer.name, ishape.size, layer.out_features, 1, logits=layer.act_bits is None)]


def _maxpool_dataflow(layer: Layer, ishape: Shape, oshape: Shape) -> list[HwKind]:
    """The row pass, then the column pass."""
    pool = MaxPool(layer.name, ishape.height, ishape.width, ishape.channels, layer.kernel, layer.stride)
    return [MaxPoolRows.of(pool), pool]


def _conv_tiled(layer: Layer, ishape: Shape, oshape: Shape) -> list[HwKind]:
    """A depthwise conv is priced as a conv of one input channel to C outputs: the same MACs and
    weights (C*K*K), but only one input channel's traffic (an underestimate of the input loads)."""
    _check_groups(layer, ishape)
    n = 1 if layer.groups > 1 else ishape.channels
    return [TiledConv(layer.name, oshape.height, oshape.width, n, layer.out_channels, layer.kernel,
                      layer.stride, logits=layer.act_bits is None)]


def _dense_tiled(layer: Layer, ishape: Shape, oshape: Shape) -> list[HwKind]:
    """A 1x1 convolution on a 1x1 map; the map before it is read as its pixels' channel groups."""
    return [TiledConv(layer.name, 1, 1, ishape.channels, layer.out_features, 1, 1,
                      pixels=ishape.height * ishape.width, logits=layer.act_bits is None)]


def _add_dataflow(layer: Layer, ishape: Shape, oshape: Shape) -> list[HwKind]:
    """The join of two branches: one kernel reading both streams (each behind its own width
    converter, which the cost model places per edge)."""
    return [AddStreams(layer.name, ishape.channels, ishape.height * ishape.width)]


def _tiled_chain_only(where: str, reads: str) -> CodesignError:
    """The one refusal of a branching network by the tiled template (where: the layer, reads: what it reads)."""
    return CodesignError(f"the tiled template: {where} reads {reads}; the tiled engine "
                         "runs chains of layers only (each reading the one before it), residual networks need the "
                         "dataflow template (hardware.template: dataflow)")


def _add_tiled(layer: Layer, ishape: Shape, oshape: Shape) -> list[HwKind]:
    raise _tiled_chain_only(f"layer {layer.name}", ", ".join(layer.inputs) or "two layers")


def _maxpool_tiled(layer: Layer, ishape: Shape, oshape: Shape) -> list[HwKind]:
    return [TiledPool(layer.name, oshape.height, oshape.width, ishape.channels, layer.kernel)]


DATAFLOW_LOWERING: dict[str, Lowering] = {"conv": _conv_dataflow, "dense": _dense_dataflow,
                                          "maxpool": _maxpool_dataflow, "avgpool": _avgpool_dataflow,
                                          "global_avgpool": _global_avgpool_dataflow, "add": _add_dataflow}
# the tiled engine runs layers one after another on one conv engine: chains only (lower_tiled refuses
# a branching network first; an add is never part of a chain)
TILED_LOWERING: dict[str, Lowering] = {"conv": _conv_tiled, "dense": _dense_tiled, "maxpool": _maxpool_tiled,
                                       "avgpool": _maxpool_tiled, "global_avgpool": _maxpool_tiled, "add": _add_tiled}


def _lower(registry: dict[str, Lowering], template: str, network: Network) -> list[list[HwKind]]:
    out = []
    for layer, (ishape, oshape) in zip(network.layers, network.shapes()):
        fn = registry.get(layer.type)
        if fn is None:
            raise CodesignError(f"layer {layer.name}: type {layer.type!r} has no {template} lowering; known: "
                                f"{', '.join(registry)}")
        out.append(fn(layer, ishape, oshape))
    return out


def lower_dataflow(network: Network) -> list[list[HwKind]]:
    """Per layer, its dataflow stages in stream order."""
    return _lower(DATAFLOW_LOWERING, "dataflow", network)


def lower_tiled(network: Network) -> list[list[HwKind]]:
    """Per layer, its stages on the tiled engine (CodesignError for a network that is not a chain)."""
    for j in network.order():
        ps = network.producers(j)
        if ps != [j - 1]:
            raise _tiled_chain_only(f"network.layers[{j}] ({network.layers[j].name})", ", ".join(
                network.layers[p].name if p >= 0 else NETWORK_INPUT for p in ps))
    return _lower(TILED_LOWERING, "tiled", network)


@dataclass(frozen=True)
class FoldSpec:
    """What the dataflow folding of one layer offers, read from the kinds it lowers to."""

    axes: tuple[FoldAxis, ...]
    styles: tuple[str, ...]  # LayerFold style fields it reads ("weight_memory", "mac")
    defaults: dict[str, int] = field(default_factory=dict)  # fold values where not 1

    @classmethod
    def of(cls, kinds: list[HwKind]) -> FoldSpec:
        axes = tuple(ax for kind in kinds for ax in kind.fold_axes())
        styles = tuple(dict.fromkeys(s for kind in kinds for s in kind.STYLES))
        defaults: dict[str, int] = {}
        for kind in kinds:
            defaults.update(kind.defaults())
        return cls(axes, styles, defaults)

    def has(self, field: str) -> bool:
        """The layer's folding has this axis."""
        return any(ax.field == field for ax in self.axes)

    def values(self, field: str) -> list[int]:
        """The values legal on every axis of this field, ascending ([1] if it has none)."""
        axes = [ax for ax in self.axes if ax.field == field]
        if not axes:
            return [1]
        return [v for v in axes[0].values() if all(bool(ax.legal(v)) for ax in axes[1:])]

    def default(self, field: str) -> int:
        """The value of a fold field the design leaves out."""
        return self.defaults.get(field, 1)


def fold_specs(network: Network) -> list[FoldSpec]:
    """Per layer, what its dataflow folding offers."""
    return [FoldSpec.of(kinds) for kinds in lower_dataflow(network)]
