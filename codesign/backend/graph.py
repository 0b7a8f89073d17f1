"""The integer dataflow graph: a networkx DiGraph chain whose nodes hold one op dataclass each.

Front-end ops mirror the cleaned QONNX graph (float semantics); the lowering transforms replace
them by hardware layers (integer semantics). Node keys are unique strings; the op sits under the
node attribute ``op``. Every graph is a single chain from one source to one sink.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from hw_space.errors import CodesignError

# ---------------------------------------------------------------- integer formats


@dataclass(frozen=True)
class IntFmt:
    """How one stream element is coded: `bits` wide, signed or not; bipolar codes 0/1 mean -1/+1."""

    bits: int
    signed: bool
    bipolar: bool = False

    @property
    def lo(self) -> int:
        """Smallest value (not code)."""
        if self.bipolar:
            return -1
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def hi(self) -> int:
        """Largest value (not code)."""
        if self.bipolar:
            return 1
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @staticmethod
    def for_range(lo: int, hi: int) -> IntFmt:
        """The narrowest integer format holding every value in [lo, hi]."""
        lo, hi = int(lo), int(hi)
        if lo >= 0:
            return IntFmt(max(1, int(hi).bit_length()), False)
        bits = max((-lo - 1).bit_length(), max(hi, 0).bit_length()) + 1
        return IntFmt(bits, True)

    def encode(self, values: np.ndarray) -> np.ndarray:
        """Values to codes (bipolar -1/+1 to 0/1; integers unchanged)."""
        values = np.asarray(values, dtype=np.int64)
        return (values + 1) // 2 if self.bipolar else values

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Codes to values."""
        codes = np.asarray(codes, dtype=np.int64)
        return 2 * codes - 1 if self.bipolar else codes

    def describe(self) -> str:
        if self.bipolar:
            return "bipolar"
        return f"{'int' if self.signed else 'uint'}{self.bits}"


@dataclass(frozen=True)
class QTensor:
    """A quantized constant: real value = (values) * scale, with integer values of format fmt."""

    values: np.ndarray
    scale: np.ndarray
    fmt: IntFmt

    def real(self) -> np.ndarray:
        return self.values.astype(np.float64) * self.scale


# ---------------------------------------------------------------- front-end ops (float semantics)


@dataclass
class Op:
    """Base of every node op: `name` names it in messages; `onnx_op` is the op it came from."""

    name: str
    onnx_op: str = ""


@dataclass
class Source(Op):
    """The graph's float input, logical shape NCHW or NC."""

    shape: tuple[int, ...] = ()


@dataclass
class Sink(Op):
    """The graph's output."""


@dataclass
class Quantizer(Op):
    """QONNX Quant / BipolarQuant on activations: code = clip(round_half_even(x/scale + zp), lo, hi) - zp.

    For bipolar, code = 1 if x >= 0 else 0 (value 2*code-1). `scale` is per channel (last axis)
    or a scalar; `zero_point` an integer."""

    scale: np.ndarray = field(default_factory=lambda: np.ones(1))
    zero_point: int = 0
    qmin: int = 0
    qmax: int = 255
    bipolar: bool = False

    @property
    def fmt(self) -> IntFmt:
        if self.bipolar:
            return IntFmt(1, False, True)
        return IntFmt.for_range(self.qmin - self.zero_point, self.qmax - self.zero_point)

    @property
    def levels(self) -> int:
        """Number of thresholds (distinct output codes minus one)."""
        return 1 if self.bipolar else self.qmax - self.qmin

    @property
    def min_code(self) -> int:
        return 0 if self.bipolar else self.qmin - self.zero_point

    def codes(self, x: np.ndarray) -> np.ndarray:
        """Quantize float values (channels on the last axis) to codes, in x's own float precision."""
        x = np.asarray(x)
        scale = self.scale.astype(x.dtype)
        if self.bipolar:
            return (x >= 0).astype(np.int64)
        q = np.round(x / scale + x.dtype.type(self.zero_point))
        return np.clip(q, self.qmin, self.qmax).astype(np.int64) - self.zero_point


@dataclass
class Affine(Op):
    """Elementwise y = x*mul + add with per-channel (last axis) or scalar constants."""

    mul: np.ndarray = field(default_factory=lambda: np.ones(1))
    add: np.ndarray = field(default_factory=lambda: np.zeros(1))


@dataclass
class Relu(Op):
    """y = max(x, 0)."""


@dataclass
class Conv(Op):
    """2D convolution, group 1, weights quantized per output channel; bias float or None."""

    weight: QTensor | None = None
    bias: np.ndarray | None = None
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, left, bottom, right
    in_shape: tuple[int, int, int] = (1, 1, 1)  # C, H, W
    out_shape: tuple[int, int, int] = (1, 1, 1)


@dataclass
class MatMul(Op):
    """x (1, K) @ W (K, N) with W quantized per output column."""

    weight: QTensor | None = None


@dataclass
class MaxPool(Op):
    """2D max-pool without padding, floor mode."""

    kernel: tuple[int, int] = (2, 2)
    stride: tuple[int, int] = (2, 2)
    in_shape: tuple[int, int, int] = (1, 1, 1)
    out_shape: tuple[int, int, int] = (1, 1, 1)


