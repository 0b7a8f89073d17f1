"""Emit: QONNX model (+ Design or board) -> HLS project folder with test vectors and the integer
reference outputs, written to a temporary folder next to the target and renamed at the end."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from codesign.backend import reference
from codesign.backend.csim import MANIFEST, VECTORS, write_inputs
from codesign.backend.dag import ops
from codesign.backend.lower import Lowered, lower
from codesign.backend.names import is_identifier
from codesign.backend.ops.engine import TiledProgram
from codesign.backend.tiled_writer import write_tiled_project
from codesign.backend.writer import DATA, INPUTS_FILE, OUTPUTS_FILE, Project, write_project
from hw_space.boards import Board, load_board
from hw_space.design import Design, atomic_write_text, load_design, save_design
from hw_space.errors import CodesignError

GENERATOR = "codesign emit"
DEFAULT_RANDOM_SAMPLES = 100
REFERENCE_FILE = f"{DATA}/reference.txt"


@dataclass(frozen=True)
class EmitResult:
    """What emit wrote: the folder, the Design it followed, the sample count and the files."""

    out_dir: Path
    top: str
    design: Design
    folded_by: str
    samples: int
    test_data: str
    files: list[str]
    seconds: float


def _load_test_data(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    try:
        with np.load(path) as data:
            found = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise CodesignError("file not found", source=str(path)) from None
    except (OSError, ValueError) as exc:
        raise CodesignError(f"not a readable .npz file ({exc})", source=str(path)) from None
    if "x" not in found:
        raise CodesignError(f"no array 'x' (float inputs); arrays: {', '.join(found) or 'none'}", source=str(path))
    return found


def test_vectors(low: Lowered, test_data: str | Path | None, samples: int | None,
                 seed: int = 0) -> tuple[dict[str, np.ndarray], str]:
    """Input codes and reference outputs: from a test_data.npz (x, optional y and logits) or seeded
    random inputs over the input's quantized range."""
    g = low.graph
    if samples is not None and samples < 1:
        raise CodesignError(f"--samples must be at least 1, got {samples}")
    vectors: dict[str, np.ndarray] = {}
    if test_data is not None:
        data = _load_test_data(test_data)
        n = len(data["x"]) if samples is None else min(samples, len(data["x"]))
        vectors["codes"] = reference.input_codes(g, data["x"][:n])
        if "y" in data:
            vectors["labels"] = np.asarray(data["y"][:n]).astype(np.int64)
        if "logits" in data:
            vectors["brevitas_logits"] = np.asarray(data["logits"][:n], dtype=np.float64)
        kind = f"test data {Path(test_data).name}"
    else:
        n = samples or DEFAULT_RANDOM_SAMPLES
        vectors["codes"] = reference.random_codes(g, n, seed)
        kind = f"random inputs (seed {seed})"
    out = reference.run(g, vectors["codes"])
    assert isinstance(out, np.ndarray)
    vectors["reference"] = out
    vectors["reference_logits"] = reference.logits(g, out)
    return vectors, kind


def _manifest(low: Lowered, project: Project, files: list[str], samples: int, kind: str, model: str,
              model_hash: str, scripts: list[str]) -> dict[str, Any]:
    g = low.graph
    first, last = reference.input_stage(g), reference.output_stage(g)
    q = first.quantizer
    assert q is not None
    # every stage that is a Design layer describes itself
    layers = [item.manifest(project.idents.get(item.layer, "")) for item in ops(g) if hasattr(item, "manifest")]
    hw = low.design.hardware
    engine = {} if hw.engine is None or hw.template != "tiled" else \
        {"tm": hw.engine.tm, "tn": hw.engine.tn, "tr": hw.engine.tr, "tc": hw.engine.tc,
         "port_bits": {"input": hw.engine.input_port, "weight": hw.engine.weight_port,
                       "output": hw.engine.output_port}}
    return {
        "generator": GENERATOR, "version": 1, "top": project.top, "board": hw.board, "clock_mhz": hw.clock_mhz,
        "template": hw.template, **({"engine": engine} if engine else {}),
        "folded_by": low.folded_by, "model": model, "model_sha256": model_hash,
        "input": {**project.input.context(), "shape_hwc": list(first.shape), "scale": q.scale.tolist(),
                  "zero_point": q.zero_point, "qmin": q.qmin, "qmax": q.qmax, "bipolar": q.bipolar,
                  "source_shape": list(first.source_shape),
                  "preprocess": [p.describe() for p in first.preprocess]},
        "output": {**project.output.context(), "count": last.count, "scale": last.scale.tolist(),
                   "bias": last.bias.tolist()},
        "layers": layers, "samples": samples, "test_data": kind,
        "files": {"sources": project.sources, "testbench": project.testbench, "include_dirs": project.include_dirs,
                  "inputs": INPUTS_FILE, "reference": REFERENCE_FILE, "vectors": VECTORS, "scripts": scripts,
                  "all": files},
    }


def _board(low: Lowered) -> Board:
    return load_board(low.design.hardware.board)


