"""Lowering: front-end (float) ops become hardware stages with integer semantics, in this order
(LOWERING): input quantizer, layout ops, convolutions and products, the float ops after them,
activations as thresholds, max-pools, the output.

These steps pattern-match front-end op classes (ops/front.py), as frontend.py matches ONNX op types:
recognizing the float ops and replacing them is what lowering is. What a node's output codes are is
asked of the op (output_codes, passes_codes); a product's lowering is looked up by its class
(LOWER_PRODUCT). The graph is a DAG: a fork is a node read by several nodes (InsertDuplicates puts a
DuplicateStreams stage there), a join an add of two streams (Sum -> AddStreams).
"""

from __future__ import annotations

from dataclasses import replace

import networkx as nx
import numpy as np

from codesign.backend import activation
from codesign.backend.dag import (
    connect,
    consumers,
    insert_after,
    is_fork,
    op,
    predecessor,
    producers,
    remove,
    replace_node,
    sinks,
    sources,
    successor,
    topological,
)
from codesign.backend.formats import IntFmt, QTensor
from codesign.backend.ops.base import HardwareOp, Op
from codesign.backend.ops.front import Affine, AvgPool, Conv, Layout, MatMul, MaxPool, Quantizer, Relu, Sink, Source, Sum
from codesign.backend.ops.io import InputStage, OutputStage
from codesign.backend.ops.maxreduce import MaxReduce
from codesign.backend.ops.mvau import MVAU
from codesign.backend.ops.streams import AddStreams, DuplicateStreams
from codesign.backend.ops.swg import PoolWindow, SlidingWindow
from codesign.backend.ops.vvau import VVAU, AvgPoolUnit, GlobalAccPool, ones
from codesign.backend.transforms.base import Transform
from codesign.backend.transforms.base import where as _where
from hw_space.errors import CodesignError

MAX_ACT_LEVELS = 255  # at most 8-bit activations between layers (2^8 - 1 thresholds per channel)




def value_format(g: nx.DiGraph, key: str) -> tuple[IntFmt, np.ndarray] | None:
    """(format, scale) of the integer codes a node outputs (real = decode(code) * scale), or None if
    its output is still a float: the op's own codes, or its input's when it passes codes on."""
    item = op(g, key)
    if item.passes_codes:
        pred = predecessor(g, key)
        return value_format(g, pred) if pred is not None else None
    return item.output_codes()


def _scalar_scale(item: Op, fmt_scale: tuple[IntFmt, np.ndarray] | None) -> tuple[IntFmt, float]:
    if fmt_scale is None:
        raise CodesignError(f"{_where(item)}: its input is not quantized; put a Quant or BipolarQuant "
                            "activation before it")
    fmt, scale = fmt_scale
    if np.ptp(scale) != 0:
        raise CodesignError(f"{_where(item)}: its input has per-channel activation scales; only one scale "
                            "per tensor is supported into a layer")
    return fmt, float(scale.reshape(-1)[0])


# ---------------------------------------------------------------- front-end lowering


class LowerInput(Transform):
    """Source, float preprocessing (affine and layout ops, done by the host) and the first quantizer
    -> InputStage."""

    def run(self, g: nx.DiGraph) -> None:
        starts = sources(g)
        if len(starts) != 1:
            raise CodesignError(f"the graph must have exactly one input, found {len(starts)}")
        keys = [starts[0]]
        while g.out_degree(keys[-1]) == 1 and not isinstance(op(g, keys[-1]), Quantizer):
            keys.append(consumers(g, keys[-1])[0])
        src = op(g, keys[0])
        assert isinstance(src, Source)
        pre: list[Op] = []
        shape = src.shape
        for end, key in enumerate(keys[1:], start=1):
            item = op(g, key)
            if isinstance(item, (Affine, Layout, Relu)):
                pre.append(item)
                shape = item.out_shape if isinstance(item, Layout) else shape
                continue
            if not isinstance(item, Quantizer):
                raise CodesignError(f"{_where(item)}: the input must be quantized first (a Quant or BipolarQuant "
                                    "on the graph input defines the accelerator's input format)")
            if len(shape) not in (2, 4):
                raise CodesignError(f"{_where(item)}: the quantized input has shape {list(shape)}; supported: "
                                    "(1, C, H, W) or (1, N)")
            hwc = (shape[2], shape[3], shape[1]) if len(shape) == 4 else (1, 1, shape[1])
            stage = InputStage(name="input", onnx_op=item.onnx_op, shape=hwc, quantizer=item, preprocess=pre,
                               source_shape=src.shape)
            for k in keys[1:end + 1]:
                remove(g, k)
            replace_node(g, keys[0], [stage])
            return
        raise CodesignError("the model has no quantizer: nothing to put on an integer accelerator")


