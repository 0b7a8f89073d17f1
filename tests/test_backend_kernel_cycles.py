"""Performance fidelity: the generated kernels take as many loop iterations as the cycle model
(hw_space.layers) counts. A small C++ harness calls the kernels of hls_templates/kernels.h.j2 with
-DCODESIGN_COUNT_ITERATIONS (every pipelined kernel loop counts its iterations in C-simulation),
checks their outputs against numpy and prints the iteration counts."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from codesign.backend.csim import ap_types_dir
from codesign.backend.writer import KERNELS_HEADER, _environment, gearbox_iterations
from hw_space.layers import MaxPool, SlidingWindow, StreamIO

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="the kernel harness needs g++")

BITS = 16  # element width in the harness: room for distinct values 1..H*W*C

# (H, W, C, K, S, pad, SIMD): with and without padding, stride 1 and 2, K not a multiple of S,
# emitting slower than reading (K*K*OW > S*W) and reading slower than emitting (1x1 kernel, stride 2)
SWG_SHAPES = [(6, 6, 2, 3, 1, 0, 1), (5, 7, 4, 3, 1, 1, 2), (8, 8, 2, 3, 2, 1, 2), (7, 9, 3, 2, 2, 0, 3),
              (9, 9, 2, 1, 2, 0, 1), (6, 5, 4, 5, 3, 2, 4)]
# (H, W, C, K, S, PE): non-overlapping, overlapping and partly-covered max-pools
POOL_SHAPES = [(8, 8, 4, 2, 2, 2), (7, 7, 2, 3, 2, 1), (6, 9, 3, 2, 2, 3), (5, 5, 2, 3, 1, 2)]
# (total elements, elements of BITS bits per AXI word, elements per inner word)
GEARBOX_SHAPES = [(64, 4, 1), (63, 4, 2), (60, 4, 8), (10, 4, 2), (9, 3, 4), (17, 8, 3)]


def _pad(x: np.ndarray, p: int) -> np.ndarray:
    return np.pad(x, ((p, p), (p, p), (0, 0)))


def _windows(x: np.ndarray, k: int, s: int) -> np.ndarray:
    """(OH, OW, K, K, C) windows of an (H, W, C) map."""
    h, w, _ = x.shape
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    return np.stack([np.stack([x[i * s:i * s + k, j * s:j * s + k] for j in range(ow)]) for i in range(oh)])


def _input(h: int, w: int, c: int) -> np.ndarray:
    return np.arange(1, h * w * c + 1, dtype=np.int64).reshape(h, w, c)


def _harness() -> str:
    calls = []
    for n, (h, w, c, k, s, p, simd) in enumerate(SWG_SHAPES):
        calls.append(f"    swg<{h}, {w}, {c}, {k}, {s}, {p}, {simd}>({n});")
    for n, (h, w, c, k, s, pe) in enumerate(POOL_SHAPES):
        calls.append(f"    pool<{h}, {w}, {c}, {k}, {s}, {pe}>({n});")
    for n, (total, per_word, elems) in enumerate(GEARBOX_SHAPES):
        calls.append(f"    io<{total}, {per_word}, {elems}, {gearbox_iterations(total, per_word, elems)}, "
                     f"{gearbox_iterations(total, elems, per_word)}>({n});")
    body = "\n".join(calls)
    return f"""#include <cstdio>
#include "{KERNELS_HEADER}"

typedef codesign::UintFmt<{BITS}> F;

template <int N>
void put(hls::stream<ap_uint<N * {BITS}> > &s, long first) {{
    ap_uint<N * {BITS}> word = 0;
    for (int i = 0; i < N; i++) word.range(i * {BITS} + {BITS} - 1, i * {BITS}) = first + i;
    s.write(word);
}}

template <int N>
void dump(const char *tag, int id, hls::stream<ap_uint<N * {BITS}> > &s) {{
    std::printf("%s %d %ld", tag, id, codesign::iterations());
    while (!s.empty()) {{
        ap_uint<N * {BITS}> word = s.read();
        for (int i = 0; i < N; i++) std::printf(" %u", (unsigned)word.range(i * {BITS} + {BITS} - 1, i * {BITS}));
    }}
    std::printf("\\n");
}}

template <int H, int W, int C, int K, int S, int P, int SIMD>
void swg(int id) {{
    hls::stream<ap_uint<SIMD * {BITS}> > in, out;
    for (long i = 0; i < H * W * C; i += SIMD) put<SIMD>(in, i + 1);
    codesign::iterations() = 0;
    codesign::sliding_window<H, W, C, K, K, S, S, P, P, P, P, SIMD, F, F>(in, out);
    if (!in.empty()) std::printf("swg %d left input\\n", id);
    dump<SIMD>("swg", id, out);
}}

