"""The stages of a residual block: the element-wise add of two streams with the requantization of
the sum (kernels/add_streams.h, FINN's AddStreams_Batch) and the fork that copies one stream to
several readers (kernels/dup_streams.h, FINN's DuplicateStreams_Batch).

The add is an MVAU of unit weights over two inputs (mw = 2 per channel): its accumulator range, its
thresholds (lowering.LowerActivation) and its parameter header are the MVAU's, as the global pool's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from codesign.backend.formats import IntFmt, cpp_fmt
from codesign.backend.ops.base import HardwareOp, Node, StageTemplate, StageView, Values, register_template
from codesign.backend.ops.mvau import mvau_context
from codesign.backend.ops.vvau import PeLanes, _requantize
from hw_space.design import Layer
from hw_space.errors import CodesignError


@dataclass
class AddStreams(PeLanes):
    """acc = a + b per element of two streams of `mh` channels x `reps` pixels holding codes at one
    scale, then the thresholds of the requantizer after it (the sum's scale is the inputs' shared one).
    PE divides the channels (C % PE == 0, FINN's AddStreams)."""

    kind: str = "add"
    model_kind: ClassVar[str] = "add"
    layer_family: ClassVar[str] = "add"

    def execute(self, inputs: list[Values]) -> Values:
        a, b = (x.values.reshape(len(x.values), -1, self.mh) for x in inputs)
        return _requantize(self, a + b)

    def to_layer(self, name: str, last: bool) -> Layer:
        act = self.out_fmt.code_bits if self.out_fmt is not None else None
        return Layer(name=name, type="add", act_bits=act)

    def manifest(self, ident: str) -> dict[str, Any]:
        return {"layer": self.layer, "ident": ident, "kind": "add", "pe": self.pe, "channels": self.mh,
                "pixels": self.reps}


@dataclass
class DuplicateStreams(HardwareOp):
    """Copies every word of its input to each of its `outputs` output streams in the same iteration:
    the stage after a layer whose output several layers read (named <layer>_dup, input_dup for the
    network input). Its word is its producer's."""

    outputs: int = 2
    fmt: IntFmt = IntFmt(8, False)
    elems: int = 1
    total: int = 1  # elements per frame
    source: str = ""  # the layer it copies ("input" for the network input)

    model_kind: ClassVar[str] = "dup"
    passes_codes: ClassVar[bool] = True
    fans_out: ClassVar[bool] = True  # the one stage whose output feeds several streams

    @property
    def in_elems(self) -> int:
        return self.elems

    @property
    def out_elems(self) -> int:
        return self.elems

    @property
    def stream_fmt(self) -> IntFmt:
        return self.fmt

    @property
    def frame_elems(self) -> int:
        return self.total

    def execute(self, inputs: list[Values]) -> Values:
        return inputs[0]

    def after_fold(self, node: Node) -> None:
        """Its word is the producer's; it takes the name of the producer's layer."""
        producer = node.producer()
        self.elems = producer.out_elems
        self.source = getattr(producer, "layer", "") or producer.name
        self.name = f"{self.source}_dup"

    def ident_base(self) -> str:
        return f"{self.source or self.name.removesuffix('_dup')}_dup"


def _add_context(item: AddStreams, view: StageView) -> dict[str, Any]:
    if item.thresholds is None:
        raise CodesignError(f"node {item.name!r}: the sum of a residual add must be requantized (a Quant after it)")
    ctx = mvau_context(item, view.ident)
    ctx.update(weights=[], weight_chunks=[], in_fmt=cpp_fmt(item.in_fmt), iters=item.reps * item.mh // item.pe,
               comment=f"{view.ident}: add of two streams of {item.mh} channels x {item.reps} pixels, PE {item.pe}, "
                       f"{ctx['nt']} thresholds")
    ctx["widths"] = [(ctx["acc_bits"], f"{view.ident} accumulator")]
    return ctx


def _dup_context(item: DuplicateStreams, view: StageView) -> dict[str, Any]:
    if item.outputs not in (2, 3):
        raise CodesignError(f"node {item.name!r}: its output is read by {item.outputs} layers; the HLS fork copies a "
                            "stream to 2 or 3 readers")
    words = item.total // item.elems
    return {"n": item.outputs, "bits": item.elems * item.fmt.code_bits, "words": words,
            "comment": f"{view.ident}: {item.outputs} copies of {words} words of {item.elems} x {item.fmt.describe()}"}


register_template(AddStreams, StageTemplate(call="stages/add_streams.cpp.j2", include_header=("add_streams.h",),
                                            context=_add_context, params="params.h.j2"))
register_template(DuplicateStreams, StageTemplate(call="stages/dup_streams.cpp.j2", include_header=("dup_streams.h",),
                                                  context=_dup_context))
