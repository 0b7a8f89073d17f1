"""The integer reference: a NumPy executor of the lowered graph, the oracle for C-simulation."""

from __future__ import annotations

import networkx as nx
import numpy as np

from codesign.backend import activation
from codesign.backend.graph import (
    MVAU,
    Affine,
    InputStage,
    IntFmt,
    Layout,
    MaxReduce,
    OutputStage,
    Relu,
    Sink,
    SlidingWindow,
    WidthConverter,
    chain,
    op,
)
from hw_space.errors import CodesignError


def input_stage(g: nx.DiGraph) -> InputStage:
    first = op(g, chain(g)[0])
    assert isinstance(first, InputStage)
    return first


def output_stage(g: nx.DiGraph) -> OutputStage:
    last = op(g, chain(g)[-1])
    assert isinstance(last, OutputStage)
    return last


def input_codes(g: nx.DiGraph, x: np.ndarray) -> np.ndarray:
    """Float inputs (N, ...) of the model's input shape -> accelerator input codes (N, elements) in
    stream order (pixels, channels innermost); float32 throughout, as the exported graph computes."""
    stage = input_stage(g)
    assert stage.quantizer is not None
    x = np.asarray(x, dtype=np.float32)
    want = tuple(stage.source_shape[1:])
    if x.shape[1:] != want:
        if x.ndim < 2 or int(np.prod(x.shape[1:])) != int(np.prod(want)):
            raise CodesignError(f"test inputs have shape {list(x.shape[1:])}; the model takes {list(want)}")
        x = x.reshape((len(x),) + want)
    for pre in stage.preprocess:
        if isinstance(pre, Affine):
            x = x * _along_axis1(pre.mul, x.ndim) + _along_axis1(pre.add, x.ndim)
        elif isinstance(pre, Relu):
            x = np.maximum(x, np.float32(0))
        else:
            assert isinstance(pre, Layout) and pre.perm is not None
            x = x.reshape(len(x), -1)[:, pre.perm.reshape(-1)].reshape((len(x),) + tuple(pre.out_shape[1:]))
    channels_last = np.moveaxis(x, 1, -1)
    return stage.quantizer.codes(channels_last).reshape(len(x), -1)


def _along_axis1(c: np.ndarray, ndim: int) -> np.ndarray:
    c = np.asarray(c, dtype=np.float32).reshape(-1)
    return c.reshape((1, -1) + (1,) * (ndim - 2)) if c.size > 1 else c


def random_codes(g: nx.DiGraph, samples: int, seed: int = 0) -> np.ndarray:
    """Seeded random input codes over the whole range of the input format."""
    stage = input_stage(g)
    fmt = stage.fmt
    h, w, c = stage.shape
    rng = np.random.default_rng(seed)
    values = rng.integers(fmt.lo, fmt.hi + 1, size=(samples, h * w * c))
    if fmt.bipolar:
        values = np.where(values >= 0, 1, -1)
    return fmt.encode(values)


def _windows(x: np.ndarray, swg: SlidingWindow) -> np.ndarray:
    """(N, H, W, C) values -> (N, OH, OW, KH*KW*C) windows, zero padded, (kh, kw, c) order."""
    t, l, b, r = swg.pads
    x = np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)))
    kh, kw = swg.kernel
    sh, sw = swg.stride
    oh, ow = swg.ofm
    parts = [x[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw, :] for i in range(kh) for j in range(kw)]
    return np.concatenate(parts, axis=-1)


def mvau_acc(item: MVAU, x: np.ndarray) -> np.ndarray:
    """Exact integer accumulators (N, reps..., MH) of an MVAU on value inputs (..., MW)."""
    assert item.weights is not None
    # float64 products and sums are exact while every partial sum stays below 2^53
    acc = x.astype(np.float64) @ item.weights.T.astype(np.float64)
    return np.rint(acc).astype(np.int64)


def run(g: nx.DiGraph, codes: np.ndarray, trace: bool = False) -> np.ndarray | tuple[np.ndarray, dict]:
    """Execute the graph on input codes (N, elements); returns output codes (N, count) and, with
    trace, the values after every node (keyed by node)."""
    codes = np.asarray(codes, dtype=np.int64)
    n = len(codes)
    values: np.ndarray = codes
    fmt = IntFmt(1, False)
    seen: dict[str, np.ndarray] = {}
    for key in chain(g):
        item = op(g, key)
        if isinstance(item, InputStage):
            h, w, c = item.shape
            fmt = item.fmt
            values = fmt.decode(codes).reshape(n, h, w, c)
        elif isinstance(item, SlidingWindow):
            values = _windows(values.reshape((n,) + item.ifm), item)
            fmt = item.out_fmt
        elif isinstance(item, MVAU):
            acc = mvau_acc(item, values.reshape(n, -1, item.mw))
            if item.thresholds is None:
                values, fmt = acc, item.acc_fmt
            else:
                assert item.out_fmt is not None
                out = activation.apply_thresholds(acc, item.thresholds, item.out_offset)
                values, fmt = item.out_fmt.decode(out), item.out_fmt
        elif isinstance(item, MaxReduce):
            values = values.reshape(n, item.reps, item.window, item.channels).max(axis=2)
        elif isinstance(item, WidthConverter):
            pass
        elif isinstance(item, (OutputStage, Sink)):  # a Sink ends partly lowered graphs in tests
            values = fmt.encode(values).reshape(n, -1)
        else:
            raise TypeError(f"not a hardware layer: {type(item).__name__}")
        if trace:
            seen[key] = values
    if trace:
        return values, seen
    return values


def logits(g: nx.DiGraph, out_codes: np.ndarray) -> np.ndarray:
    """Output codes -> float logits with the exported per-channel scale and bias."""
    out = output_stage(g)
    codes = np.asarray(out_codes, dtype=np.float64)
    per_pixel = codes.reshape(len(codes), -1, len(out.scale))
    return (per_pixel * out.scale + out.bias).reshape(len(codes), -1)
