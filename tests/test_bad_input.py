"""Issue 10, part 5: bad input never gets a traceback. Each case below prints one line (file or
path, field, what is allowed) and exits 2: binary and non-UTF-8 YAML, NaN / infinite numbers,
integers outside int64, names with a trailing newline, bad numeric options, an unwritable --out
(read-only folder, a file where a folder is expected, a folder where a file is expected) for every
command that writes, and a `codesign search` that fails at its start leaves nothing behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from codesign.cli import main
from codesign.search.space import load_space
from hw_space.design import load_design
from hw_space.errors import CodesignError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "digits_w4a4.yaml"
DESIGN = EXAMPLE.read_text()
BOARD = "part: xc7z020clg400-1\nLUT: 53200\nFF: 106400\nBRAM18: 280\nURAM: 0\nDSP: 220\nclock_mhz: 100\naxi_width: 64\n"
BINARY = bytes(range(256)) * 4  # NUL bytes and invalid UTF-8
LATIN1 = "network: {input: {channels: 1}}  # café\n".encode("latin-1")


def one_line(capsys, code: int) -> str:
    """The command's stderr, which must be exactly one `codesign: error:` line, with exit code 2."""
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("codesign: error: "), err
    assert "Traceback" not in err
    return err.strip()


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


# ---------------------------------------------------------------- binary / non-UTF-8 files

@pytest.mark.parametrize("content, fragment", [(BINARY, "is a binary file"), (LATIN1, "line 1: byte 0xe9 is not UTF-8")])
def test_binary_or_latin1_design(tmp_path, capsys, content, fragment):
    path = write(tmp_path / "design.yaml", content)
    err = one_line(capsys, main(["estimate", str(path)]))
    assert str(path) in err and fragment in err and "allowed: a UTF-8 YAML" in err


@pytest.mark.parametrize("content, fragment", [(BINARY, "is a binary file"), (LATIN1, "is not UTF-8")])
def test_binary_or_latin1_board(tmp_path, capsys, content, fragment):
    path = write(tmp_path / "board.yaml", content)
    err = one_line(capsys, main(["estimate", str(EXAMPLE), "--board", str(path)]))
    assert str(path) in err and fragment in err


@pytest.mark.parametrize("content, fragment", [(BINARY, "is a binary file"), (LATIN1, "is not UTF-8")])
def test_binary_or_latin1_space(tmp_path, content, fragment):
    path = write(tmp_path / "space.yaml", content)
    with pytest.raises(CodesignError) as exc:
        load_space(path)
    assert str(exc.value).startswith(f"{path}: ") and fragment in str(exc.value) and "\n" not in str(exc.value)


def test_control_character_in_yaml(tmp_path):
    path = write(tmp_path / "design.yaml", DESIGN.replace("conv0", "conv\x070", 1))
    with pytest.raises(CodesignError, match=r"line 6: control character #x0007 is not allowed"):
        load_design(path)


def test_a_folder_given_as_design(tmp_path, capsys):
    err = one_line(capsys, main(["estimate", str(tmp_path)]))
    assert str(tmp_path) in err and "is a folder; allowed: a YAML file" in err


# ---------------------------------------------------------------- NaN, infinity, int64

@pytest.mark.parametrize("old, new, fragment", [
    ("template: dataflow", "template: dataflow\n  clock_mhz: .nan", "hardware.clock_mhz: nan is not allowed; allowed: finite"),
    ("template: dataflow", "template: dataflow\n  clock_mhz: -.inf", "hardware.clock_mhz: -inf is not allowed"),
    ("template: dataflow", "template: dataflow\n  layers: {conv0: {pe: 99999999999999999999999}}",
     "hardware.layers.conv0.pe: 99999999999999999999999 is out of range; allowed: integers that fit in 64 bits"),
    ("out_channels: 16", "out_channels: -99999999999999999999999", "network.layers[0].out_channels: -99999"),
    ("template: dataflow", "template: dataflow\n  layers: {conv0: {pe: 9223372036854775807}}",
     "hardware.layers.conv0.pe: 9223372036854775807 is out of range; allowed: 1..1048576"),
])
def test_design_numbers(tmp_path, capsys, old, new, fragment):
    assert old in DESIGN
    path = write(tmp_path / "design.yaml", DESIGN.replace(old, new, 1))
    err = one_line(capsys, main(["estimate", str(path)]))
    assert err.startswith(f"codesign: error: {path}: ") and fragment in err


