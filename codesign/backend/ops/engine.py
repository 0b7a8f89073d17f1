"""The tiled engine as the backend builds it: the lowered graph's layers become rows of one layer
table that a single Tm x Tn MAC array walks (hls_templates/kernels/tiled_engine.h), with the
feature maps and the weights laid out in DRAM as the kernel reads them.

Each hardware layer op that the engine can run has an entry in ENGINE_LAYER (by class, as
LOWER_PRODUCT in transforms/lowering.py): MVAU (a conv after its SlidingWindow, or a dense layer)
and MaxReduce (a max-pool after its PoolWindow). The integer semantics stay the ops' own `execute`
(the reference); this module only says where every value lives and which loop bounds the kernel
takes, from the cost model's hw_space.layers.tiled formulas.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np

from codesign.backend.dag import op, topological
from codesign.backend.formats import IntFmt
from codesign.backend.ops.io import InputStage, OutputStage
from codesign.backend.ops.maxreduce import MaxReduce
from codesign.backend.ops.mvau import MVAU, hardware_thresholds
from hw_space.design import Engine
from hw_space.errors import CodesignError
from hw_space.layers.tiled import elements_per_word, logit_bits, tile_geometry
from hw_space.memory import cdiv

# the fields of one row of the kernel's layer table (struct TiledLayer), in order
ROW_FIELDS = ("pool", "in_h", "in_w", "out_h", "out_w", "k", "s", "pad", "tr", "tc", "in_rows", "in_cols", "steps",
              "gpx", "cv", "m", "in_bits", "in_signed", "in_bipolar", "w_bits", "w_signed", "w_bipolar", "xnor",
              "out_bits", "nt", "offset", "thr_row", "mw", "in_base", "w_base", "out_base")
MAX_ELEMENT_BITS = 64  # the kernel extracts elements as 64-bit codes


@dataclass(frozen=True)
class MapLayout:
    """A feature map in DRAM: H x W x C elements of `fmt` in groups of `tn` channels, `epw` elements
    per word of `port` bits, `wg` words per group and pixel, from word `base` on."""

    h: int
    w: int
    c: int
    fmt: IntFmt
    tn: int
    port: int
    base: int = 0

    @property
    def bits(self) -> int:
        return self.fmt.code_bits

    @property
    def epw(self) -> int:
        return int(elements_per_word(self.port, self.bits))

    @property
    def wg(self) -> int:
        return -(-self.tn // self.epw)

    @property
    def groups(self) -> int:
        return -(-self.c // self.tn)

    @property
    def words(self) -> int:
        return self.groups * self.h * self.w * self.wg

    def word_lane(self, y: np.ndarray, x: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(word index from `base`, lane) of elements (y, x, c)."""
        j = c % self.tn
        return ((c // self.tn * self.h + y) * self.w + x) * self.wg + j // self.epw, j % self.epw

    def pack(self, codes: np.ndarray) -> list[int]:
        """One frame's codes (H*W*C, channels innermost) -> the map's words (Python ints)."""
        y, x, c = np.unravel_index(np.arange(self.h * self.w * self.c), (self.h, self.w, self.c))
        word, lane = self.word_lane(y, x, c)
        mask = (1 << self.bits) - 1
        out = [0] * self.words
        for wi, li, code in zip(word.tolist(), lane.tolist(), np.asarray(codes).reshape(-1).tolist()):
            out[wi] |= (int(code) & mask) << (li * self.bits)
        return out

    def context(self) -> dict[str, Any]:
        return {"h": self.h, "w": self.w, "c": self.c, "bits": self.bits, "epw": self.epw, "wg": self.wg,
                "base": self.base, "words": self.words, "signed": self.fmt.signed and not self.fmt.bipolar,
                "fmt": self.fmt.describe()}


@dataclass
class EngineLayer:
    """One row of the layer table, its weights (codes (m tiles, steps, K^2, Tm, Tn), None for a
    pool) and its threshold rows (M x NT, None without an activation)."""

    name: str
    row: dict[str, int]
    weights: np.ndarray | None = None
    w_fmt: IntFmt | None = None
    thresholds: np.ndarray | None = None
    value_bits: int = 2  # signed bits of its input values in the tile buffer
    wvalue_bits: int = 2
    acc_bits: int = 2
    out_map: MapLayout | None = None
    comment: str = ""


def _value_bits(fmt: IntFmt) -> int:
    """Signed bits of a format's values, and of 0 (padding)."""
    if fmt.bipolar:
        return 2
    return fmt.bits if fmt.signed else fmt.bits + 1


def _signed_bits(lo: int, hi: int) -> int:
    return IntFmt.for_range(min(int(lo), -1), max(int(hi), 0)).bits


@dataclass(frozen=True)
class Step:
    """What a layer entry sees: the op, the window before it (or None), the map it reads in DRAM
    and the engine."""

    item: Any
    window: Any
    src: MapLayout
    engine: Engine


def _conv_row(s: Step, out_h: int, out_w: int, k: int, stride: int, pad: int) -> dict[str, int]:
    e = s.engine
    tr, tc, in_rows, in_cols = (int(v) for v in tile_geometry(e.tr, e.tc, out_h, out_w, k, stride))
    return {"pool": 0, "out_h": out_h, "out_w": out_w, "k": k, "s": stride, "pad": pad, "tr": tr, "tc": tc,
            "in_rows": in_rows, "in_cols": in_cols, "in_bits": s.src.bits,
            "in_signed": int(s.src.fmt.signed and not s.src.fmt.bipolar), "in_bipolar": int(s.src.fmt.bipolar)}


def _mvau_layer(s: Step) -> EngineLayer:
    """A conv (its window gives the geometry) or a dense layer (a 1x1 conv on a 1x1 map whose input
    channels are the map before it, group by group and pixel by pixel)."""
    item: MVAU = s.item
    e, src = s.engine, s.src
    assert item.weights is not None
    tm, tn = e.tm, e.tn
    if s.window is not None:
        (k, _), (stride, _), pads = s.window.kernel, s.window.stride, s.window.pads
        if s.window.kernel[0] != s.window.kernel[1] or len(set(pads)) != 1 or stride != s.window.stride[1]:
            raise CodesignError(f"layer {item.layer}: the tiled engine runs square kernels and strides with equal "
                                "padding on every side")
        out_h, out_w = s.window.ofm
        row = _conv_row(s, out_h, out_w, k, stride, pads[0])
        steps, gpx, cv = cdiv(src.c, tn), 1, src.c
        row.update(in_h=src.h, in_w=src.w)
        w = item.weights.reshape(item.mh, k * k, src.c)  # (kh, kw, c) order
        cp = steps * tn
        w = np.pad(w, ((0, 0), (0, 0), (0, cp - src.c)))
        w = w.reshape(item.mh, k * k, steps, tn).transpose(0, 2, 1, 3)  # (M, steps, K2, Tn)
    else:
        k, pixels = 1, src.h * src.w
        row = _conv_row(s, 1, 1, 1, 1, 0)
        groups = cdiv(src.c, tn)
        steps, gpx, cv = groups * pixels, pixels, src.c
        row.update(in_h=1, in_w=1)
        w = item.weights.reshape(item.mh, pixels, src.c)  # (y, x, c) order of the stream
        w = np.pad(w, ((0, 0), (0, 0), (0, groups * tn - src.c)))
        w = w.reshape(item.mh, pixels, groups, tn).transpose(0, 2, 1, 3).reshape(item.mh, steps, 1, tn)
    m_tiles = cdiv(item.mh, tm)
    w = np.pad(w, ((0, m_tiles * tm - item.mh), (0, 0), (0, 0), (0, 0)))
    w = w.reshape(m_tiles, tm, steps, k * k, tn).transpose(0, 2, 3, 1, 4)  # (m tiles, steps, K2, Tm, Tn)
    codes = item.w_fmt.encode(w) & ((1 << item.w_fmt.code_bits) - 1)
    xnor = bool(item.xnor)
    if item.thresholds is not None:
        assert item.out_fmt is not None
        thr, nt, offset, out_fmt = hardware_thresholds(item), item.thresholds.shape[1], item.out_offset, item.out_fmt
        out_bits = out_fmt.code_bits
    else:
        thr, nt, offset = None, 0, 0
        lo, hi = (-item.mw, item.mw) if xnor else item.acc_range()
        exact = _signed_bits(np.min(lo), np.max(hi))
        model = int(logit_bits(item.mw, item.weight_bits or item.w_fmt.code_bits, src.bits))
        out_bits = max(model, 8 * cdiv(exact, 8))
        out_fmt = IntFmt(out_bits, True)
    if xnor:
        acc = _signed_bits(0, steps * tn * k * k)
    else:
        lo, hi = item.acc_range()
        acc = _signed_bits(np.min(lo), np.max(hi))
    row.update(steps=steps, gpx=gpx, cv=cv, m=item.mh, w_bits=item.w_fmt.code_bits,
               w_signed=int(item.w_fmt.signed and not item.w_fmt.bipolar), w_bipolar=int(item.w_fmt.bipolar),
               xnor=int(xnor), out_bits=out_bits, nt=nt, offset=offset, mw=item.mw)
    out_h, out_w = row["out_h"], row["out_w"]
    what = "XNOR-popcount" if xnor else f"{item.w_fmt.describe()} weights"
    return EngineLayer(item.layer or item.name, row, codes, item.w_fmt, thr, _value_bits(src.fmt),
                       _value_bits(item.w_fmt), acc, MapLayout(out_h, out_w, item.mh, out_fmt, tn, e.output_port),
                       f"{item.kind} {item.mh}x{item.mw} on a {out_h}x{out_w} output map, K {k}, {steps} input "
                       f"groups per tile, {what}, {f'{nt} thresholds' if nt else 'dot products out'}")


def _pool_layer(s: Step) -> EngineLayer:
    item: MaxReduce = s.item
    win, src = s.window, s.src
    k, stride = item.kernel[0], item.stride[0]
    if item.kernel[0] != item.kernel[1] or item.stride[0] != item.stride[1]:
        raise CodesignError(f"layer {item.layer}: the tiled engine runs square max-pools only")
    out_h, out_w = win.ofm
    row = {"pool": 1, "in_h": src.h, "in_w": src.w, "out_h": out_h, "out_w": out_w, "k": k, "s": stride, "pad": 0,
           "tr": 1, "tc": 1, "in_rows": 1, "in_cols": 1, "steps": 0, "gpx": 1, "cv": src.c, "m": src.c,
           "in_bits": src.bits, "in_signed": int(src.fmt.signed and not src.fmt.bipolar),
           "in_bipolar": int(src.fmt.bipolar), "w_bits": 1, "w_signed": 0, "w_bipolar": 0, "xnor": 0,
           "out_bits": src.bits, "nt": 0, "offset": 0, "mw": 0}
    return EngineLayer(item.layer or item.name, row, out_map=MapLayout(out_h, out_w, src.c, src.fmt, src.tn, src.port),
                       comment=f"max-pool {k}x{k} stride {stride} on {src.h}x{src.w}x{src.c}")


# the engine's layers, by hardware op class: (step) -> the layer table entry
ENGINE_LAYER: dict[type, Callable[[Step], EngineLayer]] = {MVAU: _mvau_layer, MaxReduce: _pool_layer}


@dataclass
class TiledProgram:
    """Everything the engine's project holds: the layer table, the weight memory image, the
    threshold table, the DRAM maps of the network input and output and the engine's sizes."""

    engine: Engine
    layers: list[EngineLayer]
    input: MapLayout
    output: MapLayout
    output_count: int
    act_words: int  # both activation regions
    weight_words: list[int]
    thresholds: np.ndarray  # (rows, NT_MAX)
    sizes: dict[str, int] = field(default_factory=dict)

    def rows(self) -> list[list[int]]:
        return [[int(layer.row[f]) for f in ROW_FIELDS] for layer in self.layers]


def _check_engine(e: Engine, source: str) -> None:
    if e.tm % e.tn:
        raise CodesignError(f"hardware.engine: tm ({e.tm}) must be a multiple of tn ({e.tn}): each output tile writes "
                            "whole groups of tn channels of the next layer's input", source=source)
    if e.input_port != e.output_port:
        raise CodesignError(f"hardware.engine.port_bits: input ({e.input_port}) and output ({e.output_port}) must be "
                            "equal: the engine writes the feature maps it reads", source=source)


def build_program(g: nx.DiGraph, engine: Engine, source: str = "design") -> TiledProgram:
    """The layer table of the lowered (unfolded) graph on `engine`, or one error naming every layer
    the engine cannot run."""
    _check_engine(engine, source)
    keys = topological(g)
    first = op(g, keys[0])
    assert isinstance(first, InputStage)
    h, w, c = first.shape
    src = MapLayout(h, w, c, first.fmt, engine.tn, engine.input_port)
    input_map = src
    layers: list[EngineLayer] = []
    unsupported: list[str] = []
    window = None
    for key in keys[1:]:
        item = op(g, key)
        if isinstance(item, OutputStage):
            break
        if getattr(item, "is_window", False):
            window = item
            continue
        entry = ENGINE_LAYER.get(type(item))
        if entry is None:
            unsupported.append(f"{item.name} ({type(item).__name__})")
            continue
        if window is not None and tuple(window.ifm) != (src.h, src.w, src.c):
            raise CodesignError(f"internal error: {item.name} reads a {window.ifm} map, the engine holds "
                                f"{(src.h, src.w, src.c)}; please report this design")
        layer = entry(Step(item, window, src, engine))
        window = None
        layers.append(layer)
        assert layer.out_map is not None
        src = layer.out_map
    if unsupported:
        raise CodesignError(f"the tiled engine cannot run: {', '.join(unsupported)}; it runs convolutions, dense "
                            "layers and max-pools", source=source)
    too_wide = [f"{layer.name} ({layer.row['out_bits']}-bit outputs)" for layer in layers
                if max(layer.row["out_bits"], layer.row["in_bits"]) > min(engine.input_port, MAX_ELEMENT_BITS)]
    too_wide += [f"{layer.name} ({layer.row['w_bits']}-bit weights)" for layer in layers
                 if layer.row["w_bits"] > min(engine.weight_port, MAX_ELEMENT_BITS)]
    if too_wide:
        raise CodesignError(f"hardware.engine.port_bits: an element must fit one port word (and 64 bits); too wide: "
                            f"{', '.join(too_wide)}", source=source)
    return _place(engine, layers, input_map, src, g)


def _place(engine: Engine, layers: list[EngineLayer], input_map: MapLayout, output_map: MapLayout,
           g: nx.DiGraph) -> TiledProgram:
    """Activation regions (maps alternate between two), weight offsets and threshold rows."""
    region = max([input_map.words] + [layer.out_map.words for layer in layers if layer.out_map is not None])
    weight_words: list[int] = []
    thr_rows: list[np.ndarray] = []
    nt_max = max([1] + [layer.row["nt"] for layer in layers])
    maps = [input_map]
    for i, layer in enumerate(layers):
        assert layer.out_map is not None
        out_map = MapLayout(**{**layer.out_map.__dict__, "base": region * ((i + 1) % 2)})
        layer.out_map = out_map
        maps.append(out_map)
        layer.row.update(in_base=maps[i].base, out_base=out_map.base, w_base=len(weight_words),
                         thr_row=sum(len(r) for r in thr_rows))
        if layer.weights is not None:
            assert layer.w_fmt is not None
            weight_words += _pack_words(layer.weights.reshape(-1, engine.tm * engine.tn), layer.w_fmt.code_bits,
                                        engine.weight_port)
        if layer.thresholds is not None:
            t = np.zeros((len(layer.thresholds), nt_max), dtype=np.int64)
            t[:, :layer.thresholds.shape[1]] = layer.thresholds
            thr_rows.append(t)
    thresholds = np.concatenate(thr_rows) if thr_rows else np.zeros((1, nt_max), dtype=np.int64)
    out_stage = op(g, topological(g)[-1])
    assert isinstance(out_stage, OutputStage)
    final = maps[-1]
    if final.h * final.w * final.c != out_stage.count:
        raise CodesignError(f"internal error: the engine's last map holds {final.h * final.w * final.c} values, the "
                            f"output {out_stage.count}; please report this design")
    convs = [layer for layer in layers if not layer.row["pool"]]
    k2 = max([1] + [layer.row["k"] ** 2 for layer in convs])
    in_px = max([1] + [layer.row["in_rows"] * layer.row["in_cols"] for layer in convs])
    out_px = max([1] + [layer.row["tr"] * layer.row["tc"] for layer in convs])
    thr_bits = _signed_bits(int(thresholds.min()), int(thresholds.max()))
    sizes = {"k2": k2, "in_px": in_px, "out_px": out_px, "nt_max": nt_max, "thr_rows": len(thresholds),
             "value_bits": max([2] + [layer.value_bits for layer in convs]),
             "wvalue_bits": max([2] + [layer.wvalue_bits for layer in convs]),
             "acc_bits": max([2] + [layer.acc_bits for layer in convs]), "thr_bits": thr_bits}
    return TiledProgram(engine, layers, input_map, final, out_stage.count, 2 * region, weight_words or [0],
                        thresholds, sizes)


def _pack_words(codes: np.ndarray, bits: int, port: int) -> list[int]:
    """Rows of element codes -> words of `port` bits, each row starting a new word (lane e of a
    word at bits e*bits)."""
    epw = int(elements_per_word(port, bits))
    per_row = -(-codes.shape[1] // epw)
    padded = np.zeros((codes.shape[0], per_row * epw), dtype=np.int64)
    padded[:, :codes.shape[1]] = codes
    lanes = padded.reshape(-1, epw)
    if epw * bits <= 63:
        shifts = np.arange(epw, dtype=np.int64) * bits
        return (lanes << shifts).sum(axis=1).tolist()
    words = []
    for row in lanes.tolist():
        v = 0
        for e in reversed(range(epw)):
            v = (v << bits) | row[e]
        words.append(v)
    return words
