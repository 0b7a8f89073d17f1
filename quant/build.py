"""Brevitas QAT model from a hw_space `Network`, layer for layer what the cost model costs.

Module structure of `QuantNet` (the order `forward` runs and the exported QONNX graph follows):

* ``input_quant`` - the Design's input bits on data in [0, 1]:
  bits >= 2: unsigned QuantIdentity with the FIXED scale s = float32(1/(2^bits - 1)), so a pixel x becomes
  the integer round_half_even(x / s) in 0..2^bits-1 (what the hardware receives; `input_integers`);
  bits == 1: ``InputShift`` (x - 0.5) then a bipolar QuantIdentity (scale 1): x >= 0.5 -> +1, else -1.
* ``blocks[i]`` for layer i, in order (``block(name)`` finds one by the layer's name), built by
  ``BLOCK_BUILDERS[layer.type]``; the network must be a chain (``Network.require_chain``):
  conv    -> Sequential(conv=QuantConv2d(bias=False, padding, stride, groups), bn=BatchNorm2d, act=<act>)
             (depthwise: QuantConv2d(C, C, K, groups=C), as a Brevitas MobileNet writes it)
  maxpool -> MaxPool2d(kernel, stride)
  avgpool -> Sequential(pool=AvgPool2d(kernel, stride), act=<requant>)
  global_avgpool -> Sequential(pool=AdaptiveAvgPool2d(1), act=<requant>)
  <requant>: the mean requantized to the pool's act_bits (default: the bits it receives): a QuantIdentity with a learned
  per-tensor scale (unsigned for >= 2 bits, bipolar for 1 bit). AvgPool2d + QuantIdentity exports as
  AveragePool (GlobalAveragePool) + Quant, which the backend lowers exactly; Brevitas' TruncAvgPool2d
  exports a Trunc node instead, which the backend does not read.
  dense   -> Sequential(linear=QuantLinear(bias=False), bn=BatchNorm1d, act=<act>)
  last dense -> Sequential(linear=QuantLinear(bias=False), scale=ClassAffine) - raw logits.
  The first dense block starts with flatten=nn.Flatten(): channels-first (C, H, W) order.

Weights: 1 bit -> bipolar +-1 (Brevitas BINARY, constant scale 1, as bnn_pynq; PyTorch's default init
of the latent weights trains better here than bnn_pynq's uniform(-1, 1));
>= 2 bits -> signed narrow-range integers with a per-output-channel float scale (max |w| statistics).
Activations <act>: 1 bit -> bipolar sign (QuantIdentity, constant scale 1, exported as BipolarQuant);
>= 2 bits -> QuantReLU, unsigned, learned per-tensor scale.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import torch
from brevitas.core.scaling import ScalingImplType
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from brevitas.quant import (
    Int8WeightPerChannelFloat,
    SignedBinaryActPerTensorConst,
    SignedBinaryWeightPerTensorConst,
    Uint8ActPerTensorFloat,
)
from torch import nn

from hw_space.design import Layer, Network, Shape

BN_EPS = 1e-4


class InputQuant(Uint8ActPerTensorFloat):
    """Unsigned input quantizer with a constant (never learned) max of 1.0: scale = 1/(2^bits - 1)."""

    scaling_impl_type = ScalingImplType.CONST
    scaling_const = 1.0
    max_val = 1.0


class BipolarActQuant(SignedBinaryActPerTensorConst):
    """Bipolar sign activation (+-1, scale 1), straight-through gradient clipped to [-1, 1]."""


class BinaryWeightQuant(SignedBinaryWeightPerTensorConst):
    """Bipolar +-1 weights with scale 1 (latent float weights clipped to [-1, 1]), as bnn_pynq."""

    scaling_const = 1.0


class IntWeightQuant(Int8WeightPerChannelFloat):
    """Signed narrow-range integer weights, per-output-channel scale from max |w|."""


class ReluActQuant(Uint8ActPerTensorFloat):
    """Unsigned activation after ReLU; the per-tensor scale is initialised from statistics, then learned."""


class InputShift(nn.Module):
    """Centres [0, 1] data on 0 before a bipolar input quantizer (exported as one Add node)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + (-0.5)


