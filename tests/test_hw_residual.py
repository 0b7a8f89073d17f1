"""Residual networks in the cost model: the add of two streams (AddStreams) and the fork
(DuplicateStreams) by hand, the stream graph of a residual design (a width converter and a FIFO per
edge, a duplicator after every fork, `reads` per stage), the longest-path latency bound, the
folding optimizer and the CLI on examples/digits_resnet.yaml; a chain's stages are unchanged."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hw_space.boards import load_board
from hw_space.design import LayerFold, load_design
from hw_space.errors import CodesignError
from hw_space.folding import legal_folds
from hw_space.layers import AddStreams, DuplicateStreams, FoldArrays, Role
from hw_space.lowering import fold_specs, lower_dataflow
from hw_space.model import CostModel, design_arrays, evaluate_design

ROOT = Path(__file__).resolve().parents[1]
RESNET = ROOT / "examples" / "digits_resnet.yaml"


def _cols(pe, in_bits=4, abits=4, in_elems=None):
    return FoldArrays.blank(1, 64, pe=np.array([pe]), in_bits=np.array([in_bits]), abits=np.array([abits]),
                            in_elems=np.array([pe if in_elems is None else in_elems]))


def _fig(st, k=0):
    return {"cycles": int(np.asarray(st.cycles)[k]), "LUT": int(np.asarray(st.res.LUT)[k]),
            "FF": int(np.asarray(st.res.FF)[k]), "BRAM18": int(np.asarray(st.res.BRAM18)[k])}


# ------------------------------------------------------------------ the kinds by hand


def test_add_streams_cycles_and_resources_by_hand():
    add = AddStreams("add1", channels=16, pixels=64)
    # FINN AddStreams get_exp_cycles: H*W * C/PE = 64 * 16/4 = 256; PE 1: 1,024; PE 16: 64
    assert add.cycles(4) == 256 and add.cycles(1) == 1024 and add.cycles(16) == 64
    # PE 4, 4-bit inputs, act_bits 4: the sum has 4 + 1 = 5 bits; TMEM = 16/4 = 4 threshold words,
    # 2^4 - 1 = 15 thresholds of 5 bits per channel:
    #   LUT = 100 + PE*(5 adder + 15*5*ceil(4/64) threshold LUTRAM + 15*5 comparators) = 100 + 4*155 = 720
    #   FF = 64 + PE*(2*4 inputs + 5 sum + 4 output) = 64 + 4*17 = 132
    a = _cols(4)
    r = add.stage_resources(a)
    assert (int(r.LUT[0]), int(r.FF[0]), int(r.BRAM18[0]), int(r.DSP[0])) == (720, 132, 0, 0)
    # widest word: max(4 lanes * max(4, 4) bits, a 5-bit sum) = 16
    assert int(add.stage_width(a)[0]) == 16
    assert int(add.in_elems(a)[0]) == 4 and int(add.out_elems(a)[0]) == 4 and int(add.out_bits(a)[0]) == 4
    # PE 1, 2-bit inputs requantized to 3 bits (act_bits 3): sum 3 bits, TMEM 16, 7 thresholds
    #   LUT = 100 + 1*(3 + 7*3*ceil(16/64) + 7*3) = 100 + 45 = 145; FF = 64 + (2*2 + 3 + 3) = 74
    b = _cols(1, in_bits=2, abits=3)
    r = add.stage_resources(b)
    assert (int(r.LUT[0]), int(r.FF[0])) == (145, 74) and int(add.out_bits(b)[0]) == 3
    # no act_bits (0): the sum is requantized to the bits it receives
    assert int(add.out_bits(_cols(2, in_bits=3, abits=0))[0]) == 3
    # C % PE == 0 (FINN's AddStreams assertion)
    assert bool(add.stage_legal(a)[0]) and not bool(add.stage_legal(_cols(3))[0])
    assert add.rule("add1") == "add1: channels (16) must be divisible by PE"
    # a write in every iteration, a word from each input read in every iteration: 256 of each at PE 4
    reads, writes = add.schedule(add.detail(a) | {"pe": 4}, 256)
    assert len(reads) == 256 and reads.all() and writes.all()


def test_duplicate_streams_cycles_and_resources_by_hand():
    dup = DuplicateStreams("stem_dup", elements=16 * 8 * 8, outputs=2)
    # a word of 2 elements per cycle: 1,024 / 2 = 512 cycles (FINN DuplicateStreams: the words of a frame)
    a = _cols(0, in_bits=4, in_elems=2)
    assert int(dup.stage_cycles(a)[0]) == 512
    # a 2 x 4 = 8-bit word: LUT = 20 + 2*2 outputs = 24; FF = 8 + 32 = 40; nothing else
    r = dup.stage_resources(a)
    assert (int(r.LUT[0]), int(r.FF[0]), int(r.BRAM18[0]), int(r.DSP[0])) == (24, 40, 0, 0)
    assert int(dup.stage_width(a)[0]) == 8 and int(dup.out_elems(a)[0]) == 2 and int(dup.out_bits(a)[0]) == 4
    # three outputs: 20 + 2*3 = 26 LUTs; an odd word count rounds up: ceil(1,024 / 3) = 342
    three = DuplicateStreams("x_dup", elements=1024, outputs=3)
    assert int(three.stage_resources(a).LUT[0]) == 26 and int(three.stage_cycles(_cols(0, in_elems=3))[0]) == 342
    assert dup.fold_axes() == () and bool(dup.stage_legal(a)[0])  # no folding of its own
    reads, writes = dup.schedule({k: int(np.asarray(v).reshape(-1)[0]) for k, v in dup.detail(a).items()}, 512)
    assert len(reads) == 512 and reads.all() and writes.all()
    assert dup.summary(dup.detail(a), 8) == {"shape": "1 -> 2 streams"}


# ------------------------------------------------------------------ the stream graph

RESNET_STAGES = [
    "input", "input_fifo",
    "stem_swg", "stem_swg_fifo", "stem_dwc", "stem_dwc_fifo", "stem", "stem_fifo",
    "stem_dup", "stem_dup_fifo0", "stem_dup_fifo1",
    "b1a_in_dwc", "b1a_in_dwc_fifo", "b1a_swg", "b1a_swg_fifo", "b1a_dwc", "b1a_dwc_fifo", "b1a", "b1a_fifo",
    "b1b_in_dwc", "b1b_in_dwc_fifo", "b1b_swg", "b1b_swg_fifo", "b1b_dwc", "b1b_dwc_fifo", "b1b", "b1b_fifo",
    "add1_in_dwc", "add1_in_dwc_fifo", "add1_in1_dwc", "add1_in1_dwc_fifo", "add1", "add1_fifo",
    "add1_dup", "add1_dup_fifo0", "add1_dup_fifo1",
    "b2a_in_dwc", "b2a_in_dwc_fifo", "b2a_swg", "b2a_swg_fifo", "b2a_dwc", "b2a_dwc_fifo", "b2a", "b2a_fifo",
    "b2b_in_dwc", "b2b_in_dwc_fifo", "b2b_swg", "b2b_swg_fifo", "b2b_dwc", "b2b_dwc_fifo", "b2b", "b2b_fifo",
    "proj_in_dwc", "proj_in_dwc_fifo", "proj_swg", "proj_swg_fifo", "proj_dwc", "proj_dwc_fifo", "proj", "proj_fifo",
    "add2_in_dwc", "add2_in_dwc_fifo", "add2_in1_dwc", "add2_in1_dwc_fifo", "add2", "add2_fifo",
    "gap_in_dwc", "gap_in_dwc_fifo", "gap", "gap_fifo",
    "fc0_in_dwc", "fc0_in_dwc_fifo", "fc0", "fc0_fifo",
    "output", "platform",
]


@pytest.fixture(scope="module")
def resnet():
    return load_design(RESNET)


def _folded(design):
    # stem writes 2 elements per word, b1b 2, proj 4; add1 reads 8, add2 2 (its port 0 matches b2b's PE 2)
    return design.with_hardware(layers={"stem": LayerFold(pe=2, simd=9), "b1b": LayerFold(pe=2), "add1": LayerFold(pe=8),
                                        "b2b": LayerFold(pe=2), "proj": LayerFold(pe=4), "add2": LayerFold(pe=2)})


def test_the_residual_design_has_the_contract_stages_and_reads(resnet):
    net = resnet.network
    assert not net.is_chain() and net.is_fork(0) and net.is_join(3) and net.is_join(7)
    assert [type(k) for k in lower_dataflow(net)[3]] == [AddStreams]
    result = evaluate_design(_folded(resnet), load_board("pynq-z1"))
    stages = {st.name: st for st in result.stages}
    assert [st.name for st in result.stages] == RESNET_STAGES
    # kinds and layers: a duplicator belongs to the layer it copies, a converter to the layer it feeds
    assert (stages["stem_dup"].kind, stages["stem_dup"].layer, stages["stem_dup"].template) == \
        ("dup", "stem", "duplicate_streams")
    assert (stages["add1"].kind, stages["add1"].layer, stages["add1"].template) == ("add", "add1", "add_streams")
    assert stages["add1_in1_dwc"].layer == "add1" and stages["stem_dup_fifo1"].layer == "stem"
    # reads by input port: the add reads its two converters' FIFOs; the skip path runs from the
    # stem's duplicator (its second output) into add1's port-1 converter
    assert stages["add1"].reads == ("add1_in_dwc_fifo", "add1_in1_dwc_fifo")
    assert stages["add1_in_dwc"].reads == ("b1b_fifo",) and stages["add1_in1_dwc"].reads == ("stem_dup_fifo1",)
    assert stages["b1a_in_dwc"].reads == ("stem_dup_fifo0",)
    assert stages["stem_dup"].reads == ("stem_fifo",)
    assert stages["stem_dup_fifo0"].reads == stages["stem_dup_fifo1"].reads == ("stem_dup",)
    assert stages["proj_in_dwc"].reads == ("add1_dup_fifo1",) and stages["b2a_in_dwc"].reads == ("add1_dup_fifo0",)
    assert stages["add2"].reads == ("add2_in_dwc_fifo", "add2_in1_dwc_fifo")
    assert stages["input"].reads == () and stages["platform"].reads == ()
    assert stages["stem_swg"].reads == ("input_fifo",)  # no converter between the input adapter and its only reader
    # every FIFO reads the one stage that writes it; every kernel reads FIFOs; all of them earlier in the list
    order = {st.name: k for k, st in enumerate(result.stages)}
    for st in result.stages:
        role = st.op.role
        assert all(order[r] < order[st.name] for r in st.reads), st.name
        if role is Role.FIFO:
            assert len(st.reads) == 1 and stages[st.reads[0]].op.role is Role.KERNEL and st.detail["producer"] == st.reads[0]
        elif st.name not in ("input", "platform"):
            assert st.reads and all(stages[r].op.role is Role.FIFO for r in st.reads), st.name
    # each FIFO is read exactly once (one edge each)
    read = [r for st in result.stages for r in st.reads if stages[r].op.role is Role.FIFO]
    assert sorted(read) == sorted(st.name for st in result.stages if st.op.role is Role.FIFO)
    # converters where the words differ: stem writes 2 per word, add1 reads 8 on both ports; add2's port 0
    # (b2b's PE 2) needs none, its port 1 (proj's PE 4) does; an inactive stage keeps its reads
    active = {st.name for st in result.stages if bool(st.active[0])}
    assert {"add1_in_dwc", "add1_in1_dwc", "add2_in1_dwc", "b1a_in_dwc"} <= active
    assert "add2_in_dwc" not in active and stages["add2_in_dwc"].reads == ("b2b_fifo",)
    # the duplicator's word is the stem's (2 elements of 4 bits): 16*8*8 / 2 = 512 cycles, the 8-bit FIFO
    assert _fig(stages["stem_dup"]) == {"cycles": 512, "LUT": 24, "FF": 40, "BRAM18": 0}
    assert int(stages["stem_dup_fifo1"].width[0]) == 8
    # add1 at PE 8: 64 * 16/8 = 128 cycles; LUT 100 + 8*(5 + 15*5*ceil(2/64) + 15*5) = 1,340; FF 64 + 8*17 = 200
    assert _fig(stages["add1"]) == {"cycles": 128, "LUT": 1340, "FF": 200, "BRAM18": 0}


def test_a_fork_at_the_network_input():
    import yaml

    from hw_space.design import design_from_dict

    design = design_from_dict(yaml.safe_load("""
