"""Sliding windows: the convolution's window generator (kernels/swg.h, finn-hlslib's
ConvolutionInputGenerator) and the max-pool's row pass (PoolWindow, kernels/maxpool.h)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from codesign.backend.formats import IntFmt, cpp_fmt
from codesign.backend.ops.base import HardwareOp, Node, StageTemplate, StageView, Values, register_template
from hw_space.fold_axes import FoldAxis


@dataclass
class SlidingWindow(HardwareOp):
    """Sliding-window generator: for every output pixel, the K*K*C window in (kh, kw, c) order
    (depthwise: in (channel fold, kh, kw) order on the stream, SIMD channels per word; the reference
    keeps the (kh, kw, c) order). Padding inserts value 0; bipolar input with padding is widened to
    int2 (out_fmt)."""

    ifm: tuple[int, int, int] = (1, 1, 1)  # H, W, C
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    in_fmt: IntFmt = IntFmt(8, False)
    out_fmt: IntFmt = IntFmt(8, False)
    simd: int = 1
    depthwise: bool = False  # emits each window in (channel fold, kh, kw) order (for a VVAU or an average pool)

    model_kind: ClassVar[str] = "swg"
    is_window: ClassVar[bool] = True
    passes_codes: ClassVar[bool] = True

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

    def windows(self, x: np.ndarray) -> np.ndarray:
        """(N, H, W, C) values -> (N, OH, OW, KH*KW*C) windows, zero padded, (kh, kw, c) order."""
        t, l, b, r = self.pads
        x = np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)))
        kh, kw = self.kernel
        sh, sw = self.stride
        oh, ow = self.ofm
        parts = [x[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw, :] for i in range(kh) for j in range(kw)]
        return np.concatenate(parts, axis=-1)

    def execute(self, inputs: list[Values]) -> Values:
        x = inputs[0].values
        return Values(self.windows(x.reshape((len(x),) + tuple(self.ifm))), self.out_fmt)

    def fold_channels(self, layer: str, field: str, simd: int) -> None:
        """Take `simd` channels per word from the layer it feeds, checked against its input channels."""
        FoldAxis(field, self.ifm[2], "input channels").check(layer, simd)
        self.simd = simd


@dataclass
class PoolWindow(SlidingWindow):
    """The sliding window of a max-pool: emitted as the pool's row pass (max over KW columns), the
    MaxReduce after it as the column pass; the cost model's `pool_rows` stage."""

    model_kind: ClassVar[str] = "pool_rows"


def name_window(node: Node, owner: str, taken: set[str]) -> None:
    """Name the sliding window feeding a layer `<owner>_swg` (the cost model's name), if one does."""
    from codesign.backend.names import sanitize

    window = node.producer()
    if getattr(window, "is_window", False):
        window.name = sanitize(f"{owner}_swg", taken)


def _swg_context(item: SlidingWindow, view: StageView) -> dict[str, Any]:
    ih, iw, ic = item.ifm
    t, l, b, r = item.pads
    return {"h": ih, "w": iw, "c": ic, "kh": item.kernel[0], "kw": item.kernel[1],
            "sh": item.stride[0], "sw": item.stride[1], "pads": [t, l, b, r], "simd": item.simd,
            "depthwise": item.depthwise,
            "in_fmt": cpp_fmt(item.in_fmt), "out_fmt": cpp_fmt(item.out_fmt),
            "comment": f"{view.ident}: {'depthwise ' if item.depthwise else ''}sliding window "
                       f"{item.kernel[0]}x{item.kernel[1]} stride "
                       f"{item.stride[0]} pads {[t, l, b, r]} on {ih}x{iw}x{ic}, SIMD {item.simd}"}


def _rows_context(item: PoolWindow, view: StageView) -> dict[str, Any]:
    ih, iw, ic = item.ifm
    assert item.pads == (0, 0, 0, 0) and item.in_fmt == item.out_fmt
    return {"outer": ih, "n": iw, "inner": ic // item.simd, "k": item.kernel[1], "s": item.stride[1],
            "pe": item.simd, "fmt": cpp_fmt(item.in_fmt),
            "comment": f"{view.ident}: max over {item.kernel[1]} columns, stride {item.stride[1]}, "
                       f"on {ih}x{iw}x{ic}, PE {item.simd}"}


register_template(SlidingWindow, StageTemplate(call="stages/swg.cpp.j2", include_header=("swg.h",),
                                               context=_swg_context))
register_template(PoolWindow, StageTemplate(call="stages/max_pool_axis.cpp.j2", include_header=("maxpool.h",),
                                            context=_rows_context))