def stream_positions(shape: tuple[int, ...]) -> np.ndarray:
    """Stream position of every element of a logical (N, C, ...) tensor: channels innermost."""
    moved = (shape[0],) + tuple(shape[2:]) + (shape[1],)
    return np.moveaxis(np.arange(int(np.prod(shape))).reshape(moved), -1, 1)


class AbsorbLayout(Transform):
    """Remove Reshape/Flatten/Transpose: the stream order is fixed (pixels, channels innermost), so a
    flatten before a product becomes a permutation of its weight rows."""

    def run(self, g: nx.DiGraph) -> None:
        after: dict[str, np.ndarray | None] = {}  # per node: stream positions of its output when not canonical
        moved: dict[str, np.ndarray | None] = {}  # per reader of a removed layout op: the positions it reads
        for key in topological(g):
            ins = [after[k] for k in producers(g, key)]
            pos = moved[key] if key in moved else (ins[0] if ins else None)
            if len(ins) > 1 and any(p is not None for p in ins + [moved.get(key)]):
                raise CodesignError(f"{_where(op(g, key))}: a reshape or transpose before a join is not supported")
            readers = consumers(g, key)
            after[key] = self._visit(g, key, pos)
            if key not in g:  # a layout op, removed: its readers now read its producer, at these positions
                moved.update((v, after[key]) for v in readers)

    @staticmethod
    def _visit(g: nx.DiGraph, key: str, pos: np.ndarray | None) -> np.ndarray | None:
        """Absorb one node given its input's positions; its output's positions."""
        item = op(g, key)
        if isinstance(item, Layout):
            base = stream_positions(item.in_shape) if pos is None else pos
            assert item.perm is not None
            remove(g, key)
            return base.reshape(-1)[item.perm]
        if pos is None:
            return None
        if isinstance(item, MatMul):
            assert item.weight is not None
            flat = pos.reshape(-1)
            if pos.shape != (1, item.weight.values.shape[0]) or sorted(flat) != list(range(flat.size)):
                raise CodesignError(f"{_where(item)}: unsupported reshape before it")
            values = np.empty_like(item.weight.values)
            values[flat] = item.weight.values
            g.nodes[key]["op"] = replace_weight(item, values)
            return None
        if isinstance(item, (Conv, MaxPool, AvgPool)):
            if pos.ndim != 4 or not np.array_equal(pos, stream_positions(pos.shape)):
                raise CodesignError(f"{_where(item)}: a transpose or reshape before it changes the pixel "
                                    "order; only flattening before a fully-connected layer is supported")
            return None
        if isinstance(item, Sink):
            if not np.array_equal(pos.reshape(-1), np.arange(pos.size)):
                raise CodesignError("the output is permuted by a transpose; not supported")
        elif isinstance(item, (Affine, Quantizer)):
            consts = [item.mul, item.add] if isinstance(item, Affine) else [item.scale]
            if any(np.asarray(c).size > 1 for c in consts) and not np.array_equal(pos, stream_positions(pos.shape)):
                raise CodesignError(f"{_where(item)}: per-channel constants after a transpose are not supported")
        return pos


