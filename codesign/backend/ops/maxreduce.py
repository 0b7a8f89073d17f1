"""The max over each window of a max-pool (after its PoolWindow); emitted as the pool's column pass
(kernels/maxpool.h, max_pool_axis down the rows of running maxima)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from codesign.backend.formats import IntFmt, cpp_fmt
from codesign.backend.ops.base import HardwareOp, Node, StageTemplate, StageView, Values, register_template, square
from codesign.backend.ops.swg import name_window
from hw_space.design import Layer, LayerFold
from hw_space.fold_axes import FoldAxis


@dataclass
class MaxReduce(HardwareOp):
    """Max over each window of `window` pixels from a sliding-window generator (max-pool on codes)."""

    channels: int = 1
    window: int = 4
    reps: int = 1
    fmt: IntFmt = IntFmt(8, False)
    kernel: tuple[int, int] = (2, 2)
    stride: tuple[int, int] = (2, 2)
    layer: str = ""
    pe: int = 1

    model_kind: ClassVar[str] = "pool"
    layer_family: ClassVar[str] = "pool"  # takes the Design's maxpool layers, in order
    passes_codes: ClassVar[bool] = True

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

    def execute(self, inputs: list[Values]) -> Values:
        """The maximum over each window of its input windows (N, reps, window * channels)."""
        x = inputs[0]
        n = len(x.values)
        return Values(x.values.reshape(n, self.reps, self.window, self.channels).max(axis=2), x.fmt)

    def apply_fold(self, folds: Mapping[str, LayerFold], node: Node) -> None:
        """PE of its Design layer; a pool the design leaves out takes every channel per cycle, as the
        cost model (hw_space CostModel.default_pe) assumes. Its window moves PE channels per word."""
        pe = folds[self.layer].pe if self.layer in folds else self.channels
        FoldAxis("pe", self.channels, "channels").check(self.layer, pe)
        self.pe = pe
        window = node.producer()
        assert window.is_window
        window.simd = pe

    def take_layer(self, layer: str, ident: str, node: Node, taken: set[str]) -> None:
        """Become the Design layer `layer` (C identifier `ident`); its window follows the name."""
        self.layer, self.name = layer, ident
        name_window(node, ident, taken)

    def to_layer(self, name: str, last: bool) -> Layer:
        """The Design's maxpool layer."""
        k, s, _ = square(self.name, self.kernel, self.stride, (0, 0, 0, 0))
        return Layer(name=name, type="maxpool", kernel=k, stride=s)

    def manifest(self, ident: str) -> dict[str, Any]:
        """Its entry in the emitted manifest's layer list."""
        return {"layer": self.layer, "ident": ident, "kind": "maxpool", "pe": self.pe, "channels": self.channels,
                "window": self.window, "reps": self.reps}


def _cols_context(item: MaxReduce, view: StageView) -> dict[str, Any]:
    window = view.node.producer()
    assert window.is_window and window.simd == item.pe and window.in_fmt == item.fmt
    ih, _, ic = window.ifm
    ow = window.ofm[1]
    return {"outer": 1, "n": ih, "inner": ow * ic // item.pe, "k": item.kernel[0], "s": item.stride[0],
            "pe": item.pe, "fmt": cpp_fmt(item.fmt),
            "comment": f"{view.ident}: max over {item.kernel[0]} rows of those, stride {item.stride[0]}, "
                       f"{item.channels} channels, PE {item.pe}"}


register_template(MaxReduce, StageTemplate(call="stages/max_pool_axis.cpp.j2", include_header=("maxpool.h",),
                                           context=_cols_context))
