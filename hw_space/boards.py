"""FPGA boards: one YAML file each in hw_space/boards/, or a user's own file given by path.

A board's name comes from its file (the `name:` field, else the file name) and must be a safe
identifier (BOARD_NAME_RULE), because reports, plots, Tcl scripts and C code print it. A user's
board may not take a built-in board's name with other resources (a copied pynq-z2.yaml with fewer
LUTs would otherwise be reported, plotted and scripted as a pynq-z2). Design files written by the
tool embed the board's resources (`hardware.board_spec`), so they load in any folder; boards loaded
from a file or from such a spec are remembered by name for the rest of the process.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

from hw_space.errors import CodesignError
from hw_space.files import load_yaml_file

BOARD_DIR = Path(__file__).parent / "boards"
RESOURCES = ("LUT", "FF", "BRAM18", "URAM", "DSP")
_FIELDS = ("part", "LUT", "FF", "BRAM18", "URAM", "DSP", "clock_mhz", "axi_width")
SPEC_FIELDS = _FIELDS + ("LUTRAM",)  # what a design file's hardware.board_spec holds
_BOARD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
BOARD_NAME_RULE = "letters, digits, _ and -, starting with a letter, at most 64 characters"
_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_MAX_COUNT = 1 << 40  # far above any FPGA, far below int64 overflow in the cost model


@dataclass(frozen=True)
class Board:
    """A board's programmable-logic resources, default clock and DMA stream width."""

    name: str
    part: str
    LUT: int
    FF: int
    BRAM18: int
    URAM: int
    DSP: int
    clock_mhz: float
    axi_width: int
    # LUTs that can be distributed RAM (SLICEM LUTs). Optional in the YAML; by default a third of
    # the LUTs, as on the xc7z020 (17,400 of 53,200); UltraScale+ parts have a bit more.
    LUTRAM: int | None = None

    @property
    def lutram_capacity(self) -> int:
        return self.LUTRAM if self.LUTRAM is not None else self.LUT // 3

    def capacity(self, resource: str) -> int:
        return int(getattr(self, resource))

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("name")
        d.pop("LUTRAM")  # a derived, optional figure; the board table lists the primary resources
        return d

    def spec(self) -> dict[str, Any]:
        """Everything but the name, as written into a design file's hardware.board_spec."""
        d = self.to_dict()
        if self.LUTRAM is not None:
            d["LUTRAM"] = self.LUTRAM
        return d


# custom boards met in this process (from a file or a design's board_spec), by name; the latest wins
_KNOWN: dict[str, Board] = {}


def is_board_name(name: object) -> bool:
    return isinstance(name, str) and _BOARD_NAME.fullmatch(name) is not None


