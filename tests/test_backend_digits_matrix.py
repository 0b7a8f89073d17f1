"""The figures of the backend (slow): `codesign train` on digits, then emit + verify, for W1A1, W2A2,
W4A4 and mixed bits, unfolded (PE = SIMD = 1) and folded by hw_space.folding; bit-exact on every
test sample and the same argmax as the Brevitas model."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from test_backend_models import HandNet, check_against_brevitas, export, randomize

from codesign.backend.lower import lower_model
from codesign.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("g++") is None, reason="C-simulation needs g++")]

BITS = {  # (weight, act) of conv0, conv1, fc0 and the weights of fc1; input bits
    "w1a1": ([(1, 1), (1, 1), (1, 1)], 1, 8),
    "w1a1_bipolar_input": ([(1, 1), (1, 1), (1, 1)], 1, 1),
    "w2a2": ([(2, 2), (2, 2), (2, 2)], 2, 8),
    "w4a4": ([(4, 4), (4, 4), (4, 4)], 4, 8),
    "mixed": ([(4, 3), (2, 2), (1, 4)], 8, 8),
}


def _design(bits, last_w, in_bits) -> str:
    (w0, a0), (w1, a1), (w2, a2) = bits
    return f"""network:
  input: {{channels: 1, height: 8, width: 8, bits: {in_bits}}}
  layers:
    - {{name: conv0, type: conv, out_channels: 16, kernel: 3, padding: 1, weight_bits: {w0}, act_bits: {a0}}}
    - {{name: pool0, type: maxpool, kernel: 2}}
    - {{name: conv1, type: conv, out_channels: 32, kernel: 3, padding: 1, weight_bits: {w1}, act_bits: {a1}}}
    - {{name: pool1, type: maxpool, kernel: 2}}
    - {{name: fc0, type: dense, out_features: 64, weight_bits: {w2}, act_bits: {a2}}}
    - {{name: fc1, type: dense, out_features: 10, weight_bits: {last_w}}}
hardware:
  board: zc706
"""


@pytest.mark.parametrize("case", list(BITS))
def test_trained_digits_designs_are_bit_exact_folded_and_unfolded(tmp_path, capsys, case):
    design = tmp_path / "design.yaml"
    design.write_text(_design(*BITS[case]))
    train = tmp_path / "train"
    assert main(["train", str(design), "--dataset", "digits", "--epochs", "3", "--out", str(train)]) == 0
    common = ["--qonnx", str(train / "model.onnx"), "--test-data", str(train / "test_data.npz")]
    for mode, how in (("unfolded", ["--design", str(train / "design.yaml")]), ("folded", ["--board", "zc706"])):
        out = tmp_path / mode
        assert main(["emit", *common, *how, "--out", str(out)]) == 0
        capsys.readouterr()
        assert main(["verify", str(out), "--json"]) == 0, mode
        verdict = json.loads(capsys.readouterr().out)
        assert verdict["bit_exact"] and verdict["mismatches"] == 0 and verdict["samples"] == 360, mode
        assert verdict["argmax_agreement"] == 1.0, mode
        layers = json.loads((out / "manifest.json").read_text())["layers"]
        # pools the design leaves out take every channel per cycle (PE = channels), folded or not
        folded = any(entry["pe"] > 1 or entry.get("simd", 1) > 1 for entry in layers if entry["kind"] != "maxpool")
        assert folded == (mode == "folded")


@pytest.mark.parametrize("seed", range(12))
def test_reference_equals_brevitas_on_many_random_models(tmp_path, seed):
    rng = torch.Generator().manual_seed(seed)
    pick = lambda *options: options[int(torch.randint(len(options), (1,), generator=rng))]  # noqa: E731
    wbits = tuple(pick(1, 2, 3, 4, 8) for _ in range(4))
    abits = tuple(pick(1, 2, 4, 8) for _ in range(3))
    stride = pick(1, 2)
    padding = (pick(0, 1), 1 if stride == 2 else pick(0, 1))  # keep a 3x3 window inside the pooled map
    model = HandNet(wbits=wbits, abits=abits, in_kind=pick("fixed", "uint8", "int8", "bipolar"),
                    per_channel=pick(False, True), signed=pick(False, True), final_affine=pick(False, True),
                    padding=padding, stride=(stride, 1), conv_bias=pick(False, True))
    model = randomize(model, seed)
    g = lower_model(export(model, tmp_path / "m.onnx"))
    check_against_brevitas(model, g, torch.rand(1000, 1, 8, 8))
