"""The HLS writer: packed weights and thresholds, and the structure of the generated C++."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from test_backend_models import HandNet, export, randomize

from codesign.backend import transforms
from codesign.backend.csim import CXX_FLAGS, ap_types_dir, compiler
from codesign.backend.graph import MVAU, IntFmt, ops
from codesign.backend.lower import lower_model, name_layers, network_of
from codesign.backend.ops.mvau import hardware_thresholds, pack_weights
from codesign.backend.writer import KERNELS_HEADER, _environment, write_project
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
    # C-simulation's chunk words (codesign::csim::Word, low 64-bit chunk first) hold the same values
    chunked = pack_weights(item, chunked=True)
    for row, chunk_row in zip(words, chunked):
        for literal, chunks in zip(row, chunk_row):
            if fmt.bits * simd <= 64:
                assert chunks == literal
                continue
            assert re.fullmatch(r"\{\{(0|0x[0-9a-f]+ULL)(, (0|0x[0-9a-f]+ULL))*\}\}", chunks), chunks
            values = [int(c.removesuffix("ULL"), 0) for c in chunks.strip("{}").split(", ")]
            assert len(values) == -(-fmt.bits * simd // 64)
            assert sum(v << (64 * k) for k, v in enumerate(values)) == int(re.search(r"0x([0-9a-f]+)", literal)[1], 16)


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


# ---------------------------------------------------------------- C-simulation fast paths
# kernels.h.j2 computes lanes, products and accumulators in native 64-bit integers in C-simulation
# (CODESIGN_CSIM_FAST); -DCODESIGN_CSIM_PLAIN selects the exact ap_int code that synthesis runs.

needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")

# (SIMD, input format, weight format): bit planes (equal widths of 1 or 2 bits, with and without the
# bipolar offset), lane by lane (other widths, lanes across 64-bit chunks), words of 1 to 3 chunks
DOT_CASES = [(1, "UintFmt<2>", "IntFmt<2>"), (32, "UintFmt<2>", "IntFmt<2>"), (48, "IntFmt<2>", "IntFmt<2>"),
             (100, "UintFmt<2>", "UintFmt<2>"), (70, "UintFmt<1>", "BipolarFmt"), (65, "BipolarFmt", "BipolarFmt"),
             (33, "BipolarFmt", "IntFmt<1>"), (3, "UintFmt<8>", "IntFmt<2>"), (25, "IntFmt<3>", "IntFmt<5>"),
             (40, "UintFmt<4>", "BipolarFmt"), (22, "BipolarFmt", "IntFmt<3>"), (9, "UintFmt<16>", "IntFmt<16>"),
             (5, "IntFmt<32>", "IntFmt<32>"), (3, "UintFmt<63>", "IntFmt<64>"), (2, "IntFmt<64>", "IntFmt<64>")]
XNOR_SIMD = [1, 9, 63, 64, 65, 160]
# (SIMD, from, to) of the sliding window's re-encoding; (PE, format) of the max-pool's lane maximum
RECODE_CASES = [(8, "BipolarFmt", "IntFmt<2>"), (40, "BipolarFmt", "IntFmt<2>"), (30, "UintFmt<3>", "IntFmt<5>"),
                (24, "IntFmt<3>", "IntFmt<3>"), (70, "BipolarFmt", "BipolarFmt")]
MAX_CASES = [(8, "UintFmt<2>"), (24, "IntFmt<3>"), (70, "BipolarFmt"), (5, "IntFmt<16>"), (33, "UintFmt<4>"),
             (3, "IntFmt<64>"), (2, "UintFmt<63>")]


def _fast_harness() -> str:
    calls = [f"    bad += dot<{s}, {a}, {b}, 48>(\"{s} {a} {b}\");\n"
             f"    bad += dot<{s}, {a}, {b}, 7>(\"{s} {a} {b} wrapping\");" for s, a, b in DOT_CASES]
    calls += [f"    bad += xnor<{s}>();" for s in XNOR_SIMD]
    calls += [f"    bad += recode<{s}, {a}, {b}>();" for s, a, b in RECODE_CASES]
    calls += [f"    bad += pool<{p}, {f}>();" for p, f in MAX_CASES]
    body = "\n".join(calls)
    return f"""#include <cstdio>
#include "{KERNELS_HEADER}"

using namespace codesign;
typedef csim::u64 u64;

u64 rng = 88172645463325252ULL;
u64 next() {{ rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; }}

