"""The Design's multiplier style per layer (`mac: auto | lut | dsp`) in the generated HLS: each
multiplying MVAU's MulDot takes the style's tag, whose Product carries the matching
`#pragma HLS BIND_OP variable=product op=mul impl=fabric|dsp` (none for auto); XNOR layers have no
multipliers and no pragma."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_backend_models import HandNet, export, randomize

from codesign.backend.csim import verify
from codesign.backend.emit import emit
from codesign.backend.graph import MVAU
from codesign.backend.lower import lower_model, network_of
from codesign.backend.ops.mvau import mvau_context as _mvau_context
from codesign.backend.writer import KERNELS_HEADER
from hw_space.design import Design, Hardware, LayerFold

IMPL = {"MacAuto": None, "MacLut": "fabric", "MacDsp": "dsp"}


def _products(kernels: str) -> dict[str, list[str]]:
    """Per Product<MAC> specialization of the kernels header, the BIND_OP pragmas in its body."""
    found = {}
    for m in re.finditer(r"template <> struct Product<(\w+)> \{", kernels):
        depth, i = 0, m.end() - 1
        while True:
            depth += {"{": 1, "}": -1}.get(kernels[i], 0)
            if depth == 0:
                break
            i += 1
        found[m.group(1)] = re.findall(r"#pragma HLS BIND_OP[^\n]*", kernels[m.end():i])
    return found


def _dots(top: str) -> dict[str, str]:
    """Per mvau call of the top: layer identifier -> its Dot template argument."""
    calls = re.findall(r"codesign::mvau<.*?>\(\w+, \w+, (\w+)_weights, \w+_thresholds\);", top, re.S)
    dots = re.findall(r"codesign::((?:MulDot|XnorDot)<[^\n]*>),\n", top)
    assert len(calls) == len(dots)
    return dict(zip(calls, dots))


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("mac")
    # conv0 (8-bit input x 4-bit weights) on LUTs, conv1 on DSPs, fc0 XNOR (its `dsp` has nothing to
    # bind), fc1 left to the tool
    model = randomize(HandNet(wbits=(4, 4, 1, 4), abits=(3, 1, 2)), 6)
    path = export(model, tmp / "m.onnx")
    folds = {"conv0": LayerFold(pe=2, mac="lut"), "conv1": LayerFold(pe=2, simd=4, mac="dsp"),
             "fc0": LayerFold(simd=8, mac="dsp"), "fc1": LayerFold(pe=5, simd=2)}
    design = Design(network=network_of(lower_model(path)), hardware=Hardware(layers=folds))
    emit(path, tmp / "hls", design=design, samples=30, seed=1)
    return tmp / "hls"


def test_each_product_style_has_its_own_bind_op_pragma(project):
    products = _products((project / "src" / KERNELS_HEADER).read_text())
    assert products == {"MacAuto": [], "MacLut": ["#pragma HLS BIND_OP variable=product op=mul impl=fabric"],
                        "MacDsp": ["#pragma HLS BIND_OP variable=product op=mul impl=dsp"]}


def test_each_layer_multiplies_in_its_design_style(project):
    top = (project / "src" / "codesign_top.cpp").read_text()
    dots = _dots(top)
    assert set(dots) == {"conv0", "conv1", "fc0", "fc1"}
    styles = {}
    for layer, dot in dots.items():
        m = re.fullmatch(r"MulDot<\d+, [\w:<>]+, [\w:<>]+, \w+_acc_t, codesign::(Mac\w+)>", dot)
        styles[layer] = m.group(1) if m else dot.split("<")[0]
    assert styles == {"conv0": "MacLut", "conv1": "MacDsp", "fc0": "XnorDot", "fc1": "MacAuto"}
    kernels = (project / "src" / KERNELS_HEADER).read_text()
    products = _products(kernels)
    for style in styles.values():  # the pragma each layer's multipliers get
        want = [f"#pragma HLS BIND_OP variable=product op=mul impl={IMPL[style]}"] if IMPL.get(style) else []
        assert products.get(style, []) == want
    xnor = kernels[kernels.index("struct XnorDot {"):]
    assert "BIND_OP" not in xnor[:xnor.index("\n};")]


@pytest.mark.skipif(shutil.which("g++") is None, reason="C-simulation needs g++")
def test_the_bound_multipliers_verify_bit_exact(project):
    verdict = verify(project)
    assert verdict.bit_exact and verdict.samples == 30


def test_an_unknown_mac_style_is_refused():
    item = MVAU(name="l", mw=4, mh=2, weights=np.array([[1, 0, -1, 1], [0, 1, 1, -1]]), mac="wide")
    with pytest.raises(ValueError, match="mac 'wide'"):
        _mvau_context(item, "l")
