"""End to end: emit an HLS project, compile its testbench with g++ against the ap_types headers,
and check the C-simulation bit for bit against the integer reference."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from brevitas.export import export_qonnx
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from brevitas.quant import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst
from test_backend_models import FixedUint8Input, HandNet, digits, export, randomize, train_briefly
from torch import nn

from codesign.backend.csim import CsimError, verify
from codesign.backend.emit import emit
from codesign.backend.lower import lower_model, network_of
from codesign.cli import main
from hw_space.design import Design, Hardware, LayerFold, save_design
from hw_space.errors import CodesignError

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="C-simulation needs g++")


class ByHand(nn.Module):
    """A Brevitas model written outside the tool's builder: 8-bit input, a W4A4 conv with BatchNorm
    and max-pool, a binary conv, a 3-bit dense layer and a 4-bit classifier."""

    def __init__(self):
        super().__init__()
        self.quant_in = QuantIdentity(act_quant=FixedUint8Input, return_quant_tensor=True)
        self.conv1 = QuantConv2d(1, 8, 3, padding=1, weight_bit_width=4, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu1 = QuantReLU(bit_width=4, return_quant_tensor=True)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = QuantConv2d(8, 16, 3, weight_quant=SignedBinaryWeightPerTensorConst, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.sign2 = QuantIdentity(act_quant=SignedBinaryActPerTensorConst, return_quant_tensor=True)
        self.fc1 = QuantLinear(16 * 2 * 2, 32, weight_bit_width=3, bias=True)
        self.bn3 = nn.BatchNorm1d(32)
        self.relu3 = QuantReLU(bit_width=3, return_quant_tensor=True)
        self.fc2 = QuantLinear(32, 10, weight_bit_width=4, bias=True)

    def forward(self, x):
        x = self.pool1(self.relu1(self.bn1(self.conv1(self.quant_in(x)))))
        x = self.sign2(self.bn2(self.conv2(x)))
        x = self.relu3(self.bn3(self.fc1(torch.flatten(x, 1))))
        return self.fc2(x)


def _test_data(model: nn.Module, path: Path, x: torch.Tensor, y: torch.Tensor) -> Path:
    with torch.no_grad():
        logits = model(x).numpy()
    np.savez(path, x=x.numpy(), y=y.numpy(), logits=logits)
    return path


def test_hand_written_brevitas_model_is_bit_exact_folded(tmp_path):
    torch.manual_seed(0)
    model = train_briefly(ByHand(), steps=60)
    onnx_path = tmp_path / "byhand.onnx"
    export_qonnx(model, torch.randn(1, 1, 8, 8), str(onnx_path), dynamo=False)
    _, _, x_test, y_test = digits()
    data = _test_data(model, tmp_path / "test_data.npz", x_test, y_test)
    result = emit(onnx_path, tmp_path / "hls", board="pynq-z2", test_data=data)
    assert result.folded_by == "fold" and result.samples == len(x_test)
    assert any(f.pe > 1 or f.simd > 1 for f in result.design.hardware.layers.values())
    verdict = verify(tmp_path / "hls")
    assert verdict.bit_exact and verdict.mismatches == 0 and verdict.samples == len(x_test)
    assert verdict.argmax_agreement == 1.0
    saved = json.loads((tmp_path / "hls" / "verify.json").read_text())
    assert {"bit_exact", "samples", "mismatches", "argmax_agreement"} <= set(saved) and saved["bit_exact"] is True
    from codesign.backend.scripts import check_scripts
    assert check_scripts(tmp_path / "hls") == []


def test_unfolded_w1a1_with_bipolar_input_is_bit_exact(tmp_path):
    model = randomize(HandNet(wbits=(1, 1, 1, 1), abits=(1, 1, 1), in_kind="bipolar", padding=(1, 0)), 5)
    path = export(model, tmp_path / "m.onnx")
    design = Design(network=network_of(lower_model(path)))  # every layer PE = SIMD = 1
    result = emit(path, tmp_path / "hls", design=design, samples=40, seed=3)
    assert result.folded_by == "design" and result.test_data.startswith("random")
    verdict = verify(tmp_path / "hls")
    assert verdict.bit_exact and verdict.samples == 40 and verdict.argmax_agreement is None
    again = verify(tmp_path / "hls", samples=7)
    assert again.cached_binary and again.bit_exact and again.samples == 7


def test_codesign_train_output_emits_and_verifies_via_the_cli(tmp_path, capsys):
    design = tmp_path / "design.yaml"
    design.write_text("""network:
  input: {channels: 1, height: 8, width: 8, bits: 8}
  layers:
    - {name: conv0, type: conv, out_channels: 8, kernel: 3, padding: 1, weight_bits: 2, act_bits: 2}
    - {name: pool0, type: maxpool, kernel: 2}
    - {name: fc0, type: dense, out_features: 16, weight_bits: 1, act_bits: 1}
    - {name: fc1, type: dense, out_features: 10, weight_bits: 4}
