"""The tiled engine's HLS (hls_templates/kernels/tiled_engine.h): emitted from a QONNX model and a
tiled Design, C-simulated bit-exact against the same integer reference as the dataflow template,
with each layer's pipelined-loop iterations (counted in C-simulation) equal to the cost model's
cycles for that layer. Tiles that do not divide the maps or the channels (edge tiles) included."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from codesign.backend.csim import ap_types_dir, read_manifest
from codesign.backend.emit import emit
from codesign.backend.lower import lower_model, network_of
from codesign.backend.scripts import check_scripts
from hw_space.boards import load_board
from hw_space.design import Design, Engine, Hardware, load_design
from hw_space.errors import CodesignError
from hw_space.model import evaluate_design

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="C-simulation needs g++")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _model(tmp_path: Path, seed: int = 3, **kw) -> Path:
    from test_backend_models import HandNet, export, randomize

    return export(randomize(HandNet(**kw), seed), tmp_path / "m.onnx")


def _design(path: Path, engine: Engine, board: str = "pynq-z2") -> Design:
    return Design(network=network_of(lower_model(path)), hardware=Hardware(board=board, template="tiled",
                                                                            engine=engine))


def counted_run(project: Path) -> tuple[int, dict[str, int]]:
    """Compile the project with every pipelined loop counting its iterations, run all its test
    vectors against the reference; (testbench exit code: 0 bit-exact, 2 mismatching; iterations per layer)."""
    files = read_manifest(project)["files"]
    sources = [f for f in files["sources"] + files["testbench"] if f.endswith(".cpp")]
    subprocess.run(["g++", "-std=c++14", "-O0", "-DCODESIGN_COUNT_ITERATIONS", "-Isrc", "-isystem", str(ap_types_dir()),
                    *sources, "-o", "counted"], cwd=project, check=True, capture_output=True, text=True)
    run = subprocess.run(["./counted", files["inputs"], "out.txt", files["reference"]], cwd=project,
                         capture_output=True, text=True)
    names = [layer["layer"] for layer in read_manifest(project)["layers"]]
    counts = [int(n) for n in re.findall(r"^tb: layer \d+ iterations (\d+)$", run.stdout, re.M)]
    assert len(counts) == len(names), run.stdout + run.stderr
    return run.returncode, dict(zip(names, counts))


def model_cycles(design: Design) -> dict[str, int]:
    """The cost model's cycles per layer of a tiled design."""
    result = evaluate_design(design, load_board(design.hardware.board))
    return {st.name: int(st.cycles[0]) for st in result.stages if st.kind in ("tiled", "pool")}


def check(path: Path, engine: Engine, out: Path) -> dict[str, int]:
    """Emit, C-simulate (counting) and compare with the reference and the model; the counts."""
    design = _design(path, engine)
    emit(path, out, design=design, samples=12)
    code, counts = counted_run(out)
    assert code == 0, f"not bit-exact on {engine}"
    assert counts == model_cycles(design)
    return counts


@pytest.fixture(scope="module")
def small_model(tmp_path_factory) -> Path:
    # 6 and 12 channels on Tn 4 (padded lanes), 10 logits on Tm 8 (an edge output tile)
    return _model(tmp_path_factory.mktemp("model"), wbits=(4, 2, 2, 4), abits=(4, 2, 3), channels=(6, 12))


EDGE_ENGINE = Engine(8, 4, 3, 5, 64, 128, 64)  # Tr x Tc = 3 x 5 on 8x8 and 4x4 maps: edge tiles