@pytest.mark.parametrize("old, new, fragment", [
    ("clock_mhz: 100", "clock_mhz: .inf", "clock_mhz: inf is not allowed; allowed: finite"),
    ("clock_mhz: 100", "clock_mhz: .NaN", "clock_mhz: nan is not allowed"),
    ("LUT: 53200", "LUT: 123456789012345678901234567890", "LUT: 123456789012345678901234567890 is out of range"),
    ("LUT: 53200", "LUT: 9223372036854775807", "LUT: 9223372036854775807 is out of range; allowed: 0..1099511627776"),
])
def test_board_numbers(tmp_path, capsys, old, new, fragment):
    path = write(tmp_path / "myboard.yaml", BOARD.replace(old, new))
    err = one_line(capsys, main(["estimate", str(EXAMPLE), "--board", str(path)]))
    assert str(path) in err and fragment in err


@pytest.mark.parametrize("text, fragment", [
    ("hardware: {pe: [0.0, .nan]}\n", "hardware.pe[1]: nan is not allowed; allowed: finite"),
    ("hardware: {simd: [.inf]}\n", "hardware.simd[0]: inf is not allowed"),
    ("network: {channels: [8, 99999999999999999999999]}\n", "network.channels[1]: 99999999999999999999999 is out of range"),
    ("network: {channels: {rule: htas, min: 1, max: 99999999999999999999}}\n", "network.channels.max: 9999"),
])
def test_space_numbers(tmp_path, text, fragment):
    path = write(tmp_path / "space.yaml", text)
    with pytest.raises(CodesignError) as exc:
        load_space(path)
    msg = str(exc.value)
    assert msg.startswith(f"{path}: ") and fragment in msg and "\n" not in msg


@pytest.mark.parametrize("argv, fragment", [
    (["fold", str(EXAMPLE), "--board", "pynq-z2", "--target-fps", "nan"], "argument --target-fps: 'nan' is not allowed"),
    (["fold", str(EXAMPLE), "--board", "pynq-z2", "--target-fps", "inf"], "argument --target-fps: 'inf' is not allowed"),
    (["fold", str(EXAMPLE), "--board", "pynq-z2", "--target-fps", "-5"], "--target-fps: -5.0 is not allowed"),
    (["fold", str(EXAMPLE), "--max-util", "NaN"], "argument --max-util: 'NaN' is not allowed; allowed: a finite number"),
    (["estimate", str(EXAMPLE), "--max-util=-inf"], "argument --max-util: '-inf' is not allowed"),
    (["estimate", str(EXAMPLE), "--max-util", "1.5"], "--max-util: 1.5 is not allowed; allowed: a fraction in (0, 1]"),
    (["simulate", str(EXAMPLE), "--frames", "99999999999999999999999"],
     "argument --frames: 99999999999999999999999 is out of range; allowed: integers that fit in 64 bits"),
    (["emit", "--qonnx", "m.onnx", "--board", "zc706", "--out", "x", "--target-fps", "nan"], "argument --target-fps"),
    (["emit", "--qonnx", "m.onnx", "--board", "zc706", "--out", "x", "--top", "top\n"], "--top: 'top\\n' is not allowed"),
    (["train", str(EXAMPLE), "--out", "x", "--lr", "inf"], "argument --lr: 'inf' is not allowed"),
    (["search", "--board", "zc706", "--target-fps", "nan"], "argument --target-fps: 'nan' is not allowed"),
    (["search", "--board", "zc706", "--trials", "1e3"], "argument --trials: '1e3' is not an integer"),
])
def test_numeric_options(tmp_path, capsys, monkeypatch, argv, fragment):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:  # argparse errors exit from parse_args
        code = main(argv)
        raise SystemExit(code)
    err = one_line(capsys, exc.value.code)
    assert fragment in err
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("argv, fragment", [
    (["search"], "the following arguments are required: --board (see codesign search --help)"),
    (["fold", str(EXAMPLE), "--bogus"], "unrecognized arguments: --bogus"),
    (["search", "--board", "zc706", "--strategy", "magic"], "argument --strategy: invalid choice: 'magic'"),
])
def test_usage_errors_are_one_line(capsys, argv, fragment):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert fragment in one_line(capsys, exc.value.code)