// random words, every 8th all zeros and every 8th all ones (extreme lanes)
template <int N> ap_uint<N> word(int trial) {{
    ap_uint<N> w = 0;
    for (int i = 0; i < N; i++) w[i] = trial % 8 == 1 ? 1 : trial % 8 == 2 ? 0 : (next() >> 20) & 1;
    return w;
}}

template <int N> bool round_trip(const ap_uint<N> &w, u64 *c) {{
    csim::load<N>(w, c);
    return csim::store<N>(c) == w && (N % 64 == 0 || (c[(N - 1) / 64] >> (N % 64)) == 0);
}}

template <int SIMD, class InF, class WF, int ACC> int dot(const char *what) {{
    typedef ap_int<ACC> acc_t;
    typedef MulDot<SIMD, InF, WF, acc_t> D;
    int bad = 0;
    for (int trial = 0; trial < 300; trial++) {{
        const ap_uint<SIMD * InF::BITS> x = word<SIMD * InF::BITS>(trial);
        const ap_uint<SIMD * WF::BITS> w = word<SIMD * WF::BITS>(trial + 3);
        u64 cx[csim::Chunks<SIMD * InF::BITS>::K], cw[csim::Chunks<SIMD * WF::BITS>::K];
        if (!round_trip(x, cx) || !round_trip(w, cw)) bad++;
        if (csim::sext(D::native_dot(cx, cw), ACC) != D::dot(x, w).to_int64()) bad++;
    }}
    if (bad) std::printf("dot %s: %d bad\\n", what, bad);
    return bad;
}}

template <int SIMD> int xnor() {{
    typedef XnorDot<SIMD, BipolarFmt, BipolarFmt, ap_int<10> > D;
    int bad = 0;
    for (int trial = 0; trial < 300; trial++) {{
        const ap_uint<SIMD> x = word<SIMD>(trial), w = word<SIMD>(trial + 5);
        u64 cx[csim::Chunks<SIMD>::K], cw[csim::Chunks<SIMD>::K];
        csim::load<SIMD>(x, cx);
        csim::load<SIMD>(w, cw);
        const csim::i64 pc = csim::sext(D::native_dot(cx, cw), 10);
        if (pc != D::dot(x, w).to_int64()) bad++;
        if (D::template native_result<SIMD>(pc) != D::template result<SIMD>(D::dot(x, w)).to_int64()) bad++;
    }}
    if (bad) std::printf("xnor %d: %d bad\\n", SIMD, bad);
    return bad;
}}

template <int SIMD, class InF, class OutF> int recode() {{  // against sliding_window's ap code
    int bad = 0;
    for (int trial = 0; trial < 300; trial++) {{
        const ap_uint<SIMD * InF::BITS> x = word<SIMD * InF::BITS>(trial);
        const bool inside = trial % 3 != 0;
        ap_uint<SIMD * OutF::BITS> y = 0;
        for (int s = 0; s < SIMD; s++) {{
            typename InF::value_t v = inside ? InF::value(lane<InF::BITS, SIMD>(x, s)) : typename InF::value_t(0);
            y.range(s * OutF::BITS + OutF::BITS - 1, s * OutF::BITS) = OutF::code(v);
        }}
        if (csim::recode<SIMD, InF, OutF>(x, inside) != y) bad++;
    }}
    if (bad) std::printf("recode %d: %d bad\\n", SIMD, bad);
    return bad;
}}

template <int PE, class F> int pool() {{  // against max_pool_axis's ap code
    int bad = 0;
    for (int trial = 0; trial < 300; trial++) {{
        const ap_uint<PE * F::BITS> a = word<PE * F::BITS>(trial), b = word<PE * F::BITS>(trial + 7);
        ap_uint<PE * F::BITS> m = 0;
        for (int p = 0; p < PE; p++) {{
            const ap_uint<F::BITS> u = lane<F::BITS, PE>(a, p), v = lane<F::BITS, PE>(b, p);
            m.range(p * F::BITS + F::BITS - 1, p * F::BITS) = (F::value(u) > F::value(v)) ? u : v;
        }}
        if (csim::lane_max<PE, F>(a, b) != m) bad++;
    }}
    if (bad) std::printf("pool %d: %d bad\\n", PE, bad);
    return bad;
}}

