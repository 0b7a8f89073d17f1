"""The lowering steps, qonnx/FINN style: each is an object whose apply(graph) returns a new graph.

Front-end (float) ops become hardware layers with integer semantics, in this order
(see LOWERING): input quantizer, layout ops, convolutions and products, the float ops after them,
activations as thresholds, max-pools, the output. Then the hardware steps: XNOR marking, folding,
width converters and FIFO depths.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import networkx as nx
import numpy as np

from codesign.backend import activation
from codesign.backend.graph import (
    HARDWARE_OPS,
    MVAU,
    Affine,
    Conv,
    InputStage,
    IntFmt,
    Layout,
    MatMul,
    MaxPool,
    MaxReduce,
    Op,
    OutputStage,
    Quantizer,
    Relu,
    Sink,
    SlidingWindow,
    Source,
    WidthConverter,
    chain,
    insert_after,
    op,
    predecessor,
    remove,
    replace_node,
    successor,
)
from hw_space.design import LayerFold
from hw_space.errors import CodesignError
from hw_space.layers import largest_divisor_at_most

MAX_ACT_LEVELS = 255  # at most 8-bit activations between layers (2^8 - 1 thresholds per channel)


def _where(item: Op) -> str:
    return f"node {item.name!r} ({item.onnx_op or type(item).__name__})"


class Transform:
    """One step of the lowering; subclasses implement run(graph) on a private copy."""

    def apply(self, g: nx.DiGraph) -> nx.DiGraph:
        g = copy.deepcopy(g)
        self.run(g)
        return g

    def run(self, g: nx.DiGraph) -> None:
        raise NotImplementedError


def value_format(g: nx.DiGraph, key: str) -> tuple[IntFmt, np.ndarray] | None:
    """(format, scale) of the integer codes a node outputs (real = decode(code) * scale), or None if
    its output is still a float."""
    item = op(g, key)
    if isinstance(item, InputStage):
        assert item.quantizer is not None
        return item.fmt, item.quantizer.scale
    if isinstance(item, Quantizer):
        return item.fmt, item.scale
    if isinstance(item, MVAU):
        if item.out_fmt is None:
            return None
        assert item.out_scale is not None
        return item.out_fmt, item.out_scale
    if isinstance(item, (Layout, MaxPool, SlidingWindow, MaxReduce, WidthConverter)):
        pred = predecessor(g, key)
        return value_format(g, pred) if pred is not None else None
    return None


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
        keys = chain(g)
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
        pos: np.ndarray | None = None  # stream positions of the live tensor when not canonical
        for key in chain(g):
            item = op(g, key)
            if isinstance(item, Layout):
                base = stream_positions(item.in_shape) if pos is None else pos
                assert item.perm is not None
                pos = base.reshape(-1)[item.perm]
                remove(g, key)
                continue
            if pos is None:
                continue
            if isinstance(item, MatMul):
                assert item.weight is not None
                flat = pos.reshape(-1)
                if pos.shape != (1, item.weight.values.shape[0]) or sorted(flat) != list(range(flat.size)):
                    raise CodesignError(f"{_where(item)}: unsupported reshape before it")
                values = np.empty_like(item.weight.values)
                values[flat] = item.weight.values
                g.nodes[key]["op"] = replace_weight(item, values)
                pos = None
            elif isinstance(item, (Conv, MaxPool)):
                if pos.ndim != 4 or not np.array_equal(pos, stream_positions(pos.shape)):
                    raise CodesignError(f"{_where(item)}: a transpose or reshape before it changes the pixel "
                                        "order; only flattening before a fully-connected layer is supported")
                pos = None
            elif isinstance(item, Sink):
                if not np.array_equal(pos.reshape(-1), np.arange(pos.size)):
                    raise CodesignError("the output is permuted by a transpose; not supported")
            elif isinstance(item, (Affine, Quantizer)):
                consts = [item.mul, item.add] if isinstance(item, Affine) else [item.scale]
                if any(np.asarray(c).size > 1 for c in consts) and not np.array_equal(pos, stream_positions(pos.shape)):
                    raise CodesignError(f"{_where(item)}: per-channel constants after a transpose are not supported")


def replace_weight(item: MatMul, values: np.ndarray) -> MatMul:
    assert item.weight is not None
    return replace(item, weight=replace(item.weight, values=values))


class LowerCompute(Transform):
    """Conv -> SlidingWindow + MVAU; MatMul -> MVAU. The MVAU's epilogue starts with the real value of
    the accumulator (input scale x weight scale) plus the bias."""

    def run(self, g: nx.DiGraph) -> None:
        for key in chain(g):
            item = op(g, key)
            if not isinstance(item, (Conv, MatMul)):
                continue
            pred = predecessor(g, key)
            assert pred is not None
            in_fmt, in_scale = _scalar_scale(item, value_format(g, pred))
            assert item.weight is not None
            w = item.weight
            epilogue: list[Op] = [Affine(name=f"{item.name}.scale", onnx_op="scale", mul=in_scale * w.scale,
                                         add=np.zeros(1))]
            wbits = 1 if w.fmt.bipolar else w.fmt.bits
            if isinstance(item, MatMul):
                mvau = MVAU(name=item.name, onnx_op="MatMul", mw=w.values.shape[0], mh=w.values.shape[1],
                            weights=w.values.T.copy(), w_fmt=w.fmt, in_fmt=in_fmt, epilogue=epilogue,
                            kind="dense", weight_bits=wbits)
                replace_node(g, key, [mvau])
                continue
            if item.bias is not None:
                epilogue.append(Affine(name=f"{item.name}.bias", onnx_op="bias", mul=np.ones(1), add=item.bias))
            cout, cin, kh, kw = w.values.shape
            c, h, wd = item.in_shape
            if cin != c:
                raise CodesignError(f"{_where(item)}: weights have {cin} input channels, the data {c}")
            pad_bipolar = in_fmt.bipolar and any(item.pads)
            swg = SlidingWindow(name=f"{item.name}_swg", onnx_op="Conv", ifm=(h, wd, c), kernel=(kh, kw),
                                stride=item.stride, pads=item.pads, in_fmt=in_fmt,
                                out_fmt=IntFmt(2, True) if pad_bipolar else in_fmt)
            oh, ow = swg.ofm
            if (cout, oh, ow) != tuple(item.out_shape):
                raise CodesignError(f"{_where(item)}: output shape {list(item.out_shape)} does not match the "
                                    f"kernel, stride and padding ({cout}x{oh}x{ow})")
            weights = np.transpose(w.values, (0, 2, 3, 1)).reshape(cout, kh * kw * cin)
            mvau = MVAU(name=item.name, onnx_op="Conv", mw=kh * kw * cin, mh=cout, reps=oh * ow, weights=weights,
                        w_fmt=w.fmt, in_fmt=swg.out_fmt, epilogue=epilogue, kind="conv", out_hw=(oh, ow),
                        weight_bits=wbits, kernel=(kh, kw), stride=item.stride, pads=item.pads)
            replace_node(g, key, [swg, mvau])


def _non_decreasing(item: Op) -> bool:
    if isinstance(item, (Relu, Quantizer)):
        return True
    return isinstance(item, Affine) and bool(np.all(item.mul >= 0))


class AbsorbEpilogue(Transform):
    """Move the float Affine/Relu ops after an MVAU into its epilogue. A max-pool between them moves
    after the next quantizer when every op it passes is non-decreasing (max commutes with those)."""

    def run(self, g: nx.DiGraph) -> None:
        for key in chain(g):
            if key not in g:  # absorbed already
                continue
            item = op(g, key)
            if not isinstance(item, MVAU) or item.thresholds is not None:
                continue
            while True:
                nxt = successor(g, key)
                if nxt is None:
                    break
                n = op(g, nxt)
                if isinstance(n, (Affine, Relu)):
                    item.epilogue.append(n)
                    remove(g, nxt)
                    continue
                if isinstance(n, MaxPool):
                    after = successor(g, nxt)
                    a = op(g, after) if after is not None else None
                    if isinstance(a, (Affine, Relu, Quantizer)):
                        if not _non_decreasing(a):
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
        for key in chain(g):
            if key not in g:  # absorbed already
                continue
            item = op(g, key)
            nxt = successor(g, key)
            if not isinstance(item, MVAU) or item.thresholds is not None or nxt is None:
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
        for key in chain(g):
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
            swg = SlidingWindow(name=f"{item.name}_swg", onnx_op="MaxPool", ifm=(h, w, c), kernel=item.kernel,
                                stride=item.stride, in_fmt=fs[0], out_fmt=fs[0])
            oh, ow = swg.ofm
            red = MaxReduce(name=item.name, onnx_op="MaxPool", channels=c, window=item.kernel[0] * item.kernel[1],
                            reps=oh * ow, fmt=fs[0], kernel=item.kernel, stride=item.stride)
            replace_node(g, key, [swg, red])


class LowerOutput(Transform):
    """Trailing affine ops and the sink -> OutputStage: integer codes out, logits = value*scale + bias."""

    def run(self, g: nx.DiGraph) -> None:
        keys = chain(g)
        sink = keys[-1]
        assert isinstance(op(g, sink), Sink)
        tail_keys: list[str] = []
        k = predecessor(g, sink)
        while k is not None and isinstance(op(g, k), (Affine, Relu)):
            tail_keys.insert(0, k)
            k = predecessor(g, k)
        tail = [op(g, t) for t in tail_keys]
        if k is None:
            raise CodesignError("the model computes nothing")
        last = op(g, k)
        if isinstance(last, MVAU) and last.out_fmt is None:
            fmt, count = last.acc_fmt, last.mh * last.reps
            ops = last.epilogue + tail
        else:
            fs = value_format(g, k)
            if fs is None or not isinstance(last, (MVAU, MaxReduce)):
                raise CodesignError(f"{_where(last)}: the model must end with a Conv/MatMul/Gemm layer "
                                    "(optionally followed by affine ops or an output quantizer)")
            fmt, scale = fs
            count = last.mh * last.reps if isinstance(last, MVAU) else last.channels * last.reps
            mul = 2.0 * scale if fmt.bipolar else scale
            add = -scale if fmt.bipolar else np.zeros(1)
            # real = decode(code) * scale; for bipolar decode = 2*code-1, folded in here on codes
            ops = [Affine(name="out.scale", onnx_op="scale", mul=np.asarray(mul), add=np.asarray(add))] + tail
            fmt = IntFmt(1, False) if fmt.bipolar else fmt
        channels = last.mh if isinstance(last, MVAU) else last.channels
        mul, add = activation.compose_affine(ops, channels)
        for t in tail_keys:
            g.remove_node(t)
        out = OutputStage(name="output", onnx_op="output", count=count, fmt=fmt,
                          scale=np.broadcast_to(mul, (channels,)).copy(), bias=np.broadcast_to(add, (channels,)).copy())
        g.remove_node(sink)
        g.add_node(sink, op=out)
        g.add_edge(k, sink)


class CheckLowered(Transform):
    """Every node must be a hardware layer now; otherwise name the first one that is not."""

    def run(self, g: nx.DiGraph) -> None:
        for key in chain(g):
            item = op(g, key)
            if not isinstance(item, HARDWARE_OPS):
                raise CodesignError(f"{_where(item)}: not supported at this position in the graph "
                                    f"(after {_where(op(g, predecessor(g, key))) if predecessor(g, key) else 'input'})")


LOWERING = (LowerInput, AbsorbLayout, LowerCompute, AbsorbEpilogue, LowerActivation, LowerMaxPool, LowerOutput,
            CheckLowered)


# ---------------------------------------------------------------- hardware steps


class MarkXnor(Transform):
    """MVAUs with bipolar inputs and weights compute XNOR-popcount."""

    def run(self, g: nx.DiGraph) -> None:
        for key in chain(g):
            item = op(g, key)
            if isinstance(item, MVAU):
                item.xnor = item.in_fmt.bipolar and item.w_fmt.bipolar


class ApplyFolding(Transform):
    """Set PE/SIMD per layer (by Design layer name) and check the folding constraints."""

    def __init__(self, folds: dict[str, LayerFold]):
        self.folds = folds

    def run(self, g: nx.DiGraph) -> None:
        keys = chain(g)
        for i, key in enumerate(keys):
            item = op(g, key)
            if isinstance(item, MVAU):
                f = self.folds.get(item.layer, LayerFold())
                _check(item.layer, "pe", f.pe, item.mh, "output channels" if item.kind == "conv" else "outputs")
                # the MVAU's SIMD divides MW (K*K*Cin of a conv); the window's divides Cin (FINN)
                _check(item.layer, "simd", f.simd, item.mw, "inputs per output (K*K*Cin)" if item.kind == "conv"
                       else "inputs")
                item.pe, item.simd = f.pe, f.simd
                item.mac, item.weight_memory = f.mac, f.weight_memory
                prev = op(g, keys[i - 1])
                if isinstance(prev, SlidingWindow):
                    cin = prev.ifm[2]
                    swg = f.swg_simd if f.swg_simd is not None else largest_divisor_at_most(cin, f.simd)
                    _check(item.layer, "swg_simd", swg, cin, "input channels")
                    prev.simd = swg
            elif isinstance(item, MaxReduce):
                # a pool the design leaves out takes every channel per cycle, as the cost model
                # (hw_space CostModel.default_pe) assumes
                pe = self.folds[item.layer].pe if item.layer in self.folds else item.channels
                _check(item.layer, "pe", pe, item.channels, "channels")
                item.pe = pe
                prev = op(g, keys[i - 1])
                assert isinstance(prev, SlidingWindow)
                prev.simd = pe
        first, last = op(g, keys[0]), op(g, keys[-1])
        assert isinstance(first, InputStage) and isinstance(last, OutputStage)
        first.elems = op(g, keys[1]).in_elems
        last.elems = op(g, keys[-2]).out_elems


def _check(layer: str, field: str, value: int, size: int, what: str) -> None:
    if value < 1 or size % value:
        raise CodesignError(f"hardware.layers.{layer}.{field}: {value} must divide the layer's {size} {what}")


class InsertWidthConverters(Transform):
    """A WidthConverter wherever a producer's elements per word differ from its consumer's."""

    def run(self, g: nx.DiGraph) -> None:
        for key in chain(g)[:-1]:
            nxt = successor(g, key)
            assert nxt is not None
            item = op(g, key)
            consumer = op(g, nxt)
            a, b = item.out_elems, consumer.in_elems
            if a != b:
                # named as the cost model names them: <conv>_dwc between a conv's window and its MVAU,
                # <layer>_in_dwc in front of a layer
                if isinstance(consumer, MVAU) and isinstance(item, SlidingWindow):
                    name = f"{consumer.layer or consumer.name}_dwc"
                else:
                    layer = getattr(consumer, "layer", "") or consumer.name.removesuffix("_swg")
                    name = f"{layer}_in_dwc"
                insert_after(g, key, WidthConverter(name=name, onnx_op="dwc", in_elems=a, out_elems=b,
                                                    total=item.frame_elems, fmt=item.stream_fmt))


def model_kind(g: nx.DiGraph, key: str) -> str:
    """The cost model's stage kind of a hardware node (hw_space.model): the two must list the same
    kernels in the same order."""
    item = op(g, key)
    if isinstance(item, (InputStage, OutputStage)):
        return "io"
    if isinstance(item, SlidingWindow):
        nxt = successor(g, key)
        return "pool_rows" if nxt is not None and isinstance(op(g, nxt), MaxReduce) else "swg"
    return {MVAU: "mvau", MaxReduce: "pool", WidthConverter: "dwc"}[type(item)]


class SetFifoDepths(Transform):
    """FIFO depth per stream (edge attribute `depth`), in stream order: the depths the cost model
    priced and the cycle-level simulation chose (hw_space.simulate.size_fifos). `kinds` and
    `widths` are the model's kernels and FIFO words: the graph must match them, or the model and
    the HLS disagree about what is built."""

    def __init__(self, depths: list[int], kinds: list[str], widths: list[int]):
        self.depths, self.kinds, self.widths = depths, kinds, widths

    def run(self, g: nx.DiGraph) -> None:
        keys = chain(g)
        mine = [model_kind(g, k) for k in keys]
        if mine != self.kinds or len(self.depths) != len(keys) - 1:
            raise CodesignError(f"internal error: the HLS kernels ({', '.join(mine)}) are not the cost model's "
                                f"stages ({', '.join(self.kinds)}); please report this design")
        for (u, v), depth, width in zip(zip(keys, keys[1:]), self.depths, self.widths):
            fmt = op(g, u).stream_fmt
            bits = op(g, u).out_elems * (1 if fmt.bipolar else fmt.bits)
            # the model bounds the last accumulator's width from above; every other word is exact
            if bits > width or (bits != width and not isinstance(op(g, v), OutputStage)):
                raise CodesignError(f"internal error: stream {op(g, u).name} -> {op(g, v).name} is {bits} bits wide "
                                    f"in the HLS, {width} in the cost model; please report this design")
            g.edges[u, v]["depth"] = int(depth)


def hardware_steps(folds: dict[str, LayerFold]) -> tuple[Transform, ...]:
    """The folding steps; the FIFO depths follow from the folded design (SetFifoDepths)."""
    return (MarkXnor(), ApplyFolding(folds), InsertWidthConverters())
