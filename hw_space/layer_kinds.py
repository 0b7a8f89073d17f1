"""The network layer kinds (conv, dense, maxpool, avgpool, global_avgpool, add): what each layer type of a Design is, in one place.

A kind owns its YAML fields (read and written), its output shape, its shape checks, its default name
and the dataflow folding fields its hardware takes, so the Design loader and the QAT builder never
branch on `layer.type`. These are the network's kinds; the hardware stages a layer lowers to (MVAU,
sliding window, pool unit) are the cost model's (hw_space.layers) and the backend's.
Adding a layer type is one `LayerKind` subclass and one `LAYER_KINDS` entry here (plus its
builder in quant.build and its hardware stages).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hw_space.yaml_reader import Reader

if TYPE_CHECKING:
    from hw_space.design import Layer

MIN_BITS, MAX_BITS = 1, 8


@dataclass(frozen=True)
class Shape:
    """A feature map, channels-first (a dense layer's output is (features, 1, 1))."""

    channels: int
    height: int
    width: int

    @property
    def size(self) -> int:
        return self.channels * self.height * self.width


class LayerKind:
    """One network layer type: its fields, shapes, checks and folding fields (one instance per type)."""

    type: str = ""                  # the YAML `type`
    prefix: str = ""                # default names: prefix0, prefix1, ...
    fields: tuple[str, ...] = ()    # its YAML fields besides name, type and inputs, in the order written
    fold_fields: tuple[str, ...] = ("pe",)  # its fields under hardware.layers.<name> (dataflow template)
    compute: bool = False           # has weights and an activation (else it passes its input's values on)
    flat_output: bool = False       # its output is a vector (features, 1, 1), no longer a feature map
    needs_map: bool = True          # it reads a feature map, so it cannot follow a flat_output layer
    can_be_last: bool = False       # it can produce the logits (the network's output)
    arity: int = 1                  # how many layers it reads

    def parse(self, r: Reader, d: dict[str, Any], where: str, last: bool) -> dict[str, Any]:
        """The Layer field values of YAML mapping `d` (keys already checked); `last`: the output layer."""
        raise NotImplementedError

    def to_dict(self, layer: Layer) -> dict[str, Any]:
        """Its YAML fields (after name and type), in the order a file writes them; None is left out."""
        values = ((f, getattr(layer, f)) for f in self.fields)
        return {f: v for f, v in values if v is not None}

    def output_shape(self, layer: Layer, shape_in: Shape) -> Shape:
        """The shape it produces from an input of `shape_in`."""
        raise NotImplementedError

    def check(self, r: Reader, layer: Layer, where: str, shape_in: Shape, shape_out: Shape) -> None:
        """Refuse a layer whose fields do not fit its input (one line naming the field)."""

    def weight_count(self, layer: Layer, shape_in: Shape) -> int:
        """How many learned weights it holds (the model size counts these; 0: no weights)."""
        return 0

    def check_join(self, r: Reader, layer: Layer, where: str, shapes_in: list[Shape], bits_in: list[int]) -> None:
        """Refuse inputs a layer reading several layers cannot combine (shapes_in, bits_in: per input)."""


def _bits(r: Reader, d: dict[str, Any], where: str, last: bool) -> dict[str, Any]:
    """weight_bits, and act_bits except on the last layer (raw logits, no activation)."""
    wb = r.int(d, "weight_bits", where, MIN_BITS, MAX_BITS)
    if last:
        if "act_bits" in d:
            raise r.fail(f"{where}.act_bits", "the last layer outputs raw logits and has no activation; remove act_bits")
        return {"weight_bits": wb, "act_bits": None}
    return {"weight_bits": wb, "act_bits": r.int(d, "act_bits", where, MIN_BITS, MAX_BITS)}


def _window_shape(height: int, width: int, kernel: int, stride: int, padding: int) -> tuple[int, int]:
    """Output rows and columns of a square window (floor mode, same padding on every side)."""
    return ((height + 2 * padding - kernel) // stride + 1, (width + 2 * padding - kernel) // stride + 1)


def _check_window(r: Reader, layer: Layer, where: str, shape_in: Shape, shape_out: Shape) -> None:
    if shape_out.height < 1 or shape_out.width < 1:
        raise r.fail(where, f"kernel {layer.kernel} does not fit the {shape_in.height}x{shape_in.width} input "
                     "of this layer; reduce the kernel or the depth")


class ConvKind(LayerKind):
    """A square convolution (out_channels, kernel, stride, padding, groups) with weights and an
    activation. groups > 1 splits the channels into independent groups (PyTorch's `groups`);
    depthwise is groups = in channels = out channels."""

    type, prefix = "conv", "conv"
    fields = ("out_channels", "kernel", "stride", "padding", "groups", "weight_bits", "act_bits")
    fold_fields = ("pe", "simd", "weight_memory", "mac", "swg_simd", "weight_layout")
    compute = True

    def parse(self, r: Reader, d: dict[str, Any], where: str, last: bool) -> dict[str, Any]:
        bits = _bits(r, d, where, last)
        return {"out_channels": r.int(d, "out_channels", where, 1, 65536),
                "kernel": r.int(d, "kernel", where, 1, 64),
                "stride": r.int(d, "stride", where, 1, 64, default=1),
                "padding": r.int(d, "padding", where, 0, 64, default=0),
                "groups": r.int(d, "groups", where, 1, 65536, default=1), **bits}

    def to_dict(self, layer: Layer) -> dict[str, Any]:
        """groups is written only when it is not 1, so a plain conv's file and cache key are unchanged."""
        out = super().to_dict(layer)
        if out.get("groups") == 1:
            del out["groups"]
        return out

    def output_shape(self, layer: Layer, shape_in: Shape) -> Shape:
        h, w = _window_shape(shape_in.height, shape_in.width, layer.kernel, layer.stride, layer.padding)
        return Shape(layer.out_channels, h, w)

    def weight_count(self, layer: Layer, shape_in: Shape) -> int:
        """K * K * Cin * Cout (no bias: quant.build's convolutions have none)."""
        return layer.kernel * layer.kernel * shape_in.channels * layer.out_channels

    def check(self, r: Reader, layer: Layer, where: str, shape_in: Shape, shape_out: Shape) -> None:
        if layer.padding >= layer.kernel:
            raise r.fail(f"{where}.padding", f"{layer.padding} must be smaller than the kernel ({layer.kernel})")
        if shape_in.channels % layer.groups or layer.out_channels % layer.groups:
            raise r.fail(f"{where}.groups", f"{layer.groups} must divide the input channels ({shape_in.channels}) "
                         f"and out_channels ({layer.out_channels}); depthwise: groups = both")
        _check_window(r, layer, where, shape_in, shape_out)


def is_depthwise(layer: Layer, in_channels: int) -> bool:
    """A depthwise convolution: one filter per channel (groups = in channels = out channels > 1)."""
    return layer.type == "conv" and layer.groups > 1 and layer.groups == in_channels == layer.out_channels


class DenseKind(LayerKind):
    """A fully connected layer (out_features) that flattens its input, channels first."""

    type, prefix = "dense", "fc"
    fields = ("out_features", "weight_bits", "act_bits")
    fold_fields = ("pe", "simd", "weight_memory", "mac", "weight_layout")
    compute = flat_output = can_be_last = True
    needs_map = False

    def parse(self, r: Reader, d: dict[str, Any], where: str, last: bool) -> dict[str, Any]:
        bits = _bits(r, d, where, last)
        return {"out_features": r.int(d, "out_features", where, 1, 1 << 20), **bits}

    def output_shape(self, layer: Layer, shape_in: Shape) -> Shape:
        return Shape(layer.out_features, 1, 1)

    def weight_count(self, layer: Layer, shape_in: Shape) -> int:
        """in_features * out_features, in_features the flattened input (no bias)."""
        return shape_in.size * layer.out_features


class MaxPoolKind(LayerKind):
    """A max-pool (kernel, stride = kernel by default; no padding, floor mode), per channel."""

    type, prefix = "maxpool", "pool"
    fields = ("kernel", "stride")

    def parse(self, r: Reader, d: dict[str, Any], where: str, last: bool) -> dict[str, Any]:
        k = r.int(d, "kernel", where, 1, 64, default=2)
        return {"kernel": k, "stride": r.int(d, "stride", where, 1, 64, default=k)}

    def output_shape(self, layer: Layer, shape_in: Shape) -> Shape:
        h, w = _window_shape(shape_in.height, shape_in.width, layer.kernel, layer.stride, 0)
        return Shape(shape_in.channels, h, w)

    def check(self, r: Reader, layer: Layer, where: str, shape_in: Shape, shape_out: Shape) -> None:
        _check_window(r, layer, where, shape_in, shape_out)


def _requant_bits(r: Reader, d: dict[str, Any], where: str) -> dict[str, Any]:
    """An average pool's optional act_bits: the bits of its requantized mean (None: the bits it receives)."""
    return {"act_bits": r.int(d, "act_bits", where, MIN_BITS, MAX_BITS) if "act_bits" in d else None}


class AvgPoolKind(MaxPoolKind):
    """An average pool (kernel, stride = kernel by default; no padding, floor mode), per channel. The
    mean is requantized (Brevitas: AvgPool2d followed by a QuantIdentity) to act_bits, by default the
    bits it receives."""

    type, prefix = "avgpool", "avgpool"
    fields = ("kernel", "stride", "act_bits")

    def parse(self, r: Reader, d: dict[str, Any], where: str, last: bool) -> dict[str, Any]:
        return {**super().parse(r, d, where, last), **_requant_bits(r, d, where)}


class GlobalAvgPoolKind(LayerKind):
    """The mean of every channel over the whole map (C x 1 x 1), requantized to act_bits (default:
    the bits it receives)."""

    type, prefix = "global_avgpool", "gap"
    fields = ("act_bits",)

    def parse(self, r: Reader, d: dict[str, Any], where: str, last: bool) -> dict[str, Any]:
        return _requant_bits(r, d, where)

    def output_shape(self, layer: Layer, shape_in: Shape) -> Shape:
        return Shape(shape_in.channels, 1, 1)


class AddKind(LayerKind):
    """The element-wise sum of two layers' outputs (a residual join), requantized to act_bits (default:
    the bits it receives). Both inputs have one shape and one bit width; the Brevitas model gives them
    one shared quantizer (one scale), so the hardware adds their integers exactly."""

    type, prefix = "add", "add"
    fields = ("act_bits",)
    arity = 2

    def parse(self, r: Reader, d: dict[str, Any], where: str, last: bool) -> dict[str, Any]:
        return _requant_bits(r, d, where)

    def output_shape(self, layer: Layer, shape_in: Shape) -> Shape:
        return shape_in

    def check_join(self, r: Reader, layer: Layer, where: str, shapes_in: list[Shape], bits_in: list[int]) -> None:
        a, b = shapes_in
        if a != b:
            raise r.fail(f"{where}.inputs", f"{layer.inputs[0]} gives {a.channels}x{a.height}x{a.width} and "
                         f"{layer.inputs[1]} gives {b.channels}x{b.height}x{b.width}; an add needs one shape "
                         "(use a 1x1 conv with the right stride and channels as the shortcut)")
        if bits_in[0] != bits_in[1]:
            raise r.fail(f"{where}.inputs", f"{layer.inputs[0]} gives {bits_in[0]}-bit and {layer.inputs[1]} "
                         f"{bits_in[1]}-bit values; an add needs one bit width (its inputs share one quantizer)")
        if bits_in[0] < 2:
            raise r.fail(f"{where}.inputs", "an add of 1-bit (bipolar) values is not supported; give the layers "
                         "it reads act_bits of 2 or more")


# the registry: the YAML `type` of a layer -> its kind (file order: the order error messages list them)
LAYER_KINDS: dict[str, LayerKind] = {k.type: k for k in (ConvKind(), DenseKind(), MaxPoolKind(), AvgPoolKind(),
                                                          GlobalAvgPoolKind(), AddKind())}
LAYER_TYPES: tuple[str, ...] = tuple(LAYER_KINDS)