def test_binary_manifest_in_verify(tmp_path, capsys):
    project = _fake_project(tmp_path / "p")
    (project / "manifest.json").write_bytes(b"\xff\xfe{}")
    err = one_line(capsys, main(["verify", str(project)]))
    assert "not UTF-8" in err


# ---------------------------------------------------------------- names are matched whole

@pytest.mark.parametrize("name", ["conv0\\n", "conv0\\r", " conv0", "conv-0"])
def test_layer_name_must_match_whole(tmp_path, capsys, name):
    path = write(tmp_path / "design.yaml", DESIGN.replace("name: conv0,", f'name: "{name}",', 1))
    err = one_line(capsys, main(["estimate", str(path)]))
    assert "network.layers[0].name" in err and "is not a valid name; allowed: letters, digits and _" in err


# ---------------------------------------------------------------- --out: a file where a folder is expected and back

def test_fold_out_is_a_folder(tmp_path, capsys):
    err = one_line(capsys, main(["fold", str(EXAMPLE), "--board", "pynq-z2", "--out", str(tmp_path)]))
    assert f"{tmp_path}: --out: is a folder; allowed: a file path" in err
    assert not any(tmp_path.iterdir())


def test_fold_out_under_a_file(tmp_path, capsys):
    blocker = write(tmp_path / "file.txt", "x")
    err = one_line(capsys, main(["fold", str(EXAMPLE), "--board", "pynq-z2", "--out", str(blocker / "d.yaml")]))
    assert f"{blocker / 'd.yaml'}: --out: {blocker} is a file, not a folder" in err


@pytest.mark.parametrize("command", ["emit", "train", "search"])
def test_folder_out_is_a_file(tmp_path, capsys, command):
    blocker = write(tmp_path / "file.txt", "x")
    argv = {"emit": ["emit", "--qonnx", str(tmp_path / "m.onnx"), "--board", "zc706"],
            "train": ["train", str(EXAMPLE)],
            "search": ["search", "--board", "zc706", "--trials", "1"]}[command]
    err = one_line(capsys, main(argv + ["--out", str(blocker)]))
    assert str(blocker) in err and "exists and is not a folder" in err
    err = one_line(capsys, main(argv + ["--out", str(blocker / "sub")]))
    assert str(blocker) in err and ("is a file, not a folder" in err or "Not a directory" in err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


# ---------------------------------------------------------------- --out: a read-only folder

def _csim_available() -> bool:
    from codesign.backend.csim import CsimError, ap_types_dir
    try:
        ap_types_dir()
    except CsimError:
        return False
    return shutil.which("g++") is not None


def _fake_project(folder: Path) -> Path:
    """Enough of an emitted project for `codesign verify` to reach the point where it writes (csim/)."""
    (folder / "tb_data").mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"generator": "codesign emit", "files": {
        "sources": [], "testbench": [], "include_dirs": []}, "output": {}}))
    np.savez(folder / "tb_data" / "vectors.npz", codes=np.zeros((2, 4), np.int64), reference=np.zeros((2, 3), np.int64))
    return folder


