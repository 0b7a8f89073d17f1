"""The matrix-vector(-activation) unit: a conv's or dense layer's product and its thresholds
(kernels/mvau.h, finn-hlslib's Matrix_Vector_Activate_Batch), its parameter header (params.h.j2)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from codesign.backend import activation
from codesign.backend.formats import IntFmt, cpp_fmt
from codesign.backend.ops.base import (
    HardwareOp,
    Node,
    Op,
    StageTemplate,
    Values,
    register_template,
    square,
)
from codesign.backend.ops.swg import name_window
from hw_space.design import WEIGHT_LAYOUTS, Layer, LayerFold
from hw_space.errors import CodesignError
from hw_space.fold_axes import FoldAxis
from hw_space.layers import largest_divisor_at_most
from hw_space.layers.mvau import AXIS_WHAT

# The Design's weight_memory -> Vitis HLS BIND_STORAGE impl of the weight and threshold ROMs
# (UG1399: impl=bram|lutram|uram; 'auto' leaves the choice to the tool, and the cost model prices
# what hw_space.memory.resolve_style says the tool picks). 'external' is not emitted.
STORAGE_IMPL = {"auto": None, "bram": "bram", "lutram": "lutram", "uram": "uram"}
# the Design's multiplier style: MulDot's MAC tag (kernels/mvau.h Product: BIND_OP impl=fabric|dsp)
MAC_TAGS = {"auto": "MacAuto", "lut": "MacLut", "dsp": "MacDsp"}


@dataclass
class MVAU(HardwareOp):
    """Matrix-vector(-activation) unit: acc = W (MH x MW) . x over `reps` input vectors, then either
    thresholds (out = offset + number of thresholds reached) or the raw accumulator.

    `epilogue` holds the float ops still to apply to the real-valued accumulator (acc * in_scale *
    weight scale first); lowering the activation turns it into `thresholds`."""

    mw: int = 1
    mh: int = 1
    reps: int = 1
    weights: np.ndarray | None = None  # (MH, MW) integer values
    w_fmt: IntFmt = IntFmt(8, True)
    in_fmt: IntFmt = IntFmt(8, False)
    epilogue: list[Op] = field(default_factory=list)
    thresholds: np.ndarray | None = None  # (MH, NT) int64, sorted per row
    out_offset: int = 0  # code of the lowest output level
    out_fmt: IntFmt | None = None  # None: raw accumulator out
    out_scale: np.ndarray | None = None  # real value of an output code (per channel or scalar)
    signs: np.ndarray | None = None  # per row: -1 where the weights were negated for the thresholds
    layer: str = ""  # the Design layer name
    kind: str = "dense"  # conv | dense: the Design layer type it computes
    weight_bits: int = 0  # bits of the weight quantizer (1: bipolar)
    kernel: tuple[int, int] = (1, 1)  # conv geometry, for the network view
    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    out_hw: tuple[int, int] = (1, 1)
    simd: int = 1
    pe: int = 1
    xnor: bool = False
    mac: str = "auto"  # multiplier style of the Design (auto | lut | dsp): BIND_OP in the HLS
    weight_memory: str = "auto"  # memory style of the Design (auto | bram | lutram | uram): BIND_STORAGE
    weight_layout: str = "per_pe"  # the Design's weight layout: ARRAY_PARTITION (per_pe) or ARRAY_RESHAPE (wide)

    model_kind: ClassVar[str] = "mvau"
    layer_family: ClassVar[str] = "compute"  # takes the Design's conv / dense layers, in order

    def acc_range(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-row (min, max) of the accumulator over every input the format allows."""
        assert self.weights is not None
        w = self.weights.astype(np.int64)
        lo, hi = self.in_fmt.lo, self.in_fmt.hi
        pos, neg = np.clip(w, 0, None), np.clip(w, None, 0)
        return pos.sum(1) * lo + neg.sum(1) * hi, pos.sum(1) * hi + neg.sum(1) * lo

    @property
    def acc_fmt(self) -> IntFmt:
        lo, hi = self.acc_range()
        return IntFmt.for_range(min(int(lo.min()), 0), int(hi.max()))

    @property
    def in_elems(self) -> int:
        return self.simd

    @property
    def out_elems(self) -> int:
        return self.pe

    @property
    def stream_fmt(self) -> IntFmt:
        return self.out_fmt if self.out_fmt is not None else self.acc_fmt

    @property
    def frame_elems(self) -> int:
        return self.mh * self.reps

    @property
    def channels(self) -> int:
        """Output channels (the last axis of its output)."""
        return self.mh

    def output_codes(self) -> tuple[IntFmt, np.ndarray] | None:
        if self.out_fmt is None:
            return None
        assert self.out_scale is not None
        return self.out_fmt, self.out_scale

    # ------------------------------------------------------------ semantics

    def execute(self, inputs: list[Values]) -> Values:
        """Accumulators, thresholded to output codes when it has thresholds."""
        x = inputs[0].values
        acc = mvau_acc(self, x.reshape(len(x), -1, self.mw))
        if self.thresholds is None:
            return Values(acc, self.acc_fmt)
        assert self.out_fmt is not None
        out = activation.apply_thresholds(acc, self.thresholds, self.out_offset)
        return Values(self.out_fmt.decode(out), self.out_fmt)

    def choose_arithmetic(self) -> None:
        """Bipolar inputs and weights: XNOR-popcount, no multipliers (FINN's binary MVAU)."""
        self.xnor = self.in_fmt.bipolar and self.w_fmt.bipolar

    def fold_axes(self) -> tuple[FoldAxis, FoldAxis]:
        """(PE, SIMD): PE divides MH, SIMD divides MW (K*K*Cin of a conv), as FINN's MVAU; worded as
        the cost model words them."""
        pe_what, simd_what = AXIS_WHAT[self.kind]
        return FoldAxis("pe", self.mh, pe_what), FoldAxis("simd", self.mw, simd_what)

    def apply_fold(self, folds: Mapping[str, LayerFold], node: Node) -> None:
        """PE, SIMD, multiplier and memory style and weight layout of its Design layer; the SIMD of its window, which
        divides Cin (FINN) and defaults to the largest divisor of Cin up to the MVAU's SIMD."""
        f = folds.get(self.layer, LayerFold())
        pe_axis, simd_axis = self.fold_axes()
        pe_axis.check(self.layer, f.pe)
        simd_axis.check(self.layer, f.simd)
        self.pe, self.simd = f.pe, f.simd
        self.mac, self.weight_memory, self.weight_layout = f.mac, f.weight_memory, f.weight_layout
        window = node.producer()
        if getattr(window, "is_window", False):
            cin = window.ifm[2]
            window.fold_channels(self.layer, "swg_simd",
                                 f.swg_simd if f.swg_simd is not None else largest_divisor_at_most(cin, f.simd))

    def converter_name(self, producer: Any, port: int = 0) -> str:
        """<conv>_dwc between a conv's window and its MVAU, <layer>_in_dwc elsewhere (the cost model's names)."""
        if getattr(producer, "is_window", False):
            return f"{self.layer or self.name}_dwc"
        return super().converter_name(producer, port)

    # ------------------------------------------------------------ the Design's view

    def take_layer(self, layer: str, ident: str, node: Node, taken: set[str]) -> None:
        """Become the Design layer `layer` (C identifier `ident`); its window follows the name."""
        self.layer, self.name = layer, ident
        name_window(node, ident, taken)

    def to_layer(self, name: str, last: bool) -> Layer:
        """The Design layer it computes (`last`: the network's last compute layer, raw logits)."""
        act = None
        if not last and self.out_fmt is not None:
            act = self.out_fmt.code_bits
        return _DESIGN_LAYER[self.kind](self, name, act)

    def manifest(self, ident: str) -> dict[str, Any]:
        """Its entry in the emitted manifest's layer list."""
        return {"layer": self.layer, "ident": ident, "onnx": self.onnx_op, "kind": self.kind, "pe": self.pe,
                "simd": self.simd, "mw": self.mw, "mh": self.mh, "reps": self.reps, "xnor": self.xnor,
                "thresholds": 0 if self.thresholds is None else self.thresholds.shape[1]}


