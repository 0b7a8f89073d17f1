"""The Vitis HLS / Vivado / PYNQ scripts: they render for every board, are well-formed Tcl, run to the
end in plain tclsh with the Xilinx commands stubbed, and the driver and TLAST marker work."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from codesign.backend.formats import IntFmt
from codesign.backend.ops.engine import MapLayout
from codesign.backend.scripts import (
    DRIVER,
    MARKER_SOURCE,
    README,
    VITIS_SCRIPT,
    VIVADO_SCRIPT,
    TiledScripts,
    check_scripts,
    dma_stream_width,
    render_scripts,
    tcl_info_complete,
)
from hw_space.boards import all_boards, load_board
from hw_space.errors import CodesignError

BOARDS = all_boards()
TCLSH = shutil.which("tclsh")
GXX = shutil.which("g++")
needs_tclsh = pytest.mark.skipif(TCLSH is None, reason="tclsh is not installed")

TOP_CPP = """\
#include "mynet.h"

// the accelerator's top function
void mynet(hls::stream<ap_uint<64>> &in0, hls::stream<ap_uint<64>> &out0) {
#pragma HLS INTERFACE mode=axis port=in0
#pragma HLS INTERFACE mode=axis port=out0
#pragma HLS DATAFLOW
    out0.write(in0.read() + 1);
}
"""


def make_project(root: Path) -> dict:
    """A fake emitted HLS project (plain text files, never compiled) and the render arguments."""
    (root / "src").mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    (root / "src" / "top.cpp").write_text(TOP_CPP)
    (root / "src" / "mynet.h").write_text("#pragma once\n#include <ap_int.h>\n#include <hls_stream.h>\n"
                                          "void mynet(hls::stream<ap_uint<64>> &in0, hls::stream<ap_uint<64>> &out0);\n")
    (root / "tb_mynet.cpp").write_text('#include "mynet.h"\nint main(int argc, char **argv) { return 0; }\n')
    (root / "data" / "input.bin").write_bytes(b"\x00\x01")
    return {"top": "mynet", "sources": ["src/top.cpp", "src/mynet.h"],
            "testbench": ["tb_mynet.cpp", "data/input.bin"], "include_dirs": ["src"],
            "in_width": 64, "out_width": 64, "tb_args": "data/input.bin -v 3"}


def render(root: Path, board, clock_mhz=None, **overrides) -> list[Path]:
    kwargs = make_project(root)
    kwargs.update(overrides)
    return render_scripts(root, board=board, clock_mhz=board.clock_mhz if clock_mhz is None else clock_mhz, **kwargs)


# ---------------------------------------------------------------- rendering for every board

@pytest.mark.parametrize("name", sorted(BOARDS))
def test_renders_for_every_board(tmp_path, name):
    board = BOARDS[name]
    written = render(tmp_path, board, clock_mhz=100)
    assert {p.name for p in written} == {VITIS_SCRIPT, VIVADO_SCRIPT, DRIVER, README, MARKER_SOURCE}
    assert all(p.parent == tmp_path and p.is_file() for p in written)
    assert check_scripts(tmp_path) == []
    assert check_scripts(tmp_path, board=board, clock_mhz=100) == []

    vitis = (tmp_path / VITIS_SCRIPT).read_text()
    vivado = (tmp_path / VIVADO_SCRIPT).read_text()
    assert f"set_part {board.part}\n" in vitis
    assert f"set part             {board.part}\n" in vivado
    assert "create_clock -period 10.000 -name default" in vitis
    assert "set_top mynet\n" in vitis
    assert "add_files src/top.cpp -cflags $cflags" in vitis
    assert "add_files -tb tb_mynet.cpp -cflags $cflags" in vitis
    assert "add_files -tb data/input.bin\n" in vitis
    assert 'set cflags  "-Isrc -std=c++14"' in vitis
    assert "export_design -format ip_catalog -vendor codesign -library hls -version 1.0 -ipname mynet" in vitis
    assert "xilinx.com:ip:axi_dma:7.1" in vivado
    assert "xilinx.com:ip:smartconnect:1.0" in vivado
    assert "xilinx.com:ip:proc_sys_reset:5.0" in vivado
    if board.part.startswith("xc7z"):
        assert "xilinx.com:ip:processing_system7:5.5" in vivado
        assert "zynq_ultra_ps_e" not in vivado
        assert "CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ $clock_mhz" in vivado
        assert "DMA_BASE_ADDRESS = 0x40400000" in (tmp_path / DRIVER).read_text()
    else:
        assert board.part.startswith(("xczu", "xck26"))
        assert "get_ipdefs -all xilinx.com:ip:zynq_ultra_ps_e:*" in vivado
        assert "processing_system7" not in vivado
        assert "CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ $clock_mhz" in vivado
        assert "DMA_BASE_ADDRESS = 0xA0000000" in (tmp_path / DRIVER).read_text()


@pytest.mark.parametrize("clock_mhz, period", [(100, "10.000"), (200, "5.000"), (150, "6.667"), (250.0, "4.000")])
def test_clock_period_in_ns(tmp_path, clock_mhz, period):
    board = BOARDS["zcu104"]
    render(tmp_path, board, clock_mhz=clock_mhz)
    assert f"create_clock -period {period} -name default" in (tmp_path / VITIS_SCRIPT).read_text()
    assert check_scripts(tmp_path, board=board, clock_mhz=clock_mhz) == []


def test_board_default_clock(tmp_path):
    render(tmp_path, BOARDS["zcu104"])  # 200 MHz
    assert "create_clock -period 5.000 -name default" in (tmp_path / VITIS_SCRIPT).read_text()
    assert "set clock_mhz        200\n" in (tmp_path / VIVADO_SCRIPT).read_text()


def test_rendering_is_deterministic(tmp_path):
    render(tmp_path / "a", BOARDS["pynq-z2"])
    render(tmp_path / "b", BOARDS["pynq-z2"])
    for name in (VITIS_SCRIPT, VIVADO_SCRIPT, DRIVER, README, MARKER_SOURCE):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()


def test_no_temporary_files_left(tmp_path):
    render(tmp_path, BOARDS["zc706"])
    assert not list(tmp_path.glob(".*.tmp"))


@needs_tclsh
@pytest.mark.parametrize("name", sorted(BOARDS))
def test_tclsh_info_complete(tmp_path, name):
    render(tmp_path, BOARDS[name])
    for script in (VITIS_SCRIPT, VIVADO_SCRIPT):
        assert tcl_info_complete((tmp_path / script).read_text()) is True


def test_tcl_info_complete_rejects_open_brace():
    if TCLSH is None:
        assert tcl_info_complete("if {1} {") is None
    else:
        assert tcl_info_complete("if {1} {") is False
        assert tcl_info_complete('puts "unterminated') is False
        assert tcl_info_complete("set a [list 1 2]\n") is True


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_driver_is_valid_python(tmp_path, name):
    render(tmp_path, BOARDS[name], out_count=10)
    compile((tmp_path / DRIVER).read_text(), DRIVER, "exec")


def test_scripts_avoid_tcl86_only_commands(tmp_path):
    """Vivado and Vitis HLS embed Tcl 8.5: no lmap, try, string cat, tailcall, coroutines, ..."""
    render(tmp_path, BOARDS["kv260"])
    pattern = re.compile(r"\b(lmap|try|throw|tailcall|coroutine|yieldto|zlib)\b|string cat\b|file tempfile|dict map")
    for script in (VITIS_SCRIPT, VIVADO_SCRIPT):
        code = "\n".join(line for line in (tmp_path / script).read_text().splitlines()
                         if not line.lstrip().startswith("#"))
        assert pattern.search(code) is None, script


def test_non_zynq_board_gets_hls_script_only(tmp_path):
    board = dataclasses.replace(BOARDS["zcu104"], name="vcu118", part="xcvu9p-flga2104-2L-e")
    written = render(tmp_path, board)
    assert {p.name for p in written} == {VITIS_SCRIPT, README, MARKER_SOURCE}
    assert check_scripts(tmp_path, board=board) == []
    assert "Not generated" in (tmp_path / README).read_text()


def test_user_board_file(tmp_path):
    yaml = tmp_path / "myboard.yaml"
    yaml.write_text("name: my-z7\npart: xc7z010clg400-1\nLUT: 17600\nFF: 35200\nBRAM18: 120\nURAM: 0\nDSP: 80\n"
                    "clock_mhz: 125\naxi_width: 64\n")
    board = load_board(str(yaml))
    out = tmp_path / "out"
    render(out, board)
    assert check_scripts(out) == []  # part and clock taken from the script header
    assert "builtin=0 part=xc7z010clg400-1 clock_mhz=125" in (out / VITIS_SCRIPT).read_text()
    assert "create_clock -period 8.000" in (out / VITIS_SCRIPT).read_text()
    assert 'set board_part_glob  ""' in (out / VIVADO_SCRIPT).read_text()


def test_dma_widths():
    assert [dma_stream_width(b) for b in (1, 8, 9, 24, 64, 65, 1024)] == [8, 8, 16, 32, 64, 128, 1024]
    with pytest.raises(CodesignError):
        dma_stream_width(1025)


def test_odd_stream_widths(tmp_path):
    render(tmp_path, BOARDS["pynq-z2"], in_width=24, out_width=20, in_bits=8, out_bits=10, out_count=4)
    vivado = (tmp_path / VIVADO_SCRIPT).read_text()
    assert "set in_tdata_width   24\n" in vivado and "set dma_in_width     32\n" in vivado
    assert "set out_tdata_width  24\n" in vivado and "set dma_out_width    32\n" in vivado
    marker = (tmp_path / MARKER_SOURCE).read_text()
    assert "hls::stream<ap_uint<20> > &in0" in marker and "ap_axiu<32, 0, 0, 0>" in marker
    assert check_scripts(tmp_path) == []


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("top", ["my net; exec rm", "my net", "1net", "net$x", "net[exec]", "net{", "int", "main",
                                 "", "codesign_tlast", "a" * 64, None])
def test_bad_top_name(tmp_path, top):
    with pytest.raises(CodesignError, match="top"):
        render(tmp_path, BOARDS["zc706"], top=top)
    assert not (tmp_path / VITIS_SCRIPT).exists()


@pytest.mark.parametrize("field, value", [
    ("sources", ["../escape.cpp"]), ("sources", ["/abs/top.cpp"]), ("sources", ["a b.cpp"]),
    ("sources", ["-tb.cpp"]), ("sources", ["x;rm.cpp"]), ("sources", ["$x.cpp"]), ("sources", ["[x].cpp"]),
    ("sources", ['q".cpp']), ("sources", "src/top.cpp"), ("sources", []), ("testbench", ["tb/../../x.cpp"]),
    ("include_dirs", ["inc{"]), ("sources", [MARKER_SOURCE]),
])
def test_bad_paths(tmp_path, field, value):
    with pytest.raises(CodesignError, match=field):
        render(tmp_path, BOARDS["zc706"], **{field: value})


@pytest.mark.parametrize("tb_args", ["a;b", "$HOME", "[exec ls]", "{x}", 'a"b', "a\\b"])
def test_bad_tb_args(tmp_path, tb_args):
    with pytest.raises(CodesignError, match="tb_args"):
        render(tmp_path, BOARDS["zc706"], tb_args=tb_args)


@pytest.mark.parametrize("field, value", [("in_width", 0), ("in_width", 1025), ("out_width", True),
                                          ("out_width", 8.0), ("in_bits", 65), ("out_bits", 0), ("out_count", 0)])
def test_bad_widths(tmp_path, field, value):
    with pytest.raises(CodesignError, match=field):
        render(tmp_path, BOARDS["zc706"], **{field: value})


def test_wide_stream_needs_element_bits(tmp_path):
    with pytest.raises(CodesignError, match="in_bits"):
        render(tmp_path, BOARDS["zcu104"], in_width=128)
    render(tmp_path, BOARDS["zcu104"], in_width=128, in_bits=8)
    assert check_scripts(tmp_path) == []


@pytest.mark.parametrize("clock", [0, -5, 1001, float("nan"), "100", True])
def test_bad_clock(tmp_path, clock):
    with pytest.raises(CodesignError, match="clock_mhz"):
        render(tmp_path, BOARDS["zc706"], clock_mhz=clock)


@pytest.mark.parametrize("change", [{"name": "bad name"}, {"name": "x;y"}, {"part": "xc7z020 clg400"},
                                    {"part": "xc7z020[1]"}])
def test_bad_board_values(tmp_path, change):
    with pytest.raises(CodesignError):
        render(tmp_path, dataclasses.replace(BOARDS["pynq-z2"], **change))


# ---------------------------------------------------------------- check_scripts catches problems

def replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


@pytest.fixture
def rendered(tmp_path):
    render(tmp_path, BOARDS["zc706"])
    assert check_scripts(tmp_path) == []
    return tmp_path


def test_check_missing_source(rendered):
    (rendered / "src" / "top.cpp").unlink()
    problems = check_scripts(rendered)
    assert any("add_files src/top.cpp" in p and "no such file" in p for p in problems)
    assert any("set_top mynet" in p for p in problems)  # the only definition went with it


def test_check_missing_testbench_data(rendered):
    (rendered / "data" / "input.bin").unlink()
    assert any("data/input.bin" in p for p in check_scripts(rendered))


def test_check_mismatched_set_top(rendered):
    replace_in(rendered / VITIS_SCRIPT, "set_top mynet\n", "set_top othernet\n")
    problems = check_scripts(rendered)
    assert any("set_top othernet" in p for p in problems)


def test_check_top_only_declared_not_defined(rendered):
    (rendered / "src" / "top.cpp").write_text("void mynet(int a);\nvoid other(int a) { mynet(a); }\n")
    assert any("set_top mynet" in p for p in check_scripts(rendered))


def test_check_part_and_clock(rendered):
    assert any("xc7z020clg400-1" in p for p in check_scripts(rendered, board=BOARDS["pynq-z2"]))
    assert any("5.000 ns" in p for p in check_scripts(rendered, clock_mhz=200))
    replace_in(rendered / VIVADO_SCRIPT, "set clock_mhz        100\n", "set clock_mhz        125\n")
    assert any("differs from the HLS clock period" in p for p in check_scripts(rendered))


def test_check_header_part_against_builtin_board(rendered):
    replace_in(rendered / VITIS_SCRIPT, "set_part xc7z045ffg900-2", "set_part xc7z020clg400-1")
    assert any("set_part xc7z020clg400-1" in p for p in check_scripts(rendered))


def test_check_unbalanced_tcl(rendered):
    replace_in(rendered / VIVADO_SCRIPT, "update_compile_order", "if {$jobs > 1} {\n    puts [llength $jobs\n")
    problems = check_scripts(rendered)
    assert any("unclosed '{'" in p for p in problems)
    assert any("unclosed '['" in p for p in problems)
    if TCLSH:
        assert any("info complete" in p for p in problems)


def test_check_unbalanced_quote(rendered):
    replace_in(rendered / VITIS_SCRIPT, 'set cflags  "-Isrc -std=c++14"', 'set cflags  "-Isrc -std=c++14')
    assert any("unbalanced '\"'" in p for p in check_scripts(rendered))


def test_check_driver_syntax(rendered):
    replace_in(rendered / DRIVER, "def main(argv=None):", "def broken(:\ndef main(argv=None):")
    assert any(p.startswith(DRIVER) for p in check_scripts(rendered))


def test_check_missing_files(tmp_path, rendered):
    (rendered / VIVADO_SCRIPT).unlink()
    assert any(VIVADO_SCRIPT in p for p in check_scripts(rendered))
    assert check_scripts(tmp_path / "nothing") == [f"{VITIS_SCRIPT}: missing in {tmp_path / 'nothing'}"]


# ---------------------------------------------------------------- dry runs in tclsh with stubbed tools

SEP = "\x1f"

TRACE_PRELUDE = r"""
set ::trace [open [lindex $argv 0] w]
proc record {args} {
    puts $::trace [join $args "\x1f"]
    flush $::trace
}
proc unknown {args} {
    record {*}$args
    return ""
}
"""

VIVADO_STUBS = r"""
proc nonoptions {words} {
    set out {}
    set skip 0
    foreach w $words {
        if {$skip} { set skip 0; continue }
        if {$w in {-of_objects -filter -vlnv -type -files -fileset}} { set skip 1; continue }
        if {[string index $w 0] eq "-"} { continue }
        lappend out $w
    }
    return $out
}
proc existing {names} {
    set out {}
    foreach n $names {
        if {[lsearch -exact $::missing $n] < 0} { lappend out $n }
    }
    return $out
}
proc create_bd_cell {args} {
    record create_bd_cell {*}$args
    return "/[lindex $args end]"
}
proc get_bd_pins {args} { return [existing [nonoptions $args]] }
proc get_bd_intf_pins {args} {
    if {[lsearch $args -of_objects] >= 0} { return $::axilite_slaves }
    return [existing [nonoptions $args]]
}
proc get_parts {args} { return [nonoptions $args] }
proc matching {pattern items} {
    set out {}
    foreach item $items {
        if {[string match $pattern $item]} { lappend out $item }
    }
    return $out
}
proc get_board_parts {args} { return [matching [lindex [nonoptions $args] 0] $::board_parts] }
proc get_ipdefs {args} { return [matching [lindex [nonoptions $args] 0] $::catalog] }
proc get_property {name object} {
    if {$name eq "VLNV"} { return $object }
    if {[info exists ::prop($name,$object)]} { return $::prop($name,$object) }
    if {[info exists ::prop($name)]} { return $::prop($name) }
    return ""
}
proc get_files {args} { return [nonoptions $args] }
proc get_runs {args} { return [nonoptions $args] }
proc get_bd_addr_spaces {args} { return [nonoptions $args] }
proc get_bd_addr_segs {args} { return {/ps/Data/SEG_axi_dma_0_Reg /ps/Data/SEG_mynet_0_Reg} }
proc current_project {args} { return project }
proc current_fileset {args} { return sources_1 }
proc make_wrapper {args} {
    record make_wrapper {*}$args
    return /project/codesign_bd_wrapper.v
}
"""


def run_tcl(tmp_path: Path, script: Path, prelude: str, env: dict | None = None) -> list[list[str]]:
    harness = tmp_path / "harness.tcl"
    trace = tmp_path / "trace.txt"
    harness.write_text(prelude + f"\nsource {{{script}}}\n")
    result = subprocess.run([TCLSH, str(harness), str(trace)], capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", **(env or {})})
    assert result.returncode == 0, result.stdout + result.stderr
    return [line.split(SEP) for line in trace.read_text().splitlines()]


def commands(trace, name):
    return [call for call in trace if call[0] == name]


@needs_tclsh
@pytest.mark.parametrize("name", sorted(BOARDS))
def test_vitis_dry_run(tmp_path, name):
    out = tmp_path / "out"
    render(out, BOARDS[name], clock_mhz=100)
    trace = run_tcl(tmp_path, out / VITIS_SCRIPT, TRACE_PRELUDE)
    order = [call[0] for call in trace]
    assert order[:2] == ["open_project", "set_top"]
    assert trace[0] == ["open_project", "-reset", "hls_project"]
    assert trace[1] == ["set_top", "mynet"]
    assert ["add_files", "src/top.cpp", "-cflags", "-Isrc -std=c++14"] in trace
    assert ["add_files", "-tb", "tb_mynet.cpp", "-cflags", "-Isrc -std=c++14"] in trace
    assert ["add_files", "-tb", "data/input.bin"] in trace
    assert ["set_part", BOARDS[name].part] in trace
    assert ["create_clock", "-period", "10.000", "-name", "default"] in trace
    argv = f"{(out / 'data' / 'input.bin').resolve()} -v 3"  # files absolute, options and numbers as given
    assert ["csim_design", "-argv", argv] in trace
    assert ["cosim_design", "-rtl", "verilog", "-argv", argv] in trace
    steps = [c for c in order if c in ("csim_design", "csynth_design", "cosim_design", "export_design")]
    assert steps == ["csim_design", "csynth_design", "cosim_design", "export_design", "csynth_design",
                     "export_design"]
    export = commands(trace, "export_design")[0]
    assert export[1:9] == ["-format", "ip_catalog", "-vendor", "codesign", "-library", "hls", "-version", "1.0"]
    assert ["open_project", "-reset", "hls_tlast_marker"] in trace
    assert ["set_top", "codesign_tlast"] in trace
    assert ["add_files", MARKER_SOURCE] in trace
    assert (out / "reports").is_dir()


@needs_tclsh
def test_vitis_dry_run_without_cosim_and_marker(tmp_path):
    out = tmp_path / "out"
    render(out, BOARDS["pynq-z2"], tb_args="")
    trace = run_tcl(tmp_path, out / VITIS_SCRIPT, TRACE_PRELUDE,
                    env={"CODESIGN_DO_COSIM": "0", "CODESIGN_DO_TLAST_MARKER": "0"})
    order = [call[0] for call in trace]
    assert "cosim_design" not in order
    assert ["csim_design"] in trace  # no -argv when there are no testbench arguments
    assert order.count("open_project") == 1 and order.count("export_design") == 1


EMIT_TB_ARGS = "tb_data/inputs.txt tb_data/csim_outputs.txt"  # what codesign emit passes


def emitted_like(root: Path, tb_args: str = EMIT_TB_ARGS) -> None:
    """Render the scripts for a fake project laid out like codesign emit's: tb_data/ with inputs and reference."""
    kwargs = make_project(root)
    (root / "tb_data").mkdir()
    for name in ("inputs.txt", "reference.txt"):
        (root / "tb_data" / name).write_text("1 1\n0\n")
    kwargs.update(testbench=["tb_mynet.cpp", "tb_data/inputs.txt", "tb_data/reference.txt"], tb_args=tb_args)
    render_scripts(root, board=BOARDS["zc706"], clock_mhz=100, **kwargs)


