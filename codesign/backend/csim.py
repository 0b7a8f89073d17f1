"""C-simulation: compile an emitted project's testbench with g++ against Xilinx's open ap_types
headers (shipped by the hls4ml package), run the test vectors and compare bit for bit.

The testbench compares its outputs with a reference file itself (exit code 2 on mismatches, see
hls_templates/testbench.cpp.j2); verify() compares again in Python and reports both. A project that
cannot be compiled or run raises CsimError; a completed run (mismatching or not) is a VerifyResult.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import platform
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

# -mpopcnt (x86-64): the C-simulation fast paths of the kernels count bits (XNOR and 1-2-bit lanes)
CXX_FLAGS = ("-std=c++14", "-O2") + (("-mpopcnt",) if platform.machine().lower() in ("x86_64", "amd64") else ())
MANIFEST = "manifest.json"
VECTORS = "tb_data/vectors.npz"
CSIM_DIR = "csim"
RUN_TIMEOUT_S = 600
TB_MISMATCH_EXIT = 2  # the testbench's exit code when the run completed but frames differ from the reference
_PROTOCOL_RE = re.compile(r"^tb: frame \d+: .*$", re.M)  # the testbench's stream protocol errors (exit code 1)
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
    """The C-simulation could not be built or run: no g++ or ap_types, a compile error (with
    diagnostics), a crashed or stopped testbench."""

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
    warnings: list[str] = field(default_factory=list)
    testbench_mismatches: int | None = None  # the testbench's own count (its "tb: N frames, M mismatching")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def ap_types_dir() -> Path:
    """The folder with ap_int.h and hls_stream.h inside the installed hls4ml package."""
    spec = importlib.util.find_spec("hls4ml")
    if spec is None or not spec.submodule_search_locations:
        raise CsimError("C-simulation needs Xilinx's ap_int.h and hls_stream.h, which the hls4ml package "
                        "ships; install it (pip install hls4ml)")
    for base in spec.submodule_search_locations:
        folder = Path(base) / "templates" / "vivado" / "ap_types"
        if (folder / "ap_int.h").is_file() and (folder / "hls_stream.h").is_file():
            return folder
    raise CsimError("the installed hls4ml package has no templates/vivado/ap_types/ap_int.h; "
                    "reinstall hls4ml (pip install --force-reinstall hls4ml)")


def compiler() -> str:
    cxx = shutil.which("g++")
    if cxx is None:
        raise CsimError("C-simulation needs g++ (gcc 9 or newer); install it (e.g. apt-get install g++)")
    return cxx


def read_manifest(project: Path) -> dict[str, Any]:
    path = project / MANIFEST
    if not path.is_file():
        raise CodesignError(f"not an emitted HLS project (no {MANIFEST}); run codesign emit first",
                            source=str(project))
    try:
        return json.loads(path.read_text())
    except UnicodeDecodeError as exc:
        raise CodesignError(f"{MANIFEST}: byte 0x{exc.object[exc.start]:02x} at offset {exc.start} is not UTF-8 "
                            "text; emit the project again (codesign emit)", source=str(project)) from None
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


@dataclass(frozen=True)
class CsimRun:
    """A testbench run that completed: seconds, its output (stdout + stderr), and the stream protocol error
    that ended it, if any."""

    seconds: float
    log: str
    exit_code: int = 0
    protocol_error: str = ""


def run_testbench(project: Path, binary: Path, inputs: Path, outputs: Path, reference: Path | None = None) -> CsimRun:
    """Run the compiled testbench in the project folder. Its mismatch exit code and its stream protocol
    errors are results (the design ran and misbehaved); any other failure raises CsimError."""
    cmd = [str(binary.resolve()), str(inputs.resolve()), str(outputs.resolve())]
    if reference is not None:
        cmd.append(str(reference.resolve()))
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=project, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise CsimError(f"the testbench ran longer than {RUN_TIMEOUT_S} s and was stopped") from None
    seconds = time.perf_counter() - start
    protocol = _PROTOCOL_RE.search(proc.stderr or "")
    if proc.returncode == 1 and protocol:
        return CsimRun(seconds, proc.stdout + proc.stderr, proc.returncode, protocol.group(0).strip())
    if proc.returncode not in (0, TB_MISMATCH_EXIT):
        raise CsimError(f"the testbench failed (exit code {proc.returncode}): "
                        f"{(proc.stderr or proc.stdout).strip()[-500:]}", log=proc.stdout + proc.stderr)
    return CsimRun(seconds, proc.stdout + proc.stderr, proc.returncode)


def write_inputs(path: Path, codes: np.ndarray) -> None:
    """The testbench's input file: a 'frames elements' line, then one frame of codes per line."""
    lines = [f"{codes.shape[0]} {codes.shape[1]}"] + [" ".join(map(str, row)) for row in codes.tolist()]
    atomic_write_text(path, "\n".join(lines) + "\n")


def write_reference(path: Path, expected: np.ndarray) -> None:
    """The testbench's reference file: one line of expected output codes per frame."""
    atomic_write_text(path, "".join(" ".join(map(str, row)) + "\n" for row in expected.tolist()))


