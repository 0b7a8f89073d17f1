"""Board files: the built-in boards carry the numbers of DESIGN.md section 4.3; users add their own."""

from __future__ import annotations

from pathlib import Path

import pytest

from hw_space.boards import BOARD_DIR, RESOURCES, Board, all_boards, board_names, load_board
from hw_space.errors import CodesignError

# DESIGN.md 4.3 (Xilinx DS190 / DS891, K26 DS987): part prefix, LUT, FF, BRAM18, URAM, DSP.
# The KV260 FF count (234,240) is not in DESIGN.md; it is the K26 data sheet's figure.
EXPECTED = {
    "zc706": ("xc7z045", 218_600, 437_200, 1_090, 0, 900),
    "pynq-z1": ("xc7z020", 53_200, 106_400, 280, 0, 220),
    "pynq-z2": ("xc7z020", 53_200, 106_400, 280, 0, 220),
    "ultra96": ("xczu3eg", 70_560, 141_120, 432, 0, 360),
    "zcu104": ("xczu7ev", 230_400, 460_800, 624, 96, 1_728),
    "kv260": ("xck26", 117_120, 234_240, 288, 64, 1_248),
}

GOOD = """\
name: myboard
part: xc7a35ticsg324-1L
LUT: 20800
FF: 41600
BRAM18: 100
URAM: 0
DSP: 90
clock_mhz: 100
axi_width: 32
"""


def test_every_known_board_has_a_file_and_every_file_loads():
    assert set(EXPECTED) <= set(board_names())
    assert board_names() == sorted(p.stem for p in BOARD_DIR.glob("*.yaml"))
    boards = all_boards()
    assert set(boards) == set(board_names())
    for name, board in boards.items():
        assert isinstance(board, Board)
        assert board.name == name
        assert board.part and isinstance(board.part, str)
        for k in RESOURCES:
            assert isinstance(board.capacity(k), int) and board.capacity(k) >= 0
        assert board.LUT > 0 and board.FF > 0 and board.BRAM18 > 0 and board.DSP > 0
        assert 1 <= board.clock_mhz <= 1000
        assert board.axi_width in (32, 64, 128, 256, 512, 1024)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_board_numbers_match_the_design_document(name):
    part, lut, ff, bram, uram, dsp = EXPECTED[name]
    b = load_board(name)
    assert b.part.lower().startswith(part)
    assert (b.LUT, b.FF, b.BRAM18, b.URAM, b.DSP) == (lut, ff, bram, uram, dsp)
    assert [b.capacity(k) for k in RESOURCES] == [lut, ff, bram, uram, dsp]


def test_zynq7000_boards_have_64bit_hp_ports_and_ultrascale_128():
    # Zynq-7000 HP ports are 64 bits wide, Zynq UltraScale+ HP ports 128 bits
    for name in ("zc706", "pynq-z1", "pynq-z2"):
        assert load_board(name).axi_width == 64
    for name in ("ultra96", "zcu104", "kv260"):
        assert load_board(name).axi_width == 128


def test_to_dict_round_trips_through_a_user_file(tmp_path):
    import yaml

    b = load_board("zcu104")
    path = tmp_path / "copy.yaml"
    path.write_text(yaml.safe_dump(b.to_dict()))
    copy = load_board(str(path))
    assert copy.name == "copy"  # no name field: the file name
    assert {k: getattr(copy, k) for k in b.to_dict()} == b.to_dict()


def test_user_board_by_path(tmp_path):
    path = tmp_path / "arty.yaml"
    path.write_text(GOOD)
    b = load_board(str(path))
    assert (b.name, b.part, b.LUT, b.FF, b.BRAM18, b.URAM, b.DSP) == \
        ("myboard", "xc7a35ticsg324-1L", 20800, 41600, 100, 0, 90)
    assert b.clock_mhz == 100.0 and b.axi_width == 32


def test_user_board_path_without_yaml_suffix(tmp_path):
    path = tmp_path / "board.cfg"
    path.write_text(GOOD.replace("name: myboard\n", ""))
    b = load_board(str(path))
    assert b.name == "board" and b.LUT == 20800


def test_unknown_board_lists_the_known_ones():
    with pytest.raises(CodesignError) as exc:
        load_board("zedboard-x")
    msg = str(exc.value)
    assert "zedboard-x" in msg
    for name in EXPECTED:
        assert name in msg
    assert "\n" not in msg


def _error_for(tmp_path: Path, text: str) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(CodesignError) as exc:
        load_board(str(path))
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith(str(path))
    return msg


@pytest.mark.parametrize("text, expected", [
    (GOOD.replace("DSP: 90\n", ""), "DSP: missing (required)"),
    (GOOD.replace("LUT: 20800", "LUT: lots"), "LUT: expected a non-negative integer, got 'lots'"),
    (GOOD.replace("BRAM18: 100", "BRAM18: -1"), "BRAM18: expected a non-negative integer"),
    (GOOD.replace("URAM: 0", "URAM: true"), "URAM: expected a non-negative integer"),
    (GOOD.replace("axi_width: 32", "axi_width: 48"), "axi_width: 48 is not allowed; allowed: 32, 64, 128"),
    (GOOD.replace("clock_mhz: 100", "clock_mhz: 0"), "clock_mhz: 0 is not allowed; allowed: a number of MHz"),
    (GOOD.replace("part: xc7a35ticsg324-1L", "part: ''"), "part: expected the FPGA part name"),
    (GOOD + "HBM: 2\n", "HBM: unknown field; allowed: name, part, LUT"),
    ("- just\n- a list\n", "expected a mapping of board fields"),
    ("LUT: [1, 2\n", "line "),
])
def test_malformed_board_gives_one_line(tmp_path, text, expected):
    assert expected in _error_for(tmp_path, text)


def test_missing_board_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(CodesignError) as exc:
        load_board(str(path))
    assert str(exc.value) == f"{path}: file not found"
