"""Vendor-tool scripts for an emitted HLS project: Vitis HLS, Vivado block design, PYNQ driver.

The scripts are jinja2 templates in ``vivado_scripts/``; this module only validates and computes the
values that fill them. Every value that reaches Tcl is checked against a strict pattern first (C
identifiers, plain relative paths, part names), so no space, bracket, brace, quote, ``$`` or ``;``
can get into a Tcl command.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

import vivado_scripts
from hw_space.boards import Board, board_names, load_board
from hw_space.design import atomic_write_text
from hw_space.errors import CodesignError

TEMPLATE_DIR = Path(vivado_scripts.__file__).parent
VITIS_SCRIPT = "vitis_hls.tcl"
VIVADO_SCRIPT = "vivado_bd.tcl"
DRIVER = "driver.py"
README = "README.md"
MARKER_TOP = "codesign_tlast"
MARKER_SOURCE = "codesign_tlast.cpp"
IP_VENDOR, IP_LIBRARY, IP_VERSION = "codesign", "hls", "1.0"
TOOL_VERSION = "2022.2"
DMA_STREAM_WIDTHS = (8, 16, 32, 64, 128, 256, 512, 1024)  # AXI DMA v7.1 stream widths (PG021)

_C_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_PATH_PART = r"[A-Za-z0-9_][A-Za-z0-9_.+-]*"
_REL_PATH = re.compile(rf"{_PATH_PART}(?:/{_PATH_PART})*")
_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
_BOARD_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")
_ARG_TOKEN = re.compile(r"[A-Za-z0-9_./=:+,%@-]+")
_C_SOURCE_SUFFIXES = (".c", ".cc", ".cpp", ".cxx", ".C")
_RESERVED = frozenset("""
    alignas alignof and asm auto bool break case catch char class const constexpr continue decltype default
    delete do double else enum explicit export extern false float for friend goto if inline int long main
    mutable namespace new noexcept not nullptr operator or private protected public register return short
    signed sizeof static struct switch template this throw true try typedef typename union unsigned using
    virtual void volatile while
