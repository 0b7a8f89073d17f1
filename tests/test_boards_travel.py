"""Issue 10, part 6: boards that travel. A custom board's name comes from its file and is a safe
identifier; it may not pass for a built-in board with other resources; a design file written by the
tool names the board and embeds its resources (hardware.board_spec), never a path, so it loads in
any folder; older design files (a built-in name, no spec) still load."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import hw_space.boards as boards
from codesign.cli import main
from hw_space.boards import load_board
from hw_space.design import design_from_dict, load_design, save_design
from hw_space.errors import CodesignError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "digits_w4a4.yaml"
SPEC = {"part": "xc7z020clg400-1", "LUT": 26600, "FF": 106400, "BRAM18": 280, "URAM": 0, "DSP": 220,
        "clock_mhz": 100.0, "axi_width": 64}
PYNQ_Z2 = {**SPEC, "LUT": 53200}


def board_file(path: Path, name: str | None, **changes) -> Path:
    data = {**SPEC, **changes}
    if name is not None:
        data = {"name": name, **data}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(autouse=True)
def forget_custom_boards(monkeypatch):
    """Each test starts without the custom boards earlier tests met (they are remembered per process)."""
    monkeypatch.setattr(boards, "_KNOWN", {})


# ---------------------------------------------------------------- the board's name

@pytest.mark.parametrize("name", ["half-z2", "Arty_A7", "z7-20_half", "a" * 64])
def test_good_names(tmp_path, name):
    assert load_board(str(board_file(tmp_path / "b.yaml", name))).name == name


@pytest.mark.parametrize("name", ["my board", "x\n", "pynq-z2\n", "7series", "-x", "a;b", "a.b", "a" * 65, "", 7])
def test_bad_names_from_the_name_field(tmp_path, name):
    path = board_file(tmp_path / "b.yaml", name)
    with pytest.raises(CodesignError) as exc:
        load_board(str(path))
    msg = str(exc.value)
    assert msg.startswith(f"{path}: name: ") and "(from the name: field) is not a valid board name" in msg
    assert "allowed: letters, digits, _ and -, starting with a letter, at most 64 characters" in msg
    assert "\n" not in msg


def test_bad_name_from_the_file_name(tmp_path):
    path = board_file(tmp_path / "my board.yaml", None)
    with pytest.raises(CodesignError) as exc:
        load_board(str(path))
    assert "name: 'my board' (from the file name) is not a valid board name" in str(exc.value)
    assert str(exc.value).endswith("add a name: field")


def test_name_from_the_file_name(tmp_path):
    assert load_board(str(board_file(tmp_path / "arty-a7.yml", None))).name == "arty-a7"


# ---------------------------------------------------------------- built-in names

def test_copied_builtin_with_other_resources_is_refused(tmp_path, capsys):
    path = board_file(tmp_path / "mine.yaml", "pynq-z2")  # a copy of pynq-z2.yaml with half the LUTs
    with pytest.raises(CodesignError) as exc:
        load_board(str(path))
    msg = str(exc.value)
    assert msg == (f"{path}: name: 'pynq-z2' is the name of a built-in board, whose resources differ (LUT 26600 vs "
                   "53200); allowed: the built-in board's exact resources, or another name for this board")
    assert main(["estimate", str(EXAMPLE), "--board", str(path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_file_named_like_a_builtin_is_refused_too(tmp_path):
    path = board_file(tmp_path / "zc706.yaml", None)
    with pytest.raises(CodesignError, match=r"name \(from the file name\): 'zc706' is the name of a built-in board"):
        load_board(str(path))


def test_exact_copy_of_a_builtin_is_the_builtin(tmp_path):
    path = tmp_path / "copy.yaml"
    path.write_text((boards.BOARD_DIR / "pynq-z2.yaml").read_text())
    assert load_board(str(path)) == load_board("pynq-z2")


# ---------------------------------------------------------------- what a design file records

def _design_with(tmp_path: Path, board: str) -> Path:
    path = tmp_path / "design.yaml"
    path.write_text(EXAMPLE.read_text().replace("board: zc706", f"board: {board}"))
    return path


def test_written_design_names_the_builtin_board_and_embeds_it(tmp_path):
    out = tmp_path / "saved.yaml"
    save_design(load_design(_design_with(tmp_path, "pynq-z2")), out)
    hw = yaml.safe_load(out.read_text())["hardware"]
    assert hw["board"] == "pynq-z2" and hw["board_spec"] == PYNQ_Z2
    assert "board_spec: {part: xc7z020clg400-1, LUT: 53200," in out.read_text()  # one line, like the folding


def test_custom_board_travels_with_the_design(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    board = board_file(work / "half.yaml", "half-z2")
    monkeypatch.chdir(work)
    folded = work / "out" / "folded.yaml"
    assert main(["fold", str(EXAMPLE), "--board", "half.yaml", "--out", str(folded.relative_to(work))]) == 0
    hw = yaml.safe_load(folded.read_text())["hardware"]
    assert hw["board"] == "half-z2" and hw["board_spec"] == SPEC  # a name, never the relative path half.yaml
    # elsewhere, without the board file and in a fresh process: the embedded spec is the board
    board.unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "d.yaml").write_text(folded.read_text())
    proc = subprocess.run([sys.executable, "-m", "codesign", "estimate", "d.yaml", "--json"], cwd=elsewhere,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert '"board": "half-z2"' in proc.stdout
    # and in this process after forgetting the board: loading the design brings it back
    monkeypatch.setattr(boards, "_KNOWN", {})
    design = load_design(elsewhere / "d.yaml")
    assert design.hardware.board == "half-z2" and load_board("half-z2").LUT == 26600


def test_old_design_with_a_board_path_next_to_it(tmp_path, monkeypatch):
    board_file(tmp_path / "half.yaml", "half-z2")
    path = _design_with(tmp_path, "half.yaml")  # relative to the design's folder, not to the working folder
    monkeypatch.chdir(ROOT)
    design = load_design(path)
    assert design.hardware.board == "half-z2"
    out = tmp_path / "again.yaml"
    save_design(design, out)
    hw = yaml.safe_load(out.read_text())["hardware"]
    assert hw["board"] == "half-z2" and hw["board_spec"] == SPEC


def test_design_built_in_code_with_a_board_path_is_written_by_name(tmp_path):
    board = board_file(tmp_path / "half.yaml", "half-z2")
    design = load_design(EXAMPLE).with_hardware(board=str(board))
    text = design.to_yaml()
    assert str(board) not in text and "board: half-z2\n" in text


def test_old_design_with_a_builtin_name_still_loads(tmp_path):
    design = load_design(EXAMPLE)  # board: zc706, no board_spec
    assert design.hardware.board == "zc706"
    again = tmp_path / "again.yaml"
    save_design(design, again)
    assert load_design(again) == design


def test_unknown_board_name_without_spec_is_written_as_is(tmp_path):
    design = load_design(_design_with(tmp_path, "someday-board"))  # checked when a command needs the board
    assert "board: someday-board\n" in design.to_yaml() and "board_spec" not in design.to_yaml()


# ---------------------------------------------------------------- a board_spec on load

def _with_spec(board: str, spec: object) -> dict:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["hardware"] = {"board": board, "board_spec": spec, "template": "dataflow"}
    return data


def test_builtin_name_with_other_resources_in_the_spec_is_refused():
    with pytest.raises(CodesignError) as exc:
        design_from_dict(_with_spec("pynq-z2", SPEC), source="d.yaml")
    assert str(exc.value) == ("d.yaml: hardware.board_spec: differs from the built-in board pynq-z2 (LUT 26600 vs "
                              "53200); allowed: the built-in board's exact resources, or another name in "
                              "hardware.board for a board of your own")


def test_builtin_name_with_its_own_spec_loads():
    assert design_from_dict(_with_spec("pynq-z2", PYNQ_Z2)).hardware.board == "pynq-z2"


@pytest.mark.parametrize("board, spec, fragment", [
    ("half-z2", {**SPEC, "LUT": -1}, "hardware.board_spec.LUT: expected a non-negative integer, got -1"),
    ("half-z2", {**SPEC, "clock_mhz": float("nan")}, "hardware.board_spec.clock_mhz: nan is not allowed"),
    ("half-z2", {k: v for k, v in SPEC.items() if k != "DSP"}, "hardware.board_spec.DSP: missing (required)"),
    ("half-z2", {**SPEC, "HBM": 1}, "hardware.board_spec.HBM: unknown field"),
    ("half-z2", {**SPEC, "name": "x"}, "hardware.board_spec.name: unknown field; the board's name is hardware.board"),
    ("half-z2", [1, 2], "hardware.board_spec: expected a mapping of board fields"),
    ("boards/half.yaml", SPEC, "hardware.board: 'boards/half.yaml' is not a valid board name"),
    ("half z2", SPEC, "hardware.board: 'half z2' is not a valid board name; allowed: letters, digits, _ and -"),
])
def test_bad_board_spec_is_one_line(board, spec, fragment):
    with pytest.raises(CodesignError) as exc:
        design_from_dict(_with_spec(board, spec), source="d.yaml")
    assert str(exc.value).startswith("d.yaml: ") and fragment in str(exc.value) and "\n" not in str(exc.value)


def test_missing_board_file_in_an_old_design(tmp_path):
    path = _design_with(tmp_path, "boards/gone.yaml")
    with pytest.raises(CodesignError) as exc:
        load_design(path)
    assert str(exc.value).startswith(f"{path}: hardware.board: board file 'boards/gone.yaml' not found")