@dataclass
class Layout(Op):
    """Reshape / Flatten / Transpose: moves elements, computes nothing. `perm` maps every element of
    the output (logical shape) to its index in the input's row-major order."""

    in_shape: tuple[int, ...] = ()
    out_shape: tuple[int, ...] = ()
    perm: np.ndarray | None = None


# ---------------------------------------------------------------- hardware layers (integer semantics)


@dataclass
class InputStage(Op):
    """Accelerator input: the host applies `preprocess` (float Affine / Layout ops on the logical
    tensor of shape `source_shape`), quantizes with `quantizer` and streams the codes pixel by pixel,
    channels innermost."""

    shape: tuple[int, int, int] = (1, 1, 1)  # H, W, C
    quantizer: Quantizer | None = None
    preprocess: list[Op] = field(default_factory=list)
    source_shape: tuple[int, ...] = ()
    elems: int = 1  # elements per stream word

    @property
    def fmt(self) -> IntFmt:
        assert self.quantizer is not None
        return self.quantizer.fmt

    @property
    def out_elems(self) -> int:
        return self.elems

    @property
    def stream_fmt(self) -> IntFmt:
        return self.fmt

    @property
    def frame_elems(self) -> int:
        h, w, c = self.shape
        return h * w * c


@dataclass
class SlidingWindow(Op):
    """Sliding-window generator: for every output pixel, the K*K*C window in (kh, kw, c) order.
    Padding inserts value 0; bipolar input with padding is widened to int2 (out_fmt)."""

    ifm: tuple[int, int, int] = (1, 1, 1)  # H, W, C
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    in_fmt: IntFmt = IntFmt(8, False)
    out_fmt: IntFmt = IntFmt(8, False)
    simd: int = 1

    @property
    def ofm(self) -> tuple[int, int]:
        h, w, _ = self.ifm
        t, l, b, r = self.pads
        return ((h + t + b - self.kernel[0]) // self.stride[0] + 1,
                (w + l + r - self.kernel[1]) // self.stride[1] + 1)

    @property
    def in_elems(self) -> int:
        return self.simd

    @property
    def out_elems(self) -> int:
        return self.simd

    @property
    def stream_fmt(self) -> IntFmt:
        return self.out_fmt

    @property
    def frame_elems(self) -> int:
        oh, ow = self.ofm
        return oh * ow * self.kernel[0] * self.kernel[1] * self.ifm[2]


@dataclass
class MVAU(Op):
    """Matrix-vector(-activation) unit: acc = W (MH x MW) . x over `reps` input vectors, then either
    thresholds (out = offset + number of thresholds reached) or the raw accumulator.

    `epilogue` holds the float ops still to apply to the real-valued accumulator (acc * in_scale *
    weight scale first); lowering the activation turns it into `thresholds`."""

    mw: int = 1
    mh: int = 1
    reps: int = 1
    weights: np.ndarray | None = None  # (MH, MW) integer values
    w_fmt: IntFmt = IntFmt(8, True)
    in_fmt: IntFmt = IntFmt(8, False)
    epilogue: list[Op] = field(default_factory=list)
    thresholds: np.ndarray | None = None  # (MH, NT) int64, sorted per row
    out_offset: int = 0  # code of the lowest output level
    out_fmt: IntFmt | None = None  # None: raw accumulator out
    out_scale: np.ndarray | None = None  # real value of an output code (per channel or scalar)
    signs: np.ndarray | None = None  # per row: -1 where the weights were negated for the thresholds
    layer: str = ""  # the Design layer name
    kind: str = "dense"  # conv | dense
    weight_bits: int = 0  # bits of the weight quantizer (1: bipolar)
    kernel: tuple[int, int] = (1, 1)  # conv geometry, for the network view
    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    out_hw: tuple[int, int] = (1, 1)
    simd: int = 1
    pe: int = 1
    xnor: bool = False
    mac: str = "auto"  # multiplier style of the Design (auto | lut | dsp): BIND_OP in the HLS
    weight_memory: str = "auto"  # memory style of the Design (auto | bram | lutram | uram): BIND_STORAGE

    def acc_range(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-row (min, max) of the accumulator over every input the format allows."""
        assert self.weights is not None
        w = self.weights.astype(np.int64)
        lo, hi = self.in_fmt.lo, self.in_fmt.hi
        pos, neg = np.clip(w, 0, None), np.clip(w, None, 0)
        return pos.sum(1) * lo + neg.sum(1) * hi, pos.sum(1) * hi + neg.sum(1) * lo

    @property
    def acc_fmt(self) -> IntFmt:
        lo, hi = self.acc_range()
        return IntFmt.for_range(min(int(lo.min()), 0), int(hi.max()))

    @property
    def in_elems(self) -> int:
        return self.simd

    @property
    def out_elems(self) -> int:
        return self.pe

    @property
    def stream_fmt(self) -> IntFmt:
        return self.out_fmt if self.out_fmt is not None else self.acc_fmt

    @property
    def frame_elems(self) -> int:
        return self.mh * self.reps


@dataclass
class MaxReduce(Op):
    """Max over each window of `window` pixels from a sliding-window generator (max-pool on codes)."""

    channels: int = 1
    window: int = 4
    reps: int = 1
    fmt: IntFmt = IntFmt(8, False)
    kernel: tuple[int, int] = (2, 2)
    stride: tuple[int, int] = (2, 2)
    layer: str = ""
    pe: int = 1

    @property
    def in_elems(self) -> int:
        return self.pe

    @property
    def out_elems(self) -> int:
        return self.pe

    @property
    def stream_fmt(self) -> IntFmt:
        return self.fmt

    @property
    def frame_elems(self) -> int:
        return self.channels * self.reps


@dataclass
class WidthConverter(Op):
    """Repacks a stream from in_elems to out_elems elements per word; `total` elements per frame."""

    in_elems: int = 1
    out_elems: int = 1
    total: int = 1
    fmt: IntFmt = IntFmt(8, False)

    @property
    def stream_fmt(self) -> IntFmt:
        return self.fmt

    @property
    def frame_elems(self) -> int:
        return self.total


@dataclass
class OutputStage(Op):
    """Accelerator output: `count` integer codes per frame; logits = code * scale + bias per channel
    (last axis; bipolar codes are 0/1 and their decoding is folded into scale and bias)."""

    count: int = 1
    fmt: IntFmt = IntFmt(32, True)
    scale: np.ndarray = field(default_factory=lambda: np.ones(1))
    bias: np.ndarray = field(default_factory=lambda: np.zeros(1))
    elems: int = 1

    @property
    def in_elems(self) -> int:
        return self.elems


# Hardware layers (stream stages): in_elems / out_elems are the elements per word they read / write,
# stream_fmt the format and frame_elems the number of the elements they write per frame.
HARDWARE_OPS = (InputStage, SlidingWindow, MVAU, MaxReduce, WidthConverter, OutputStage)


# ---------------------------------------------------------------- chain helpers


def op(g: nx.DiGraph, key: str) -> Op:
    return g.nodes[key]["op"]


def chain(g: nx.DiGraph) -> list[str]:
    """Node keys from source to sink; the graph must be a single chain."""
    starts = [n for n in g.nodes if g.in_degree(n) == 0]
    if len(starts) != 1:
        raise CodesignError(f"the graph must have exactly one input, found {len(starts)}")
    order = [starts[0]]
    while True:
        succ = list(g.successors(order[-1]))
        if not succ:
            break
        if len(succ) > 1:
            raise CodesignError(f"node {op(g, order[-1]).name!r}: its output feeds {len(succ)} nodes; "
                                "only chains of layers are supported (no branches or residual connections)")
        order.append(succ[0])
    if len(order) != g.number_of_nodes():
        raise CodesignError("the graph is not a single chain of layers")
    return order


def ops(g: nx.DiGraph) -> list[Op]:
    """The ops in chain order."""
    return [op(g, k) for k in chain(g)]


def successor(g: nx.DiGraph, key: str) -> str | None:
    succ = list(g.successors(key))
    return succ[0] if succ else None


def predecessor(g: nx.DiGraph, key: str) -> str | None:
    pred = list(g.predecessors(key))
    return pred[0] if pred else None


def from_ops(items: list[Op]) -> nx.DiGraph:
    """A chain graph from ops in order (keys are the op names, made unique)."""
    g = nx.DiGraph()
    prev = None
    for item in items:
        key = unique_key(g, item.name)
        g.add_node(key, op=item)
        if prev is not None:
            g.add_edge(prev, key)
        prev = key
    return g


def unique_key(g: nx.DiGraph, base: str) -> str:
    key, i = base, 1
    while key in g:
        key = f"{base}#{i}"
        i += 1
    return key


def remove(g: nx.DiGraph, key: str) -> None:
    """Remove a node and join its predecessor to its successor."""
    pred, succ = predecessor(g, key), successor(g, key)
    g.remove_node(key)
    if pred is not None and succ is not None:
        g.add_edge(pred, succ)


def replace_node(g: nx.DiGraph, key: str, new: list[Op]) -> list[str]:
    """Replace one node by a chain of new ops; returns their keys."""
    pred, succ = predecessor(g, key), successor(g, key)
    g.remove_node(key)
    keys: list[str] = []
    prev = pred
    for item in new:
        k = unique_key(g, item.name)
        g.add_node(k, op=item)
        if prev is not None:
            g.add_edge(prev, k)
        keys.append(k)
        prev = k
    if succ is not None and prev is not None:
        g.add_edge(prev, succ)
    return keys


def insert_after(g: nx.DiGraph, key: str, new: Op) -> str:
    """Insert a node between `key` and its successor."""
    succ = successor(g, key)
    k = unique_key(g, new.name)
    g.add_node(k, op=new)
    g.add_edge(key, k)
    if succ is not None:
        g.remove_edge(key, succ)
        g.add_edge(k, succ)
    return k