""".split())

# Board files Vivado may have installed (board vendor:name:part0:version), matched by glob so any
# installed revision is taken. Optional: without them the design is built for the bare part.
BOARD_PART_GLOBS = {
    "zc706": "xilinx.com:zc706:part0:*",
    "zcu104": "xilinx.com:zcu104:part0:*",
    "kv260": "xilinx.com:kv260_som:part0:*",
    "pynq-z1": "*:pynq-z1:part0:*",
    "pynq-z2": "*:pynq-z2:part0:*",
    "ultra96": "*:ultra96v2:part0:*",
}


@dataclass(frozen=True)
class _PsInfo:
    ip: str
    master_port: str
    hp_port: str
    hp_widths: tuple[int, ...]
    dma_base: str  # where assign_bd_address puts the DMA's registers by default


_PS = {
    "zynq7": _PsInfo("processing_system7", "M_AXI_GP0", "S_AXI_HP0", (32, 64), "0x40400000"),
    "zynqmp": _PsInfo("zynq_ultra_ps_e", "M_AXI_HPM0_FPD", "S_AXI_HP0_FPD", (32, 64, 128), "0xA0000000"),
}


def ps_family(part: str) -> str | None:
    """'zynq7' for Zynq-7000 parts, 'zynqmp' for Zynq UltraScale+ (incl. Kria K26/K24), else None."""
    p = part.lower()
    if p.startswith("xc7z"):
        return "zynq7"
    if p.startswith(("xczu", "xck26", "xck24")):
        return "zynqmp"
    return None


def dma_stream_width(bits: int) -> int:
    """Smallest AXI DMA stream width that holds a TDATA of `bits` bits."""
    for width in DMA_STREAM_WIDTHS:
        if width >= bits:
            return width
    raise CodesignError(f"stream width {bits} bits exceeds the AXI DMA maximum of 1024")


@dataclass(frozen=True)
class TiledScripts:
    """What the scripts of a tiled-engine design need beyond the common fields: its port widths
    (input, weight, output), tile size Tn, memory sizes in words and the DRAM layout of the input
    and output maps (codesign.backend.ops.engine.MapLayout.context)."""

    ports: tuple[int, int, int]
    tn: int
    act_words: int
    weight_words: int
    input: dict
    output: dict

    def context(self) -> dict:
        for name, value in (("tn", self.tn), ("act_words", self.act_words), ("weight_words", self.weight_words),
                            *((f"port {p}", p) for p in self.ports)):
            _check_width(f"tiled {name}", value, 1, 1 << 40)
        maps = {k: {f: int(v[f]) for f in ("h", "w", "c", "bits", "epw", "wg", "base")} | {"signed": bool(v["signed"])}
                for k, v in (("input", self.input), ("output", self.output))}
        return {"engine_ports": list(self.ports), "tn": self.tn, "act_bits": self.ports[0],
                "weight_bits": self.ports[1], "act_words": self.act_words, "weight_words": self.weight_words,
                "in_count": maps["input"]["h"] * maps["input"]["w"] * maps["input"]["c"],
                **maps}


# ---------------------------------------------------------------- validation

def _check_top(top: object) -> str:
    if not isinstance(top, str) or not _C_IDENT.fullmatch(top) or top in _RESERVED or top == MARKER_TOP:
        raise CodesignError(f"top: {top!r} is not allowed; allowed: a C identifier (letters, digits, _; "
                            f"not starting with a digit; at most 63 characters; not a C++ keyword, main "
                            f"or {MARKER_TOP})")
    return top


def _check_paths(field: str, paths: object, *, allow_dot: bool = False) -> list[str]:
    if isinstance(paths, (str, bytes)) or not isinstance(paths, (list, tuple)):
        raise CodesignError(f"{field}: expected a list of relative paths, got {paths!r}")
    checked = []
    for path in paths:
        if allow_dot and path == ".":
            checked.append(path)
            continue
        if not isinstance(path, str) or not _REL_PATH.fullmatch(path):
            raise CodesignError(f"{field}: {path!r} is not allowed; allowed: a relative path of letters, digits "
                                "and _ . + - separated by /, no leading '-', no '..', no spaces")
        checked.append(path)
    return checked


def _check_width(field: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise CodesignError(f"{field}: {value!r} is not allowed; allowed: an integer in {low}..{high}")
    return value


def _check_clock(clock_mhz: object) -> float:
    if isinstance(clock_mhz, bool) or not isinstance(clock_mhz, (int, float)) or not math.isfinite(clock_mhz) \
            or not 1 <= clock_mhz <= 1000:
        raise CodesignError(f"clock_mhz: {clock_mhz!r} is not allowed; allowed: a number of MHz in 1..1000")
    return float(clock_mhz)


def _check_board(board: object) -> Board:
    if not isinstance(board, Board):
        raise CodesignError(f"board: expected a hw_space.boards.Board, got {type(board).__name__}")
    if not _BOARD_NAME.fullmatch(board.name):
        raise CodesignError(f"board name {board.name!r} is not allowed in scripts; allowed: letters, digits "
                            "and _ . + -")
    if not _PART.fullmatch(board.part):
        raise CodesignError(f"board {board.name}: part {board.part!r} is not a valid part name (letters, "
                            "digits and -)")
    return board


def _check_tb_args(tb_args: object) -> str:
    if not isinstance(tb_args, str):
        raise CodesignError(f"tb_args: expected a string, got {tb_args!r}")
    tokens = tb_args.split()
    for token in tokens:
        if not _ARG_TOKEN.fullmatch(token):
            raise CodesignError(f"tb_args: {token!r} is not allowed; allowed: words of letters, digits and "
                                "_ . / = : + , % @ - separated by spaces")
    return " ".join(tokens)


def _element_bits(field: str, bits: int | None, width: int) -> int:
    if bits is None:
        if width > 64:
            raise CodesignError(f"{field}: required when the stream is wider than 64 bits (got {width}); "
                                "give the bits of one element")
        return width
    return _check_width(field, bits, 1, min(64, width))


def _is_builtin(board: Board) -> bool:
    if board.name not in board_names():
        return False
    try:
        return load_board(board.name) == board
    except CodesignError:
        return False


def _format_mhz(clock_mhz: float) -> str:
    return f"{clock_mhz:.6g}"


def clock_period_ns(clock_mhz: float) -> str:
    """The clock period as Vitis HLS gets it: nanoseconds with three decimals (100 MHz -> '10.000')."""
    return f"{1000.0 / clock_mhz:.3f}"


# ---------------------------------------------------------------- rendering

def _environment() -> Environment:
    return Environment(loader=FileSystemLoader(str(TEMPLATE_DIR)), undefined=StrictUndefined,
                       keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True, autoescape=False)


def render_scripts(out_dir: Path, *, top: str, board: Board, clock_mhz: float, sources: list[str],
                   testbench: list[str], include_dirs: list[str], in_width: int, out_width: int,
                   tb_args: str = "", in_bits: int | None = None, out_bits: int | None = None,
                   out_signed: bool = True, out_count: int | None = None,
                   tiled: TiledScripts | None = None) -> list[Path]:
    """Render the Vitis HLS / Vivado / PYNQ scripts into `out_dir` and return the files written.

    `sources` (kernels, top, headers), `testbench` (tb_<top>.cpp and its data files) and
    `include_dirs` are paths relative to `out_dir`, as the Tcl references them. `in_width` and
    `out_width` are the bit widths of the top's `in0` / `out0` streams. For the PYNQ driver:
    `in_bits` / `out_bits` are the bits of one element in a beat (default: one element per beat),
    `out_signed` whether outputs are two's complement, `out_count` the output elements per frame
    (the driver asks for it on its command line when None). `tiled`: the design is the tiled engine
    (AXI masters to DDR instead of streams and a DMA; in_width / out_width are its activation ports).
    """
    out_dir = Path(out_dir)
    top = _check_top(top)
    board = _check_board(board)
    clock_mhz = _check_clock(clock_mhz)
    sources = _check_paths("sources", sources)
    testbench = _check_paths("testbench", testbench)
    include_dirs = _check_paths("include_dirs", include_dirs, allow_dot=True)
    if not sources:
        raise CodesignError("sources: empty; expected at least the file that defines the top function")
    if MARKER_SOURCE in sources or MARKER_SOURCE in testbench:
        raise CodesignError(f"sources: {MARKER_SOURCE} is reserved for the TLAST marker the scripts generate")
    in_width = _check_width("in_width", in_width, 1, 1024)
    out_width = _check_width("out_width", out_width, 1, 1024)
    in_bits = _element_bits("in_bits", in_bits, in_width)
    out_bits = _element_bits("out_bits", out_bits, out_width)
    if out_count is not None:
        out_count = _check_width("out_count", out_count, 1, 1 << 30)
    tb_args = _check_tb_args(tb_args)

    family = ps_family(board.part)
    ps = _PS.get(family or "zynq7")
    in_tdata = 8 * math.ceil(in_width / 8)
    out_tdata = 8 * math.ceil(out_width / 8)
    dma_in, dma_out = dma_stream_width(in_tdata), dma_stream_width(out_tdata)
    hp_width = board.axi_width if board.axi_width in ps.hp_widths else max(ps.hp_widths)
    cflags = " ".join([f"-I{d}" for d in include_dirs] + ["-std=c++14"])
    board_part_glob = getattr(board, "board_part", None) or BOARD_PART_GLOBS.get(board.name, "")
    if board_part_glob and not re.fullmatch(r"[A-Za-z0-9_.:*-]+", board_part_glob):
        raise CodesignError(f"board {board.name}: board part {board_part_glob!r} is not a valid board part name")

    context = {
        "top": top, "board_name": board.name, "board_builtin": int(_is_builtin(board)), "part": board.part,
        "clock_mhz": _format_mhz(clock_mhz), "clock_period": clock_period_ns(clock_mhz),
        "tool_version": TOOL_VERSION, "ps_family": family or "", "has_block_design": family is not None,
        "ps_ip": ps.ip, "ps_master_port": ps.master_port, "ps_hp_port": ps.hp_port, "dma_base": ps.dma_base,
        "hp_width": hp_width, "board_part_glob": board_part_glob,
        "sources": sources, "cflags": cflags, "tb_args": tb_args,
        "tb_sources": [f for f in testbench if f.endswith(_C_SOURCE_SUFFIXES)],
        "tb_data": [f for f in testbench if not f.endswith(_C_SOURCE_SUFFIXES)],
        "ip_vendor": IP_VENDOR, "ip_library": IP_LIBRARY, "ip_version": IP_VERSION,
        "ip_vlnv": f"{IP_VENDOR}:{IP_LIBRARY}:{top}:{IP_VERSION}",
        "marker_top": MARKER_TOP, "marker_source": MARKER_SOURCE,
        "marker_vlnv": f"{IP_VENDOR}:{IP_LIBRARY}:{MARKER_TOP}:{IP_VERSION}",
        "in_width": in_width, "out_width": out_width, "in_tdata_width": in_tdata, "out_tdata_width": out_tdata,
        "dma_in_width": dma_in, "dma_out_width": dma_out, "dma_mm_width": max(32, dma_in, dma_out, hp_width),
        "in_bits": in_bits, "out_bits": out_bits, "in_per_beat": in_width // in_bits,
        "out_per_beat": out_width // out_bits, "out_signed": bool(out_signed), "out_count": out_count,
    }
    context["tiled"] = tiled is not None
    context["engine_ports"] = []
    outputs = [(VITIS_SCRIPT, "vitis_hls.tcl.j2"), (README, "README.md.j2")]
    if tiled is None:
        outputs.append((MARKER_SOURCE, "tlast_marker.cpp.j2"))
    else:
        context.update(tiled.context())
    if family is not None:
        outputs += [(VIVADO_SCRIPT, "vivado_bd.tcl.j2"), (DRIVER, "driver_tiled.py.j2" if tiled else "driver.py.j2")]
    env = _environment()
    written = []
    for name, template in outputs:
        path = out_dir / name
        atomic_write_text(path, env.get_template(template).render(context))
        written.append(path)
    return written


# ---------------------------------------------------------------- checking

_HEADER = re.compile(r"^# codesign: top=(\S+) board=(\S+) builtin=([01]) part=(\S+) clock_mhz=(\S+)$", re.M)


def _tcl_word(token: str) -> str:
    return token[1:-1] if len(token) >= 2 and token[0] in "{\"" and token[-1] in "}\"" else token


def _parse_vitis(text: str) -> list[dict]:
    """Per open_project block: its set_top names, add_files paths, set_part and create_clock periods."""
    projects: list[dict] = []
    for raw in text.splitlines():
        words = raw.split()
        if not words or words[0].startswith("#"):
            continue
        cmd = words[0]
        if cmd == "open_project":
            projects.append({"tops": [], "sources": [], "testbench": [], "parts": [], "periods": []})
            continue
        if not projects:
            continue
        project = projects[-1]
        if cmd == "set_top" and len(words) > 1:
            project["tops"].append(_tcl_word(words[1]))
        elif cmd == "add_files":
            args, is_tb, i = [], False, 1
            while i < len(words):
                if words[i] == "-tb":
                    is_tb = True
                elif words[i] in ("-cflags", "-csimflags", "-blackbox"):
                    i += 1
                elif not words[i].startswith("-"):
                    args.append(_tcl_word(words[i]))
                i += 1
            project["testbench" if is_tb else "sources"].extend(args)
        elif cmd == "set_part" and len(words) > 1:
            project["parts"].append(_tcl_word(words[1]))
        elif cmd == "create_clock" and "-period" in words[:-1]:
            project["periods"].append(_tcl_word(words[words.index("-period") + 1]))
    return projects


def _defines_function(text: str, name: str) -> bool:
    text = re.sub(r"//[^\n]*|/\*.*?\*/", " ", text, flags=re.S)
    return re.search(rf"\b{re.escape(name)}\s*\([^;{{}}]*\)\s*(?:const\s*)?\{{", text) is not None


_PAIRS = (("{", "}", True), ("[", "]", False))  # opener, closer, counted in comment lines too


def balance_problems(name: str, text: str) -> list[str]:
    """A tiny Tcl well-formedness check: braces and brackets balance, quotes pair up on each line.

    Braces count everywhere, comments included, as Tcl counts them inside a braced body;
    brackets and quotes are not counted in comment lines. Backslash escapes are skipped.
    """
    problems = []
    depth = {opener: 0 for opener, _, _ in _PAIRS}
    for lineno, line in enumerate(text.splitlines(), 1):
        comment = line.lstrip().startswith("#")
        quotes = 0
        i = 0
        while i < len(line):
            c = line[i]
            i += 1
            if c == "\\":
                i += 1
                continue
            if c == '"' and not comment:
                quotes += 1
            for opener, closer, in_comments in _PAIRS:
                if c in (opener, closer) and (in_comments or not comment):
                    depth[opener] += 1 if c == opener else -1
                    if depth[opener] < 0:
                        problems.append(f"{name}:{lineno}: '{closer}' without a matching '{opener}'")
                        depth[opener] = 0
        if quotes % 2:
            problems.append(f"{name}:{lineno}: unbalanced '\"'")
    problems += [f"{name}: {n} unclosed '{opener}'" for opener, n in depth.items() if n]
    return problems


def tcl_info_complete(text: str) -> bool | None:
    """Whether tclsh's `info complete` accepts the whole script; None when no tclsh is installed."""
    tclsh = shutil.which("tclsh")
    if tclsh is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        checker = Path(tmp) / "complete.tcl"
        checker.write_text("fconfigure stdin -encoding utf-8\nputs [info complete [read stdin]]\n")
        result = subprocess.run([tclsh, str(checker)], input=text, capture_output=True, text=True,
                                encoding="utf-8", timeout=60)
    return result.returncode == 0 and result.stdout.strip() == "1"


