"""The accelerator's stream adapters: InputStage unpacks the AXI input port, OutputStage packs the
output codes into the AXI output port (hls_templates/kernels/io.h, both gearboxes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from codesign.backend import dag
from codesign.backend.formats import IntFmt
from codesign.backend.ops.base import HardwareOp, Node, Op, StageTemplate, StageView, Values, register_template
from codesign.backend.ops.front import Quantizer
from hw_space.layers import gearbox_cycles


@dataclass(frozen=True)
class StreamPort:
    """One AXI-Stream port of the top: words of `width` bits, each packing `elems` elements of `bits`
    bits (element 0 in the low bits); `count` elements per frame in `words` words, the last one
    zero-padded."""

    elems: int
    bits: int
    words: int
    signed: bool
    fmt: str
    width: int
    count: int

    def context(self) -> dict[str, Any]:
        """The port as the templates and the manifest see it."""
        return {"elems": self.elems, "bits": self.bits, "words": self.words, "signed": self.signed,
                "fmt": self.fmt, "width": self.width, "count": self.count}


def port(count: int, bits: int, axi_width: int, signed: bool, fmt: str) -> StreamPort:
    """An AXI port of axi_width bits carrying `count` elements of `bits` bits, packed."""
    per_word = max(1, axi_width // bits)
    return StreamPort(per_word, bits, -(-count // per_word), signed, fmt, max(axi_width, per_word * bits), count)


def gearbox_iterations(total: int, n_in: int, n_out: int) -> int:
    """Iterations of the gearbox kernel (kernels/common.h): the cost model's formula, one place."""
    return int(gearbox_cycles(total, n_in, n_out))


@dataclass
class InputStage(HardwareOp):
    """Accelerator input: the host applies `preprocess` (float Affine / Layout ops on the logical
    tensor of shape `source_shape`), quantizes with `quantizer` and streams the codes pixel by pixel,
    channels innermost."""

    shape: tuple[int, int, int] = (1, 1, 1)  # H, W, C
    quantizer: Quantizer | None = None
    preprocess: list[Op] = field(default_factory=list)
    source_shape: tuple[int, ...] = ()
    elems: int = 1  # elements per stream word

    model_kind: ClassVar[str] = "io"

    @property
    def fmt(self) -> IntFmt:
        assert self.quantizer is not None
        return self.quantizer.fmt

    @property
    def out_elems(self) -> int:
        return self.elems

    @property
    def stream_fmt(self) -> IntFmt:
        return self.fmt

    @property
    def frame_elems(self) -> int:
        h, w, c = self.shape
        return h * w * c

    def output_codes(self) -> tuple[IntFmt, np.ndarray]:
        assert self.quantizer is not None
        return self.fmt, self.quantizer.scale

    def execute(self, inputs: list[Values]) -> Values:
        """Input codes (N, H*W*C) -> values (N, H, W, C)."""
        codes = inputs[0].values
        return Values(self.fmt.decode(codes).reshape((len(codes),) + tuple(self.shape)), self.fmt)

    def after_fold(self, node: Node) -> None:
        """Its word is its reader's; a duplicator (the input forks) takes any word: then the word of
        the duplicator's first reader in data-flow order (as the cost model)."""
        reader = node.consumer()
        if reader.fans_out:
            order = {k: i for i, k in enumerate(dag.topological(node.g))}
            dup = dag.consumers(node.g, node.key)[0]
            reader = dag.op(node.g, min(dag.consumers(node.g, dup), key=order.__getitem__))
        self.elems = reader.in_elems

    def axi_port(self, node: Node, axi_width: int) -> StreamPort:
        """The top's input port: every code of a frame, packed into axi_width-bit words."""
        fmt = self.fmt
        return port(self.frame_elems, fmt.code_bits, axi_width, fmt.signed and not fmt.bipolar, fmt.describe())


@dataclass
class OutputStage(HardwareOp):
    """Accelerator output: `count` integer codes per frame; logits = code * scale + bias per channel
    (last axis; bipolar codes are 0/1 and their decoding is folded into scale and bias)."""

    count: int = 1
    fmt: IntFmt = IntFmt(32, True)
    scale: np.ndarray = field(default_factory=lambda: np.ones(1))
    bias: np.ndarray = field(default_factory=lambda: np.zeros(1))
    elems: int = 1

    model_kind: ClassVar[str] = "io"

    @property
    def in_elems(self) -> int:
        return self.elems

    def execute(self, inputs: list[Values]) -> Values:
        """The codes of its input, one row of `count` per frame."""
        x = inputs[0]
        return Values(x.fmt.encode(x.values).reshape(len(x.values), -1), x.fmt)

    def after_fold(self, node: Node) -> None:
        self.elems = node.producer().out_elems

    def axi_port(self, node: Node, axi_width: int) -> StreamPort:
        """The top's output port: each code in whole bytes (the cost model's 8*ceil(bits/8) per logit)."""
        fmt = node.producer().stream_fmt
        return port(self.count, 8 * -(-fmt.code_bits // 8), axi_width, fmt.signed and not fmt.bipolar,
                    "bipolar codes" if fmt.bipolar else fmt.describe())


def _input_context(item: InputStage, view: StageView) -> dict[str, Any]:
    inp = item.axi_port(view.node, view.axi_width)
    h, w, c = item.shape
    return {"width": inp.width, "per_word": inp.elems, "elems": item.elems, "bits": item.fmt.code_bits,
            "total": inp.count, "iters": gearbox_iterations(inp.count, inp.elems, item.elems),
            "comment": f"input: {h}x{w}x{c} {item.fmt.describe()}, {inp.elems} per {inp.width}-bit word"}


def _output_context(item: OutputStage, view: StageView) -> dict[str, Any]:
    outp = item.axi_port(view.node, view.axi_width)
    return {"width": outp.width, "per_word": outp.elems, "elems": item.elems,
            "bits": view.node.producer().stream_fmt.code_bits, "port_bits": outp.bits, "signed": outp.signed,
            "total": outp.count, "iters": gearbox_iterations(outp.count, item.elems, outp.elems),
            "comment": f"output: {item.count} x {outp.fmt} as {outp.bits} bits, {outp.elems} per "
                       f"{outp.width}-bit word"}


register_template(InputStage, StageTemplate(call="stages/input.cpp.j2", include_header=("io.h",),
                                            context=_input_context))
register_template(OutputStage, StageTemplate(call="stages/output.cpp.j2", include_header=("io.h",),
                                             context=_output_context))
