"""`codesign train` end to end on a tiny budget: every output file, and one-line errors with exit 2."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from codesign.cli import main
from hw_space.design import load_design
from quant.checkpoint import load_checkpoint
from quant.export import execute_qonnx
from quant.train import predict

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TINY = ["--epochs", "2", "--subset", "0.3", "--threads", "1"]


def test_train_writes_every_output(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", str(EXAMPLES / "digits_w4a4.yaml"), "--dataset", "digits", "--seed", "3",
                 *TINY, "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert sorted(p.name for p in out.iterdir()) == ["design.yaml", "metrics.json", "model.onnx", "model.pt",
                                                     "test_data.npz"]
    assert "epoch   2/2" in captured.err and "accuracy" in captured.out

    design = load_design(EXAMPLES / "digits_w4a4.yaml")
    assert load_design(out / "design.yaml") == design
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and metrics["seed"] == 3 and metrics["dataset"] == "digits"
    assert metrics["test_samples"] == 360 and metrics["train_seconds"] > 0
    assert metrics["network_hash"] == design.network.content_hash()

    model, network = load_checkpoint(out / "model.pt")
    assert network == design.network
    data = np.load(out / "test_data.npz")
    assert data["x"].shape == (360, 1, 8, 8) and data["y"].shape == (360,) and data["logits"].shape == (360, 10)
    x = torch.from_numpy(data["x"])
    logits = predict(model, x)
    assert torch.equal(logits, torch.from_numpy(data["logits"]))
    assert metrics["accuracy"] == pytest.approx(float((logits.argmax(1).numpy() == data["y"]).mean()))
    # x_int follows the QONNX Quant node exactly: round_half_even(x / float32(1/255)) in float32. The digit
    # pixel 8/16 sits on a tie that naive round(x * 255) resolves the other way (128 instead of 127).
    assert np.array_equal(data["x_int"], np.round(data["x"] / np.float32(1 / 255)).astype(np.int64))
    assert data["x_int"].min() == 0 and data["x_int"].max() == 255
    assert torch.equal(execute_qonnx(out / "model.onnx", x).argmax(1), logits.argmax(1))


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def test_train_on_a_local_mnist_folder(tmp_path, capsys):
    rng = np.random.default_rng(0)
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", 40), ("t10k", 10)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    design = tmp_path / "mnist.yaml"
    design.write_text("network:\n  input: {channels: 1, height: 28, width: 28, bits: 8}\n  layers:\n"
                      "    - {type: conv, out_channels: 4, kernel: 5, stride: 3, weight_bits: 2, act_bits: 2}\n"
                      "    - {type: dense, out_features: 10, weight_bits: 2}\n")
    out = tmp_path / "run"
    code = main(["train", str(design), "--dataset", "mnist", "--data-dir", str(tmp_path / "data"),
                 "--epochs", "1", "--batch-size", "16", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "mnist" and metrics["test_samples"] == 10
    assert np.load(out / "test_data.npz")["x"].shape == (10, 1, 28, 28)


@pytest.mark.parametrize("extra,fragment", [
    (["--dataset", "cifar10", "--data-dir", "/nonexistent"], "design input is 1x8x8 but dataset cifar10 is 3x32x32"),
    (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    (["--epochs", "0"], "epochs must be >= 1"),
    (["--subset", "2"], "subset must be a fraction"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, extra, fragment):
    code = main(["train", str(EXAMPLES / "digits_w4a4.yaml"), *extra, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert fragment in err and err.count("\n") == 1 and err.startswith("codesign: error:")
    assert not (tmp_path / "o").exists()


def test_missing_data_folder_and_design(tmp_path, capsys):
    design = tmp_path / "fm.yaml"
    design.write_text("network:\n  input: {channels: 1, height: 28, width: 28}\n  layers:\n"
                      "    - {type: dense, out_features: 10, weight_bits: 4}\n")
    code = main(["train", str(design), "--dataset", "fashion-mnist", "--data-dir", str(tmp_path / "none"),
                 "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and str(tmp_path / "none") in err and err.count("\n") == 1
    code = main(["train", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "missing.yaml" in err and "file not found" in err