def _check_vitis(out_dir: Path, text: str) -> tuple[list[str], str | None, str | None]:
    problems: list[str] = []
    projects = _parse_vitis(text)
    if not projects:
        return [f"{VITIS_SCRIPT}: no open_project"], None, None
    parts = {p for project in projects for p in project["parts"]}
    periods = {p for project in projects for p in project["periods"]}
    for index, project in enumerate(projects, 1):
        where = f"{VITIS_SCRIPT} (project {index})"
        for path in project["sources"] + project["testbench"]:
            if not (out_dir / path).is_file():
                problems.append(f"{where}: add_files {path}: no such file in {out_dir}")
        if len(project["tops"]) != 1:
            problems.append(f"{where}: expected one set_top, found {len(project['tops'])}")
        texts = [(out_dir / p).read_text(errors="replace") for p in project["sources"] if (out_dir / p).is_file()]
        for top in project["tops"]:
            if not any(_defines_function(t, top) for t in texts):
                problems.append(f"{where}: set_top {top}: no source added with add_files defines a function {top}")
        if not project["parts"]:
            problems.append(f"{where}: no set_part")
        if not project["periods"]:
            problems.append(f"{where}: no create_clock -period")
    if len(parts) > 1:
        problems.append(f"{VITIS_SCRIPT}: projects use different parts: {', '.join(sorted(parts))}")
    if len(periods) > 1:
        problems.append(f"{VITIS_SCRIPT}: projects use different clock periods: {', '.join(sorted(periods))}")
    return problems, next(iter(parts), None), next(iter(periods), None)


