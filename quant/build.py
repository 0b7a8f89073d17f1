"""Brevitas QAT model from a hw_space `Network`, layer for layer what the cost model costs.

Module structure of `QuantNet` (the order `forward` runs and the exported QONNX graph follows):

* ``input_quant`` - the Design's input bits on data in [0, 1]:
  bits >= 2: unsigned QuantIdentity with the FIXED scale s = float32(1/(2^bits - 1)), so a pixel x becomes
  the integer round_half_even(x / s) in 0..2^bits-1 (what the hardware receives; `input_integers`);
  bits == 1: ``InputShift`` (x - 0.5) then a bipolar QuantIdentity (scale 1): x >= 0.5 -> +1, else -1.
* ``blocks[i]`` for layer i, in order (``block(name)`` finds one by the layer's name), built by
  ``BLOCK_BUILDERS[layer.type]``; each block reads its layer's producers (``Network.producers``: a DAG,
  forward keeps every layer's output):
  conv    -> Sequential(conv=QuantConv2d(bias=False, padding, stride, groups), bn=BatchNorm2d, act=<act>)
             (depthwise: QuantConv2d(C, C, K, groups=C), as a Brevitas MobileNet writes it)
  maxpool -> MaxPool2d(kernel, stride)
  avgpool -> Sequential(pool=AvgPool2d(kernel, stride), act=<requant>)
  global_avgpool -> Sequential(pool=AdaptiveAvgPool2d(1), act=<requant>)
  <requant>: the mean requantized to the pool's act_bits (default: the bits it receives): a QuantIdentity with a learned
  per-tensor scale (unsigned for >= 2 bits, bipolar for 1 bit). AvgPool2d + QuantIdentity exports as
  AveragePool (GlobalAveragePool) + Quant, which the backend lowers exactly; Brevitas' TruncAvgPool2d
  exports a Trunc node instead, which the backend does not read.
  add     -> AddBlock(act=<requant>): act(a + b) of its two inputs, requantized to the add's act_bits.
             The two producers of an add share ONE activation quantizer instance (their `act` modules
             are the same object, united over chains of adds), so both inputs are codes at one scale.
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
from hw_space.errors import CodesignError

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


class AddBlock(nn.Module):
    """A residual join: the sum of its two inputs (codes at one shared scale), requantized by `act`."""

    def __init__(self, act: nn.Module):
        super().__init__()
        self.act = act

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.act(a + b)


def _add_block(layer: Layer, shape_in: Shape, last: bool, flat_input: bool, in_bits: int) -> nn.Module:
    return AddBlock(_requant(layer.act_bits or in_bits))


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
                                           "avgpool": _avgpool_block, "global_avgpool": _global_avgpool_block,
                                           "add": _add_block}


def _quantizer_owner(network: Network, j: int) -> int:
    """The layer whose activation quantizer produced the values layer j outputs (-1: the input
    quantizer): j itself, or for a max-pool (no quantizer) its producer's owner."""
    while j >= 0 and network.layers[j].type == "maxpool":
        j = network.producers(j)[0]
    return j


def shared_quantizers(network: Network) -> dict[int, int]:
    """Per layer whose quantizer an add reads, the first layer of its group: the producers of every
    add share one quantizer (united across adds, so a block input read by two adds joins both)."""
    parent: dict[int, int] = {}

    def find(j: int) -> int:
        while parent.setdefault(j, j) != j:
            j = parent[j]
        return j

    for j, layer in enumerate(network.layers):
        if layer.type != "add":
            continue
        owners = [_quantizer_owner(network, p) for p in network.producers(j)]
        if min(owners) < 0:
            raise CodesignError(f"network.layers[{j}] ({layer.name}): an add reading the network input directly "
                                "is not supported by the Brevitas builder; put a conv before the block")
        a, b = sorted(find(o) for o in owners)
        parent[b] = a
    return {j: find(j) for j in parent}