def argv_of(trace, name: str) -> list[str]:
    call = commands(trace, name)[0]
    return call[call.index("-argv") + 1].split(" ")


@needs_tclsh
def test_testbench_paths_resolve_from_the_vitis_run_folders(tmp_path):
    """csim runs in hls_project/solution1/csim/build, cosim in .../sim/wrapc: the paths must not depend on it."""
    out = tmp_path / "proj"
    emitted_like(out)
    trace = run_tcl(tmp_path, out / VITIS_SCRIPT, TRACE_PRELUDE)
    assert ["add_files", "-tb", "tb_data/inputs.txt"] in trace and ["add_files", "-tb", "tb_data/reference.txt"] in trace
    for step in ("csim_design", "cosim_design"):
        inputs, outputs = argv_of(trace, step)
        for path in (inputs, outputs):
            assert Path(path).is_absolute() and str(Path(path).resolve()) == path
        assert Path(inputs) == (out / "tb_data" / "inputs.txt").resolve()
        assert Path(outputs).parent == (out / "tb_data").resolve()
        # the testbench's default reference: reference.txt next to its inputs file
        assert (Path(inputs).parent / "reference.txt").is_file()
        for run_folder in ("hls_project/solution1/csim/build", "hls_project/solution1/sim/wrapc"):
            assert (out / run_folder / inputs).resolve() == Path(inputs)  # absolute: the run folder is irrelevant


