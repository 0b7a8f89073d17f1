"""What every op of the dataflow graph is, and what a hardware op owns (qonnx CustomOp habit).

A hardware op (a stream stage) owns its semantics and its code: `execute` (the integer reference),
`apply_fold` (the Design's folding, checked through hw_space.fold_axes), `model_kind` (the cost
model's stage it is) and, through the template registry (`register_template`, hls4ml's
FunctionCallTemplate habit), its HLS call site, parameter header and kernel headers. Transforms,
the writer and the reference executor ask the op; none of them knows op kinds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import networkx as nx
import numpy as np

from codesign.backend import dag
from codesign.backend.formats import IntFmt
from hw_space.design import LayerFold


@dataclass
class Op:
    """Base of every node op: `name` names it in messages; `onnx_op` is the op it came from."""

    name: str
    onnx_op: str = ""

    # the integer codes of its output: passes_codes ops (layout, windows, max) keep their input's
    passes_codes: ClassVar[bool] = False

    def output_codes(self) -> tuple[IntFmt, np.ndarray] | None:
        """(format, scale) of the codes this op outputs (real = decode(code) * scale); None if it
        outputs floats or passes its input's codes on (see passes_codes)."""
        return None

    def non_decreasing(self) -> bool:
        """True when the op is non-decreasing per channel (max-pooling commutes with it)."""
        return False

    def affine(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(mul, add) when the op is y = x*mul + add, else None (what may follow the last layer)."""
        return None

    def float_eval(self, y: np.ndarray) -> np.ndarray:
        """The op on float64 values, channels last (activation chains); only elementwise ops have one."""
        from hw_space.errors import CodesignError

        raise CodesignError(f"node {self.name!r} ({self.onnx_op}): not an elementwise op")

    def slope_sign(self, channels: int) -> np.ndarray:
        """Per channel -1 where the op reverses the order of its inputs, else +1."""
        return np.ones(channels, dtype=np.int64)


@dataclass(frozen=True)
class Values:
    """What flows on an edge in the integer reference: values (N, ...) and their element format."""

    values: np.ndarray
    fmt: IntFmt


@dataclass(frozen=True)
class Node:
    """One node of the graph as its op sees it: the graph, its key and its neighbours."""

    g: nx.DiGraph
    key: str

    @property
    def op(self) -> Any:
        return dag.op(self.g, self.key)

    def producers(self) -> list[Any]:
        """The ops it reads, by input port."""
        return [dag.op(self.g, k) for k in dag.producers(self.g, self.key)]

    def consumers(self) -> list[Any]:
        """The ops that read it."""
        return [dag.op(self.g, k) for k in dag.consumers(self.g, self.key)]

    def producer(self) -> Any:
        """The op on input port 0, or None."""
        found = self.producers()
        return found[0] if found else None

    def consumer(self) -> Any:
        """The first op reading it, or None."""
        found = self.consumers()
        return found[0] if found else None


@dataclass
class HardwareOp(Op):
    """A stream stage: reads words of `in_elems` elements, writes words of `out_elems` elements of
    `stream_fmt`, `frame_elems` of them per frame."""

    model_kind: ClassVar[str] = ""  # the cost model's stage kind (hw_space.model), same kernels in the same order
    is_window: ClassVar[bool] = False  # a sliding window: the layer it feeds sets its SIMD and its name
    fans_out: ClassVar[bool] = False  # writes one stream per reader (the duplicator); any other stage has one reader

    @property
    def in_elems(self) -> int:
        return 1

    @property
    def out_elems(self) -> int:
        return 1

    @property
    def stream_fmt(self) -> IntFmt:
        raise NotImplementedError(type(self).__name__)

    @property
    def frame_elems(self) -> int:
        return 0

    def execute(self, inputs: list[Values]) -> Values:
        """The integer reference of this stage on its inputs (by port)."""
        raise NotImplementedError(type(self).__name__)

    def choose_arithmetic(self) -> None:
        """Pick the arithmetic its formats allow, before folding (default: nothing to choose)."""

    def apply_fold(self, folds: Mapping[str, LayerFold], node: Node) -> None:
        """Take this stage's folding from the Design's layers (checked: a one-line CodesignError)."""

    def after_fold(self, node: Node) -> None:
        """Adapt to the neighbours once every stage is folded (the stream adapters' word sizes)."""

    def converter_name(self, producer: Any, port: int = 0) -> str:
        """The name of a width converter in front of input `port` of this stage (as the cost model
        names it): <layer>_in_dwc, <layer>_in<port>_dwc past the first input."""
        layer = getattr(self, "layer", "") or self.name.removesuffix("_swg")
        return f"{layer}_in_dwc" if port == 0 else f"{layer}_in{port}_dwc"

    def ident_base(self) -> str:
        """The name its C identifier is built from."""
        return getattr(self, "layer", "") or self.name


# ---------------------------------------------------------------- HLS stage templates


@dataclass(frozen=True)
class StageView:
    """What a stage template's context sees: the node, its C identifier and the top's AXI width."""

    node: Node
    ident: str
    axi_width: int


@dataclass(frozen=True)
class StageTemplate:
    """How one hardware op class becomes HLS: the call-site template (hls_templates/stages/), the
    kernel headers it needs (hls_templates/kernels/), an optional parameter header template and
    pragma template, and the function giving their context."""

    call: str
    include_header: tuple[str, ...]
    context: Callable[[Any, StageView], dict[str, Any]]
    params: str | None = None
    pragmas: str | None = None


_TEMPLATES: dict[type, StageTemplate] = {}


def register_template(cls: type, template: StageTemplate) -> None:
    """Register the HLS template of a hardware op class (subclasses inherit it unless registered)."""
    _TEMPLATES[cls] = template


def template_of(item: Any) -> StageTemplate:
    """The registered template of an op (by its class, then its bases)."""
    for cls in type(item).__mro__:
        if cls in _TEMPLATES:
            return _TEMPLATES[cls]
    raise TypeError(f"no HLS template registered for {type(item).__name__}")


def square(name: str, kernel: tuple[int, int], stride: tuple[int, int],
           pads: tuple[int, int, int, int]) -> tuple[int, int, int]:
    """(kernel, stride, padding) of a square window as a Design layer describes it, or one clear line."""
    from hw_space.errors import CodesignError

    kh, kw = kernel
    sh, sw = stride
    if kh != kw or sh != sw or len(set(pads)) != 1:
        raise CodesignError(f"node {name!r}: kernel {kh}x{kw}, stride {sh}x{sw}, pads {list(pads)}: only square "
                            "kernels and strides with equal padding on every side can be described as a Design")
    return kh, sh, pads[0]