def _render_scripts(tmp: Path, low: Lowered, project: Project, program: TiledProgram | None = None) -> list[str]:
    try:
        from codesign.backend.scripts import render_scripts
    except ImportError:
        return []
    board = _board(low)
    clock = low.design.hardware.clock_mhz or board.clock_mhz
    engine = low.design.hardware.engine
    if low.design.hardware.template == "tiled" and engine is not None and program is not None:
        from codesign.backend.scripts import TiledScripts
        from codesign.backend.tiled_writer import WEIGHTS_FILE

        tiled = TiledScripts((engine.input_port, engine.weight_port, engine.output_port), engine.tn,
                             program.act_words, len(program.weight_words), program.input.context(),
                             program.output.context())
        written = render_scripts(tmp, top=project.top, board=board, clock_mhz=clock, sources=project.sources,
                                 testbench=project.testbench + [INPUTS_FILE, REFERENCE_FILE, WEIGHTS_FILE],
                                 include_dirs=project.include_dirs, in_width=engine.input_port,
                                 out_width=engine.output_port,
                                 tb_args=f"{INPUTS_FILE} {OUTPUTS_FILE} {REFERENCE_FILE} {WEIGHTS_FILE}",
                                 in_bits=project.input.bits, out_bits=project.output.bits,
                                 out_signed=project.output.signed, out_count=project.output.count, tiled=tiled)
        return [str(Path(p).relative_to(tmp)) for p in written]
    written = render_scripts(tmp, top=project.top, board=board, clock_mhz=clock, sources=project.sources,
                             testbench=project.testbench + [INPUTS_FILE, REFERENCE_FILE],
                             include_dirs=project.include_dirs, in_width=project.input.width,
                             out_width=project.output.width, tb_args=f"{INPUTS_FILE} {OUTPUTS_FILE}",
                             in_bits=project.input.bits, out_bits=project.output.bits,
                             out_signed=project.output.signed,
                             out_count=project.output.count)
    return [str(Path(p).relative_to(tmp)) for p in written]


def _check_target(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise CodesignError("exists and is not a folder", source=str(out_dir))
    if out_dir.is_dir() and any(out_dir.iterdir()):
        try:
            ours = json.loads((out_dir / MANIFEST).read_text()).get("generator") == GENERATOR
        except (OSError, ValueError):
            ours = False
        if not ours:
            raise CodesignError("exists, is not empty and is not a codesign emit folder; choose another --out",
                                source=str(out_dir))


def _replace_folder(tmp: Path, out_dir: Path) -> None:
    old = None
    if out_dir.exists():
        old = out_dir.parent / f".{out_dir.name}.old-{time.time_ns()}"
        out_dir.rename(old)
    tmp.rename(out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def emit(qonnx: str | Path, out_dir: str | Path, *, design: Design | str | Path | None = None,
         board: str | None = None, test_data: str | Path | None = None, samples: int | None = None,
         seed: int = 0, top: str = "codesign_top", target_fps: float | None = None,
         max_util: float = 0.85) -> EmitResult:
    """Lower the QONNX model, fold it (by the Design, or hw_space.folding for the board) and write
    the HLS project, test vectors and reference outputs into out_dir (atomically)."""
    start = time.perf_counter()
    out_dir = Path(out_dir)
    if not is_identifier(top):
        raise CodesignError(f"--top: {top!r} is not allowed; allowed: a C identifier (letters, digits, single _)")
    _check_target(out_dir)
    source = "design"
    if isinstance(design, (str, Path)):
        source = str(design)
        design = load_design(design)
    low = lower(qonnx, design=design, board=board, target_fps=target_fps, max_util=max_util, design_source=source)
    vectors, kind = test_vectors(low, test_data, samples, seed)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        engine = low.design.hardware.engine
        program = None
        if low.design.hardware.template == "tiled" and engine is not None:
            project, program = write_tiled_project(low.graph, engine, tmp, top=top, source=source)
        else:
            project = write_project(low.graph, tmp, top=top, axi_width=_board(low).axi_width)
        write_inputs(tmp / INPUTS_FILE, vectors["codes"])
        atomic_write_text(tmp / REFERENCE_FILE, "\n".join(" ".join(map(str, r)) for r in vectors["reference"].tolist())
                          + "\n")
        np.savez_compressed(tmp / VECTORS, **vectors)
        save_design(low.design, tmp / "design.yaml")
        scripts = _render_scripts(tmp, low, project, program)
        model_hash = hashlib.sha256(Path(qonnx).read_bytes()).hexdigest() if isinstance(qonnx, (str, Path)) else ""
        files = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file()) + [MANIFEST]
        manifest = _manifest(low, project, files, len(vectors["codes"]), kind, str(qonnx), model_hash, scripts)
        atomic_write_text(tmp / MANIFEST, json.dumps(manifest, indent=2) + "\n")
        _replace_folder(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return EmitResult(out_dir=out_dir, top=top, design=low.design, folded_by=low.folded_by,
                      samples=len(vectors["codes"]), test_data=kind, files=files,
                      seconds=round(time.perf_counter() - start, 3))