@needs_tclsh
def test_testbench_paths_in_a_folder_with_spaces_are_relative_to_the_run_folder(tmp_path):
    out = tmp_path / "my project"
    emitted_like(out)
    trace = run_tcl(tmp_path, out / VITIS_SCRIPT, TRACE_PRELUDE)
    inputs, outputs = argv_of(trace, "csim_design")
    assert inputs == "../../../../tb_data/inputs.txt" and outputs == "../../../../tb_data/csim_outputs.txt"
    build = out / "hls_project" / "solution1" / "csim" / "build"
    assert (build / inputs).resolve() == (out / "tb_data" / "inputs.txt").resolve()


def vivado_prelude(board, out: Path, *, in_bytes=8, out_bytes=8, has_tlast=0, missing=(), axilite=(),
                   board_parts=()) -> str:
    rundir = out / "vivado_project" / "vivado_project.runs" / "impl_1"
    rundir.mkdir(parents=True)
    (rundir / "codesign_bd_wrapper.bit").write_bytes(b"bit")
    hwh = out / "vivado_project" / "vivado_project.gen" / "sources_1" / "bd" / "codesign_bd" / "hw_handoff"
    hwh.mkdir(parents=True)
    (hwh / "codesign_bd.hwh").write_text("<hwh/>")
    for repo in ("hls_project", "hls_tlast_marker"):
        ip = out / repo / "solution1" / "impl" / "ip"
        ip.mkdir(parents=True)
        (ip / "component.xml").write_text("<component/>")
    catalog = ["codesign:hls:mynet:1.0", "codesign:hls:codesign_tlast:1.0", "xilinx.com:ip:zynq_ultra_ps_e:3.4",
               "xilinx.com:ip:zynq_ultra_ps_e:3.5"]
    lines = [
        f"set ::missing {{{' '.join(missing)}}}",
        f"set ::axilite_slaves {{{' '.join(axilite)}}}",
        f"set ::board_parts {{{' '.join(board_parts)}}}",
        f"set ::catalog {{{' '.join(catalog)}}}",
        f"set ::prop(CONFIG.TDATA_NUM_BYTES,/mynet_0/in0) {in_bytes}",
        f"set ::prop(CONFIG.TDATA_NUM_BYTES,/mynet_0/out0) {out_bytes}",
        f"set ::prop(CONFIG.HAS_TLAST,/mynet_0/out0) {has_tlast}",
        "set ::prop(PROGRESS) 100%",
        f"set ::prop(DIRECTORY) {{{rundir}}}",
        "set ::prop(STATS.WNS) 0.125",
        "set ::prop(NAME) SEG_axi_dma_0_Reg",
        "set ::prop(OFFSET) 0x40400000",
        "set ::prop(RANGE) 0x00010000",
        f"set ::prop(CONFIG.PCW_ACT_FPGA0_PERIPHERAL_FREQMHZ) {board.clock_mhz:g}",
        f"set ::prop(CONFIG.PSU__CRL_APB__PL0_REF_CTRL__ACT_FREQMHZ) {board.clock_mhz:g}",
    ]
    return TRACE_PRELUDE + VIVADO_STUBS + "\n".join(lines) + "\n"


