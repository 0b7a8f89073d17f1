"""The CLI's contract: subcommands listed, bad input is one line with exit code 2, JSON shapes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from codesign.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("boards", "estimate", "fold"):
        assert cmd in out


def test_boards_json_fields(capsys):
    assert main(["boards", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"zc706", "pynq-z1", "pynq-z2", "ultra96", "zcu104", "kv260"} <= set(data)
    for fields in data.values():
        assert set(fields) == {"part", "LUT", "FF", "BRAM18", "URAM", "DSP", "clock_mhz", "axi_width"}
    assert data["zc706"]["LUT"] == 218600 and data["zc706"]["BRAM18"] == 1090 and data["zc706"]["DSP"] == 900


def test_estimate_json_keys(capsys):
    assert main(["estimate", str(ROOT / "examples/cnv_w1a1.yaml"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    for key in ("layers", "ii_cycles", "fps", "latency_cycles", "resources", "utilization", "feasible", "violations"):
        assert key in data
    for layer in data["layers"]:
        assert {"name", "kind", "cycles", "LUT", "FF", "BRAM18", "URAM", "DSP"} <= set(layer)
    assert set(data["resources"]) == {"LUT", "FF", "BRAM18", "URAM", "DSP"}
    # FINN's cnv-w1a1 folding: the slowest MVAUs (fc0, fc1) take 512*64 = 32,768 cycles.
    assert data["ii_cycles"] == 32768


def test_bad_design_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("network:\n  input: {channels: 1, height: 8, width: 8}\n"
                   "  layers:\n    - {type: conv, out_channels: 4, kernel: 3, weight_bits: 9, act_bits: 2}\n"
                   "    - {type: dense, out_features: 10, weight_bits: 2}\n")
    proc = subprocess.run([sys.executable, "-m", "codesign", "estimate", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "bad.yaml" in lines[0] and "weight_bits" in lines[0] and "1..8" in lines[0]
    assert "Traceback" not in proc.stderr


def test_fold_makes_unfolded_example_faster_and_feasible(tmp_path, capsys):
    out = tmp_path / "folded.yaml"
    assert main(["fold", str(ROOT / "examples/digits_w4a4.yaml"), "--board", "pynq-z2", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["estimate", str(out), "--json"]) == 0
    folded = json.loads(capsys.readouterr().out)
    assert main(["estimate", str(ROOT / "examples/digits_w4a4.yaml"), "--board", "pynq-z2", "--json"]) == 0
    unfolded = json.loads(capsys.readouterr().out)
    assert folded["feasible"] and folded["fps"] > 10 * unfolded["fps"]


def test_unreachable_target_is_clear(capsys):
    code = main(["fold", str(ROOT / "examples/digits_w4a4.yaml"), "--board", "pynq-z1", "--target-fps", "100000000"])
    assert code == 2
    err = capsys.readouterr().err
    assert "no folding reaches 100,000,000 FPS" in err and "fastest folding that fits" in err
