"""FPGA boards: one YAML file each in hw_space/boards/, or a user's own file given by path."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from hw_space.design import load_yaml_file
from hw_space.errors import CodesignError

BOARD_DIR = Path(__file__).parent / "boards"
RESOURCES = ("LUT", "FF", "BRAM18", "URAM", "DSP")
_FIELDS = ("part", "LUT", "FF", "BRAM18", "URAM", "DSP", "clock_mhz", "axi_width")


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


def _parse_board(data: object, source: str, default_name: str) -> Board:
    if not isinstance(data, dict):
        raise CodesignError("expected a mapping of board fields", source=source)
    for key in data:
        if key not in _FIELDS + ("name", "LUTRAM"):
            raise CodesignError(f"{key}: unknown field; allowed: name, {', '.join(_FIELDS)}, LUTRAM", source=source)
    for key in _FIELDS:
        if key not in data:
            raise CodesignError(f"{key}: missing (required)", source=source)
    if not isinstance(data["part"], str) or not data["part"]:
        raise CodesignError("part: expected the FPGA part name, e.g. xc7z020clg400-1", source=source)
    for key in RESOURCES + ("axi_width",):
        v = data[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise CodesignError(f"{key}: expected a non-negative integer, got {v!r}", source=source)
    if data["axi_width"] not in (32, 64, 128, 256, 512, 1024):
        raise CodesignError(f"axi_width: {data['axi_width']} is not allowed; allowed: 32, 64, 128, 256, 512, 1024", source=source)
    clk = data["clock_mhz"]
    if isinstance(clk, bool) or not isinstance(clk, (int, float)) or not 1 <= clk <= 1000:
        raise CodesignError(f"clock_mhz: {clk!r} is not allowed; allowed: a number of MHz in 1..1000", source=source)
    lutram = data.get("LUTRAM")
    if lutram is not None and (isinstance(lutram, bool) or not isinstance(lutram, int) or not 0 <= lutram <= data["LUT"]):
        raise CodesignError(f"LUTRAM: expected the number of memory-capable LUTs (0..LUT), got {lutram!r}", source=source)
    name = str(data.get("name", default_name))
    return Board(name=name, part=data["part"], LUT=data["LUT"], FF=data["FF"], BRAM18=data["BRAM18"],
                 URAM=data["URAM"], DSP=data["DSP"], clock_mhz=float(clk), axi_width=data["axi_width"], LUTRAM=lutram)


def board_names() -> list[str]:
    return sorted(p.stem for p in BOARD_DIR.glob("*.yaml"))


def load_board(name_or_path: str) -> Board:
    """A known board by name, or a board YAML file by path."""
    path = Path(name_or_path)
    if name_or_path.endswith((".yaml", ".yml")) or path.is_file():
        return _parse_board(load_yaml_file(path), str(path), path.stem)
    builtin = BOARD_DIR / f"{name_or_path}.yaml"
    if not builtin.is_file():
        raise CodesignError(f"unknown board {name_or_path!r}; known: {', '.join(board_names())}, "
                            "or a path to a board YAML file")
    return _parse_board(load_yaml_file(builtin), str(builtin), name_or_path)


def all_boards() -> dict[str, Board]:
    return {name: load_board(name) for name in board_names()}
