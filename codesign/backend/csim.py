"""C-simulation: compile an emitted project's testbench with g++ against Xilinx's open ap_types
headers (shipped by the hls4ml package), run the test vectors and compare bit for bit."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hw_space.design import atomic_write_text
from hw_space.errors import CodesignError

CXX_FLAGS = ("-std=c++14", "-O2")
MANIFEST = "manifest.json"
VECTORS = "tb_data/vectors.npz"
CSIM_DIR = "csim"
RUN_TIMEOUT_S = 600
_DIAG_RE = re.compile(r"^(?P<file>[^:\s][^:]*):(?P<line>\d+):(?:(?P<col>\d+):)?\s*(?:fatal )?error:\s*(?P<msg>.*)$")


@dataclass(frozen=True)
class Diagnostic:
    """One compiler error: generated file (relative to the project), line, message and source line."""

    file: str
    line: int
    message: str
    source: str = ""

    def __str__(self) -> str:
        text = f"{self.file}:{self.line}: error: {self.message}"
        return f"{text}\n    {self.source.strip()}" if self.source.strip() else text


class CsimError(CodesignError):
    """The C-simulation could not run: a compile error (with diagnostics) or a crashed testbench."""

    def __init__(self, message: str, diagnostics: list[Diagnostic] | None = None, log: str = ""):
        super().__init__(message)
        self.diagnostics = diagnostics or []
        self.log = log

    def report(self) -> str:
        """The message and every diagnostic, one per line (file:line: error: message)."""
        lines = [str(self)] + [str(d) for d in self.diagnostics]
        return "\n".join(lines)


@dataclass
class VerifyResult:
    """The verdict of one C-simulation run."""

    bit_exact: bool
    samples: int
    mismatches: int
    argmax_agreement: float | None
    mismatched_values: int = 0
    label_accuracy: float | None = None
    compile_seconds: float = 0.0
    run_seconds: float = 0.0
    cached_binary: bool = False
    test_data: str = ""
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def ap_types_dir() -> Path:
    """The folder with ap_int.h and hls_stream.h inside the installed hls4ml package."""
    spec = importlib.util.find_spec("hls4ml")
    if spec is None or not spec.submodule_search_locations:
        raise CodesignError("C-simulation needs Xilinx's ap_int.h and hls_stream.h, which the hls4ml package "
                            "ships; install it (pip install hls4ml)")
    for base in spec.submodule_search_locations:
        folder = Path(base) / "templates" / "vivado" / "ap_types"
        if (folder / "ap_int.h").is_file() and (folder / "hls_stream.h").is_file():
            return folder
    raise CodesignError("the installed hls4ml package has no templates/vivado/ap_types/ap_int.h; "
                        "reinstall hls4ml (pip install --force-reinstall hls4ml)")


def compiler() -> str:
    cxx = shutil.which("g++")
    if cxx is None:
        raise CodesignError("C-simulation needs g++ (gcc 9 or newer); install it (e.g. apt-get install g++)")
    return cxx


def read_manifest(project: Path) -> dict[str, Any]:
    path = project / MANIFEST
    if not path.is_file():
        raise CodesignError(f"not an emitted HLS project (no {MANIFEST}); run codesign emit first",
                            source=str(project))
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CodesignError(f"{MANIFEST} is unreadable: {exc}", source=str(project)) from None


def parse_diagnostics(log: str, project: Path) -> list[Diagnostic]:
    """g++ `file:line:col: error: message` lines, with the file made relative to the project."""
    found: list[Diagnostic] = []
    root = project.resolve()
    for raw in log.splitlines():
        m = _DIAG_RE.match(raw.strip())
        if not m:
            continue
        path = Path(m["file"])
        full = path if path.is_absolute() else (project / path)
        try:
            rel = str(full.resolve().relative_to(root))
        except ValueError:
            rel = str(path)
        line = int(m["line"])
        source = ""
        try:
            lines = full.read_text(errors="replace").splitlines()
            source = lines[line - 1] if 0 < line <= len(lines) else ""
        except OSError:
            pass
        diag = Diagnostic(rel, line, m["msg"], source)
        if diag not in found:
            found.append(diag)
    return found


def _content_hash(project: Path, files: list[str], cxx: str, include: Path) -> str:
    h = hashlib.sha256()
    h.update(" ".join((cxx, *CXX_FLAGS, str(include))).encode())
    for rel in sorted(files):
        h.update(rel.encode())
        h.update((project / rel).read_bytes())
    return h.hexdigest()[:20]


def compile_testbench(project: Path, manifest: dict[str, Any]) -> tuple[Path, float, bool]:
    """Compile (or reuse the cached binary by content hash); returns (binary, seconds, cached)."""
    cxx, include = compiler(), ap_types_dir()
    files = manifest["files"]
    sources = [f for f in files["sources"] + files["testbench"] if f.endswith(".cpp")]
    digest = _content_hash(project, files["sources"] + files["testbench"], cxx, include)
    out_dir = project / CSIM_DIR
    binary = out_dir / f"tb_{digest}"
    if binary.is_file():
        return binary, 0.0, True
    out_dir.mkdir(exist_ok=True)
    for old in out_dir.glob("tb_*"):
        old.unlink()
    tmp = out_dir / f".tb_{digest}.tmp"
    cmd = [cxx, *CXX_FLAGS, *(f"-I{d}" for d in files["include_dirs"]), "-isystem", str(include),
           *sources, "-o", str(tmp.relative_to(project))]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=project, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        diags = parse_diagnostics(proc.stderr, project)
        where = f"{len(diags)} error(s)" if diags else "see the log"
        raise CsimError(f"g++ could not compile the testbench of {project} ({where})", diags, proc.stderr)
    tmp.replace(binary)
    return binary, seconds, False


def run_testbench(project: Path, binary: Path, inputs: Path, outputs: Path) -> tuple[float, str]:
    """Run the compiled testbench in the project folder; returns (seconds, stdout)."""
    start = time.perf_counter()
    try:
        proc = subprocess.run([str(binary.resolve()), str(inputs.resolve()), str(outputs.resolve())], cwd=project,
                              capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise CsimError(f"the testbench ran longer than {RUN_TIMEOUT_S} s and was stopped") from None
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise CsimError(f"the testbench failed (exit code {proc.returncode}): "
                        f"{(proc.stderr or proc.stdout).strip()[-500:]}", log=proc.stdout + proc.stderr)
    return seconds, proc.stdout


def write_inputs(path: Path, codes: np.ndarray) -> None:
    """The testbench's input file: a 'frames elements' line, then one frame of codes per line."""
    lines = [f"{codes.shape[0]} {codes.shape[1]}"] + [" ".join(map(str, row)) for row in codes.tolist()]
    atomic_write_text(path, "\n".join(lines) + "\n")


