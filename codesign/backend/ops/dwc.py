"""The stream width converter between stages whose words differ (kernels/dwc.h, FINN's
StreamingDataWidthConverter)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from codesign.backend.formats import IntFmt
from codesign.backend.ops.base import HardwareOp, StageTemplate, StageView, Values, register_template
from codesign.backend.ops.io import gearbox_iterations


@dataclass
class WidthConverter(HardwareOp):
    """Repacks a stream from in_elems to out_elems elements per word; `total` elements per frame."""

    in_elems: int = 1
    out_elems: int = 1
    total: int = 1
    fmt: IntFmt = IntFmt(8, False)

    model_kind: ClassVar[str] = "dwc"
    passes_codes: ClassVar[bool] = True

    @property
    def stream_fmt(self) -> IntFmt:
        return self.fmt

    @property
    def frame_elems(self) -> int:
        return self.total

    def execute(self, inputs: list[Values]) -> Values:
        """Its input: repacking words changes no element."""
        return inputs[0]


def _dwc_context(item: WidthConverter, view: StageView) -> dict[str, Any]:
    return {"in_elems": item.in_elems, "out_elems": item.out_elems, "bits": item.fmt.code_bits, "total": item.total,
            "iters": gearbox_iterations(item.total, item.in_elems, item.out_elems),
            "comment": f"{view.ident}: {item.in_elems} -> {item.out_elems} elements per word"}


register_template(WidthConverter, StageTemplate(call="stages/dwc.cpp.j2", include_header=("dwc.h",),
                                                context=_dwc_context))