def replace_weight(item: MatMul, values: np.ndarray) -> MatMul:
    assert item.weight is not None
    return replace(item, weight=replace(item.weight, values=values))


def _epilogue(item: Conv | MatMul, in_scale: float) -> list[Op]:
    """The MVAU's epilogue: the real value of the accumulator (input scale x weight scale)."""
    assert item.weight is not None
    return [Affine(name=f"{item.name}.scale", onnx_op="scale", mul=in_scale * item.weight.scale, add=np.zeros(1))]


def _weight_bits(w: QTensor) -> int:
    return 1 if w.fmt.bipolar else w.fmt.bits


def _lower_matmul(item: MatMul, in_fmt: IntFmt, in_scale: float) -> list[Op]:
    """MatMul -> MVAU (weights transposed to MH x MW)."""
    w = item.weight
    assert w is not None
    return [MVAU(name=item.name, onnx_op="MatMul", mw=w.values.shape[0], mh=w.values.shape[1],
                 weights=w.values.T.copy(), w_fmt=w.fmt, in_fmt=in_fmt, epilogue=_epilogue(item, in_scale),
                 kind="dense", weight_bits=_weight_bits(w))]


def _lower_conv(item: Conv, in_fmt: IntFmt, in_scale: float) -> list[Op]:
    """Conv -> SlidingWindow + MVAU (weights in the window's (kh, kw, c) order); the bias joins the epilogue."""
    w = item.weight
    assert w is not None
    epilogue = _epilogue(item, in_scale)
    if item.bias is not None:
        epilogue.append(Affine(name=f"{item.name}.bias", onnx_op="bias", mul=np.ones(1), add=item.bias))
    cout, cin, kh, kw = w.values.shape
    c, h, wd = item.in_shape
    if cin * item.groups != c:
        raise CodesignError(f"{_where(item)}: weights have {cin} input channels, the data {c}")
    pad_bipolar = in_fmt.bipolar and any(item.pads)
    swg = SlidingWindow(name=f"{item.name}_swg", onnx_op="Conv", ifm=(h, wd, c), kernel=(kh, kw),
                        stride=item.stride, pads=item.pads, in_fmt=in_fmt,
                        out_fmt=IntFmt(2, True) if pad_bipolar else in_fmt)
    oh, ow = swg.ofm
    if (cout, oh, ow) != tuple(item.out_shape):
        raise CodesignError(f"{_where(item)}: output shape {list(item.out_shape)} does not match the "
                            f"kernel, stride and padding ({cout}x{oh}x{ow})")
    if item.groups > 1:  # depthwise (the front end refuses other groupings): one K*K filter per channel
        swg.depthwise = True
        return [swg, VVAU(name=item.name, onnx_op="Conv", mw=kh * kw, mh=cout, reps=oh * ow,
                          weights=w.values.reshape(cout, kh * kw), w_fmt=w.fmt, in_fmt=swg.out_fmt,
                          epilogue=epilogue, out_hw=(oh, ow), weight_bits=_weight_bits(w), kernel=(kh, kw),
                          stride=item.stride, pads=item.pads)]
    weights = np.transpose(w.values, (0, 2, 3, 1)).reshape(cout, kh * kw * cin)
    mvau = MVAU(name=item.name, onnx_op="Conv", mw=kh * kw * cin, mh=cout, reps=oh * ow, weights=weights,
                w_fmt=w.fmt, in_fmt=swg.out_fmt, epilogue=epilogue, kind="conv", out_hw=(oh, ow),
                weight_bits=_weight_bits(w), kernel=(kh, kw), stride=item.stride, pads=item.pads)
    return [swg, mvau]


