"""Depthwise convolution and average pooling on the stream: the vector-vector-activation unit
(kernels/vvau.h `vvau`, FINN's VectorVectorActivation), the windowed average pool (the same kernel
with unit weights) and the global accumulating pool (kernels/vvau.h `global_pool`).

They are MVAUs whose rows are channels: each row's weights meet only its own channel, so the
accumulator range, the thresholds (lowering.LowerActivation), the weight packing and the parameter
header are the MVAU's; what differs is which inputs a row reads (execute) and the kernel's loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from codesign.backend import activation
from codesign.backend.formats import IntFmt, cpp_fmt
from codesign.backend.ops.base import Node, StageTemplate, StageView, Values, register_template, square
from codesign.backend.ops.mvau import MVAU, mvau_context
from hw_space.design import Layer, LayerFold
from hw_space.errors import CodesignError
from hw_space.fold_axes import FoldAxis


def _requantize(item: MVAU, acc: np.ndarray) -> Values:
    """Accumulators (..., channels) to output codes by the thresholds, or the accumulators."""
    if item.thresholds is None:
        return Values(acc, item.acc_fmt)
    assert item.out_fmt is not None
    return Values(item.out_fmt.decode(activation.apply_thresholds(acc, item.thresholds, item.out_offset)),
                  item.out_fmt)


@dataclass
class VVAU(MVAU):
    """Depthwise product: acc[c] = W[c] (K*K weights, mw = K*K, mh = C) . the window of channel c, for
    `reps` output pixels. Reads words of PE*SIMD elements (SIMD kernel positions of PE channels,
    lane s*PE + p) from a window in depthwise order."""

    kind: str = "conv"
    model_kind: ClassVar[str] = "vvau"

    @property
    def in_elems(self) -> int:
        return self.pe * self.simd

    def execute(self, inputs: list[Values]) -> Values:
        """Its windows arrive in the window's (kh, kw, c) reference order: (N, reps, K*K, C)."""
        assert self.weights is not None
        x = inputs[0].values
        windows = x.reshape(len(x), -1, self.mw, self.mh).astype(np.float64)
        # exact: every partial sum stays far below 2^53
        acc = np.rint(np.einsum("nrkc,ck->nrc", windows, self.weights.astype(np.float64))).astype(np.int64)
        return _requantize(self, acc)

    def fold_axes(self) -> tuple[FoldAxis, FoldAxis]:
        """PE divides the channels, SIMD the kernel positions (FINN's VVAU), as the cost model words them."""
        return FoldAxis("pe", self.mh, "channels"), FoldAxis("simd", self.mw, "kernel positions (K*K)")

    def apply_fold(self, folds: Mapping[str, LayerFold], node: Node) -> None:
        """PE, SIMD and styles of its Design layer; its window moves PE channels per word in depthwise order."""
        f = folds.get(self.layer, LayerFold())
        pe_axis, simd_axis = self.fold_axes()
        pe_axis.check(self.layer, f.pe)
        simd_axis.check(self.layer, f.simd)
        if f.swg_simd is not None:
            raise CodesignError(f"hardware.layers.{self.layer}.swg_simd: a depthwise conv's window moves PE channels "
                                "per word; remove swg_simd")
        self.pe, self.simd = f.pe, f.simd
        self.mac, self.weight_memory = f.mac, f.weight_memory
        _window_follows(node, self.pe)

    def to_layer(self, name: str, last: bool) -> Layer:
        """The Design's depthwise conv layer."""
        k, s, p = square(self.name, self.kernel, self.stride, self.pads)
        act = None if last or self.out_fmt is None else self.out_fmt.code_bits
        return Layer(name=name, type="conv", out_channels=self.mh, kernel=k, stride=s, padding=p, groups=self.mh,
                     weight_bits=self.weight_bits, act_bits=act)

    def manifest(self, ident: str) -> dict[str, Any]:
        return {**super().manifest(ident), "kind": "depthwise"}


def _pool_pe(item: MVAU, folds: Mapping[str, LayerFold]) -> int:
    """A pool's PE: its Design layer's, or 1 when the design leaves it out (as the cost model)."""
    pe = folds[item.layer].pe if item.layer in folds else 1
    item.fold_axes()[0].check(item.layer, pe)
    return pe


def _window_follows(node: Node, pe: int) -> None:
    """The window feeding a depthwise stage emits PE channels per word, in (channel fold, kh, kw) order."""
    window = node.producer()
    assert window.is_window
    window.fold_channels(node.op.layer, "pe", pe)
    window.depthwise = True