class ClassAffine(nn.Module):
    """Learned per-class scale and bias on the last layer's logits (exported as Mul and Add by constants)."""

    def __init__(self, classes: int, init_scale: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.full((classes,), float(init_scale)))
        self.bias = nn.Parameter(torch.zeros(classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight + self.bias


def _activation(bits: int) -> nn.Module:
    if bits == 1:
        return QuantIdentity(act_quant=BipolarActQuant)
    return QuantReLU(act_quant=ReluActQuant, bit_width=bits)


def _weight_kwargs(bits: int) -> dict:
    if bits == 1:
        return {"weight_quant": BinaryWeightQuant}
    return {"weight_quant": IntWeightQuant, "weight_bit_width": bits}


def _input_quant(bits: int) -> nn.Module:
    if bits == 1:
        return nn.Sequential(OrderedDict(shift=InputShift(), quant=QuantIdentity(act_quant=BipolarActQuant)))
    return QuantIdentity(act_quant=InputQuant, bit_width=bits)


def _requant(bits: int) -> nn.Module:
    """The quantizer after an average pool: the bits it receives, its own learned scale."""
    if bits == 1:
        return QuantIdentity(act_quant=BipolarActQuant)
    return QuantIdentity(act_quant=ReluActQuant, bit_width=bits)


def _maxpool_block(layer: Layer, shape_in: Shape, last: bool, flat_input: bool, in_bits: int) -> nn.Module:
    return nn.MaxPool2d(layer.kernel, layer.stride)


def _avgpool_block(layer: Layer, shape_in: Shape, last: bool, flat_input: bool, in_bits: int) -> nn.Module:
    return nn.Sequential(OrderedDict(pool=nn.AvgPool2d(layer.kernel, layer.stride),
                                     act=_requant(layer.act_bits or in_bits)))


def _global_avgpool_block(layer: Layer, shape_in: Shape, last: bool, flat_input: bool, in_bits: int) -> nn.Module:
    return nn.Sequential(OrderedDict(pool=nn.AdaptiveAvgPool2d(1), act=_requant(layer.act_bits or in_bits)))


def _conv_block(layer: Layer, shape_in: Shape, last: bool, flat_input: bool, in_bits: int) -> nn.Module:
    conv = QuantConv2d(shape_in.channels, layer.out_channels, layer.kernel, stride=layer.stride,
                       padding=layer.padding, groups=layer.groups, bias=False, **_weight_kwargs(layer.weight_bits))
    assert layer.act_bits is not None
    return nn.Sequential(OrderedDict(conv=conv, bn=nn.BatchNorm2d(layer.out_channels, eps=BN_EPS),
                                     act=_activation(layer.act_bits)))


def _dense_block(layer: Layer, shape_in: Shape, last: bool, flat_input: bool, in_bits: int) -> nn.Module:
    cin = shape_in.size
    linear = QuantLinear(cin, layer.out_features, bias=False, **_weight_kwargs(layer.weight_bits))
    parts: OrderedDict[str, nn.Module] = OrderedDict()
    if not flat_input:
        parts["flatten"] = nn.Flatten()
    parts["linear"] = linear
    if last:
        # +-1 weights make logits as large as the fan-in: start the class scale at 1/sqrt(fan-in).
        parts["scale"] = ClassAffine(layer.out_features, 1.0 / math.sqrt(cin) if layer.weight_bits == 1 else 1.0)
    else:
        assert layer.act_bits is not None
        parts["bn"] = nn.BatchNorm1d(layer.out_features, eps=BN_EPS)
        parts["act"] = _activation(layer.act_bits)
    return nn.Sequential(parts)


# The block builder of each layer type: (layer, its input shape, is it the last layer, is its input
# already a vector, the bits it receives) -> its modules, created in the order that fixes the seeded
# parameter init.
BlockBuilder = Callable[[Layer, Shape, bool, bool, int], nn.Module]
BLOCK_BUILDERS: dict[str, BlockBuilder] = {"conv": _conv_block, "dense": _dense_block, "maxpool": _maxpool_block,
                                           "avgpool": _avgpool_block, "global_avgpool": _global_avgpool_block}


class QuantNet(nn.Module):
    """The Brevitas model of one Network; see the module docstring for its exact structure."""

    def __init__(self, network: Network):
        super().__init__()
        network.require_chain("quant.build (QAT training and QONNX export)")
        self.network = network
        self.input_quant = _input_quant(network.input.bits)
        self.names = tuple(layer.name for layer in network.layers)
        last = len(network.layers) - 1
        blocks = []
        for i, (layer, (shape_in, _)) in enumerate(zip(network.layers, network.shapes())):
            p = network.producers(i)[0]
            flat_input = p >= 0 and network.layers[p].kind.flat_output
            blocks.append(BLOCK_BUILDERS[layer.type](layer, shape_in, i == last, flat_input, network.input_bits_of(i)))
        # a list, not a ModuleDict: valid layer names such as "eval" or "train" would clash with attributes
        self.blocks = nn.ModuleList(blocks)

    def block(self, name: str) -> nn.Module:
        """The block of the layer called `name`."""
        return self.blocks[self.names.index(name)]

    def named_blocks(self) -> list[tuple[str, nn.Module]]:
        """(layer name, block) in forward order."""
        return list(zip(self.names, self.blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_quant(x)
        for block in self.blocks:
            x = block(x)
        return x


def build(network: Network) -> QuantNet:
    """Build the Brevitas QAT model of `network` (random weights, training mode)."""
    return QuantNet(network)


def input_integers(model: QuantNet, x: torch.Tensor) -> torch.Tensor:
    """The integers the hardware receives for float inputs `x` in [0, 1]: 0..2^bits-1, or -1/+1 for 1 bit.

    Taken from the model's own input quantizer (int64), so rounding ties match the Brevitas model exactly."""
    first = model.input_quant
    quant = first.quant if isinstance(first, nn.Sequential) else first
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            q = first(x)
            scale = quant.act_quant.scale()
    finally:
        model.train(was_training)
    return torch.round(q / scale).to(torch.int64)


# ---------------------------------------------------------------- introspection

@dataclass(frozen=True)
class LayerInfo:
    """What a built model really does at one layer, measured from its modules (compare with hw_space)."""

    name: str
    type: str
    in_shape: Shape
    out_shape: Shape
    input_bits: int
    weight_bits: int | None
    act_bits: int | None


def _act_bits(module: nn.Module) -> int:
    return int(module.act_quant.bit_width().item())


def _quantizers(model: QuantNet) -> list[nn.Module]:
    """Every activation quantizer in forward order: the input quantizer, then each block's `act`."""
    first = model.input_quant
    out = [first.quant if isinstance(first, nn.Sequential) else first]
    out += [block.act for block in model.blocks if isinstance(block, nn.Sequential) and "act" in block._modules]
    return out


def describe(model: QuantNet) -> list[LayerInfo]:
    """Per layer: shapes seen in a real forward pass, and the bits of the quantizers that actually ran
    (input bits = the last activation quantizer executed before the layer was entered)."""
    events: list[tuple[str, str, int]] = []  # (kind, name, bits) in execution order
    shapes: dict[str, tuple[Shape, Shape]] = {}
    hooks = [q.register_forward_hook(lambda m, i, o: events.append(("quant", "", _act_bits(m))))
             for q in _quantizers(model)]
    for name, block in model.named_blocks():
        hooks.append(block.register_forward_pre_hook(lambda m, i, name=name: events.append(("enter", name, 0))))
        hooks.append(block.register_forward_hook(
            lambda m, i, o, name=name: shapes.__setitem__(name, (_shape(i[0]), _shape(o)))))
    was_training = model.training
    net = model.network
    try:
        model.eval()
        with torch.no_grad():
            model(torch.rand(2, net.input.channels, net.input.height, net.input.width))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    input_bits: dict[str, int] = {}
    last_bits = 0
    for kind, name, bits in events:
        if kind == "quant":
            last_bits = bits
        else:
            input_bits[name] = last_bits
    out = []
    for name, block in model.named_blocks():
        if isinstance(block, nn.MaxPool2d):
            kind, wbits, abits = "maxpool", None, None
        elif "pool" in block._modules:
            pool = block.pool
            kind = "avgpool" if isinstance(pool, nn.AvgPool2d) else "global_avgpool"
            wbits, abits = None, _act_bits(block.act)
        else:
            core = block.conv if "conv" in block._modules else block.linear
            kind = "conv" if isinstance(core, QuantConv2d) else "dense"
            wbits = int(core.quant_weight().bit_width.item())
            abits = _act_bits(block.act) if "act" in block._modules else None
        out.append(LayerInfo(name=name, type=kind, in_shape=shapes[name][0], out_shape=shapes[name][1],
                             input_bits=input_bits[name], weight_bits=wbits, act_bits=abits))
    return out


def _shape(t: torch.Tensor) -> Shape:
    dims = tuple(t.shape[1:])
    if len(dims) == 1:
        return Shape(dims[0], 1, 1)
    return Shape(*dims)