def _lower_avgpool(item: AvgPool, in_fmt: IntFmt, in_scale: float) -> list[Op]:
    """AveragePool -> depthwise-order SlidingWindow + AvgPoolUnit; GlobalAveragePool (ReduceMean over
    H, W) -> GlobalAccPool. Both sum integer values; the mean's real value (sum x input scale / count)
    starts their epilogue, which the quantizer after them turns into thresholds."""
    c, h, w = item.in_shape
    count = item.kernel[0] * item.kernel[1]
    values, w_fmt = ones(c, h * w if item.whole else count)
    epilogue: list[Op] = [Affine(name=f"{item.name}.mean", onnx_op="mean", mul=np.array([in_scale / count]),
                                 add=np.zeros(1))]
    if item.whole:
        return [GlobalAccPool(name=item.name, onnx_op=item.onnx_op, mw=h * w, mh=c, reps=1, weights=values,
                              w_fmt=w_fmt, in_fmt=in_fmt, epilogue=epilogue, weight_bits=1)]
    swg = SlidingWindow(name=f"{item.name}_swg", onnx_op=item.onnx_op, ifm=(h, w, c), kernel=item.kernel,
                        stride=item.stride, in_fmt=in_fmt, out_fmt=in_fmt, depthwise=True)
    oh, ow = swg.ofm
    return [swg, AvgPoolUnit(name=item.name, onnx_op=item.onnx_op, mw=count, mh=c, reps=oh * ow, weights=values,
                             w_fmt=w_fmt, in_fmt=in_fmt, epilogue=epilogue, out_hw=(oh, ow), weight_bits=1,
                             pool_kernel=item.kernel, pool_stride=item.stride)]


def _lower_sum(g: nx.DiGraph, key: str, item: Sum) -> AddStreams:
    """Sum of two quantized streams -> AddStreams: both must be codes of one format at one scale (the
    producers share one quantizer); the sum's real value (acc x that scale) starts its epilogue."""
    found = [value_format(g, p) for p in producers(g, key)]
    fmts, scales = zip(*(_scalar_scale(item, fs) for fs in found))
    if scales[0] != scales[1]:
        raise CodesignError(f"the two inputs of Add {item.name!r} have different scales ({scales[0]:.6g} and "
                            f"{scales[1]:.6g}); give them one shared quantizer")
    if fmts[0] != fmts[1] or fmts[0].bipolar:
        raise CodesignError(f"the two inputs of Add {item.name!r} are {fmts[0].describe()} and {fmts[1].describe()}; "
                            "an add needs one integer format of 2 or more bits on both (one shared quantizer)")
    channels, pixels = item.shape[0], int(np.prod(item.shape[1:]))
    values, w_fmt = ones(channels, 2)
    return AddStreams(name=item.name, onnx_op="Add", mw=2, mh=channels, reps=pixels, weights=values, w_fmt=w_fmt,
                      in_fmt=fmts[0], epilogue=[Affine(name=f"{item.name}.scale", onnx_op="scale",
                                                       mul=np.array([scales[0]]), add=np.zeros(1))], weight_bits=1)


# products by front-end class: (op, input format, input scale) -> the hardware ops replacing it
LOWER_PRODUCT = {MatMul: _lower_matmul, Conv: _lower_conv, AvgPool: _lower_avgpool}


class LowerCompute(Transform):
    """Conv -> SlidingWindow + MVAU (depthwise: + VVAU); MatMul -> MVAU; average pools -> their
    accumulating units (LOWER_PRODUCT). The MVAU's epilogue starts with
    the real value of the accumulator (input scale x weight scale) plus the bias."""

    def run(self, g: nx.DiGraph) -> None:
        for key in topological(g):
            item = op(g, key)
            if isinstance(item, Sum):
                replace_node(g, key, [_lower_sum(g, key, item)])
                continue
            lower = LOWER_PRODUCT.get(type(item))
            if lower is None:
                continue
            pred = predecessor(g, key)
            assert pred is not None
            in_fmt, in_scale = _scalar_scale(item, value_format(g, pred))
            replace_node(g, key, lower(item, in_fmt, in_scale))