def dict_arg(call) -> dict:
    """The -dict list of a set_property call, as a dict (its values are Tcl words without spaces)."""
    words = [w[1:-1] if w.startswith("{") and w.endswith("}") else w for w in call[call.index("-dict") + 1].split()]
    return dict(zip(words[::2], words[1::2]))


@needs_tclsh
@pytest.mark.parametrize("name", sorted(BOARDS))
def test_vivado_dry_run(tmp_path, name):
    board = BOARDS[name]
    out = tmp_path / "out"
    render(out, board)
    trace = run_tcl(tmp_path, out / VIVADO_SCRIPT, vivado_prelude(board, out))
    assert commands(trace, "create_project")[0][1:] == ["-force", "vivado_project", str(out / "vivado_project"),
                                                       "-part", board.part]
    cells = {call[-1]: call[call.index("-vlnv") + 1] for call in commands(trace, "create_bd_cell")}
    if board.part.startswith("xc7z"):
        assert cells["ps"] == "xilinx.com:ip:processing_system7:5.5"
        clk, master, hp = "/ps/FCLK_CLK0", "/ps/M_AXI_GP0", "/ps/S_AXI_HP0"
        freq_key = "CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ"
    else:
        assert cells["ps"] == "xilinx.com:ip:zynq_ultra_ps_e:3.5"  # the newest installed version
        clk, master, hp = "/ps/pl_clk0", "/ps/M_AXI_HPM0_FPD", "/ps/S_AXI_HP0_FPD"
        freq_key = "CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ"
    assert cells["axi_dma_0"] == "xilinx.com:ip:axi_dma:7.1"
    assert cells["mynet_0"] == "codesign:hls:mynet:1.0"
    assert cells["tlast_marker_0"] == "codesign:hls:codesign_tlast:1.0"  # plain out0: no TLAST
    assert cells["smc_ctrl"] == cells["smc_mem"] == "xilinx.com:ip:smartconnect:1.0"
    assert cells["rst_ps_clk"] == "xilinx.com:ip:proc_sys_reset:5.0"
    assert cells["const_one"] == "xilinx.com:ip:xlconstant:1.1"  # bare ap_start tied high
    assert "axis_in_subset" not in cells

    settings = {}
    for call in commands(trace, "set_property"):
        if "-dict" in call:
            settings[call[-1]] = dict_arg(call)
    assert settings["/ps"][freq_key] == f"{board.clock_mhz:g}"
    dma = settings["/axi_dma_0"]
    assert dma["CONFIG.c_include_sg"] == "0" and dma["CONFIG.c_sg_length_width"] == "26"
    assert dma["CONFIG.c_m_axis_mm2s_tdata_width"] == "64" and dma["CONFIG.c_s_axis_s2mm_tdata_width"] == "64"
    assert dma["CONFIG.c_m_axi_mm2s_data_width"] == str(max(64, board.axi_width))
    assert settings["/smc_ctrl"]["CONFIG.NUM_MI"] == "2"  # DMA registers + marker

    intf = {tuple(call[1:]) for call in commands(trace, "connect_bd_intf_net")}
    assert ("/axi_dma_0/M_AXIS_MM2S", "/mynet_0/in0") in intf
    assert ("/mynet_0/out0", "/tlast_marker_0/in0") in intf
    assert ("/tlast_marker_0/out0", "/axi_dma_0/S_AXIS_S2MM") in intf
    assert (master, "/smc_ctrl/S00_AXI") in intf
    assert ("/smc_ctrl/M00_AXI", "/axi_dma_0/S_AXI_LITE") in intf
    assert ("/smc_ctrl/M01_AXI", "/tlast_marker_0/s_axi_control") in intf
    assert ("/axi_dma_0/M_AXI_MM2S", "/smc_mem/S00_AXI") in intf
    assert ("/axi_dma_0/M_AXI_S2MM", "/smc_mem/S01_AXI") in intf
    assert ("/smc_mem/M00_AXI", hp) in intf

    nets = {call[1]: call[2:] for call in commands(trace, "connect_bd_net")}
    for pin in ("/mynet_0/ap_clk", "/tlast_marker_0/ap_clk", "/axi_dma_0/m_axi_mm2s_aclk",
                "/smc_mem/aclk", "/rst_ps_clk/slowest_sync_clk"):
        assert pin in nets[clk]
    for pin in ("/mynet_0/ap_rst_n", "/tlast_marker_0/ap_rst_n", "/axi_dma_0/axi_resetn"):
        assert pin in nets["/rst_ps_clk/peripheral_aresetn"]
    assert nets["/const_one/dout"] == ["/mynet_0/ap_start"]

    order = [call[0] for call in trace]
    for earlier, later in [("assign_bd_address", "validate_bd_design"), ("validate_bd_design", "make_wrapper"),
                           ("make_wrapper", "launch_runs")]:
        assert order.index(earlier) < order.index(later)
    runs = commands(trace, "launch_runs")
    assert runs[0] == ["launch_runs", "synth_1", "-jobs", "4"]
    assert runs[1] == ["launch_runs", "impl_1", "-to_step", "write_bitstream", "-jobs", "4"]
    assert (out / "mynet.bit").read_bytes() == b"bit"
    assert (out / "mynet.hwh").read_text() == "<hwh/>"
    assert "SEG_axi_dma_0_Reg" in (out / "reports" / "address_map.txt").read_text()


