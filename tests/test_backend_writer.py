"""The HLS writer: packed weights and thresholds, and the structure of the generated C++."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest
from test_backend_models import HandNet, export, randomize

from codesign.backend import transforms
from codesign.backend.graph import MVAU, IntFmt, ops
from codesign.backend.lower import lower_model, name_layers, network_of
from codesign.backend.writer import hardware_thresholds, pack_weights, write_project
from hw_space.design import LayerFold


def _unpack(literal: str, bits: int, simd: int, signed: bool) -> list[int]:
    m = re.search(r"0x([0-9a-f]+)", literal)
    value = int(m.group(1), 16) if m else 0
    out = []
    for s in range(simd):
        v = (value >> (s * bits)) & ((1 << bits) - 1)
        out.append(v - (1 << bits) if signed and v >> (bits - 1) else v)
    return out


@pytest.mark.parametrize("fmt,simd,pe", [(IntFmt(4, True), 3, 2), (IntFmt(1, False, True), 24, 1),
                                          (IntFmt(8, True), 12, 4), (IntFmt(3, False), 1, 1)])
def test_weights_are_packed_per_pe_and_simd_lane(fmt, simd, pe):
    rng = np.random.default_rng(0)
    mh, mw = 8, 24
    if fmt.bipolar:
        weights = rng.choice([-1, 1], size=(mh, mw))
    else:
        weights = rng.integers(fmt.lo, fmt.hi + 1, size=(mh, mw))
    item = MVAU(name="l", mw=mw, mh=mh, weights=weights, w_fmt=fmt, pe=pe, simd=simd)
    words = pack_weights(item)
    assert len(words) == pe and len(words[0]) == (mh // pe) * (mw // simd)
    if fmt.bits * simd > 64:
        assert words[0][0].startswith(f"ap_uint<{fmt.bits * simd}>(\"0x")
    sf = mw // simd
    for p in range(pe):
        for t, literal in enumerate(words[p]):
            nf, s = divmod(t, sf)
            lanes = _unpack(literal, fmt.bits, simd, fmt.signed)
            want = weights[nf * pe + p, s * simd:(s + 1) * simd]
            assert lanes == (fmt.encode(want).tolist() if fmt.bipolar else want.tolist())


def test_xnor_thresholds_count_the_same_in_the_popcount_domain():
    mw = 9
    thr = np.arange(-12, 13).reshape(-1, 1)  # dot-domain thresholds, some out of reach
    item = MVAU(name="x", mw=mw, mh=len(thr), weights=np.ones((len(thr), mw), dtype=np.int64), thresholds=thr,
                xnor=True)
    hw = hardware_thresholds(item)
    for pc in range(mw + 1):
        assert np.array_equal((2 * pc - mw) >= thr[:, 0], pc >= hw[:, 0])


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("writer")
    model = randomize(HandNet(wbits=(4, 1, 2, 4), abits=(4, 1, 3)), 2)
    g = lower_model(export(model, tmp / "m.onnx"))
    net = network_of(g)
    hostile = ["conv*/ #define x", "pool0", "1fc;", "fc1\n}"]
    net = replace(net, layers=tuple(replace(layer, name=n) for layer, n in zip(net.layers, hostile + ["x"])))
    g = name_layers(g, net)
    folds = {hostile[0]: LayerFold(pe=2, simd=1), hostile[1]: LayerFold(pe=1), hostile[2]: LayerFold(pe=4, simd=8)}
    for step in transforms.hardware_steps(folds):
        g = step.apply(g)
    write_project(g, tmp / "hls", top="accel")
    return tmp / "hls", g


def test_generated_files_use_only_sanitized_names(project):
    folder, g = project
    names = sorted(p.name for p in (folder / "src").iterdir())
    assert names == ["accel.cpp", "accel.h", "codesign_kernels.h", "params_conv_define_x.h", "params_fc1.h",
                     "params_l_1fc.h", "params_x.h"]
    text = "\n".join(p.read_text() for p in folder.rglob("*") if p.is_file())
    for bad in ("*/", "#define x", "1fc;", "fc1\n}"):
        assert bad not in text
    assert [o.name for o in ops(g) if isinstance(o, MVAU)] == ["conv_define_x", "l_1fc", "fc1", "x"]


def _loops(text: str) -> list[tuple[int, int, str]]:
    """(start, end, body) of every for loop; the body up to its matching brace."""
    loops = []
    for m in re.finditer(r"\bfor\s*\(", text):
        start = text.index("{", m.end())
        depth, i = 0, start
        while True:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                break
            i += 1
        loops.append((m.start(), i, text[start + 1:i]))
    return loops


def test_every_stream_access_sits_in_a_loop_pipelined_at_ii_1(project):
    folder, _ = project
    kernels = (folder / "src" / "codesign_kernels.h").read_text()
    loops = [(a, b, body) for a, b, body in _loops(kernels) if not body.lstrip().startswith("#pragma HLS UNROLL")]
    accesses = [m.start() for m in re.finditer(r"\.read\(\)|\.write\(", kernels)]
    assert len(accesses) >= 10
    for pos in accesses:
        inner = min((b - a, body) for a, b, body in loops if a < pos < b)
        assert inner[1].lstrip().startswith("#pragma HLS PIPELINE II=1"), kernels[pos - 200:pos]


def test_kernels_and_top_use_no_dynamic_memory_or_stl(project):
    folder, _ = project
    for path in (folder / "src").iterdir():
        code = re.sub(r"//[^\n]*", "", path.read_text())
        for banned in (r"\bnew\b", r"\bmalloc\b", r"\bdelete\b", r"std::", r"#include <(vector|map|list|deque|string)>",
                       r"\bwhile\s*\("):
            assert not re.search(banned, code), f"{banned} in {path.name}"


def test_top_is_a_dataflow_of_axis_streams(project):
    folder, g = project
    top = (folder / "src" / "accel.cpp").read_text()
    assert "#pragma HLS DATAFLOW" in top
    assert "#pragma HLS INTERFACE mode=axis port=in0" in top and "#pragma HLS INTERFACE mode=axis port=out0" in top
    assert "#pragma HLS INTERFACE mode=ap_ctrl_none port=return" in top
    streams = re.findall(r"hls::stream<ap_uint<\d+> > (\w+)\(", top)
    assert len(streams) == len(ops(g)) - 1
    for s in streams:
        assert re.search(rf"#pragma HLS STREAM variable={s} depth=\d+", top)
    # conv0 PE 2 -> pool PE 1 -> conv1 SIMD 8, PE 4 -> fc0 SIMD 1: three converters
    assert re.findall(r"width_convert<(\d+), (\d+),", top) == [("2", "1"), ("1", "8"), ("4", "1")]



def test_unlisted_pool_takes_every_channel_per_cycle(tmp_path):
    # The cost model (CostModel.default_pe) runs a max-pool the design leaves out at PE = channels;
    # the emitted kernel must do the same, or the accelerator is slower than its estimate.
    from codesign.backend.graph import MaxReduce

    model = randomize(HandNet(wbits=(4, 1, 2, 4), abits=(4, 1, 3)), 2)
    g = lower_model(export(model, tmp_path / "m.onnx"))
    for step in transforms.hardware_steps({}):
        g = step.apply(g)
    pools = [item for item in ops(g) if isinstance(item, MaxReduce)]
    assert pools and all(p.pe == p.channels > 1 for p in pools)