def _lock(folder: Path, locked: bool) -> None:
    """Make a folder unwritable (chmod 555; root ignores modes, so as root: the immutable attribute)."""
    if os.geteuid() != 0:
        folder.chmod(0o555 if locked else 0o755)
        return
    chattr = shutil.which("chattr")
    done = chattr and subprocess.run([chattr, "+i" if locked else "-i", str(folder)], capture_output=True).returncode == 0
    if locked and (not done or os.access(folder, os.W_OK) and _writable(folder)):
        pytest.skip("running as root without a way to make a folder read-only (chattr +i)")


def _writable(folder: Path) -> bool:
    try:
        (folder / ".probe").touch()
    except OSError:
        return False
    (folder / ".probe").unlink()
    return True


@pytest.fixture
def readonly(tmp_path):
    """A read-only folder `ro` and a read-only fake emitted project `ro_project`."""
    ro, project = tmp_path / "ro", _fake_project(tmp_path / "ro_project")
    ro.mkdir()
    locked = []
    try:
        for folder in (ro, project):
            _lock(folder, True)
            locked.append(folder)
        yield tmp_path
    finally:
        for folder in locked:
            _lock(folder, False)


def test_read_only_out_is_one_line_for_every_command_that_writes(readonly, capsys, monkeypatch):
    ro = readonly / "ro"
    cases = {
        "train": (["train", str(EXAMPLE), "--epochs", "1", "--out", str(ro / "run")], ro / "run"),
        "fold": (["fold", str(EXAMPLE), "--board", "pynq-z2", "--out", str(ro / "folded.yaml")], ro / "folded.yaml"),
        "emit": (["emit", "--qonnx", str(ro / "m.onnx"), "--board", "zc706", "--out", str(ro / "hls")], ro / "hls"),
        "search": (["search", "--board", "zc706", "--trials", "1", "--epochs", "1", "--workers", "1", "--skip-hls",
                    "--out", str(ro / "run")], ro / "run"),
        "search into the folder itself": (["search", "--board", "zc706", "--trials", "1", "--out", str(ro)], ro),
    }
    if _csim_available():
        cases["verify"] = (["verify", str(readonly / "ro_project")], readonly / "ro_project")
    for name, (argv, path) in cases.items():
        with monkeypatch.context() as m:
            if name == "train":  # the check comes before training: train may not even import the training code
                for module in ("quant.checkpoint", "quant.data", "quant.export", "quant.train"):
                    m.setitem(sys.modules, module, None)
            err = one_line(capsys, main(argv))
        assert str(path) in err, (name, err)
        assert "cannot" in err or "not permitted" in err or "Permission denied" in err, (name, err)
    assert sorted(p.name for p in ro.iterdir()) == []
    assert sorted(p.name for p in (readonly / "ro_project").iterdir()) == ["manifest.json", "tb_data"]


# ---------------------------------------------------------------- a failed search start leaves nothing

def test_failed_search_start_creates_nothing_and_can_be_retried(tmp_path, capsys):
    # a board on which no design of the (small) space fits: the start fails in the reward setup,
    # which used to run after config.json and space.yaml were written
    board = write(tmp_path / "tiny.yaml", BOARD.replace("LUT: 53200", "LUT: 2000").replace("FF: 106400", "FF: 4000"))
    space = write(tmp_path / "space.yaml", "network: {conv_blocks: [0], dense_layers: [0]}\n")
    out = tmp_path / "run"
    argv = ["search", "--board", str(board), "--space", str(space), "--trials", "1", "--epochs", "1", "--workers", "1",
            "--skip-hls", "--out", str(out)]
    for _ in range(2):  # the same command fails the same way again, not with "already exists; add --resume"
        err = one_line(capsys, main(argv))
        assert "fits board tiny" in err and "already exists" not in err
        assert not out.exists()


def test_search_with_a_bad_board_name_fails_at_the_start(tmp_path, capsys):
    board = write(tmp_path / "b.yaml", "name: my board\n" + BOARD)
    out = tmp_path / "run"
    err = one_line(capsys, main(["search", "--board", str(board), "--trials", "1", "--out", str(out)]))
    assert f"{board}: name: 'my board'" in err and "letters, digits, _ and -" in err
    assert not out.exists()
