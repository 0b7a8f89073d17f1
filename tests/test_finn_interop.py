"""`codesign export-finn`, and FINN itself accepting the export.

The first tests run everywhere (no FINN needed). The last ones run only where the FINN reference
environment exists (scripts/finn_reference.sh; FINN_VENV or <repo>/.finn-venv): they run FINN's
estimate-only build on our export in that environment's Python and check that FINN accepts it, applies
our folding, and that every MVAU's expected cycles equal ours.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from codesign.backend.finn_export import FifoStage, build_config, finn_nodes, folding_config, readme
from hw_space.boards import load_board
from hw_space.design import load_design

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
FINN_PYTHON = Path(os.environ.get("FINN_VENV", REPO / ".finn-venv")) / "bin" / "python"


def test_cnv_node_names_follow_finn():
    # names as finn-plus 1.6.1 gives them after SpecializeLayers (checked against its flow on this design)
    design = load_design(EXAMPLES / "cnv_w1a1.yaml")
    names = [n.name for n in finn_nodes(design)]
    assert names == [
        "ConvolutionInputGenerator_rtl_0", "MVAU_hls_0", "ConvolutionInputGenerator_rtl_1", "MVAU_hls_1",
        "ConvolutionInputGenerator_rtl_2", "Pool_hls_0", "ConvolutionInputGenerator_rtl_3", "MVAU_hls_2",
        "ConvolutionInputGenerator_rtl_4", "MVAU_hls_3", "ConvolutionInputGenerator_rtl_5", "Pool_hls_1",
        "ConvolutionInputGenerator_rtl_6", "MVAU_hls_4", "ConvolutionInputGenerator_rtl_7", "MVAU_hls_5",
        "MVAU_hls_6", "MVAU_hls_7", "MVAU_hls_8"]
    cfg = folding_config(finn_nodes(design))
    assert cfg["MVAU_hls_0"] == {"PE": 16, "SIMD": 3, "ram_style": "auto", "mem_mode": "internal_decoupled", "resType": "auto"}
    assert cfg["ConvolutionInputGenerator_rtl_1"] == {"SIMD": 32}  # largest divisor of 64 at most conv1's SIMD 32
    assert cfg["Pool_hls_0"] == {"PE": 64} and cfg["ConvolutionInputGenerator_rtl_2"] == {"SIMD": 64}


def test_padding_and_rtl_mvau_names():
    # digits_w4a4: padded convs get an FMPadding node; the last layer (4-bit weights and inputs, no
    # thresholds) is FINN's DSP-based MVAU_rtl, which has no resType
    design = load_design(EXAMPLES / "digits_w4a4.yaml")
    nodes = finn_nodes(design)
    assert [n.name for n in nodes] == [
        "FMPadding_rtl_0", "ConvolutionInputGenerator_rtl_0", "MVAU_hls_0", "ConvolutionInputGenerator_rtl_1", "Pool_hls_0",
        "FMPadding_rtl_1", "ConvolutionInputGenerator_rtl_2", "MVAU_hls_1", "ConvolutionInputGenerator_rtl_3", "Pool_hls_1",
        "MVAU_hls_2", "MVAU_rtl_0"]
    assert "resType" not in nodes[-1].attrs


def test_fifo_depths_map_onto_nodes():
    design = load_design(EXAMPLES / "cnv_w1a1.yaml")
    fifos = [FifoStage("input", "input", 7), FifoStage("conv0", "conv0_swg", 40), FifoStage("conv0", "conv0_dwc", 99, active=False),
             FifoStage("conv0", "conv0", 32), FifoStage("conv1", "conv1_in_dwc", 50), FifoStage("conv1", "conv1_swg", 470),
             FifoStage("pool0", "pool0_rows", 9), FifoStage("pool0", "pool0", 3)]
    cfg = folding_config(finn_nodes(design, fifos))
    assert cfg["ConvolutionInputGenerator_rtl_0"]["inFIFODepths"] == [7]
    assert cfg["ConvolutionInputGenerator_rtl_0"]["outFIFODepths"] == [40]  # the inactive converter's FIFO is ignored
    assert cfg["MVAU_hls_0"]["outFIFODepths"] == [50]  # conv1's input converter FIFO merges into it (deeper wins)
    assert cfg["ConvolutionInputGenerator_rtl_1"]["outFIFODepths"] == [470]
    assert cfg["ConvolutionInputGenerator_rtl_2"]["outFIFODepths"] == [9]  # the pool's row-pass FIFO
    assert cfg["Pool_hls_0"]["outFIFODepths"] == [3]
    assert cfg["MVAU_hls_8"]["outFIFODepths"] == [2]


def test_build_configs():
    design = load_design(EXAMPLES / "cnv_w1a1.yaml")
    est = build_config(design, load_board("pynq-z1"), ["step_qonnx_to_finn"], estimate_only=True)
    assert est["board"] == "Pynq-Z1" and est["shell_flow_type"] == "vivado_zynq"
    assert est["synth_clk_period_ns"] == 10.0 and est["generate_outputs"] == ["estimate_reports"]
    full = build_config(design, load_board("zc706"), ["step_qonnx_to_finn"], estimate_only=False)
    assert "board" not in full and full["fpga_part"] == "xc7z045ffg900-2"  # ZC706 is not one of FINN's boards
    assert "bitfile" not in full["generate_outputs"] and "out_of_context_synth" in full["generate_outputs"]
    full = build_config(design, load_board("pynq-z1"), ["step_qonnx_to_finn"], estimate_only=False)
    assert "bitfile" in full["generate_outputs"]


def test_export_readme_says_what_finn_builds_of_the_weight_layout():
    # FINN's MVAU has one weight memory per layer (our `wide`): the README names the per_pe layers
    cyber = load_design(EXAMPLES / "calibration" / "cyber_mlp.yaml")  # every layer wide
    text = readme(cyber, load_board("pynq-z1"), finn_nodes(cyber))
    assert "Every layer of this design is `wide`" in text
    lfc = load_design(EXAMPLES / "calibration" / "lfc_w1a1.yaml")  # the default, per_pe
    text = readme(lfc, load_board("pynq-z1"), finn_nodes(lfc))
    assert "fc0, fc1, fc2, fc3 use `per_pe` here" in text and "Every layer" not in text


def test_export_finn_cli(tmp_path):
    pytest.importorskip("brevitas")
    from codesign.cli import main
    from quant.build import build
    from quant.export import export_qonnx

    design = load_design(EXAMPLES / "digits_w4a4.yaml")
    qonnx = tmp_path / "model.onnx"
    export_qonnx(build(design.network), design.network, qonnx)
    out = tmp_path / "finn"
    assert main(["export-finn", "--qonnx", str(qonnx), "--design", str(EXAMPLES / "digits_w4a4.yaml"), "--out", str(out),
                 "--board", "pynq-z1"]) == 0
    for name in ("model.onnx", "folding_config.json", "dataflow_build_config.json", "dataflow_build_config_estimates.json",
                 "postprocess.json", "design.yaml", "README.md"):
        assert (out / name).is_file(), name
    import onnx

    proto = onnx.load(str(out / "model.onnx"))
    ops = [n.op_type for n in proto.graph.node]
    assert ops[0] == "Mul"  # the input quantizer became the integer input times its scale
    ann = {a.tensor_name: a.quant_parameter_tensor_names[0].value for a in proto.graph.quantization_annotation}
    assert ann[proto.graph.input[0].name] == "UINT8"
    assert ops[-1] == "MatMul"  # the per-class scale and bias went to postprocess.json
    post = json.loads((out / "postprocess.json").read_text())
    assert len(post["scale"]) == len(post["bias"]) == 10
    steps = json.loads((out / "dataflow_build_config_estimates.json").read_text())["steps"]
    assert steps[-1] == "step_generate_estimate_reports"
    # a design of another network is refused (one line, exit 2)
    assert main(["export-finn", "--qonnx", str(qonnx), "--design", str(EXAMPLES / "cnv_w1a1.yaml"),
                 "--out", str(tmp_path / "other")]) == 2


# ---------------------------------------------------------------- FINN itself

finn_env = pytest.mark.skipif(not FINN_PYTHON.is_file(), reason=f"no FINN reference environment at {FINN_PYTHON.parent.parent} "
                              "(bash scripts/finn_reference.sh builds it)")


@finn_env
@pytest.mark.parametrize("case", ["tfc_w1a1", "digits_w4a4"])
def test_finn_accepts_export_and_mvau_cycles_agree(case, tmp_path):
    result = tmp_path / "result.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    fold = [] if case == "tfc_w1a1" else ["--no-fold"]  # FINN's SetFolding vs ours: on the small TFC only
    proc = subprocess.run([str(FINN_PYTHON), str(REPO / "benchmarks" / "finn_crosscheck.py"), "--cases", case, "--no-speed",
                           *fold, "--out", str(tmp_path / "work"), "--json", str(result)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert result.is_file(), proc.stdout[-2000:] + proc.stderr[-2000:]
    (res,) = json.loads(result.read_text())["results"]
    assert "error" not in res, res["error"]
    cmp = res["comparison"]
    assert cmp["folding_applied"]
    mvau = [r for r in cmp["rows"] if r["node"].startswith("MVAU")]
    assert mvau and all(r["finn_cycles"] == r["our_cycles"] for r in mvau), mvau
    ex = res["execution"]  # FINN's Python execution of its imported and its streamlined graph vs our integer reference
    assert ex["imported"]["argmax_agree"] == ex["streamlined"]["argmax_agree"] == ex["samples"], ex
    assert proc.returncode == 0, proc.stdout[-2000:]
    if case == "tfc_w1a1":
        # toward the same cycle target, by FINN's own estimator: our fold reaches it and costs no more
        # than FINN's SetFolding (measured: 8,333 LUT / 1 BRAM18 against 8,360 / 30)
        fc = res["fold_comparison"]
        ours, theirs = fc["rows"]["codesign fold"]["finn"], fc["rows"]["FINN SetFolding"]["finn"]
        assert ours["cycles"] <= fc["target_cycles"] and theirs["cycles"] <= fc["target_cycles"], fc
        assert ours["LUT"] <= 1.05 * theirs["LUT"] and ours["BRAM18"] <= theirs["BRAM18"], fc