def _tcl_set(text: str, name: str) -> str | None:
    match = re.search(rf"^set\s+{re.escape(name)}\s+(\S+)\s*$", text, re.M)
    return _tcl_word(match.group(1)) if match else None


def check_scripts(out_dir: Path, *, board: Board | None = None, clock_mhz: float | None = None) -> list[str]:
    """Problems with the scripts rendered in `out_dir`; an empty list when they look right.

    Checks that every add_files path exists, each set_top names a function defined in that project's
    sources, the part and clock period agree between the scripts and with the board and clock (the
    given ones, else the built-in board named in the script header), braces/brackets/quotes balance,
    tclsh's `info complete` accepts each Tcl file (when tclsh is installed) and driver.py compiles.
    """
    out_dir = Path(out_dir)
    vitis_path = out_dir / VITIS_SCRIPT
    if not vitis_path.is_file():
        return [f"{VITIS_SCRIPT}: missing in {out_dir}"]
    vitis = vitis_path.read_text()
    problems, part, period = _check_vitis(out_dir, vitis)

    header = _HEADER.search(vitis)
    if header is None:
        problems.append(f"{VITIS_SCRIPT}: no '# codesign:' header line")
        header_part = header_mhz = None
    else:
        _, board_name, builtin, header_part, header_mhz = header.groups()
        if board is None and builtin == "1" and board_name in board_names():
            board = load_board(board_name)
    expected_part = board.part if board is not None else header_part
    expected_mhz = clock_mhz if clock_mhz is not None else (float(header_mhz) if header_mhz else None)
    if part is not None and expected_part is not None and part != expected_part:
        problems.append(f"{VITIS_SCRIPT}: set_part {part}, but the board's part is {expected_part}")
    if period is not None and expected_mhz is not None and period != clock_period_ns(expected_mhz):
        problems.append(f"{VITIS_SCRIPT}: create_clock -period {period}, but {expected_mhz:g} MHz is "
                        f"{clock_period_ns(expected_mhz)} ns")

    tcl_files = [(VITIS_SCRIPT, vitis)]
    vivado_path = out_dir / VIVADO_SCRIPT
    if ps_family(expected_part or part or "") is not None:
        for required in (VIVADO_SCRIPT, DRIVER):
            if not (out_dir / required).is_file():
                problems.append(f"{required}: missing in {out_dir}")
    if vivado_path.is_file():
        vivado = vivado_path.read_text()
        tcl_files.append((VIVADO_SCRIPT, vivado))
        bd_part, bd_mhz = _tcl_set(vivado, "part"), _tcl_set(vivado, "clock_mhz")
        if bd_part != (expected_part or part):
            problems.append(f"{VIVADO_SCRIPT}: part {bd_part}, but the board's part is {expected_part or part}")
        try:
            bd_period = clock_period_ns(float(bd_mhz)) if bd_mhz else None
        except ValueError:
            bd_period = None
        if bd_period is None:
            problems.append(f"{VIVADO_SCRIPT}: no numeric 'set clock_mhz'")
        elif period is not None and bd_period != period:
            problems.append(f"{VIVADO_SCRIPT}: clock {bd_mhz} MHz ({bd_period} ns) differs from the HLS "
                            f"clock period {period} ns")

    for name, text in tcl_files:
        problems.extend(balance_problems(name, text))
        if tcl_info_complete(text) is False:
            problems.append(f"{name}: tclsh 'info complete' says the script is incomplete")

    driver_path = out_dir / DRIVER
    if driver_path.is_file():
        try:
            compile(driver_path.read_text(), str(driver_path), "exec")
        except SyntaxError as err:
            problems.append(f"{DRIVER}:{err.lineno}: {err.msg}")
    return problems
