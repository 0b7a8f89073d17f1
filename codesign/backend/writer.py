"""Write the HLS C++ project of a lowered graph from the jinja2 templates in hls_templates/."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
from jinja2 import Environment, FileSystemLoader, StrictUndefined

import hls_templates
from codesign.backend.graph import MVAU, InputStage, IntFmt, MaxReduce, OutputStage, SlidingWindow, WidthConverter, chain, op
from codesign.backend.names import is_identifier, sanitize
from hw_space.design import atomic_write_text
from hw_space.errors import CodesignError
from hw_space.layers import gearbox_cycles
from hw_space.widths import AP_INT_MAX_W

TEMPLATE_DIR = Path(hls_templates.__file__).parent
SRC, TB, DATA = "src", "tb", "tb_data"
INPUTS_FILE, OUTPUTS_FILE = f"{DATA}/inputs.txt", f"{DATA}/csim_outputs.txt"
KERNELS_HEADER = "codesign_kernels.h"
# The Design's weight_memory -> Vitis HLS BIND_STORAGE impl of the weight and threshold ROMs
# (UG1399: impl=bram|lutram|uram; 'auto' leaves the choice to the tool, and the cost model prices
# what hw_space.memory.resolve_style says the tool picks). 'external' is not emitted.
STORAGE_IMPL = {"auto": None, "bram": "bram", "lutram": "lutram", "uram": "uram"}


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
        return {"elems": self.elems, "bits": self.bits, "words": self.words, "signed": self.signed,
                "fmt": self.fmt, "width": self.width, "count": self.count}


@dataclass(frozen=True)
class Project:
    """The files written (paths relative to the project folder) and the top's ports."""

    top: str
    sources: list[str]
    testbench: list[str]
    include_dirs: list[str]
    input: StreamPort
    output: StreamPort
    idents: dict[str, str]  # layer name -> C identifier


def cpp_fmt(fmt: IntFmt) -> str:
    """The C++ element format class of an IntFmt."""
    if fmt.bipolar:
        return "codesign::BipolarFmt"
    return f"codesign::{'IntFmt' if fmt.signed else 'UintFmt'}<{fmt.bits}>"


def _signed_bits(lo: int, hi: int) -> int:
    return IntFmt.for_range(min(int(lo), -1), max(int(hi), 0)).bits


def gearbox_iterations(total: int, n_in: int, n_out: int) -> int:
    """Iterations of the gearbox kernel (kernels.h.j2): the cost model's formula, one place."""
    return int(gearbox_cycles(total, n_in, n_out))


