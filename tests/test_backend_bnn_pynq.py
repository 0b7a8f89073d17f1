"""Every network of brevitas_examples.bnn_pynq (cnv_*, lfc_*, sfc_*, tfc_*; seeded random weights and
BatchNorm statistics), exported by both of torch's exporters, lowers for pynq-z1 and its integer
reference agrees with qonnx's execution of the export; emit + g++ C-simulation under -m slow."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from brevitas.export import export_qonnx
from brevitas_examples.bnn_pynq import models
from brevitas_examples.bnn_pynq.models.tensor_norm import TensorNorm
from test_backend_models import tie_distance
from torch import nn

from codesign.backend import reference
from codesign.backend.csim import verify
from codesign.backend.emit import emit
from codesign.backend.lower import lower, lower_model
from quant.export import execute_qonnx

MLPS = ("lfc_1w1a", "lfc_1w2a", "sfc_1w1a", "sfc_1w2a", "sfc_2w2a", "tfc_1w1a", "tfc_1w2a", "tfc_2w2a")
CNVS = ("cnv_1w1a", "cnv_1w2a", "cnv_2w2a")
EXPORTERS = ("torchscript", "dynamo")
BOARD = "pynq-z1"
# the default run: every MLP under the TorchScript exporter (whose TensorNorm exports a constant Pow)
# and one under dynamo; the other dynamo exports and CNV under -m slow
FAST_DYNAMO = ("tfc_2w2a",)
EXPORTED = [pytest.param(name, exporter, id=f"{name}-{exporter}",
                         marks=() if exporter == "torchscript" or name in FAST_DYNAMO else pytest.mark.slow)
            for name in MLPS for exporter in EXPORTERS] + [
    pytest.param(name, exporter, id=f"{name}-{exporter}", marks=pytest.mark.slow)
    for name in CNVS for exporter in EXPORTERS]


def input_shape(name: str) -> tuple[int, ...]:
    """CNV takes CIFAR-10 images, the MLPs MNIST digits (flattened by the network itself)."""
    return (1, 3, 32, 32) if name.startswith("cnv") else (1, 1, 28, 28)


def build(name: str, seed: int = 0) -> nn.Module:
    """The untrained network with seeded weights and random BatchNorm/TensorNorm parameters and
    statistics (calibrated on random inputs), in eval mode: no download of the pretrained weights."""
    torch.manual_seed(seed)
    model, _ = models.model_with_cfg(name, pretrained=False)
    norms = [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, TensorNorm))]
    with torch.no_grad():
        for m in norms:
            if not isinstance(m, TensorNorm):
                m.momentum = None  # cumulative average of the calibration passes
            m.weight.copy_(torch.randn_like(m.weight))
            m.bias.copy_(0.3 * torch.randn_like(m.bias))
        model.train()
        for _ in range(3):
            model(torch.rand(16, *input_shape(name)[1:]))
    return model.eval()


def export(model: nn.Module, shape: tuple[int, ...], path: Path, exporter: str) -> Path:
    """Brevitas' QONNX export; a dynamo failure inside brevitas/torch skips the case with its reason."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the dynamo exporter prints its progress
            export_qonnx(model, torch.randn(*shape), str(path), dynamo=exporter == "dynamo")
    except Exception as exc:
        if exporter != "dynamo":
            raise
        pytest.skip(f"the dynamo exporter fails inside brevitas/torch: {type(exc).__name__}: {exc}")
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Callable[[str, str], Path]:
    """(network, exporter) -> its QONNX file, built and exported once per module."""
    cache: dict[tuple[str, str], Path] = {}

    def get(name: str, exporter: str) -> Path:
        if (name, exporter) not in cache:
            folder = tmp_path_factory.mktemp(f"{name}-{exporter}")
            cache[name, exporter] = export(build(name), input_shape(name), folder / f"{name}.onnx", exporter)
        return cache[name, exporter]

    return get


def check_against_qonnx(g, path: Path, x: torch.Tensor, tie: float = 1e-5) -> None:
    """Reference logits equal qonnx's (to float32 tolerance, relative to the output scale) and the
    argmax agrees, except on samples within `tie` steps of a rounding tie."""
    want = execute_qonnx(path, x).numpy().astype(np.float64)
    codes = reference.input_codes(g, x.numpy())
    got = reference.logits(g, reference.run(g, codes))
    scale = float(np.max(reference.output_stage(g).scale))
    off = np.abs(got - want).max(axis=1) > 1e-4 * max(float(np.abs(want).max()), scale, 1.0)
    if off.any():
        assert (tie_distance(g, codes)[off] < tie).all(), "a mismatch that no rounding tie explains"
    assert off.mean() <= 0.25
    assert (got.argmax(axis=1) == want.argmax(axis=1))[~off].all()


def test_the_listing_covers_every_bnn_pynq_network():
    listed = {n for n in models.__all__ if n.split("_")[0] in ("cnv", "lfc", "sfc", "tfc")}
    assert listed == set(MLPS + CNVS)


@pytest.mark.parametrize("name,exporter", EXPORTED)
def test_lowers_for_pynq_z1_and_matches_qonnx(exported, name, exporter):
    path = exported(name, exporter)
    torch.manual_seed(1)
    x = torch.rand(4 if name.startswith("cnv") else 8, *input_shape(name)[1:])
    g = lower_model(path)
    check_against_qonnx(g, path, x)
    low = lower(path, board=BOARD)
    codes = reference.input_codes(low.graph, x.numpy())
    assert np.array_equal(reference.run(low.graph, codes), reference.run(g, codes))


@pytest.mark.slow
@pytest.mark.parametrize("name", MLPS + CNVS)
def test_emits_and_verifies_bit_exact_with_gxx(exported, tmp_path, name):
    samples = 2 if name.startswith("cnv") else 20
    result = emit(exported(name, "torchscript"), tmp_path / "hls", board=BOARD, samples=samples)
    assert result.samples == samples
    verdict = verify(tmp_path / "hls")
    assert verdict.bit_exact and verdict.mismatches == 0
