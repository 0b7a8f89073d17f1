"""Write the HLS C++ project of a lowered graph from the jinja2 templates in hls_templates/.

The writer knows no op kinds (hls4ml's writer habit): each stage's registered StageTemplate
(ops/base.py) gives its call site (stages/<kind>.cpp.j2), its parameter header and pragmas if any,
and the kernel headers it includes; the writer names the streams after the graph's edges, renders
the templates in topological order and joins the results into the top function.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
from jinja2 import Environment, FileSystemLoader, StrictUndefined

import hls_templates
from codesign.backend.dag import consumers, edges, is_fork, op, sinks, sources, topological
from codesign.backend.names import is_identifier, sanitize
from codesign.backend.ops.base import Node, StageView, template_of
from codesign.backend.ops.io import StreamPort, gearbox_iterations
from hw_space.design import atomic_write_text
from hw_space.errors import CodesignError
from hw_space.widths import AP_INT_MAX_W

__all__ = ["DATA", "INPUTS_FILE", "KERNELS_HEADER", "OUTPUTS_FILE", "SRC", "TB", "Project", "StreamPort",
           "check_widths", "gearbox_iterations", "stage_context", "write_project"]

TEMPLATE_DIR = Path(hls_templates.__file__).parent
KERNEL_PARTS = sorted(p.name for p in (TEMPLATE_DIR / "kernels").glob("*.h") if p.name != "common.h")
SRC, TB, DATA = "src", "tb", "tb_data"
INPUTS_FILE, OUTPUTS_FILE = f"{DATA}/inputs.txt", f"{DATA}/csim_outputs.txt"
KERNELS_HEADER = "codesign_kernels.h"


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


def _single(keys: list[str], what: str) -> str:
    if len(keys) != 1:
        raise CodesignError(f"the top has one {what} port; the graph has {len(keys)} {what} stages")
    return keys[0]


def _stream_names(g: nx.DiGraph, idents: dict[str, str]) -> dict[tuple[str, str], str]:
    """A C identifier per edge: s_<producer>_<consumer> (plus _p<port> past the first input)."""
    taken = set(idents.values())
    names = {}
    for u, v in edges(g):
        port = g.edges[u, v].get("port", 0)
        names[u, v] = sanitize(f"s_{idents[u]}_{idents[v]}" + (f"_p{port}" if port else ""), taken)
    return names


def stage_context(g: nx.DiGraph, axi_width: int = 64) -> tuple[list[dict[str, Any]], list[dict[str, Any]], StreamPort,
                                                               StreamPort, dict[str, str]]:
    """(streams, stages, input port, output port, C identifier per layer name) for the templates.
    The ports are `axi_width` bits wide; the output's elements are padded to whole bytes. Each
    stage context is its template's context plus `inp` / `inputs` (its input streams by port),
    `out` (its output stream) and `template` (its StageTemplate)."""
    order = topological(g)
    for key in order:
        if is_fork(g, key) and not op(g, key).fans_out:
            raise CodesignError(f"node {op(g, key).name!r}: its output feeds {g.out_degree(key)} stages; an HLS "
                                "stream has one reader, so a fork needs a stage that duplicates it")
    taken: set[str] = set()
    # every identifier (and every name in a comment) of the generated code comes from here
    idents = {key: sanitize(op(g, key).ident_base(), taken) for key in order}
    stream_of = _stream_names(g, idents)
    streams = []
    for u, v in edges(g):
        a, b = op(g, u), op(g, v)
        assert a.out_elems == b.in_elems, f"no width converter between {u} and {v}"
        streams.append({"name": stream_of[u, v], "width": a.out_elems * a.stream_fmt.code_bits,
                        "depth": g.edges[u, v].get("depth", 2)})
    first, last = _single(sources(g), "input"), _single(sinks(g), "output")
    inp = op(g, first).axi_port(Node(g, first), axi_width)
    outp = op(g, last).axi_port(Node(g, last), axi_width)
    stages = []
    for key in order:
        item = op(g, key)
        outs = consumers(g, key)
        template = template_of(item)
        ctx = template.context(item, StageView(Node(g, key), idents[key], axi_width))
        ins = sorted(g.in_edges(key, data="port", default=0), key=lambda e: e[2])
        ctx["inputs"] = [stream_of[u, key] for u, _, _ in ins]
        if ins:
            ctx["inp"] = ctx["inputs"][0]
        if outs:
            ctx["out"] = stream_of[key, outs[0]]
            ctx["outputs"] = [stream_of[key, v] for v in outs]
        ctx["template"] = template
        stages.append(ctx)
    layer_idents = {op(g, k).layer: idents[k] for k in order if getattr(op(g, k), "layer", "")}
    return streams, stages, inp, outp, layer_idents


def check_widths(streams: list[dict[str, Any]], stages: list[dict[str, Any]], inp: StreamPort, outp: StreamPort) -> None:
    """Every ap_uint the project instantiates fits AP_INT_MAX_W (hw_space.widths: the cost model
    makes wider foldings infeasible, so this only fires on a design that skipped the model)."""
    found = [(s["width"], f"stream {s['name']}") for s in streams] + [(inp.width, "input port"), (outp.width, "output port")]
    for st in stages:
        found += st.get("widths", [])
    for bits, what in found:
        if bits > AP_INT_MAX_W:
            raise CodesignError(f"{what} needs ap_uint<{bits}>, over the {AP_INT_MAX_W}-bit limit of Vitis HLS "
                                "(AP_INT_MAX_W); fold it with a smaller SIMD/PE (codesign fold respects the limit)")


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATE_DIR)), undefined=StrictUndefined, autoescape=False,
                      keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.globals["ap_int_max_w"] = AP_INT_MAX_W  # every generated header defines it (hw_space.widths)
    env.globals["all_kernels"] = KERNEL_PARTS  # kernels.h.j2 without `kernels`: every kernel
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
    needed = {h for stage in stages for h in stage["template"].include_header}
    files: dict[str, str] = {
        f"{SRC}/{KERNELS_HEADER}": env.get_template("kernels.h.j2").render(
            top=top, guard="CODESIGN_KERNELS_H", kernels=[k for k in KERNEL_PARTS if k in needed]),
        f"{SRC}/{top}.h": env.get_template("top.h.j2").render(guard=f"{macro}_H", **common),
    }
    param_headers = []
    for stage in stages:
        template = stage["template"]
        stage["call_cpp"] = env.get_template(template.call).render(stage=stage).rstrip("\n")
        stage["pragmas_cpp"] = env.get_template(template.pragmas).render(stage=stage).rstrip("\n") \
            if template.pragmas else ""
        if template.params:
            header = f"params_{stage['name']}.h"
            files[f"{SRC}/{header}"] = env.get_template(template.params).render(layer=stage,
                                                                               kernels_header=KERNELS_HEADER)
            param_headers.append(header)
    files[f"{SRC}/{top}.cpp"] = env.get_template("top.cpp.j2").render(
        streams=streams, stages=stages, kernels_header=KERNELS_HEADER, param_headers=param_headers, **common)
    tb = f"{TB}/tb_{top}.cpp"
    files[tb] = env.get_template("testbench.cpp.j2").render(inputs_file=INPUTS_FILE, outputs_file=OUTPUTS_FILE,
                                                            **common)
    for rel, text in files.items():
        atomic_write_text(out / rel, text)
    sources_ = [rel for rel in files if rel.startswith(f"{SRC}/")]
    return Project(top=top, sources=sources_, testbench=[tb], include_dirs=[SRC], input=inp, output=outp,
                   idents=idents)