def _parse_board(data: object, source: str, default_name: str, field_prefix: str = "") -> Board:
    """Validate board fields; `field_prefix` names the enclosing field in messages (e.g. hardware.board_spec.)."""
    def fail(message: str) -> CodesignError:
        return CodesignError(f"{field_prefix}{message}", source=source)

    if not isinstance(data, dict):
        raise CodesignError(f"{field_prefix.rstrip('.') + ': ' if field_prefix else ''}expected a mapping of board "
                            "fields", source=source)
    for key in data:
        if key not in _FIELDS + ("name", "LUTRAM"):
            raise fail(f"{key}: unknown field; allowed: name, {', '.join(_FIELDS)}, LUTRAM")
    for key in _FIELDS:
        if key not in data:
            raise fail(f"{key}: missing (required)")
    part = data["part"]
    if not isinstance(part, str) or not _PART.fullmatch(part):
        raise fail(f"part: expected the FPGA part name, e.g. xc7z020clg400-1 (letters, digits, _ . -), got {part!r}")
    for key in RESOURCES + ("axi_width",):
        v = data[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise fail(f"{key}: expected a non-negative integer, got {v!r}")
        if v > _MAX_COUNT:
            raise fail(f"{key}: {v} is out of range; allowed: 0..{_MAX_COUNT}")
    if data["axi_width"] not in (32, 64, 128, 256, 512, 1024):
        raise fail(f"axi_width: {data['axi_width']} is not allowed; allowed: 32, 64, 128, 256, 512, 1024")
    clk = data["clock_mhz"]
    if isinstance(clk, bool) or not isinstance(clk, (int, float)) or not 1 <= clk <= 1000:
        raise fail(f"clock_mhz: {clk!r} is not allowed; allowed: a number of MHz in 1..1000")
    lutram = data.get("LUTRAM")
    if lutram is not None and (isinstance(lutram, bool) or not isinstance(lutram, int) or not 0 <= lutram <= data["LUT"]):
        raise fail(f"LUTRAM: expected the number of memory-capable LUTs (0..LUT), got {lutram!r}")
    if "name" in data:
        name, origin = data["name"], "the name: field"
    else:
        name, origin = default_name, "the file name"
    if not is_board_name(name):
        raise fail(f"name: {name!r} (from {origin}) is not a valid board name; allowed: {BOARD_NAME_RULE}"
                   + ("" if "name" in data or field_prefix else "; add a name: field"))
    return Board(name=name, part=part, LUT=data["LUT"], FF=data["FF"], BRAM18=data["BRAM18"],
                 URAM=data["URAM"], DSP=data["DSP"], clock_mhz=float(clk), axi_width=data["axi_width"], LUTRAM=lutram)


def board_names() -> list[str]:
    return sorted(p.stem for p in BOARD_DIR.glob("*.yaml"))


@cache
def _builtin(name: str) -> Board | None:
    path = BOARD_DIR / f"{name}.yaml"
    if not is_board_name(name) or not path.is_file():
        return None
    return _parse_board(load_yaml_file(path), str(path), name)


def _differences(a: Board, b: Board) -> str:
    diffs = [f"{k} {getattr(a, k)!r} vs {getattr(b, k)!r}" for k in SPEC_FIELDS if getattr(a, k) != getattr(b, k)]
    return ", ".join(diffs)


def _adopt(board: Board, source: str, field: str) -> Board:
    """A custom board: refuse a built-in board's name with other resources, else remember it by name."""
    builtin = _builtin(board.name)
    if builtin is not None:
        if replace(board, name=builtin.name) != builtin:
            raise CodesignError(f"{field}{board.name!r} is the name of a built-in board, whose resources differ "
                                f"({_differences(board, builtin)}); allowed: the built-in board's exact resources, "
                                "or another name for this board", source=source)
        return builtin
    _KNOWN[board.name] = board
    return board


def is_path_like(name_or_path: str) -> bool:
    """A board given as a file path rather than a name."""
    return (name_or_path.endswith((".yaml", ".yml")) or "/" in name_or_path or "\\" in name_or_path
            or Path(name_or_path).is_file())


def load_board_file(path: str | Path) -> Board:
    """A user's board YAML file (name from its name: field, else from the file name)."""
    path = Path(path)
    data = load_yaml_file(path)
    board = _parse_board(data, str(path), path.stem)
    named = isinstance(data, dict) and "name" in data
    return _adopt(board, str(path), "name: " if named else "name (from the file name): ")


def board_from_spec(name: str, spec: Any, source: str, field: str = "hardware.board_spec") -> Board:
    """The board a design file embeds: hardware.board names it, hardware.board_spec holds its resources."""
    if not is_board_name(name):
        raise CodesignError(f"hardware.board: {name!r} is not a valid board name; allowed: {BOARD_NAME_RULE}",
                            source=source)
    if isinstance(spec, dict) and "name" in spec:
        raise CodesignError(f"{field}.name: unknown field; the board's name is hardware.board", source=source)
    board = _parse_board(spec, source, name, field_prefix=f"{field}.")
    builtin = _builtin(name)
    if builtin is not None and board != builtin:
        raise CodesignError(f"{field}: differs from the built-in board {name} ({_differences(board, builtin)}); "
                            "allowed: the built-in board's exact resources, or another name in hardware.board for "
                            "a board of your own", source=source)
    return _adopt(board, source, "hardware.board: ")


def load_board(name_or_path: str) -> Board:
    """A known board by name (built-in, or a custom board met earlier in this process), or a board
    YAML file by path."""
    if not isinstance(name_or_path, str) or not name_or_path:
        raise CodesignError(f"board: expected a board name or a board YAML path, got {name_or_path!r}")
    if is_path_like(name_or_path):
        return load_board_file(name_or_path)
    builtin = _builtin(name_or_path)
    if builtin is not None:
        return builtin
    if name_or_path in _KNOWN:
        return _KNOWN[name_or_path]
    raise CodesignError(f"unknown board {name_or_path!r}; known: {', '.join(board_names() + sorted(_KNOWN))}, "
                        "or a path to a board YAML file")


def find_board(name_or_path: str) -> Board | None:
    """The board if it can be found (no error for an unknown name); a bad board file still raises."""
    if is_path_like(name_or_path) or (is_board_name(name_or_path) and (
            (BOARD_DIR / f"{name_or_path}.yaml").is_file() or name_or_path in _KNOWN)):
        return load_board(name_or_path)
    return None


def all_boards() -> dict[str, Board]:
    return {name: load_board(name) for name in board_names()}
