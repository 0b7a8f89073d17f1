"""The integer reference: a NumPy executor of the lowered graph, the oracle for C-simulation.

It walks the graph in topological order and calls each op's `execute` on the values of its
producers (by input port); it knows no op kinds."""

from __future__ import annotations

import networkx as nx
import numpy as np

from codesign.backend.dag import op, producers, sinks, sources, topological
from codesign.backend.formats import IntFmt
from codesign.backend.ops.base import Values
from codesign.backend.ops.io import InputStage, OutputStage
from codesign.backend.ops.mvau import mvau_acc
from codesign.backend.ops.swg import SlidingWindow
from hw_space.errors import CodesignError

__all__ = ["input_codes", "input_stage", "logits", "mvau_acc", "output_stage", "random_codes", "run"]


def _single(keys: list[str], what: str) -> str:
    if len(keys) != 1:
        raise CodesignError(f"the accelerator must have exactly one {what}, found {len(keys)}")
    return keys[0]


def input_stage(g: nx.DiGraph) -> InputStage:
    """The accelerator's input adapter (the graph's one source)."""
    first = op(g, _single(sources(g), "input"))
    assert isinstance(first, InputStage)
    return first


def output_stage(g: nx.DiGraph) -> OutputStage:
    """The accelerator's output adapter (the graph's one sink)."""
    last = op(g, _single(sinks(g), "output"))
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
        x = pre.host_apply(x)
    channels_last = np.moveaxis(x, 1, -1)
    return stage.quantizer.codes(channels_last).reshape(len(x), -1)


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
    """(N, H, W, C) values -> (N, OH, OW, KH*KW*C) windows (SlidingWindow.windows)."""
    return swg.windows(x)


def run(g: nx.DiGraph, codes: np.ndarray, trace: bool = False) -> np.ndarray | tuple[np.ndarray, dict]:
    """Execute the graph on input codes (N, elements); returns the sink's output codes (N, count) and,
    with trace, the values after every node (keyed by node)."""
    codes = np.asarray(codes, dtype=np.int64)
    out: dict[str, Values] = {}
    waiting = {k: g.out_degree(k) for k in g.nodes}  # consumers still to run, per node
    for key in topological(g):
        item = op(g, key)
        if not hasattr(item, "execute"):
            raise TypeError(f"not a hardware layer: {type(item).__name__}")
        feeds = producers(g, key)
        ins = [out[k] for k in feeds] or [Values(codes, IntFmt(1, False))]
        out[key] = item.execute(ins)
        for k in feeds:  # without a trace, keep only what a consumer still needs
            waiting[k] -= 1
            if not trace and waiting[k] == 0:
                del out[k]
    result = out[_single(sinks(g), "output")].values
    if trace:
        return result, {k: v.values for k, v in out.items()}
    return result


def logits(g: nx.DiGraph, out_codes: np.ndarray) -> np.ndarray:
    """Output codes -> float logits with the exported per-channel scale and bias."""
    out = output_stage(g)
    codes = np.asarray(out_codes, dtype=np.float64)
    per_pixel = codes.reshape(len(codes), -1, len(out.scale))
    return (per_pixel * out.scale + out.bias).reshape(len(codes), -1)
