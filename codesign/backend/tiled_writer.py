"""Write the HLS project of a tiled-engine design (hls_templates/tiled/ and kernels/tiled_engine.h):
the engine's top with its m_axi ports, the layer table and thresholds, the testbench that plays the
host, and the weight memory image (tb_data/weights.hex, also weights.npy for the driver)."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import numpy as np

from codesign.backend.names import is_identifier
from codesign.backend.ops.engine import ROW_FIELDS, MapLayout, TiledProgram, build_program
from codesign.backend.ops.io import StreamPort
from codesign.backend.writer import DATA, INPUTS_FILE, KERNELS_HEADER, OUTPUTS_FILE, SRC, TB, Project, _environment
from hw_space.design import Engine, atomic_write_text

WEIGHTS_FILE = f"{DATA}/weights.hex"
WEIGHTS_NPY = f"{DATA}/weights.npy"


def _port(m: MapLayout, count: int) -> StreamPort:
    """A DRAM map as the manifest's input / output entry (the same fields as a stream port)."""
    ctx = m.context()
    return StreamPort(m.epw, m.bits, m.words, ctx["signed"], ctx["fmt"], m.port, count)


def weight_bytes(words: list[int], port: int) -> np.ndarray:
    """The weight memory image as little-endian bytes (what the driver copies into DRAM)."""
    size = port // 8
    return np.frombuffer(b"".join(int(w).to_bytes(size, "little") for w in words), dtype=np.uint8)


def write_tiled_project(g: nx.DiGraph, engine: Engine, out_dir: str | Path, top: str = "codesign_top",
                        source: str = "design") -> tuple[Project, TiledProgram]:
    """Write src/ (kernels, layer table, top), tb/ (testbench) and the weight image into out_dir."""
    if not is_identifier(top):
        raise ValueError(f"top {top!r} is not a safe C identifier")
    program = build_program(g, engine, source)
    out = Path(out_dir)
    env = _environment()
    macro = top.upper()
    params = f"params_{top}.h"
    layers = [{"name": layer.name, "comment": layer.comment, "row": [int(layer.row[f]) for f in ROW_FIELDS]}
              for layer in program.layers]
    common = {"top": top, "macro": macro, "e": engine, "input": program.input.context(),
              "output": program.output.context(), "act_words": program.act_words,
              "weight_words": len(program.weight_words), "n_layers": len(program.layers), "layers": layers,
              "sizes": program.sizes, "kernels_header": KERNELS_HEADER, "params_header": params}
    files = {
        f"{SRC}/{KERNELS_HEADER}": env.get_template("kernels.h.j2").render(top=top, guard="CODESIGN_KERNELS_H",
                                                                           kernels=["tiled_engine.h"]),
        f"{SRC}/{top}.h": env.get_template("tiled/top.h.j2").render(guard=f"{macro}_H", **common),
        f"{SRC}/{params}": env.get_template("tiled/params.h.j2").render(
            guard=f"CODESIGN_PARAMS_{macro}_H", fields=ROW_FIELDS, thresholds=program.thresholds.tolist(), **common),
        f"{SRC}/{top}.cpp": env.get_template("tiled/top.cpp.j2").render(**common),
        f"{TB}/tb_{top}.cpp": env.get_template("tiled/testbench.cpp.j2").render(
            inputs_file=INPUTS_FILE, outputs_file=OUTPUTS_FILE, weights_file=WEIGHTS_FILE, **common),
    }
    hex_digits = engine.weight_port // 4
    files[WEIGHTS_FILE] = "".join(f"0x{w:0{hex_digits}x}\n" for w in program.weight_words)
    for rel, text in files.items():
        atomic_write_text(out / rel, text)
    np.save(out / WEIGHTS_NPY, weight_bytes(program.weight_words, engine.weight_port))
    sources = [rel for rel in files if rel.startswith(f"{SRC}/")]
    project = Project(top=top, sources=sources, testbench=[f"{TB}/tb_{top}.cpp"], include_dirs=[SRC],
                      input=_port(program.input, program.input.h * program.input.w * program.input.c),
                      output=_port(program.output, program.output_count),
                      idents={layer.name: layer.name for layer in program.layers})
    return project, program