def _conv_layer(item: MVAU, name: str, act: int | None) -> Layer:
    k, s, p = square(item.name, item.kernel, item.stride, item.pads)
    return Layer(name=name, type="conv", out_channels=item.mh, kernel=k, stride=s, padding=p,
                 weight_bits=item.weight_bits, act_bits=act)


def _dense_layer(item: MVAU, name: str, act: int | None) -> Layer:
    return Layer(name=name, type="dense", out_features=item.mh, weight_bits=item.weight_bits, act_bits=act)


# the Design layer an MVAU computes, per the layer family it was lowered from
_DESIGN_LAYER = {"conv": _conv_layer, "dense": _dense_layer}


def mvau_acc(item: MVAU, x: np.ndarray) -> np.ndarray:
    """Exact integer accumulators (N, reps..., MH) of an MVAU on value inputs (..., MW)."""
    assert item.weights is not None
    # float64 products and sums are exact while every partial sum stays below 2^53
    acc = x.astype(np.float64) @ item.weights.T.astype(np.float64)
    return np.rint(acc).astype(np.int64)


# ---------------------------------------------------------------- HLS


def _signed_bits(lo: int, hi: int) -> int:
    return IntFmt.for_range(min(int(lo), -1), max(int(hi), 0)).bits


def _literal(value: int, width: int, chunked: bool = False) -> str:
    """A C literal of an unsigned `width`-bit value: an integer up to 64 bits; wider, an ap_uint from
    its hex string, or (chunked) the braced 64-bit chunks of a codesign::csim::Word, low chunk first."""
    if width <= 64:
        return f"0x{value:x}ULL" if value else "0"
    if chunked:
        chunks = [(value >> (64 * k)) & ((1 << 64) - 1) for k in range(-(-width // 64))]
        return "{{" + ", ".join(_literal(c, 64) for c in chunks) + "}}"
    return f'ap_uint<{width}>("0x{value:x}", 16)'


def pack_weights(item: MVAU, chunked: bool = False) -> list[list[str]]:
    """C literals weights[p][t]: SIMD weight codes per word (lane s at bits s*B), t = nf*SF + sf;
    words wider than 64 bits as ap_uint constants, or (chunked) as C-simulation chunk words."""
    assert item.weights is not None
    bits = item.w_fmt.code_bits
    codes = item.w_fmt.encode(item.weights) & ((1 << bits) - 1)  # two's complement bits
    sf, nf = item.mw // item.simd, item.mh // item.pe
    # (MH, MW) -> [nf][p][sf][s] -> [p][nf][sf][s]
    lanes = codes.reshape(nf, item.pe, sf, item.simd).transpose(1, 0, 2, 3).reshape(item.pe, nf * sf, item.simd)
    width = bits * item.simd
    if width <= 64:
        shifts = (np.arange(item.simd, dtype=np.uint64) * np.uint64(bits))[None, None, :]
        words = np.bitwise_or.reduce(lanes.astype(np.uint64) << shifts, axis=2)
        return [[_literal(int(v), width) for v in row] for row in words.tolist()]
    rows = []
    for p in range(item.pe):
        row = []
        for t in range(nf * sf):
            v = 0
            for s in reversed(range(item.simd)):
                v = (v << bits) | int(lanes[p, t, s])
            row.append(_literal(v, width, chunked))
        rows.append(row)
    return rows


def hardware_thresholds(item: MVAU) -> np.ndarray:
    """Thresholds (MH, NT) as the kernel compares them: dot-product domain, or for XNOR layers the
    popcount domain (dot = 2*pc - MW, so dot >= T <=> pc >= ceil((T + MW) / 2))."""
    assert item.thresholds is not None
    if not item.xnor:
        return item.thresholds
    return np.clip(-((-(item.thresholds + item.mw)) // 2), 0, item.mw + 1)


def mvau_context(item: MVAU, name: str) -> dict[str, Any]:
    """The call site's and parameter header's context of an MVAU with C identifier `name`."""
    lo, hi = item.acc_range()
    nf = item.mh // item.pe
    if item.xnor:
        acc_bits = _signed_bits(-item.mw, item.mw)
    else:
        acc_bits = _signed_bits(lo.min(), hi.max())
    if item.thresholds is not None:
        thr = hardware_thresholds(item)
        nt = thr.shape[1]
        thr_bits = _signed_bits(thr.min(), thr.max())
        per_pe = thr.reshape(nf, item.pe, nt).transpose(1, 0, 2)
        thresholds = [[[str(int(v)) for v in row] for row in pe_rows] for pe_rows in per_pe]
        assert item.out_fmt is not None
        out_bits = item.out_fmt.code_bits
        offset = item.out_offset
    else:
        nt, thr_bits, offset = 0, 2, 0
        thresholds = [[["0"] for _ in range(nf)] for _ in range(item.pe)]
        out_bits = item.acc_fmt.bits
    w_bits = item.w_fmt.code_bits
    word_bits = w_bits * item.simd
    if item.mac not in MAC_TAGS:
        raise ValueError(f"layer {name}: mac {item.mac!r} is not one of {', '.join(MAC_TAGS)}")
    if item.xnor:  # no multipliers
        dot = f"XnorDot<{item.simd}, {cpp_fmt(item.in_fmt)}, {cpp_fmt(item.w_fmt)}, {name}_acc_t>"
    else:
        dot = (f"MulDot<{item.simd}, {cpp_fmt(item.in_fmt)}, {cpp_fmt(item.w_fmt)}, {name}_acc_t, "
               f"codesign::{MAC_TAGS[item.mac]}>")
    if item.weight_memory not in STORAGE_IMPL:
        raise CodesignError(f"hardware.layers.{item.layer or name}.weight_memory: {item.weight_memory!r} cannot be "
                            f"emitted; allowed: {', '.join(STORAGE_IMPL)} (weights streamed from DRAM are not built "
                            "by the dataflow backend)")
    if item.weight_layout not in WEIGHT_LAYOUTS:
        raise CodesignError(f"hardware.layers.{item.layer or name}.weight_layout: {item.weight_layout!r} is not "
                            f"allowed; allowed: {', '.join(WEIGHT_LAYOUTS)}")
    in_bits = item.in_fmt.code_bits
    return {
        "storage": STORAGE_IMPL[item.weight_memory], "layout": item.weight_layout,
        "name": name, "label": name, "guard": f"CODESIGN_PARAMS_{name.upper()}_H",
        "mw": item.mw, "mh": item.mh, "simd": item.simd,
        "pe": item.pe, "reps": item.reps, "nt": nt, "offset": offset, "out_bits": out_bits,
        "in_fmt": cpp_fmt(item.in_fmt), "w_fmt": cpp_fmt(item.w_fmt), "dot": dot, "mac": item.mac,
        "in_bits": in_bits, "acc_bits": acc_bits, "thr_bits": thr_bits, "w_bits": w_bits, "word_bits": word_bits,
        "sf": item.mw // item.simd, "nf": nf, "tiles": nf * (item.mw // item.simd),
        "weights": pack_weights(item), "thresholds": thresholds,
        "weight_chunks": pack_weights(item, chunked=True) if word_bits > 64 else [],
        # the ap_uint widths it instantiates beyond its streams (checked against AP_INT_MAX_W)
        "widths": [(word_bits, f"{name} weight word"), (acc_bits, f"{name} accumulator"),
                   (item.simd * in_bits, f"{name} input vector")],
        "comment": f"{name}: MVAU {item.mh}x{item.mw} x{item.reps}, PE {item.pe}, SIMD {item.simd}, "
                   f"{'XNOR-popcount' if item.xnor else item.w_fmt.describe() + ' weights'}, "
                   f"{f'{nt} thresholds' if nt else 'accumulator out'}",
    }


register_template(MVAU, StageTemplate(call="stages/mvau.cpp.j2", include_header=("mvau.h",),
                                      context=lambda item, view: mvau_context(item, view.ident),
                                      params="params.h.j2", pragmas="stages/mvau.pragmas.cpp.j2"))