class QuantNet(nn.Module):
    """The Brevitas model of one Network; see the module docstring for its exact structure."""

    def __init__(self, network: Network):
        super().__init__()
        self.network = network
        self.input_quant = _input_quant(network.input.bits)
        self.names = tuple(layer.name for layer in network.layers)
        last = len(network.layers) - 1
        self.producers = tuple(tuple(network.producers(i)) for i in range(len(network.layers)))
        shared = shared_quantizers(network)
        blocks: list[nn.Module] = []
        for i, (layer, (shape_in, _)) in enumerate(zip(network.layers, network.shapes())):
            p = network.producers(i)[0]
            flat_input = p >= 0 and network.layers[p].kind.flat_output
            block = BLOCK_BUILDERS[layer.type](layer, shape_in, i == last, flat_input, network.input_bits_of(i))
            first = shared.get(i, i)
            if first != i:  # the later producer of an add reuses the earlier one's quantizer instance
                block.act = blocks[first].act
            blocks.append(block)
        # a list, not a ModuleDict: valid layer names such as "eval" or "train" would clash with attributes
        self.blocks = nn.ModuleList(blocks)

    def block(self, name: str) -> nn.Module:
        """The block of the layer called `name`."""
        return self.blocks[self.names.index(name)]

    def named_blocks(self) -> list[tuple[str, nn.Module]]:
        """(layer name, block) in forward order."""
        return list(zip(self.names, self.blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs: dict[int, torch.Tensor] = {-1: self.input_quant(x)}
        for i, block in enumerate(self.blocks):
            outs[i] = block(*(outs[p] for p in self.producers[i]))
        return outs[len(self.blocks) - 1]


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
    """Every activation quantizer in forward order: the input quantizer, then each block's `act`
    (a quantizer shared by two blocks is listed once)."""
    first = model.input_quant
    out = [first.quant if isinstance(first, nn.Sequential) else first]
    for block in model.blocks:
        act = block._modules.get("act") if isinstance(block, (nn.Sequential, AddBlock)) else None
        if act is not None and all(act is not q for q in out):
            out.append(act)
    return out


def describe(model: QuantNet) -> list[LayerInfo]:
    """Per layer: shapes seen in a real forward pass, and the bits of the quantizers that actually ran
    (input bits = the last activation quantizer executed before the values it reads were produced:
    its producer's, followed through max-pools, which have none)."""
    events: list[tuple[str, str, int]] = []  # (kind, name, bits) in execution order
    shapes: dict[str, tuple[Shape, Shape]] = {}
    hooks = [q.register_forward_hook(lambda m, i, o: events.append(("quant", "", _act_bits(m))))
             for q in _quantizers(model)]

    def leave(name: str, i: tuple, o: torch.Tensor) -> None:
        shapes[name] = (_shape(i[0]), _shape(o))
        events.append(("leave", name, 0))

    for name, block in model.named_blocks():
        hooks.append(block.register_forward_hook(lambda m, i, o, name=name: leave(name, i, o)))
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
    out_bits: dict[str, int] = {}  # the last quantizer run when each block finished (its output's)
    last_bits = 0
    input_bits_ = events[0][2] if events and events[0][0] == "quant" else 0
    for kind, name, bits in events:
        if kind == "quant":
            last_bits = bits
        else:
            out_bits[name] = last_bits
    input_bits: dict[str, int] = {}
    for i, name in enumerate(model.names):
        p = model.producers[i][0]
        while p >= 0 and isinstance(model.blocks[p], nn.MaxPool2d):
            p = model.producers[p][0]
        input_bits[name] = input_bits_ if p < 0 else out_bits[model.names[p]]
    out = []
    for name, block in model.named_blocks():
        if isinstance(block, AddBlock):
            kind, wbits, abits = "add", None, _act_bits(block.act)
        elif isinstance(block, nn.MaxPool2d):
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