class AbsorbEpilogue(Transform):
    """Move the float Affine/Relu ops after an MVAU into its epilogue. A max-pool between them moves
    after the next quantizer when every op it passes is non-decreasing (max commutes with those)."""

    def run(self, g: nx.DiGraph) -> None:
        for key in topological(g):
            if key not in g:  # absorbed already
                continue
            item = op(g, key)
            if not isinstance(item, MVAU) or item.thresholds is not None:
                continue
            while True:
                nxt = successor(g, key)
                if nxt is None or is_fork(g, key):  # a fork before the quantizer: its readers differ
                    break
                n = op(g, nxt)
                if isinstance(n, (Affine, Relu)):
                    item.epilogue.append(n)
                    remove(g, nxt)
                    continue
                if isinstance(n, MaxPool) and not is_fork(g, nxt):
                    after = successor(g, nxt)
                    a = op(g, after) if after is not None else None
                    if isinstance(a, (Affine, Relu, Quantizer)):
                        if not a.non_decreasing():
                            raise CodesignError(f"{_where(n)}: a max-pool before {_where(a)} with a negative "
                                                "per-channel scale is not supported; pool after the activation")
                        _swap(g, nxt, after)
                        continue
                break


def _swap(g: nx.DiGraph, first: str, second: str) -> None:
    """Swap two adjacent chain nodes (first -> second becomes second -> first)."""
    pred, succ = predecessor(g, first), successor(g, second)
    g.remove_edge(first, second)
    if pred is not None:
        g.remove_edge(pred, first)
        g.add_edge(pred, second)
    if succ is not None:
        g.remove_edge(second, succ)
        g.add_edge(first, succ)
    g.add_edge(second, first)


class LowerActivation(Transform):
    """MVAU + quantizer -> MVAU with per-channel integer thresholds. Channels whose chain decreases
    get their weights negated, so every threshold compares acc >= T."""

    def run(self, g: nx.DiGraph) -> None:
        for key in topological(g):
            if key not in g:  # absorbed already
                continue
            item = op(g, key)
            nxt = successor(g, key)
            if not isinstance(item, MVAU) or item.thresholds is not None or nxt is None or is_fork(g, key):
                continue
            quant = op(g, nxt)
            if not isinstance(quant, Quantizer):
                continue
            if quant.levels > MAX_ACT_LEVELS:
                raise CodesignError(f"{_where(quant)}: {quant.fmt.describe()} activations need {quant.levels} "
                                    f"thresholds per channel; at most 8-bit activations are supported")
            lo, hi = item.acc_range()
            thr, sign = activation.thresholds(item.epilogue, quant, lo, hi)
            assert item.weights is not None
            weights = item.weights * sign[:, None]
            w_fmt = item.w_fmt
            if not w_fmt.bipolar and (weights.min() < w_fmt.lo or weights.max() > w_fmt.hi):
                w_fmt = IntFmt.for_range(min(int(weights.min()), 0), max(int(weights.max()), 0))
            scale = np.broadcast_to(quant.scale, (item.mh,)) if quant.scale.size > 1 else quant.scale
            g.nodes[key]["op"] = replace(item, weights=weights, w_fmt=w_fmt, thresholds=thr, signs=sign,
                                         out_offset=quant.min_code, out_fmt=quant.fmt, out_scale=np.array(scale),
                                         epilogue=item.epilogue + [quant])
            remove(g, nxt)


class LowerMaxPool(Transform):
    """MaxPool on integer codes -> SlidingWindow + MaxReduce (codes are monotone in the values)."""

    def run(self, g: nx.DiGraph) -> None:
        for key in topological(g):
            item = op(g, key)
            if not isinstance(item, MaxPool):
                continue
            pred = predecessor(g, key)
            assert pred is not None
            fs = value_format(g, pred)
            if fs is None:
                raise CodesignError(f"{_where(item)}: max-pooling of float values that are not followed by a "
                                    "quantized activation is not supported")
            c, h, w = item.in_shape
            swg = PoolWindow(name=f"{item.name}_swg", onnx_op="MaxPool", ifm=(h, w, c), kernel=item.kernel,
                                stride=item.stride, in_fmt=fs[0], out_fmt=fs[0])
            oh, ow = swg.ofm
            red = MaxReduce(name=item.name, onnx_op="MaxPool", channels=c, window=item.kernel[0] * item.kernel[1],
                            reps=oh * ow, fmt=fs[0], kernel=item.kernel, stride=item.stride)
            replace_node(g, key, [swg, red])


