"""The sliding-window generator (SWG) of a convolution, and the SIMD it takes when the design
names none."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hw_space.fold_axes import FoldAxis
from hw_space.layers.base import FoldArrays, HwKind, Resources, _ints, _res
from hw_space.memory import cdiv, memory_cost
from hw_space.schedules import sliding_window_flags


def largest_divisor_at_most(n: int, v):
    """A conv's sliding-window SIMD when the Design names none: the largest divisor of the input
    channels n that is at most the MVAU's SIMD v (v itself whenever it divides n). v may be an
    array (the batch model) or an int (the backend)."""
    divs = np.array([d for d in range(1, n + 1) if n % d == 0], dtype=np.int64)
    out = divs[np.maximum(np.searchsorted(divs, np.asarray(v, dtype=np.int64), side="right") - 1, 0)]
    return int(out) if np.ndim(out) == 0 else out


@dataclass(frozen=True)
class SlidingWindow(HwKind):
    """Sliding-window generator (SWG) of a convolution: a K-row line buffer feeding the MVAU.

    Padding is applied inside the generator, so ifm_h/ifm_w are the padded input dimensions and
    `pad` the padding on each side. Constraint: channels % SIMD == 0 (it emits SIMD channels of
    one pixel per cycle); its SIMD is the design's swg_simd, or else largest_divisor_at_most.
    """

    name: str
    ifm_h: int
    ifm_w: int
    channels: int
    kernel: int
    stride: int
    ofm_h: int
    ofm_w: int
    pad: int = 0
    template = "sliding_window"
    kind = "swg"
    AXIS_LABELS = {"swg_simd": ("input channels", "the sliding window's SIMD")}

    def legal(self, simd):
        return self.fold_axes()[0].legal(simd)

    def width(self, simd, in_bits, out_bits):
        """Widest word: SIMD input lanes (line buffer and input stream) or output lanes."""
        simd, in_bits, out_bits = _ints(simd, in_bits, out_bits)
        return simd * np.maximum(in_bits, out_bits)

    def cycles(self, simd):
        """FINN ConvolutionInputGenerator expected cycles:
        IFMw*K*C/SIMD + OFMh * max(OFMw*K*K*C/SIMD, stride*IFMw*C/SIMD)."""
        (simd,) = _ints(simd)
        c = cdiv(self.channels, simd)
        k = self.kernel
        return self.ifm_w * k * c + self.ofm_h * np.maximum(self.ofm_w * k * k * c, self.stride * self.ifm_w * c)

    def buffer(self, simd, in_bits):
        """(blocks, width bits, depth words) of the line buffer. As in finn-hlslib's
        ConvolutionInputGenerator: K/S + 1 row blocks (K + S rows in all), each S*IFMw*C/SIMD words
        of SIMD*A bits, kept as separate memories so one is written while the others are read."""
        simd, in_bits = _ints(simd, in_bits)
        blocks = cdiv(self.kernel, self.stride) + 1
        return blocks, simd * in_bits, self.stride * self.ifm_w * cdiv(self.channels, simd)

    def resources(self, simd, in_bits, style=0) -> Resources:
        """Line buffer by the memory ladder (the model passes 'auto': the weights' memory style
        does not apply to it) plus ~300 LUTs of address/control logic (FINN's ConvolutionInputGenerator
        lut_estimation constant) and a SIMD-wide output register."""
        blocks, width, depth = self.buffer(simd, in_bits)
        lut, bram, uram = memory_cost(style, width, depth)
        return _res(width, lut=300 + blocks * lut, ff=2 * width + 64, bram=blocks * bram, uram=blocks * uram,
                    lutram=blocks * lut)

    # ------------------------------------------------------------------ the uniform interface
    def fold_axes(self) -> tuple[FoldAxis, ...]:
        return (FoldAxis("swg_simd", self.channels, "input channels"),)

    def resolve(self, a: FoldArrays) -> FoldArrays:
        """The window's SIMD: the design's swg_simd, or the largest divisor of C up to the MVAU's SIMD."""
        return a.with_(swg_simd=np.where(a.swg_simd > 0, a.swg_simd, largest_divisor_at_most(self.channels, a.simd)))

    def in_elems(self, a: FoldArrays) -> np.ndarray:
        return a.swg_simd

    def out_elems(self, a: FoldArrays) -> np.ndarray:
        return a.swg_simd

    def out_bits(self, a: FoldArrays) -> np.ndarray:
        """A bipolar map with padding is widened to 2-bit codes so that padding can be 0."""
        return np.where((a.in_bits == 1) & (self.pad > 0), 2, a.in_bits)

    def stage_cycles(self, a: FoldArrays) -> np.ndarray:
        return self.cycles(a.swg_simd)

    def stage_resources(self, a: FoldArrays) -> Resources:
        return self.resources(a.swg_simd, a.in_bits)

    def stage_width(self, a: FoldArrays) -> np.ndarray:
        return self.width(a.swg_simd, a.in_bits, self.out_bits(a))

    def detail(self, a: FoldArrays) -> dict[str, Any]:
        return {"simd": a.swg_simd, "h": self.ifm_h, "w": self.ifm_w, "c": self.channels,
                "k": self.kernel, "stride": self.stride, "pad": self.pad}

    def schedule(self, d: dict[str, int], cycles: int) -> tuple[np.ndarray, np.ndarray]:
        return sliding_window_flags(d["h"], d["w"], d["c"], d["k"], d["stride"], d["pad"], d["simd"])

    def summary(self, d: dict[str, int], width: int) -> dict[str, Any]:
        return {"simd": d["simd"]}


@dataclass(frozen=True)
class DepthwiseWindow(SlidingWindow):
    """The sliding window feeding a depthwise VVAU or an average pool: the same line buffer and loop
    (so the same cycles, FINN's ConvolutionInputGenerator formula), but each window is emitted in
    (channel fold, kh, kw) order, PE channels per word (FINN's depthwise SWG mode): the word size is
    the PE of the layer it feeds, so it has no folding axis of its own."""

    AXIS_LABELS = {}

    def fold_axes(self) -> tuple[FoldAxis, ...]:
        return ()

    def resolve(self, a: FoldArrays) -> FoldArrays:
        """PE channels per word: the consumer's PE."""
        return a.with_(swg_simd=a.pe)