network:
  input: {channels: 3, height: 8, width: 8, bits: 4}
  layers:
    - {name: conv0, type: conv, out_channels: 3, kernel: 3, padding: 1, weight_bits: 2, act_bits: 4}
    - {name: add0, type: add, inputs: [conv0, input], act_bits: 3}
    - {name: fc0, type: dense, out_features: 10, weight_bits: 2}
hardware: {board: pynq-z1, layers: {conv0: {pe: 1, simd: 9}}}
"""))
    result = evaluate_design(design, load_board("pynq-z1"))
    stages = {st.name: st for st in result.stages}
    assert [st.name for st in result.stages][:7] == ["input", "input_fifo", "input_dup", "input_dup_fifo0",
                                                      "input_dup_fifo1", "conv0_in_dwc", "conv0_in_dwc_fifo"]
    assert stages["input_dup"].layer == "input" and stages["conv0_in_dwc"].reads == ("input_dup_fifo0",)
    assert stages["add0_in1_dwc"].reads == ("input_dup_fifo1",)
    # the input adapter writes its first reader's word (conv0's window: 3 channels of 4 bits), so the
    # duplicator copies 8*8 words of 12 bits; add0 (PE 1) repacks its port-1 input from 3 to 1 per word
    assert _fig(stages["input_dup"])["cycles"] == 64 and int(stages["input_dup_fifo1"].width[0]) == 12
    assert bool(stages["add0_in1_dwc"].active[0]) and not bool(stages["conv0_in_dwc"].active[0])
    assert int(stages["add0_in1_dwc"].cycles[0]) == 3 * 8 * 8  # one element per cycle out
    # add0 requantizes a 5-bit sum of two 4-bit codes to 3 bits
    assert int(stages["add0"].width[0]) == 5 and int(stages["add0_fifo"].width[0]) == 3


def test_fifo_depths_are_one_per_fifo_stage_and_price_the_skip_fifo(resnet):
    model = CostModel(resnet.network, load_board("pynq-z1"))
    base = model.evaluate_designs([resnet])
    fifos = [st.name for st in base.stages if st.kind == "fifo"]
    assert len(fifos) == len(model.df_edges) == 38
    skip = fifos.index("stem_dup_fifo1")
    depths = np.full((3, len(fifos)), 2)
    depths[1, skip], depths[2, skip] = 1024, 2048
    result = model.evaluate_designs([resnet] * 3, fifo_depths=depths)
    st = next(s for s in result.stages if s.name == "stem_dup_fifo1")
    # 4-bit words (PE 1): 2 deep: registers, FF 2*4 = 8. 1,024 deep: 4,096 bits -> SRL (LUTRAM),
    # ceil(1024/32)*4 = 128 LUTs + 2*ceil(log2 1024) = 20 address LUTs = 148, FF 2*20 + 2 = 42.
    # 2,048 deep: 8,192 bits -> BRAM18, the 4-bit rung holds 4K words: 1 block; LUT 2*11 = 22, FF 46
    assert [_fig(st, k) for k in range(3)] == [{"cycles": 0, "LUT": 0, "FF": 8, "BRAM18": 0},
                                              {"cycles": 0, "LUT": 148, "FF": 42, "BRAM18": 0},
                                              {"cycles": 0, "LUT": 22, "FF": 46, "BRAM18": 1}]
    assert int(np.asarray(st.res.LUTRAM)[1]) == 128
    assert list(result.resources["BRAM18"] - base.resources["BRAM18"][0]) == [0, 0, 1]
    with pytest.raises(ValueError):
        model.evaluate_designs([resnet], fifo_depths=np.full((1, len(fifos) + 1), 2))


def test_ii_is_the_slowest_stage_and_latency_the_longest_path(resnet):
    result = evaluate_design(resnet, load_board("pynq-z1"))
    stages = {st.name: st for st in result.stages}
    cycles = {name: int(st.cycles[0]) for name, st in stages.items()}
    assert int(result.ii_cycles[0]) == max(cycles.values()) == 147_456  # b1a, b1b and b2b at PE = SIMD = 1
    # longest path by hand over the reads graph (a stage's finish = its cycles + the latest of what it reads)
    finish: dict[str, int] = {}
    for st in result.stages:
        finish[st.name] = cycles[st.name] + max((finish[r] for r in st.reads), default=0)
    assert int(result.latency_cycles[0]) == finish["output"]
    # the bound follows the residual branch (b1a, b1b: 2 x 147,456) and not the skip FIFO beside it:
    # b2a 73,728 + b2b 147,456 on the main path, proj 8,192 beside them
    assert finish["add1_in_dwc"] > finish["add1_in1_dwc"] and finish["add2_in_dwc"] > finish["add2_in1_dwc"]
    # (the skip paths hold only duplicators and FIFOs): every stage but proj_swg (1,152) and proj (8,192)
    assert (cycles["proj_swg"], cycles["proj"]) == (1_152, 8_192)
    assert int(result.latency_cycles[0]) == sum(cycles.values()) - 9_344 == 557_768


def test_a_chain_keeps_its_stages_and_reads_the_stage_before():
    design = load_design(ROOT / "examples" / "digits_w4a4.yaml")
    result = evaluate_design(design, load_board("zc706"))
    names = [st.name for st in result.stages]
    assert names == [
        "input", "input_fifo", "conv0_swg", "conv0_swg_fifo", "conv0_dwc", "conv0_dwc_fifo", "conv0", "conv0_fifo",
        "pool0_in_dwc", "pool0_in_dwc_fifo", "pool0_rows", "pool0_rows_fifo", "pool0", "pool0_fifo",
        "conv1_in_dwc", "conv1_in_dwc_fifo", "conv1_swg", "conv1_swg_fifo", "conv1_dwc", "conv1_dwc_fifo", "conv1",
        "conv1_fifo", "pool1_in_dwc", "pool1_in_dwc_fifo", "pool1_rows", "pool1_rows_fifo", "pool1", "pool1_fifo",
        "fc0_in_dwc", "fc0_in_dwc_fifo", "fc0", "fc0_fifo", "fc1_in_dwc", "fc1_in_dwc_fifo", "fc1", "fc1_fifo",
        "output", "platform"]
    assert [st.reads for st in result.stages[1:-1]] == [(n,) for n in names[:-2]]
    assert result.stages[0].reads == result.stages[-1].reads == ()
    # a chain's latency bound is still the sum of its stage cycles
    assert int(result.latency_cycles[0]) == sum(int(st.cycles[0]) for st in result.stages)


def test_folding_axes_and_design_arrays_of_a_residual_design(resnet):
    folds = legal_folds(resnet.network)
    assert folds["add1"] == ([1, 2, 4, 8, 16], [1]) and folds["add2"] == ([1, 2, 4, 8, 16, 32], [1])
    specs = fold_specs(resnet.network)
    assert specs[3].default("pe") == 1 and specs[3].styles == ()  # PE 1 when left out, as an average pool
    arrays = design_arrays(_folded(resnet))
    assert list(arrays["pe"]) == [2, 1, 2, 8, 1, 2, 4, 2, 1, 1] and list(arrays["act_bits"])[3] == 4
    bad = resnet.with_hardware(layers={"add1": LayerFold(pe=3)})
    result = evaluate_design(bad, load_board("pynq-z1"))
    assert not bool(result.legal[0])
    assert [st.rule for st in result.stages if not bool(st.legal[0])] == ["add1: channels (16) must be divisible by PE"]


def test_the_tiled_template_refuses_a_residual_network(resnet):
    model = CostModel(resnet.network, load_board("pynq-z1"))  # the dataflow skeleton alone
    with pytest.raises(CodesignError, match=r"^the tiled template: network.layers\[3\] \(add1\) reads b1b, stem; the "
                       r"tiled engine runs chains of layers only .*residual networks need the dataflow template"):
        model.evaluate_tiled(4, 4, 4, 4)


# ------------------------------------------------------------------ the commands


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "codesign", *args], capture_output=True, text=True, cwd=ROOT)


def test_cli_estimate_and_fold_a_residual_design(tmp_path):
    run = _cli("estimate", "--no-simulate", str(RESNET))
    assert run.returncode == 0, run.stderr
    rows = {line.split()[0]: line.split() for line in run.stdout.splitlines() if line.strip()}
    assert rows["stem_dup"][1] == "dup" and rows["add1"][1] == "add" and rows["add2"][1] == "add"
    assert "stem_dup_fifo1" in rows and "add1_dup_fifo1" in rows
    assert "add1_in_dwc" not in rows  # inactive at PE 1 on both sides: not shown
    # the bound is the longest path: every stage but the projection shortcut's (tests above)
    assert "latency 557,768 cycles" in run.stdout and "along the longest path" in run.stdout
    out = tmp_path / "folded.yaml"
    run = _cli("fold", str(RESNET), "--out", str(out))
    assert run.returncode == 0, run.stderr
    folded = load_design(out)
    assert folded.network == load_design(RESNET).network
    assert {"add1", "add2"} <= set(folded.hardware.layers)
    before = evaluate_design(load_design(RESNET), load_board("pynq-z1"))
    after = evaluate_design(folded, load_board("pynq-z1"))
    assert bool(after.feasible[0]) and int(after.ii_cycles[0]) * 50 < int(before.ii_cycles[0])
    # the folding is legal on every axis, adds included
    for layer, (pes, simds) in legal_folds(folded.network).items():
        f = folded.hardware.fold(layer)
        assert f.pe in pes and f.simd in simds, layer


def _simulator_runs_graphs() -> bool:
    from hw_space import simulate

    return "fifo_edges" in {f.name for f in dataclasses.fields(simulate.Chain)}


@pytest.mark.skipif(not _simulator_runs_graphs(), reason="the cycle simulator of this branch runs chains only "
                    "(helper sim's branch adds stream graphs)")
def test_cli_estimate_with_simulated_fifos_of_a_residual_design():
    run = _cli("estimate", str(RESNET))
    assert run.returncode == 0, run.stderr
    assert "simulated" in run.stdout and "deadlock" not in run.stdout.lower()