template <int H, int W, int C, int K, int S, int PE>
void pool(int id) {{
    const int OW = (W - K) / S + 1;
    hls::stream<ap_uint<PE * {BITS}> > in, mid, out;
    for (long i = 0; i < H * W * C; i += PE) put<PE>(in, i + 1);
    codesign::iterations() = 0;
    codesign::max_pool_axis<H, W, C / PE, K, S, PE, F>(in, mid);
    std::printf("rows %d %ld\\n", id, codesign::iterations());
    codesign::iterations() = 0;
    codesign::max_pool_axis<1, H, OW * C / PE, K, S, PE, F>(mid, out);
    if (!in.empty() || !mid.empty()) std::printf("pool %d left input\\n", id);
    dump<PE>("pool", id, out);
}}

template <int TOTAL, int P, int E, int IN_ITERS, int OUT_ITERS>
void io(int id) {{
    hls::stream<ap_uint<P * {BITS}> > axi, back;
    hls::stream<ap_uint<E * {BITS}> > inner;
    for (long i = 0; i < TOTAL; i += P) {{
        ap_uint<P * {BITS}> word = 0;
        for (int j = 0; j < P && i + j < TOTAL; j++) word.range(j * {BITS} + {BITS} - 1, j * {BITS}) = i + j + 1;
        axi.write(word);
    }}
    codesign::iterations() = 0;
    codesign::axis_in<P * {BITS}, P, E, {BITS}, TOTAL, IN_ITERS>(axi, inner);
    std::printf("in %d %ld\\n", id, codesign::iterations());
    codesign::iterations() = 0;
    codesign::axis_out<E, {BITS}, P * {BITS}, P, {BITS}, false, TOTAL, OUT_ITERS>(inner, back);
    if (!axi.empty() || !inner.empty()) std::printf("io %d left input\\n", id);
    dump<P>("out", id, back);
}}

int main() {{
{body}
    return 0;
}}
"""


@pytest.fixture(scope="module")
def harness(tmp_path_factory) -> dict[tuple[str, int], list[int]]:
    folder = tmp_path_factory.mktemp("kernels")
    (folder / KERNELS_HEADER).write_text(_environment().get_template("kernels.h.j2").render(
        top="harness", guard="CODESIGN_KERNELS_H"))
    (folder / "harness.cpp").write_text(_harness())
    subprocess.run(["g++", "-std=c++14", "-O1", "-DCODESIGN_COUNT_ITERATIONS", "-I.", "-isystem", str(ap_types_dir()),
                    "harness.cpp", "-o", "harness"], cwd=folder, check=True, capture_output=True, text=True)
    out = subprocess.run([str(Path(folder) / "harness")], capture_output=True, text=True, check=True).stdout
    assert "left input" not in out and "WARNING" not in out, out
    return {(line.split()[0], int(line.split()[1])): [int(v) for v in line.split()[2:]] for line in out.splitlines()}


@pytest.mark.parametrize("n", range(len(SWG_SHAPES)))
def test_sliding_window_takes_the_model_cycles_and_emits_every_window(harness, n):
    h, w, c, k, s, p, simd = SWG_SHAPES[n]
    count, *values = harness[("swg", n)]
    x = _pad(_input(h, w, c), p)
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    model = SlidingWindow("swg", h + 2 * p, w + 2 * p, c, k, s, oh, ow)
    assert count == int(model.cycles(simd))  # exactly FINN's schedule, padded dimensions
    assert values == _windows(x, k, s).reshape(-1).tolist()  # (oh, ow, kh, kw, c) order, padding 0


@pytest.mark.parametrize("n", range(len(POOL_SHAPES)))
def test_max_pool_reads_each_element_once_as_the_model_costs(harness, n):
    h, w, c, k, s, pe = POOL_SHAPES[n]
    (rows,) = harness[("rows", n)]
    count, *values = harness[("pool", n)]
    ow = (w - k) // s + 1
    assert rows == int(MaxPool("pool", h, w, c, k, s).cycles(pe))  # the row pass sets the pace
    assert count == h * ow * c // pe < rows  # the column pass reads the row maxima
    assert values == _windows(_input(h, w, c), k, s).max(axis=(2, 3)).reshape(-1).tolist()


@pytest.mark.parametrize("n", range(len(GEARBOX_SHAPES)))
def test_axi_adapters_pack_and_unpack_at_one_word_per_cycle(harness, n):
    total, per_word, elems = GEARBOX_SHAPES[n]
    (read,) = harness[("in", n)]
    count, *values = harness[("out", n)]
    axi_words = -(-total // per_word)
    assert axi_words == int(StreamIO("io", total, "input").cycles(BITS, per_word * BITS))
    inner_words = -(-total // elems)
    # one AXI word or one inner word per cycle, whichever is more; at most one cycle more when
    # a word straddles the two widths at the end of the frame
    for iters in (read, count):
        assert max(axi_words, inner_words) <= iters <= max(axi_words, inner_words) + 1
    assert read == gearbox_iterations(total, per_word, elems) and count == gearbox_iterations(total, elems, per_word)
    assert values == list(range(1, total + 1)) + [0] * (axi_words * per_word - total)  # zero-padded last word


def _simulate_gearbox(total: int, n_in: int, n_out: int) -> int:
    """The gearbox kernel's loop, step by step."""
    have, left, iters = 0, total, 0
    while left > 0 or have > 0:
        if left > 0 and have < n_out:
            n = min(left, n_in)
            have, left = have + n, left - n
        if have >= n_out or (left == 0 and have > 0):
            have = max(have - n_out, 0)
        iters += 1
    return iters