@needs_tclsh
def test_vivado_dry_run_variants(tmp_path):
    """Odd widths get a subset converter and a padding marker; an s_axilite control goes on the bus;
    a board part is applied when installed; settings come from the environment."""
    board = BOARDS["pynq-z2"]
    out = tmp_path / "out"
    render(out, board, in_width=24, out_width=20, in_bits=8, out_bits=10, out_count=4)
    prelude = vivado_prelude(board, out, in_bytes=3, out_bytes=3, has_tlast=1, missing=["/mynet_0/ap_start"],
                             axilite=["/mynet_0/s_axi_control"], board_parts=["tul.com.tw:pynq-z2:part0:1.0"])
    trace = run_tcl(tmp_path, out / VIVADO_SCRIPT, prelude, env={"CODESIGN_JOBS": "2", "CODESIGN_DO_BITSTREAM": "0"})
    assert ["set_property", "board_part", "tul.com.tw:pynq-z2:part0:1.0", "project"] in trace
    automation = commands(trace, "apply_bd_automation")[0]
    assert 'apply_board_preset "1"' in automation[automation.index("-config") + 1]
    cells = {call[-1]: call[call.index("-vlnv") + 1] for call in commands(trace, "create_bd_cell")}
    assert cells["axis_in_subset"] == "xilinx.com:ip:axis_subset_converter:1.1"
    assert "tlast_marker_0" in cells  # 24-bit out0 is not a DMA width, even with TLAST
    assert "const_one" not in cells
    settings = {call[-1]: dict_arg(call) for call in commands(trace, "set_property") if "-dict" in call}
    assert settings["/axis_in_subset"] == {"CONFIG.S_TDATA_NUM_BYTES": "4", "CONFIG.M_TDATA_NUM_BYTES": "3",
                                           "CONFIG.TDATA_REMAP": "tdata[23:0]"}
    assert settings["/axi_dma_0"]["CONFIG.c_m_axis_mm2s_tdata_width"] == "32"
    assert settings["/smc_ctrl"]["CONFIG.NUM_MI"] == "3"
    intf = {tuple(call[1:]) for call in commands(trace, "connect_bd_intf_net")}
    assert ("/smc_ctrl/M01_AXI", "/mynet_0/s_axi_control") in intf
    assert ("/axi_dma_0/M_AXIS_MM2S", "/axis_in_subset/S_AXIS") in intf
    assert ("/axis_in_subset/M_AXIS", "/mynet_0/in0") in intf
    assert "launch_runs" not in [call[0] for call in trace]
    assert (out / "mynet.hwh").is_file() and not (out / "mynet.bit").exists()