int main() {{
    int bad = 0;
{body}
    std::printf("%d bad\\n", bad);
    return bad != 0;
}}
"""


@needs_gxx
@pytest.mark.slow  # test_csim_fast_and_plain_builds_write_the_same_outputs compares both builds by default
def test_csim_fast_lanes_equal_the_ap_int_code(tmp_path):
    (tmp_path / KERNELS_HEADER).write_text(_environment().get_template("kernels.h.j2").render(
        top="harness", guard="CODESIGN_KERNELS_H"))
    (tmp_path / "fast.cpp").write_text(_fast_harness())
    subprocess.run([compiler(), *CXX_FLAGS, "-I.", "-isystem", str(ap_types_dir()), "fast.cpp", "-o", "fast"],
                   cwd=tmp_path, check=True, capture_output=True, text=True)
    out = subprocess.run([str(tmp_path / "fast")], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "0 bad", out.stdout


# (HandNet options, {layer: (PE, SIMD)}): the fast paths of whole projects, each compiled with and
# without -DCODESIGN_CSIM_PLAIN: 2-bit bit planes on words of 1-2 chunks, XNOR layers wider than 64
# lanes and bipolar-to-int2 padding, signed 3- and 5-bit lanes across chunks and a signed max-pool
FAST_PROJECTS = {
    "w2a2": (dict(wbits=(2, 2, 2, 2), abits=(2, 2, 2)), {"conv0": (8, 1), "conv1": (4, 8), "fc0": (4, 48), "fc1": (5, 16)}),
    "xnor": (dict(wbits=(1, 1, 1, 1), abits=(1, 1, 1), in_kind="bipolar", padding=(1, 0), channels=(8, 40)),
             {"conv0": (2, 1), "conv1": (8, 8), "fc0": (2, 80), "fc1": (10, 16)}),
    "signed": (dict(wbits=(3, 5, 3, 2), abits=(3, 3, 3), signed=True, channels=(24, 12)),
               {"conv0": (6, 1), "conv1": (3, 24), "fc0": (4, 32), "fc1": (2, 8)}),
    "mixed": (dict(wbits=(4, 1, 3, 8), abits=(2, 4, 1), in_kind="int8"), {"conv0": (4, 1), "conv1": (2, 4), "fc1": (5, 4)}),
}


def _run_tb(project: Path, tag: str, flags: list[str]) -> str:
    from codesign.backend.csim import read_manifest

    files = read_manifest(project)["files"]
    sources = [f for f in files["sources"] + files["testbench"] if f.endswith(".cpp")]
    subprocess.run([compiler(), *CXX_FLAGS, *flags, *(f"-I{d}" for d in files["include_dirs"]), "-isystem",
                    str(ap_types_dir()), *sources, "-o", f"tb_{tag}"], cwd=project, check=True, capture_output=True)
    subprocess.run([f"./tb_{tag}", files["inputs"], f"out_{tag}.txt", "-"], cwd=project, check=True, capture_output=True)
    return (project / f"out_{tag}.txt").read_text()


@needs_gxx
@pytest.mark.parametrize("case", [pytest.param(c, marks=() if c == "mixed" else pytest.mark.slow)
                                  for c in sorted(FAST_PROJECTS)])
def test_csim_fast_and_plain_builds_write_the_same_outputs(case, tmp_path):
    from codesign.backend.emit import emit
    from hw_space.design import Design, Hardware

    options, folds = FAST_PROJECTS[case]
    path = export(randomize(HandNet(**options), 4), tmp_path / "m.onnx")
    design = Design(network=network_of(lower_model(path)),
                    hardware=Hardware(layers={k: LayerFold(pe=pe, simd=simd) for k, (pe, simd) in folds.items()}))
    project = tmp_path / "hls"
    emit(path, project, design=design, samples=60, seed=2)
    fast, plain = _run_tb(project, "fast", []), _run_tb(project, "plain", ["-DCODESIGN_CSIM_PLAIN"])
    reference = (project / "tb_data" / "reference.txt").read_text()
    rows = [[int(v) for v in line.split()] for line in fast.splitlines()]
    assert fast == plain and rows == [[int(v) for v in line.split()] for line in reference.splitlines()]
    assert len({tuple(r) for r in rows}) > 1  # not a degenerate comparison
    params = "\n".join(p.read_text() for p in (project / "src").glob("params_*.h"))
    if case != "mixed":  # weight words over 64 bits: C-simulation chunk tables next to the ap_uint ones
        assert "codesign::csim::Word<" in params and 'ap_uint<' in params