def test_gearbox_iterations_follow_the_kernel_loop():
    for total in range(1, 70):
        for n_in in range(1, 12):
            for n_out in range(1, 12):
                assert gearbox_iterations(total, n_in, n_out) == _simulate_gearbox(total, n_in, n_out)
    assert gearbox_iterations(64, 8, 1) == 64 and gearbox_iterations(64, 1, 8) == 64
    assert gearbox_iterations(64, 8, 8) == 8 and gearbox_iterations(9, 3, 4) == 4


def _instrument(top: Path) -> list[str]:
    """Print and reset the iteration counter after every kernel call of the top; the kernel names."""
    lines, kernels, call = [], [], None
    for line in top.read_text().splitlines():
        lines.append(line)
        m = re.match(r"    codesign::(\w+)<", line)
        if m:
            call = m.group(1)
        if call and line.rstrip().endswith(");"):
            kernels.append(call)
            lines.append('    std::printf("%ld\\n", codesign::iterations()); codesign::iterations() = 0;')
            call = None
    top.write_text("#include <cstdio>\n" + "\n".join(lines) + "\n")
    return kernels


def stage_iterations(project: Path) -> dict[str, int]:
    """Per stage of an emitted project (named as the top's comments name them), its kernel's loop
    iterations on the first test vector, counted in a C-simulation build with iteration counters;
    the output is checked against the reference on the way."""
    from codesign.backend.csim import ap_types_dir, read_manifest, write_inputs

    top = project / "src" / "codesign_top.cpp"
    stages = [line[5:].split(":")[0].strip() for line in top.read_text().splitlines() if line.startswith("//   ")]
    kernels = _instrument(top)
    files = read_manifest(project)["files"]
    sources = [f for f in files["sources"] + files["testbench"] if f.endswith(".cpp")]
    subprocess.run(["g++", "-std=c++14", "-O1", "-DCODESIGN_COUNT_ITERATIONS", "-Isrc", "-isystem", str(ap_types_dir()),
                    *sources, "-o", "counted"], cwd=project, check=True, capture_output=True, text=True)
    with np.load(project / "tb_data" / "vectors.npz") as data:
        codes, reference = data["codes"][:1], data["reference"][:1]
    write_inputs(project / "one.txt", codes)
    out = subprocess.run(["./counted", "one.txt", "one_out.txt", "-"], cwd=project, capture_output=True, text=True,
                         check=True).stdout.split()
    assert np.array_equal(np.loadtxt(project / "one_out.txt", dtype=np.int64, ndmin=2), reference)
    counts = dict(zip(stages, (int(v) for v in out[:len(kernels)])))
    assert len(counts) == len(kernels) == len(stages)
    return counts


def test_every_stage_of_an_emitted_design_takes_the_model_cycles(tmp_path):
    """Emit a folded design (stride-2 padded conv, max-pool, width converters), count each stage's
    loop iterations in C-simulation: sliding windows, MVAUs and the max-pool's row pass equal the
    model's stage cycles; adapters and converters never exceed the model's initiation interval."""
    from test_backend_models import HandNet, export, randomize

    from codesign.backend.emit import emit
    from codesign.backend.lower import lower_model, network_of
    from hw_space.boards import load_board
    from hw_space.design import Design, Hardware, LayerFold
    from hw_space.model import evaluate_design

    model = randomize(HandNet(wbits=(4, 2, 2, 4), abits=(4, 2, 3), padding=(1, 1), stride=(1, 2)), 4)
    path = export(model, tmp_path / "m.onnx")
    folds = {"conv0": LayerFold(pe=2, simd=1), "pool0": LayerFold(pe=4), "conv1": LayerFold(pe=3, simd=8),
             "fc0": LayerFold(pe=4, simd=6), "fc1": LayerFold(pe=5, simd=2)}
    design = Design(network=network_of(lower_model(path)), hardware=Hardware(board="zcu104", layers=folds))
    project = tmp_path / "hls"
    emit(path, project, design=design, samples=2)
    counts = stage_iterations(project)

    # every kernel the writer emits is a stage of the cost model with exactly its iterations
    # (the max-pool's row pass is the model's <pool>_rows; the HLS comment calls it <pool>_swg)
    result = evaluate_design(design, load_board("zcu104"))
    cycles = {st.name: int(st.cycles[0]) for st in result.stages if st.kind not in ("fifo", "shell") and st.active[0]}
    renamed = {("pool0_rows" if name == "pool0_swg" else name): count for name, count in counts.items()}
    assert renamed == cycles
    assert any(name.endswith("_dwc") for name in counts)
    assert max(counts.values()) == int(result.ii_cycles[0])
    # input: 64 8-bit elements in 4 words of 128 bits, unpacked to the first SIMD (1): 64 iterations
    assert counts["input"] == 64 <= counts["conv0_swg"]
    # output: 10 logits of 16 bits = 2 words of 128 bits; from PE 5 the packer needs one cycle more
    assert counts["output"] == 3