@needs_tclsh
def test_vivado_dry_run_direct_tlast(tmp_path):
    """An out0 that already carries TLAST at a DMA width goes straight to the DMA."""
    board = BOARDS["zcu104"]
    out = tmp_path / "out"
    render(out, board)
    trace = run_tcl(tmp_path, out / VIVADO_SCRIPT, vivado_prelude(board, out, has_tlast=1),
                    env={"CODESIGN_JOBS": "2"})
    assert "tlast_marker_0" not in {call[-1] for call in commands(trace, "create_bd_cell")}
    assert ["connect_bd_intf_net", "/mynet_0/out0", "/axi_dma_0/S_AXIS_S2MM"] in trace
    assert ["launch_runs", "synth_1", "-jobs", "2"] in trace
    assert not (out / "reports" / "timing_summary.rpt").exists()  # report_* is stubbed: nothing written


@needs_tclsh
def test_vivado_dry_run_rejects_width_mismatch(tmp_path):
    board = BOARDS["zc706"]
    out = tmp_path / "out"
    render(out, board)
    harness = tmp_path / "harness.tcl"
    harness.write_text(vivado_prelude(board, out, in_bytes=4) + f"\nsource {{{out / VIVADO_SCRIPT}}}\n")
    result = subprocess.run([TCLSH, str(harness), str(tmp_path / "trace.txt")], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0
    assert "render them again" in result.stderr


# ---------------------------------------------------------------- the PYNQ driver against a fake pynq

def load_driver(path: Path):
    spec = importlib.util.spec_from_file_location(f"codesign_driver_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_driver_pack_roundtrip(tmp_path):
    render(tmp_path, BOARDS["pynq-z2"], in_width=24, out_width=20, in_bits=8, out_bits=10, out_count=5)
    driver = load_driver(tmp_path / DRIVER)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(3, 2, 4))
    raw = driver.pack_frames(frames, 8, 24, 32)
    assert raw.shape == (3, 3 * 4)  # 8 elements -> 3 beats of 3 -> 3 words of 4 bytes
    assert list(raw[0, :4]) == [frames[0, 0, 0], frames[0, 0, 1], frames[0, 0, 2], 0]
    back = driver.unpack_frames(raw, 8, 8, 24, 32, signed=False)
    assert np.array_equal(back, frames.reshape(3, -1))
    signed = rng.integers(-512, 512, size=(4, 7))
    raw = driver.pack_frames(signed, 10, 20, 32)
    assert np.array_equal(driver.unpack_frames(raw, 7, 10, 20, 32, signed=True), signed)
    wide = np.array([[-1, 2**62, -(2**63)]], dtype=np.int64)
    assert np.array_equal(driver.unpack_frames(driver.pack_frames(wide, 64, 64, 64), 3, 64, 64, 64, True), wide)
    with pytest.raises(ValueError, match="range"):
        driver.pack_frames(np.array([[256]]), 8, 24, 32)
    with pytest.raises(ValueError):
        driver.pack_frames(np.array([[0.5]]), 8, 24, 32)


class FakeBuffer(np.ndarray):
    def flush(self):
        pass

    def invalidate(self):
        pass

    def freebuffer(self):
        pass


class FakeDma:
    """Plays the accelerator: each input frame of 8-bit pixels -> out_count int32 results."""

    def __init__(self, in_frame_bytes, out_count):
        self.in_frame_bytes, self.out_count = in_frame_bytes, out_count
        self.pending: list[bytes] = []
        self.target = None
        self.sendchannel = types.SimpleNamespace(transfer=self._send, wait=lambda: None)
        self.recvchannel = types.SimpleNamespace(transfer=self._arm, wait=self._receive)

    def _send(self, buf):
        data = bytes(buf)
        self.pending += [data[i:i + self.in_frame_bytes] for i in range(0, len(data), self.in_frame_bytes)]

    def _arm(self, buf):
        assert self.target is None, "receive armed twice"
        self.target = buf

    def _receive(self):
        pixels = np.frombuffer(self.pending.pop(0), dtype=np.uint8).astype(np.int64)
        results = np.array([pixels.sum() - 1000 * k for k in range(self.out_count)], dtype="<i4")
        raw = results.tobytes()
        self.target[:] = np.frombuffer(raw + bytes(len(self.target) - len(raw)), dtype=np.uint8)
        self.target = None


def test_driver_runs_against_fake_pynq(tmp_path, monkeypatch):
    render(tmp_path, BOARDS["ultra96"], in_width=64, out_width=64, in_bits=8, out_bits=32, out_count=3)
    driver = load_driver(tmp_path / DRIVER)
    frames = np.random.default_rng(1).integers(0, 256, size=(5, 4, 4))
    dma = FakeDma(in_frame_bytes=16, out_count=3)
    writes = []

    class FakeOverlay:
        def __init__(self, bitfile, download=True):
            assert bitfile == "mynet.bit"
            self.axi_dma_0 = dma
            self.ip_dict = {"axi_dma_0": {"phys_addr": 0xA0000000, "addr_range": 0x10000},
                            "mynet_0": {"phys_addr": 0xA0010000, "addr_range": 0x10000},
                            "tlast_marker_0": {"phys_addr": 0xA0020000, "addr_range": 0x10000,
                                               "registers": {"beats": {"address_offset": 0x10}}}}

    def fake_mmio(base, length):
        return types.SimpleNamespace(write=lambda offset, value: writes.append((base, offset, value)))

    fake = types.ModuleType("pynq")
    fake.Overlay = FakeOverlay
    fake.MMIO = fake_mmio
    fake.allocate = lambda shape, dtype: np.zeros(shape, dtype=dtype).view(FakeBuffer)
    monkeypatch.setitem(sys.modules, "pynq", fake)

    accelerator = driver.Accelerator()
    assert writes == [(0xA0010000, 0x00, 0x81), (0xA0020000, 0x10, 2)]  # start; 3 x 32-bit in 2 beats
    outputs = accelerator.run(frames)
    sums = frames.reshape(5, -1).sum(axis=1)
    assert np.array_equal(outputs, np.stack([sums - 1000 * k for k in range(3)], axis=1))
    assert not dma.pending and dma.target is None

    np.save(tmp_path / "in.npy", frames)
    dma.pending.clear()
    assert driver.main([str(tmp_path / "in.npy"), "--output", str(tmp_path / "out.npy")]) == 0
    assert np.array_equal(np.load(tmp_path / "out.npy"), outputs)


def test_driver_needs_out_count(tmp_path, monkeypatch):
    render(tmp_path, BOARDS["kv260"])
    driver = load_driver(tmp_path / DRIVER)
    assert driver.OUT_COUNT is None
    fake = types.ModuleType("pynq")
    fake.MMIO = fake.Overlay = None
    monkeypatch.setitem(sys.modules, "pynq", fake)
    with pytest.raises(ValueError, match="out_count"):
        driver.Accelerator()


# ---------------------------------------------------------------- the TLAST marker, compiled with g++

AP_AXI_SDATA_STANDIN = """\
// Minimal stand-in for Xilinx's ap_axi_sdata.h (only what the marker uses).
#pragma once
#include <ap_int.h>
template <int D, int U, int TI, int TD> struct ap_axiu {
    ap_uint<D> data;
    ap_uint<(D + 7) / 8> keep;
    ap_uint<(D + 7) / 8> strb;
    ap_uint<1> last;
};
"""

MARKER_TB = """\
#include <cstdio>
#include "codesign_tlast.cpp"
int main() {
    hls::stream<ap_uint<20> > in0;
    hls::stream<codesign_dma_word> out0;
    for (int frame = 0; frame < 2; frame++) {
        for (int i = 0; i < 3; i++) in0.write(ap_uint<20>(0xFFFFF - 7 * i - frame));
        codesign_tlast(in0, out0, 3);
    }
    for (int k = 0; k < 6; k++) {
        codesign_dma_word w = out0.read();
        std::printf("%u %d %u\\n", (unsigned)w.data, (int)w.last, (unsigned)w.keep);
    }
    return out0.empty() && in0.empty() ? 0 : 1;
}
"""


@pytest.mark.skipif(GXX is None, reason="g++ is not installed")
def test_tlast_marker_compiles_and_marks_frames(tmp_path):
    ap_types = Path(importlib.util.find_spec("hls4ml").submodule_search_locations[0]) / "templates/vivado/ap_types"
    if not (ap_types / "ap_int.h").is_file():
        pytest.skip("hls4ml's ap_types headers are not installed")
    render(tmp_path, BOARDS["pynq-z2"], in_width=24, out_width=20, in_bits=8, out_bits=10, out_count=6)
    (tmp_path / "ap_axi_sdata.h").write_text(AP_AXI_SDATA_STANDIN)
    (tmp_path / "tb.cpp").write_text(MARKER_TB)
    exe = tmp_path / "tb"
    build = subprocess.run([GXX, "-std=c++14", "-w", "-I", str(tmp_path), "-I", str(ap_types), str(tmp_path / "tb.cpp"),
                            "-o", str(exe)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    rows = [tuple(int(x) for x in line.split()) for line in run.stdout.split("\n") if line]
    expected_data = [0xFFFFF - 7 * i - frame for frame in range(2) for i in range(3)]
    assert [r[0] for r in rows] == expected_data  # zero-extended to 32 bits
    assert [r[1] for r in rows] == [0, 0, 1, 0, 0, 1]
    assert all(r[2] == 0xF for r in rows)


# ---------------------------------------------------------------- the tiled engine

TILED_MAPS = {"input": MapLayout(8, 8, 3, IntFmt(8, False), 4, 64).context(),
              "output": MapLayout(1, 1, 10, IntFmt(16, True), 4, 64, base=96).context()}


def render_tiled(root: Path, board) -> list[Path]:
    tiled = TiledScripts((64, 128, 64), 4, 200, 50, TILED_MAPS["input"], TILED_MAPS["output"])
    return render(root, board, tb_args="data/input.bin", out_count=10, tiled=tiled)


@needs_tclsh
@pytest.mark.parametrize("name", ["pynq-z2", "zcu104"])
def test_tiled_vivado_dry_run_connects_the_engine_masters_to_the_hp_port(tmp_path, name):
    board = BOARDS[name]
    out = tmp_path / "out"
    written = {p.name for p in render_tiled(out, board)}
    assert MARKER_SOURCE not in written and {VITIS_SCRIPT, VIVADO_SCRIPT, "driver.py"} <= written
    assert check_scripts(out, board=board) == []
    trace = run_tcl(tmp_path, out / VIVADO_SCRIPT, vivado_prelude(board, out))
    cells = {call[-1]: call[call.index("-vlnv") + 1] for call in commands(trace, "create_bd_cell")}
    assert "axi_dma_0" not in cells and "tlast_marker_0" not in cells
    assert cells["mynet_0"] == "codesign:hls:mynet:1.0"
    settings = {call[-1]: dict_arg(call) for call in commands(trace, "set_property") if "-dict" in call}
    assert settings["/smc_mem"] == {"CONFIG.NUM_SI": "3", "CONFIG.NUM_MI": "1"}
    hp, master = ("/ps/S_AXI_HP0", "/ps/M_AXI_GP0") if board.part.startswith("xc7z") else \
        ("/ps/S_AXI_HP0_FPD", "/ps/M_AXI_HPM0_FPD")
    intf = {tuple(call[1:]) for call in commands(trace, "connect_bd_intf_net")}
    for k, bundle in enumerate(("gmem_in", "gmem_w", "gmem_out")):
        assert (f"/mynet_0/m_axi_{bundle}", f"/smc_mem/S{k:02d}_AXI") in intf
    assert ("/smc_mem/M00_AXI", hp) in intf
    assert (master, "/smc_ctrl/S00_AXI") in intf and ("/smc_ctrl/M00_AXI", "/mynet_0/s_axi_control") in intf
    nets = {call[1]: call[2:] for call in commands(trace, "connect_bd_net")}
    assert "/mynet_0/ap_rst_n" in nets["/rst_ps_clk/peripheral_aresetn"]
    assert "assign_bd_address" in [call[0] for call in trace]
    vitis = (out / VITIS_SCRIPT).read_text()
    assert "codesign_tlast" not in vitis and "m_axi_gmem_w" in vitis


def test_tiled_driver_lays_out_maps_as_the_engine(tmp_path):
    """The driver's packing equals the backend's layout (MapLayout.pack), and its unpacking inverts it."""
    render_tiled(tmp_path, BOARDS["pynq-z2"])
    spec = importlib.util.spec_from_file_location("tiled_driver", tmp_path / "driver.py")
    driver = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(driver)
    assert driver.ACT_WORDS == 200 and driver.TN == 4
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 256, 8 * 8 * 3)
    bits = np.zeros(200 * 64, dtype=np.uint8)
    driver.write_map(bits, driver.INPUT_MAP, codes)
    words = np.packbits(bits, bitorder="little").view("<u8")
    layout = MapLayout(8, 8, 3, IntFmt(8, False), 4, 64)
    assert [int(w) for w in words[:layout.words]] == layout.pack(codes)
    logits = rng.integers(-3000, 3000, 10)
    driver.write_map(bits, driver.OUTPUT_MAP, logits)
    assert driver.read_map(bits, driver.OUTPUT_MAP).tolist() == logits.tolist()