def read_outputs(path: Path, samples: int, count: int) -> np.ndarray:
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    if len(rows) != samples or any(len(r) != count for r in rows):
        raise CsimError(f"the testbench wrote {len(rows)} frames to {path.name}, expected {samples} of {count} values")
    return np.array(rows, dtype=np.int64)


def verify(project: str | Path, samples: int | None = None) -> VerifyResult:
    """Compile and run the C-simulation of an emitted project and compare it bit for bit with the
    integer reference; writes verify.json into the project."""
    project = Path(project)
    manifest = read_manifest(project)
    with np.load(project / VECTORS) as data:
        vectors = {k: data[k] for k in data.files}
    codes, expected = vectors["codes"], vectors["reference"]
    n = len(codes) if samples is None else min(int(samples), len(codes))
    if n < 1:
        raise CodesignError(f"--samples must be at least 1, got {samples}")
    binary, compile_s, cached = compile_testbench(project, manifest)
    csim = project / CSIM_DIR
    inputs, outputs = csim / "inputs.txt", csim / "outputs.txt"
    write_inputs(inputs, codes[:n])
    run_s, log = run_testbench(project, binary, inputs, outputs)
    got = read_outputs(outputs, n, expected.shape[1])
    problems = [line.strip() for line in log.splitlines() if "WARNING: Hls::stream" in line]
    diff = got != expected[:n]
    bad = int(diff.any(axis=1).sum())
    out = manifest["output"]
    logits = got.reshape(n, -1, len(out["scale"])) * np.asarray(out["scale"]) + np.asarray(out["bias"])
    pred = logits.reshape(n, -1).argmax(axis=1)
    agreement = None
    if "brevitas_logits" in vectors:
        agreement = float((pred == vectors["brevitas_logits"][:n].argmax(axis=1)).mean())
    accuracy = float((pred == vectors["labels"][:n]).mean()) if "labels" in vectors else None
    result = VerifyResult(bit_exact=bad == 0 and not problems, samples=n, mismatches=bad,
                          argmax_agreement=agreement, mismatched_values=int(diff.sum()), label_accuracy=accuracy,
                          compile_seconds=round(compile_s, 3), run_seconds=round(run_s, 3), cached_binary=cached,
                          test_data=manifest.get("test_data", ""), problems=problems[:20])
    atomic_write_text(project / "verify.json", json.dumps(result.to_dict(), indent=2) + "\n")
    return result