def read_outputs(path: Path, samples: int, count: int) -> np.ndarray:
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    if len(rows) != samples or any(len(r) != count for r in rows):
        raise CsimError(f"the testbench wrote {len(rows)} frames to {path.name}, expected {samples} of {count} values")
    return np.array(rows, dtype=np.int64)


def read_complete_outputs(path: Path, count: int) -> np.ndarray:
    """The leading complete frames of an outputs file a stopped testbench left behind."""
    rows = []
    text = path.read_text() if path.is_file() else ""
    for line in text.split("\n")[:-1]:  # a line without its newline is an unfinished frame
        values = line.split()
        if len(values) != count:
            break
        rows.append(values)
    return np.array(rows, dtype=np.int64).reshape(len(rows), count)


def tb_mismatch_count(log: str) -> int | None:
    """M of the testbench's closing "tb: N frames, M mismatching" line; None without one."""
    m = re.search(r"^tb: \d+ frames, (\d+) mismatching$", log, re.M)
    return int(m.group(1)) if m else None


def predictions(got: np.ndarray, output: dict[str, Any]) -> np.ndarray:
    """The class of each frame: argmax of the logits the output codes stand for (code * scale + bias)."""
    if len(got) == 0:
        return np.zeros(0, dtype=np.int64)
    scale, bias = np.asarray(output["scale"]), np.asarray(output["bias"])
    return (got.reshape(len(got), -1, len(scale)) * scale + bias).reshape(len(got), -1).argmax(axis=1)


def degenerate_warnings(got: np.ndarray, pred: np.ndarray) -> list[str]:
    """A warning when every sample gives the same output (or the same class): bit-exact then proves little."""
    n = len(got)
    if n < 2:
        return []
    if (got == got[0]).all():
        what = "the same output codes"
    elif (pred == pred[0]).all():
        what = f"the same class ({int(pred[0])})"
    else:
        return []
    return [f"degenerate outputs: all {n} samples give {what}, so bit-exactness proves little; "
            "verify a trained model on varied test data"]


def _load_vectors(project: Path) -> dict[str, np.ndarray]:
    path = project / VECTORS
    try:
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise CodesignError(f"no {VECTORS}; re-run codesign emit", source=str(project)) from None
    except (OSError, ValueError) as exc:
        raise CodesignError(f"{VECTORS} is unreadable ({exc}); re-run codesign emit", source=str(project)) from None


def _compare(run: CsimRun, outputs: Path, expected: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(outputs, per-value differences, problems). A run stopped by a protocol error counts every frame
    it did not finish as mismatching."""
    n, count = expected.shape
    problems = [line.strip() for line in run.log.splitlines() if "WARNING: Hls::stream" in line]
    if not run.protocol_error:
        got = read_outputs(outputs, n, count)
        return got, got != expected, problems
    got = read_complete_outputs(outputs, count)[:n]
    diff = np.ones_like(expected, dtype=bool)
    diff[:len(got)] = got != expected[:len(got)]
    problems.insert(0, f"the testbench stopped: {run.protocol_error} (after {len(got)} of {n} frames)")
    return got, diff, problems


def verify(project: str | Path, samples: int | None = None) -> VerifyResult:
    """Compile and run the C-simulation of an emitted project and compare it bit for bit with the
    integer reference; writes verify.json into the project."""
    project = Path(project)
    manifest = read_manifest(project)
    vectors = _load_vectors(project)
    codes, expected = vectors["codes"], vectors["reference"]
    n = len(codes) if samples is None else min(int(samples), len(codes))
    if n < 1:
        raise CodesignError(f"--samples must be at least 1, got {samples}")
    binary, compile_s, cached = compile_testbench(project, manifest)
    csim = project / CSIM_DIR
    inputs, outputs, reference = csim / "inputs.txt", csim / "outputs.txt", csim / "reference.txt"
    write_inputs(inputs, codes[:n])
    write_reference(reference, expected[:n])
    outputs.unlink(missing_ok=True)
    run = run_testbench(project, binary, inputs, outputs, reference)
    got, diff, problems = _compare(run, outputs, expected[:n])
    bad = int(diff.any(axis=1).sum())
    tb_count = tb_mismatch_count(run.log)
    if tb_count is not None and tb_count != bad:
        problems.append(f"the testbench counted {tb_count} mismatching frames, the Python comparison {bad}")
    pred = predictions(got, manifest["output"])
    agreement = accuracy = None  # frames a stopped testbench did not finish count as wrong
    if "brevitas_logits" in vectors:
        agreement = float((pred == vectors["brevitas_logits"][:len(got)].argmax(axis=1)).sum() / n)
    if "labels" in vectors:
        accuracy = float((pred == vectors["labels"][:len(got)]).sum() / n)
    result = VerifyResult(bit_exact=bad == 0 and not problems, samples=n, mismatches=bad,
                          argmax_agreement=agreement, mismatched_values=int(diff.sum()), label_accuracy=accuracy,
                          compile_seconds=round(compile_s, 3), run_seconds=round(run.seconds, 3), cached_binary=cached,
                          test_data=manifest.get("test_data", ""), problems=problems[:20],
                          warnings=degenerate_warnings(got, pred), testbench_mismatches=tb_count)
    atomic_write_text(project / "verify.json", json.dumps(result.to_dict(), indent=2) + "\n")
    return result