@pytest.fixture(scope="module")
def edge_project(small_model, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("edge") / "hls"
    emit(small_model, out, design=_design(small_model, EDGE_ENGINE), samples=12)
    return out


def test_edge_tiles_are_bit_exact_and_take_the_model_cycles(edge_project, small_model):
    # a dense layer reading the map's pixels as groups of channels, wider weight port
    code, counts = counted_run(edge_project)
    assert code == 0, "not bit-exact"
    assert counts == model_cycles(_design(small_model, EDGE_ENGINE))
    assert set(counts) == {"conv0", "pool0", "conv1", "fc0", "fc1"}
    manifest = read_manifest(edge_project)
    assert manifest["template"] == "tiled" and manifest["engine"]["tm"] == 8


# (HandNet options, engine): XNOR layers, bipolar input with padding, signed activations, stride 2,
# wide weight ports, Tm = Tn, a tile larger than every map
SLOW_CASES = [
    ({}, Engine(16, 4, 8, 8)),
    ({}, Engine(8, 8, 2, 3, weight_port=128)),
    ({"wbits": (1, 1, 1, 1), "abits": (1, 1, 1), "padding": (1, 0)}, Engine(8, 4, 3, 3)),
    ({"wbits": (1, 1, 1, 1), "abits": (1, 1, 1), "padding": (1, 0), "channels": (8, 6)}, Engine(16, 8, 8, 8, 32, 32, 32)),
    ({"in_kind": "bipolar", "wbits": (2, 1, 2, 4)}, Engine(4, 2, 5, 2)),
    ({"signed": True, "abits": (3, 4, 2)}, Engine(16, 16, 4, 4, 128, 64, 128)),
    ({"stride": (1, 2), "padding": (0, 1)}, Engine(12, 4, 7, 7, 16, 16, 16)),
]


@pytest.mark.slow
@pytest.mark.parametrize("n", range(len(SLOW_CASES)))
def test_tiled_engine_variants_are_bit_exact(tmp_path, n):
    options, engine = SLOW_CASES[n]
    check(_model(tmp_path, seed=n, **options), engine, tmp_path / "hls")


def test_engine_rules_are_one_line_errors(tmp_path, small_model):
    path = small_model
    with pytest.raises(CodesignError, match="tm .6. must be a multiple of tn .4."):
        emit(path, tmp_path / "a", design=_design(path, Engine(tm=6, tn=4, tr=4, tc=4)))
    with pytest.raises(CodesignError, match="input .64. and output .32. must be equal"):
        emit(path, tmp_path / "b", design=_design(path, Engine(tm=8, tn=4, tr=4, tc=4, output_port=32)))
    with pytest.raises(CodesignError, match="must fit one port word"):
        emit(path, tmp_path / "c", design=_design(path, Engine(8, 4, 4, 4, 8, 8, 8)))


def test_emitted_engine_has_the_ports_buffers_and_pragmas(edge_project):
    src = edge_project / "src"
    top = (src / "codesign_top.cpp").read_text()
    for port, bundle, bits in (("act_in", "gmem_in", 64), ("weights", "gmem_w", 128), ("act_out", "gmem_out", 64)):
        assert f"mode=m_axi port={port} bundle={bundle} offset=slave" in top
        assert re.search(rf"port={port} .* max_widen_bitwidth={bits}\n", top)
    assert "const ap_uint<64> *act_in, const ap_uint<128> *weights" in top and "ap_uint<64> *act_out" in top
    assert "codesign::tiled_engine<8, 4," in top
    kernels = (src / "codesign_kernels.h").read_text()
    assert "#pragma HLS PIPELINE II=1" in kernels and "variable=wbuf complete dim=3" in kernels
    assert "mvau(" not in kernels  # only the engine's kernel
    params = (src / "params_codesign_top.h").read_text()
    assert params.count("// conv") == 2 and "static const codesign::TiledLayer codesign_top_layers[5]" in params
    weights = (edge_project / "tb_data" / "weights.hex").read_text().split()
    assert all(w.startswith("0x") and len(w) == 2 + 128 // 4 for w in weights)
    image = np.load(edge_project / "tb_data" / "weights.npy")
    assert image.dtype == np.uint8 and len(image) == len(weights) * 16
    assert check_scripts(edge_project) == []  # vitis_hls.tcl, vivado_bd.tcl, driver.py of the engine


@pytest.mark.slow
@pytest.mark.parametrize("engine", [Engine(16, 4, 8, 8), Engine(8, 2, 3, 5)])
def test_digits_tiled_example_trains_emits_and_verifies(tmp_path, engine):
    from codesign.cli import main
    from hw_space.design import save_design

    design = tmp_path / "design.yaml"
    save_design(load_design(EXAMPLES / "digits_tiled.yaml").with_hardware(engine=engine), design)
    train, out = tmp_path / "train", tmp_path / "hls"
    assert main(["train", str(design), "--dataset", "digits", "--epochs", "1", "--out", str(train)]) == 0
    assert main(["emit", "--qonnx", str(train / "model.onnx"), "--design", str(train / "design.yaml"),
                 "--test-data", str(train / "test_data.npz"), "--out", str(out)]) == 0
    assert main(["verify", str(out)]) == 0
    code, counts = counted_run(out)
    assert code == 0 and counts == model_cycles(load_design(train / "design.yaml"))


@pytest.mark.slow
def test_search_on_pynq_z2_picks_a_tiled_design_for_a_network_too_large_for_dataflow(tmp_path):
    """examples/spaces/space_pynq_z2_large.yaml: no dataflow folding fits pynq-z2 (8.4 Mbit of weights), so the
    search must pick the tiled template; the chosen design is emitted and verified bit-exact."""
    import json

    from codesign.cli import main
    from hw_space.folding import fold

    space = EXAMPLES / "spaces" / "space_pynq_z2_large.yaml"
    out = tmp_path / "run"
    assert main(["search", "--board", "pynq-z2", "--space", str(space), "--trials", "4", "--epochs", "1",
                 "--out", str(out)]) == 0
    best = load_design(out / "best" / "design.yaml")
    assert best.hardware.template == "tiled"
    assert json.loads((out / "best" / "verify.json").read_text())["bit_exact"] is True
    assert "| tiled |" in (out / "report.md").read_text()
    with pytest.raises(CodesignError, match="no folding of this network fits"):
        fold(best.with_hardware(template="dataflow", engine=None, layers={}), load_board("pynq-z2"))