hardware:
  board: zc706
  layers:
    conv0: {pe: 4, simd: 1}
    fc0: {pe: 2, simd: 16}
""")
    train = tmp_path / "train"
    assert main(["train", str(design), "--dataset", "digits", "--epochs", "1", "--out", str(train)]) == 0
    hls = tmp_path / "hls"
    assert main(["emit", "--qonnx", str(train / "model.onnx"), "--design", str(train / "design.yaml"),
                 "--test-data", str(train / "test_data.npz"), "--out", str(hls)]) == 0
    capsys.readouterr()
    assert main(["verify", str(hls), "--json"]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["bit_exact"] is True and verdict["mismatches"] == 0 and verdict["samples"] == 360
    assert verdict["argmax_agreement"] == 1.0
    layers = {entry["layer"]: entry for entry in json.loads((hls / "manifest.json").read_text())["layers"]}
    assert (layers["conv0"]["pe"], layers["fc0"]["simd"], layers["fc0"]["xnor"]) == (4, 16, False)


@pytest.fixture(scope="module")
def small_project(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("small")
    model = randomize(HandNet(channels=(4, 4), abits=(2, 2, 2), hidden=8), 9)
    folder = tmp / "hls"
    emit(export(model, tmp / "m.onnx"), folder, board="zc706", samples=12)
    assert verify(folder).bit_exact
    return folder


def _copy(project: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "copy"
    shutil.copytree(project, dest)
    return dest


def _verify_json(capsys, *args: str) -> tuple[int, dict]:
    """`codesign verify --json`: its exit code and the one JSON object it printed."""
    capsys.readouterr()
    code = main(["verify", *args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_compile_errors_point_at_the_generated_file_and_line(small_project, tmp_path, capsys):
    project = _copy(small_project, tmp_path)
    header = sorted((project / "src").glob("params_*.h"))[0]
    lines = header.read_text().splitlines()
    broken = next(i for i, line in enumerate(lines) if "_weights[" in line)
    lines[broken] = lines[broken].replace("_weights[", "_weights[[")
    header.write_text("\n".join(lines) + "\n")
    where = f"src/{header.name}:{broken + 1}"
    code, out = _verify_json(capsys, str(project))  # could not build: exit 3, an error instead of a verdict
    assert code == 3 and out["exit_code"] == 3 and "g++ could not compile" in out["error"] and "bit_exact" not in out
    assert any(d.startswith(f"{where}: error:") for d in out["diagnostics"])
    assert main(["verify", str(project)]) == 3
    err = capsys.readouterr().err
    assert f"{where}: error:" in err and "Traceback" not in err


def test_a_wrong_reference_is_reported_as_mismatches(small_project, tmp_path):
    project = _copy(small_project, tmp_path)
    vectors_path = project / "tb_data" / "vectors.npz"
    with np.load(vectors_path) as f:
        vectors = {k: f[k] for k in f.files}
    vectors["reference"][3, 1] += 1
    np.savez(vectors_path, **vectors)
    verdict = verify(project)
    assert verdict.cached_binary  # same sources, same binary
    assert not verdict.bit_exact and verdict.mismatches == 1 and verdict.mismatched_values == 1
    assert verdict.testbench_mismatches == 1  # the testbench's own check agrees (exit code 2, not a crash)
    assert json.loads((project / "verify.json").read_text())["bit_exact"] is False


def test_verify_exit_codes_and_json(small_project, tmp_path, capsys):
    """0 bit-exact, 1 mismatches, 2 bad input; --json always prints one JSON object (exit 3: above)."""
    project = _copy(small_project, tmp_path)
    code, out = _verify_json(capsys, str(project))
    assert code == 0 and out["bit_exact"] is True and out["testbench_mismatches"] == 0 and out["warnings"] == []
    vectors_path = project / "tb_data" / "vectors.npz"
    with np.load(vectors_path) as f:
        vectors = {k: f[k] for k in f.files}
    vectors["reference"][0, 0] -= 1
    np.savez(vectors_path, **vectors)
    code, out = _verify_json(capsys, str(project))
    assert code == 1 and out["bit_exact"] is False and out["mismatches"] == 1
    code, out = _verify_json(capsys, str(tmp_path))
    assert code == 2 and out["exit_code"] == 2 and "not an emitted HLS project" in out["error"]
    code, out = _verify_json(capsys, str(project), "--samples", "0")
    assert code == 2 and "--samples" in out["error"]
    vectors_path.unlink()
    code, out = _verify_json(capsys, str(project))
    assert code == 2 and "vectors.npz" in out["error"]


def test_missing_compiler_is_could_not_run(small_project, tmp_path, capsys, monkeypatch):
    from codesign.backend import csim

    project = _copy(small_project, tmp_path)
    real = shutil.which
    monkeypatch.setattr(csim.shutil, "which", lambda name, *a, **k: None if name == "g++" else real(name, *a, **k))
    code, out = _verify_json(capsys, str(project))
    assert code == 3 and "g++" in out["error"]
    assert main(["verify", str(project)]) == 3
    assert "g++" in capsys.readouterr().err


def test_the_testbench_checks_itself_against_reference_txt(small_project, tmp_path):
    """The emitted testbench alone, as Vitis's csim_design runs it: its exit code says whether it matched."""
    project = _copy(small_project, tmp_path)
    binary = next((project / "csim").glob("tb_*")).resolve()
    run = subprocess.run([str(binary)], cwd=project, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "tb: 12 frames, 0 mismatching" in run.stdout
    reference = project / "tb_data" / "reference.txt"
    rows = [line.split() for line in reference.read_text().splitlines()]
    for frame in (2, 7):
        rows[frame][1] = str(int(rows[frame][1]) + 1)
    reference.write_text("".join(" ".join(r) + "\n" for r in rows))
    run = subprocess.run([str(binary)], cwd=project, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "tb: 12 frames, 2 mismatching" in run.stdout
    assert "mismatch in frame 2: 1 of" in run.stderr and "mismatch in frame 7" in run.stderr
    # from another folder (Vitis runs it in hls_project/solution1/csim/build), with absolute paths
    elsewhere = tmp_path / "build"
    elsewhere.mkdir()
    inputs, outputs = (project / "tb_data" / "inputs.txt").resolve(), elsewhere / "out.txt"
    run = subprocess.run([str(binary), str(inputs), str(outputs)], cwd=elsewhere, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 2 and "2 mismatching" in run.stdout  # the reference next to the inputs file
    run = subprocess.run([str(binary), str(inputs), str(outputs), "-"], cwd=elsewhere, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0 and "not checked" in run.stdout
    reference.unlink()
    run = subprocess.run([str(binary)], cwd=project, capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "cannot open the reference" in run.stderr
    reference.write_text("1 2\n")
    run = subprocess.run([str(binary)], cwd=project, capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "reference of frame" in run.stderr


def test_degenerate_outputs_are_bit_exact_with_a_warning(small_project, tmp_path, capsys):
    project = _copy(small_project, tmp_path)
    vectors_path = project / "tb_data" / "vectors.npz"
    with np.load(vectors_path) as f:
        vectors = {k: f[k] for k in f.files}
    for key in ("codes", "reference"):  # every sample the same input, so the same output
        vectors[key] = np.repeat(vectors[key][:1], 5, axis=0)
    np.savez(vectors_path, **vectors)
    code, out = _verify_json(capsys, str(project))
    assert code == 0 and out["bit_exact"] is True
    assert len(out["warnings"]) == 1 and "degenerate outputs" in out["warnings"][0]
    assert main(["verify", str(project)]) == 0
    captured = capsys.readouterr()
    assert "codesign: warning: degenerate outputs: all 5 samples give the same output codes" in captured.err
    assert "bit-exact: yes" in captured.out


def test_a_stream_protocol_error_is_a_failed_verdict(small_project, tmp_path, capsys):
    """The design ran and misbehaved (too few output words): not bit-exact (exit 1), not a crash (3)."""
    project = _copy(small_project, tmp_path)
    header = next((project / "src").glob("codesign_top.h"))
    text = header.read_text()
    words = int(text.split("_OUT_WORDS ")[1].split()[0])
    header.write_text(text.replace(f"_OUT_WORDS {words}", f"_OUT_WORDS {words + 1}"))
    verdict = verify(project)
    assert not verdict.bit_exact and verdict.mismatches == verdict.samples == 12
    assert "output is short" in verdict.problems[0] and "after 0 of 12 frames" in verdict.problems[0]
    code, out = _verify_json(capsys, str(project))
    assert code == 1 and out["bit_exact"] is False and out["argmax_agreement"] in (None, 0.0)


def test_emit_of_an_unsupported_model_leaves_nothing_behind(tmp_path):
    class WithAvgPool(ByHand):
        def forward(self, x):
            return super().forward(nn.functional.avg_pool2d(x, 1))

    path = tmp_path / "bad.onnx"
    export_qonnx(randomize(WithAvgPool(), 0), torch.randn(1, 1, 8, 8), str(path), dynamo=False)
    before = set(tmp_path.iterdir())
    with pytest.raises(CodesignError, match="AveragePool"):
        emit(path, tmp_path / "hls", board="zc706")
    assert set(tmp_path.iterdir()) == before


def test_emit_replaces_its_own_folder_and_refuses_others(small_project, tmp_path):
    project = _copy(small_project, tmp_path)
    (project / "stale.txt").write_text("old")
    model = randomize(HandNet(channels=(4, 4), abits=(2, 2, 2), hidden=8), 9)
    onnx_path = export(model, tmp_path / "m.onnx")
    emit(onnx_path, project, board="zc706", samples=3)
    assert not (project / "stale.txt").exists() and (project / "manifest.json").is_file()
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(CodesignError, match="not a codesign emit folder"):
        emit(onnx_path, other, board="zc706")
    assert (other / "notes.txt").read_text() == "mine" and len(list(other.iterdir())) == 1
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_design_that_does_not_match_the_model_fails_clearly(tmp_path):
    model = randomize(HandNet(channels=(4, 4), hidden=8), 1)
    path = export(model, tmp_path / "m.onnx")
    net = network_of(lower_model(path))
    wrong = Design(network=net.__class__(input=net.input, layers=(net.layers[0].__class__(
        **{**net.layers[0].__dict__, "out_channels": 6}),) + net.layers[1:]))
    save_design(wrong, tmp_path / "wrong.yaml")
    with pytest.raises(CodesignError, match=r"wrong\.yaml.*conv0.*6 output channels.*Conv/MatMul/Gemm node #1.*4 output"):
        emit(path, tmp_path / "hls", design=tmp_path / "wrong.yaml")
    # conv1: MW = 3·3·4 = 36; SIMD 5 divides neither it nor the 4 input channels
    bad_fold = Design(network=net, hardware=Hardware(layers={"conv1": LayerFold(pe=1, simd=5)}))
    with pytest.raises(CodesignError, match=r"hardware\.layers\.conv1\.simd: 5 must divide"):
        emit(path, tmp_path / "hls", design=bad_fold)
    assert not (tmp_path / "hls").exists()


def test_cli_errors_exit_2_and_verify_refuses_a_plain_folder(tmp_path, capsys):
    assert main(["emit", "--qonnx", str(tmp_path / "none.onnx"), "--out", str(tmp_path / "x")]) == 2
    assert "--design" in capsys.readouterr().err
    assert main(["emit", "--qonnx", str(tmp_path / "none.onnx"), "--board", "zc706", "--out", str(tmp_path / "x")]) == 2
    assert "file not found" in capsys.readouterr().err
    assert main(["verify", str(tmp_path)]) == 2
    assert "not an emitted HLS project" in capsys.readouterr().err


def test_missing_hls4ml_is_a_clear_error(monkeypatch):
    import importlib.util

    from codesign.backend import csim

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "hls4ml" else real(name, *a))
    with pytest.raises(CsimError, match="hls4ml"):  # could not build: `codesign verify` exits 3
        csim.ap_types_dir()