class LowerOutput(Transform):
    """Trailing affine ops and the sink -> OutputStage: integer codes out, logits = value*scale + bias."""

    def run(self, g: nx.DiGraph) -> None:
        ends = sinks(g)
        if len(ends) != 1:
            raise CodesignError(f"the graph must have exactly one output, found {len(ends)}")
        sink = ends[0]
        assert isinstance(op(g, sink), Sink)
        tail_keys: list[str] = []
        k = predecessor(g, sink)
        while k is not None and isinstance(op(g, k), (Affine, Relu)) and not is_fork(g, k):
            tail_keys.insert(0, k)
            k = predecessor(g, k)
        tail = [op(g, t) for t in tail_keys]
        if k is None:
            raise CodesignError("the model computes nothing")
        last = op(g, k)
        if isinstance(last, MVAU) and last.out_fmt is None:
            fmt, count = last.acc_fmt, last.frame_elems
            ops = last.epilogue + tail
        else:
            fs = value_format(g, k)
            if fs is None or not isinstance(last, (MVAU, MaxReduce)):
                raise CodesignError(f"{_where(last)}: the model must end with a Conv/MatMul/Gemm layer "
                                    "(optionally followed by affine ops or an output quantizer)")
            fmt, scale = fs
            count = last.frame_elems
            mul = 2.0 * scale if fmt.bipolar else scale
            add = -scale if fmt.bipolar else np.zeros(1)
            # real = decode(code) * scale; for bipolar decode = 2*code-1, folded in here on codes
            ops = [Affine(name="out.scale", onnx_op="scale", mul=np.asarray(mul), add=np.asarray(add))] + tail
            fmt = IntFmt(1, False) if fmt.bipolar else fmt
        channels = last.channels
        mul, add = activation.compose_affine(ops, channels)
        for t in tail_keys:
            g.remove_node(t)
        out = OutputStage(name="output", onnx_op="output", count=count, fmt=fmt,
                          scale=np.broadcast_to(mul, (channels,)).copy(), bias=np.broadcast_to(add, (channels,)).copy())
        g.remove_node(sink)
        g.add_node(sink, op=out)
        connect(g, k, sink)


class CheckLowered(Transform):
    """Every node must be a hardware layer now; otherwise name the first one that is not."""

    def run(self, g: nx.DiGraph) -> None:
        for key in topological(g):
            item = op(g, key)
            if not isinstance(item, HardwareOp):
                raise CodesignError(f"{_where(item)}: not supported at this position in the graph "
                                    f"(after {_where(op(g, predecessor(g, key))) if predecessor(g, key) else 'input'})")


class InsertDuplicates(Transform):
    """A DuplicateStreams stage after every node read by several nodes (an HLS stream has one reader):
    it copies each word to one stream per reader (FINN's InsertDuplicateStreams)."""

    def run(self, g: nx.DiGraph) -> None:
        for key in topological(g):
            if not is_fork(g, key) or op(g, key).fans_out:
                continue
            item = op(g, key)
            source = getattr(item, "layer", "") or item.name
            insert_after(g, key, DuplicateStreams(name=f"{source}_dup", onnx_op="fork", outputs=g.out_degree(key),
                                                  fmt=item.stream_fmt, total=item.frame_elems, source=source))


LOWERING = (LowerInput, AbsorbLayout, LowerCompute, AbsorbEpilogue, LowerActivation, LowerMaxPool, LowerOutput,
            CheckLowered, InsertDuplicates)