@dataclass
class AvgPoolUnit(VVAU):
    """Windowed average pool: the sum of each channel over its K*K window (a VVAU with unit weights
    and SIMD 1), then the thresholds of the mean's requantization."""

    pool_kernel: tuple[int, int] = (2, 2)
    pool_stride: tuple[int, int] = (2, 2)

    model_kind: ClassVar[str] = "avgpool"
    layer_family: ClassVar[str] = "pool"

    def fold_axes(self) -> tuple[FoldAxis, ...]:
        """PE divides the channels (a pool has no SIMD)."""
        return (FoldAxis("pe", self.mh, "channels"),)

    def apply_fold(self, folds: Mapping[str, LayerFold], node: Node) -> None:
        """PE of its Design layer (1 when the design leaves it out, as the cost model)."""
        self.pe = _pool_pe(self, folds)
        self.simd = 1
        _window_follows(node, self.pe)

    def to_layer(self, name: str, last: bool) -> Layer:
        k, s, _ = square(self.name, self.pool_kernel, self.pool_stride, (0, 0, 0, 0))
        return Layer(name=name, type="avgpool", kernel=k, stride=s, act_bits=_pool_bits(self))

    def manifest(self, ident: str) -> dict[str, Any]:
        return {"layer": self.layer, "ident": ident, "kind": "avgpool", "pe": self.pe, "channels": self.mh,
                "window": self.mw, "reps": self.reps}


class PeLanes(MVAU):
    """What the global pool and the stream add (ops.streams) share: PE channel lanes, no SIMD, a word
    of PE elements in, and the name of their Design layer."""

    def fold_axes(self) -> tuple[FoldAxis, ...]:
        """PE divides the channels."""
        return (FoldAxis("pe", self.mh, "channels"),)

    def apply_fold(self, folds: Mapping[str, LayerFold], node: Node) -> None:
        """PE of its Design layer (1 when the design leaves it out, as the cost model)."""
        self.pe = _pool_pe(self, folds)
        self.simd = 1

    @property
    def in_elems(self) -> int:
        return self.pe

    def take_layer(self, layer: str, ident: str, node: Node, taken: set[str]) -> None:
        self.layer, self.name = layer, ident


@dataclass
class GlobalAccPool(PeLanes):
    """Global average pool: the sum of each channel over the `reps` pixels of the map (weights: ones,
    mw = pixels, only for the accumulator range and the thresholds), then the requantization."""

    kind: str = "global_avgpool"
    model_kind: ClassVar[str] = "gpool"
    layer_family: ClassVar[str] = "pool"

    def execute(self, inputs: list[Values]) -> Values:
        x = inputs[0].values
        return _requantize(self, x.reshape(len(x), self.mw, self.mh).sum(axis=1)[:, None, :])

    def to_layer(self, name: str, last: bool) -> Layer:
        return Layer(name=name, type="global_avgpool", act_bits=_pool_bits(self))

    def manifest(self, ident: str) -> dict[str, Any]:
        return {"layer": self.layer, "ident": ident, "kind": "global_avgpool", "pe": self.pe, "channels": self.mh,
                "pixels": self.mw}


def _pool_bits(item: MVAU) -> int | None:
    """A pool's act_bits in its Design layer: its output's bits where they differ from its input's."""
    out = item.out_fmt.code_bits if item.out_fmt is not None else None
    return out if out != item.in_fmt.code_bits else None


def ones(channels: int, count: int) -> tuple[np.ndarray, IntFmt]:
    """Unit weights of a pool: (channels, count) ones, 1-bit unsigned."""
    return np.ones((channels, count), dtype=np.int64), IntFmt(1, False)


def _vvau_context(item: VVAU, view: StageView) -> dict[str, Any]:
    ctx = mvau_context(item, view.ident)
    what = "VVAU" if type(item) is VVAU else "average pool"
    out = f"{ctx['nt']} thresholds" if ctx["nt"] else "accumulator out"
    ctx["comment"] = (f"{view.ident}: {what} {item.mh} channels x {item.mw} taps x{item.reps}, PE {item.pe}, "
                      f"SIMD {item.simd}, {out}")
    ctx["widths"].append((item.pe * item.simd * item.in_fmt.code_bits, f"{view.ident} input word"))
    return ctx


def _global_context(item: GlobalAccPool, view: StageView) -> dict[str, Any]:
    if item.thresholds is None:
        raise CodesignError(f"node {item.name!r}: a global average pool must be requantized (a Quant after it)")
    ctx = mvau_context(item, view.ident)
    ctx.update(weights=[], weight_chunks=[], in_fmt=cpp_fmt(item.in_fmt),
               comment=f"{view.ident}: global average pool of {item.mh} channels over {item.mw} pixels, PE {item.pe}, "
                       f"{ctx['nt']} thresholds")
    ctx["widths"] = [(ctx["acc_bits"], f"{view.ident} accumulator")]
    return ctx


register_template(VVAU, StageTemplate(call="stages/vvau.cpp.j2", include_header=("mvau.h", "vvau.h"),
                                      context=_vvau_context, params="params.h.j2",
                                      pragmas="stages/mvau.pragmas.cpp.j2"))
register_template(GlobalAccPool, StageTemplate(call="stages/global_pool.cpp.j2", include_header=("vvau.h",),
                                               context=_global_context, params="params.h.j2"))