def port(count: int, bits: int, axi_width: int, signed: bool, fmt: str) -> StreamPort:
    """An AXI port of axi_width bits carrying `count` elements of `bits` bits, packed."""
    per_word = max(1, axi_width // bits)
    return StreamPort(per_word, bits, -(-count // per_word), signed, fmt, max(axi_width, per_word * bits), count)


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
    bits = 1 if item.w_fmt.bipolar else item.w_fmt.bits
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


def _mvau_context(item: MVAU, name: str) -> dict[str, Any]:
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
        out_bits = 1 if item.out_fmt.bipolar else item.out_fmt.bits
        offset = item.out_offset
    else:
        nt, thr_bits, offset = 0, 2, 0
        thresholds = [[["0"] for _ in range(nf)] for _ in range(item.pe)]
        out_bits = item.acc_fmt.bits
    w_bits = 1 if item.w_fmt.bipolar else item.w_fmt.bits
    word_bits = w_bits * item.simd
    # the Design's multiplier style: MulDot's MAC tag (kernels.h.j2 Product: BIND_OP impl=fabric|dsp)
    macs = {"auto": "MacAuto", "lut": "MacLut", "dsp": "MacDsp"}
    if item.mac not in macs:
        raise ValueError(f"layer {name}: mac {item.mac!r} is not one of {', '.join(macs)}")
    if item.xnor:  # no multipliers
        dot = f"XnorDot<{item.simd}, {cpp_fmt(item.in_fmt)}, {cpp_fmt(item.w_fmt)}, {name}_acc_t>"
    else:
        dot = (f"MulDot<{item.simd}, {cpp_fmt(item.in_fmt)}, {cpp_fmt(item.w_fmt)}, {name}_acc_t, "
               f"codesign::{macs[item.mac]}>")
    if item.weight_memory not in STORAGE_IMPL:
        raise CodesignError(f"hardware.layers.{item.layer or name}.weight_memory: {item.weight_memory!r} cannot be "
                            f"emitted; allowed: {', '.join(STORAGE_IMPL)} (weights streamed from DRAM are not built "
                            "by the dataflow backend)")
    return {
        "storage": STORAGE_IMPL[item.weight_memory],
        "kind": "mvau", "name": name, "label": name, "guard": f"CODESIGN_PARAMS_{name.upper()}_H",
        "mw": item.mw, "mh": item.mh, "simd": item.simd,
        "pe": item.pe, "reps": item.reps, "nt": nt, "offset": offset, "out_bits": out_bits,
        "in_fmt": cpp_fmt(item.in_fmt), "w_fmt": cpp_fmt(item.w_fmt), "dot": dot, "mac": item.mac,
        "in_bits": 1 if item.in_fmt.bipolar else item.in_fmt.bits,
        "acc_bits": acc_bits, "thr_bits": thr_bits, "w_bits": w_bits, "word_bits": word_bits,
        "kernels_header": KERNELS_HEADER,
        "sf": item.mw // item.simd, "nf": nf, "tiles": nf * (item.mw // item.simd),
        "weights": pack_weights(item), "thresholds": thresholds,
        "weight_chunks": pack_weights(item, chunked=True) if word_bits > 64 else [],
        "comment": f"{name}: MVAU {item.mh}x{item.mw} x{item.reps}, PE {item.pe}, SIMD {item.simd}, "
                   f"{'XNOR-popcount' if item.xnor else item.w_fmt.describe() + ' weights'}, "
                   f"{f'{nt} thresholds' if nt else 'accumulator out'}",
    }


def _pool_geometry(g: nx.DiGraph, keys: list[str], i: int) -> tuple[SlidingWindow, MaxReduce]:
    """The (SlidingWindow, MaxReduce) pair of the max-pool around keys[i] (either of the two)."""
    item = op(g, keys[i])
    swg, red = (item, op(g, keys[i + 1])) if isinstance(item, SlidingWindow) else (op(g, keys[i - 1]), item)
    assert isinstance(swg, SlidingWindow) and isinstance(red, MaxReduce)
    assert swg.pads == (0, 0, 0, 0) and swg.in_fmt == swg.out_fmt == red.fmt and swg.simd == red.pe
    return swg, red


def stage_context(g: nx.DiGraph, axi_width: int = 64) -> tuple[list[dict[str, Any]], list[dict[str, Any]], StreamPort,
                                                               StreamPort, dict[str, str]]:
    """(streams, stages, input port, output port, C identifier per layer name) for the templates.
    The ports are `axi_width` bits wide; the output's elements are padded to whole bytes."""
    keys = chain(g)
    taken: set[str] = set()
    # every identifier (and every name in a comment) of the generated code comes from here
    names = {key: sanitize(getattr(op(g, key), "layer", "") or op(g, key).name, taken) for key in keys}
    streams, stages = [], []
    first, last = op(g, keys[0]), op(g, keys[-1])
    assert isinstance(first, InputStage) and isinstance(last, OutputStage)
    h, w, c = first.shape
    in_fmt = first.fmt
    in_bits = 1 if in_fmt.bipolar else in_fmt.bits
    inp = port(h * w * c, in_bits, axi_width, in_fmt.signed and not in_fmt.bipolar, in_fmt.describe())
    producer = op(g, keys[-2])
    ofmt = producer.stream_fmt
    ofmt_bits = 1 if ofmt.bipolar else ofmt.bits
    # each logit in whole bytes on the port (the cost model's 8*ceil(bits/8) per logit)
    outp = port(last.count, 8 * -(-ofmt_bits // 8), axi_width, ofmt.signed and not ofmt.bipolar,
                "bipolar codes" if ofmt.bipolar else ofmt.describe())
    for i, (u, v) in enumerate(zip(keys[:-1], keys[1:])):
        a = op(g, u)
        fmt = a.stream_fmt
        width = a.out_elems * (1 if fmt.bipolar else fmt.bits)
        assert a.out_elems == op(g, v).in_elems, f"no width converter between {u} and {v}"
        streams.append({"name": f"s{i}_{names[u]}", "width": width, "depth": g.edges[u, v].get("depth", 2)})
    for i, key in enumerate(keys):
        item = op(g, key)
        ctx: dict[str, Any]
        if isinstance(item, InputStage):
            ctx = {"kind": "input", "width": inp.width, "per_word": inp.elems, "elems": first.elems, "bits": in_bits,
                   "total": inp.count, "iters": gearbox_iterations(inp.count, inp.elems, first.elems),
                   "comment": f"input: {h}x{w}x{c} {in_fmt.describe()}, {inp.elems} per {inp.width}-bit word"}
        elif isinstance(item, OutputStage):
            ctx = {"kind": "output", "width": outp.width, "per_word": outp.elems, "elems": item.elems,
                   "bits": ofmt_bits, "port_bits": outp.bits, "signed": outp.signed, "total": outp.count,
                   "iters": gearbox_iterations(outp.count, item.elems, outp.elems),
                   "comment": f"output: {item.count} x {outp.fmt} as {outp.bits} bits, {outp.elems} per "
                              f"{outp.width}-bit word"}
        elif isinstance(item, SlidingWindow) and isinstance(op(g, keys[i + 1]), MaxReduce):
            swg, red = _pool_geometry(g, keys, i)
            ih, iw, ic = swg.ifm
            ctx = {"kind": "pool_rows", "outer": ih, "n": iw, "inner": ic // swg.simd, "k": swg.kernel[1],
                   "s": swg.stride[1], "pe": swg.simd, "fmt": cpp_fmt(swg.in_fmt),
                   "comment": f"{names[key]}: max over {swg.kernel[1]} columns, stride {swg.stride[1]}, "
                              f"on {ih}x{iw}x{ic}, PE {swg.simd}"}
        elif isinstance(item, SlidingWindow):
            ih, iw, ic = item.ifm
            t, l, b, r = item.pads
            ctx = {"kind": "swg", "h": ih, "w": iw, "c": ic, "kh": item.kernel[0], "kw": item.kernel[1],
                   "sh": item.stride[0], "sw": item.stride[1], "pads": [t, l, b, r], "simd": item.simd,
                   "in_fmt": cpp_fmt(item.in_fmt), "out_fmt": cpp_fmt(item.out_fmt),
                   "comment": f"{names[key]}: sliding window {item.kernel[0]}x{item.kernel[1]} stride "
                              f"{item.stride[0]} pads {[t, l, b, r]} on {ih}x{iw}x{ic}, SIMD {item.simd}"}
        elif isinstance(item, MVAU):
            ctx = _mvau_context(item, names[key])
        elif isinstance(item, MaxReduce):
            swg, red = _pool_geometry(g, keys, i)
            ih, iw, ic = swg.ifm
            ow = swg.ofm[1]
            ctx = {"kind": "maxpool", "outer": 1, "n": ih, "inner": ow * ic // red.pe, "k": red.kernel[0],
                   "s": red.stride[0], "pe": red.pe, "fmt": cpp_fmt(red.fmt),
                   "comment": f"{names[key]}: max over {red.kernel[0]} rows of those, stride {red.stride[0]}, "
                              f"{item.channels} channels, PE {item.pe}"}
        elif isinstance(item, WidthConverter):
            ctx = {"kind": "dwc", "in_elems": item.in_elems, "out_elems": item.out_elems,
                   "bits": 1 if item.fmt.bipolar else item.fmt.bits, "total": item.total,
                   "iters": gearbox_iterations(item.total, item.in_elems, item.out_elems),
                   "comment": f"{names[key]}: {item.in_elems} -> {item.out_elems} elements per word"}
        else:
            raise TypeError(type(item).__name__)
        if i > 0:
            ctx["inp"] = streams[i - 1]["name"]
        if i < len(keys) - 1:
            ctx["out"] = streams[i]["name"]
        stages.append(ctx)
    idents = {op(g, k).layer: names[k] for k in keys if isinstance(op(g, k), (MVAU, MaxReduce)) and op(g, k).layer}
    return streams, stages, inp, outp, idents


def check_widths(streams: list[dict[str, Any]], stages: list[dict[str, Any]], inp: StreamPort, outp: StreamPort) -> None:
    """Every ap_uint the project instantiates fits AP_INT_MAX_W (hw_space.widths: the cost model
    makes wider foldings infeasible, so this only fires on a design that skipped the model)."""
    found = [(s["width"], f"stream {s['name']}") for s in streams] + [(inp.width, "input port"), (outp.width, "output port")]
    for st in stages:
        if st["kind"] == "mvau":
            found += [(st["word_bits"], f"{st['name']} weight word"), (st["acc_bits"], f"{st['name']} accumulator"),
                      (st["simd"] * st["in_bits"], f"{st['name']} input vector")]
    for bits, what in found:
        if bits > AP_INT_MAX_W:
            raise CodesignError(f"{what} needs ap_uint<{bits}>, over the {AP_INT_MAX_W}-bit limit of Vitis HLS "
                                "(AP_INT_MAX_W); fold it with a smaller SIMD/PE (codesign fold respects the limit)")


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATE_DIR)), undefined=StrictUndefined, autoescape=False,
                      keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.globals["ap_int_max_w"] = AP_INT_MAX_W  # every generated header defines it (hw_space.widths)
    return env


def write_project(g: nx.DiGraph, out_dir: str | Path, top: str = "codesign_top", axi_width: int = 64) -> Project:
    """Write src/ (kernels, parameters, top) and tb/ (testbench) of the HLS project into out_dir; the
    top's AXI-Stream ports are `axi_width` bits wide (the board's, hw_space.boards.Board.axi_width)."""
    if not is_identifier(top):
        raise ValueError(f"top {top!r} is not a safe C identifier")
    out = Path(out_dir)
    env = _environment()
    streams, stages, inp, outp, idents = stage_context(g, axi_width)
    for stage in stages:
        if "name" in stage and not is_identifier(stage["name"]):
            raise ValueError(f"layer identifier {stage['name']!r} is not sanitized")
    check_widths(streams, stages, inp, outp)
    macro = top.upper()
    common = {"top": top, "macro": macro, "input": inp.context(), "output": outp.context()}
    files: dict[str, str] = {
        f"{SRC}/{KERNELS_HEADER}": env.get_template("kernels.h.j2").render(top=top, guard="CODESIGN_KERNELS_H"),
        f"{SRC}/{top}.h": env.get_template("top.h.j2").render(guard=f"{macro}_H", **common),
    }
    param_headers = []
    for stage in stages:
        if stage["kind"] == "mvau":
            header = f"params_{stage['name']}.h"
            files[f"{SRC}/{header}"] = env.get_template("params.h.j2").render(layer=stage)
            param_headers.append(header)
    files[f"{SRC}/{top}.cpp"] = env.get_template("top.cpp.j2").render(
        streams=streams, stages=stages, kernels_header=KERNELS_HEADER, param_headers=param_headers, **common)
    tb = f"{TB}/tb_{top}.cpp"
    files[tb] = env.get_template("testbench.cpp.j2").render(inputs_file=INPUTS_FILE, outputs_file=OUTPUTS_FILE,
                                                            **common)
    for rel, text in files.items():
        atomic_write_text(out / rel, text)
    sources = [rel for rel in files if rel.startswith(f"{SRC}/")]
    return Project(top=top, sources=sources, testbench=[tb], include_dirs=[SRC], input=inp, output=outp,
                   idents=idents)
