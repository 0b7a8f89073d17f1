"""The space's `rule: htas`: the per-layer sweep, the power-law fit, the groups, board-specific
choices, the saved choices a resume reuses, and `codesign space`."""

import numpy as np
import pytest

from codesign.cli import main
from codesign.search import htas
from codesign.search.space import Context, load_space, save_space, space_from_dict
from hw_space.boards import load_board
from hw_space.design import InputSpec, Layer, Network
from hw_space.errors import CodesignError
from hw_space.layers import MAC_DSP, MAC_LUT, Role
from hw_space.memory import AUTO, BRAM, LUTRAM
from hw_space.model import CostModel
from hw_space.width_sweep import LIMITED, fastest_cycles, share_limit, sweep

ZC706 = Context(1, 8, 8, 10, board="zc706")
PYNQ = Context(1, 8, 8, 10, board="pynq-z1")


def conv(x: int, k: int = 3) -> Layer:
    return Layer(name="c", type="conv", out_channels=x, kernel=k, stride=1, padding=k // 2, weight_bits=4, act_bits=4)


# ---------------------------------------------------------------- the sweep (hw_space.width_sweep)

def test_unlimited_layer_runs_at_its_sliding_window_rate():
    # 3x3 conv on a 1x4x4 input, padding 1 (6x6 padded), any x outputs, resources unlimited: the MVAU
    # takes PE = x, SIMD = 9: (x/x)*(9/9)*16 pixels = 16 cycles; the window with SIMD 1 (C = 1) takes
    # IFMw*K*C + OFMh*max(OFMw*K*K*C, IFMw*C) = 6*3*1 + 4*max(4*9, 6) = 18 + 144 = 162 cycles, the II.
    board = load_board("zc706")
    huge = np.full(len(LIMITED), 1e12)
    assert sweep([(conv(x), InputSpec(1, 4, 4, 8)) for x in (1, 7, 12, 64)], board, huge).tolist() == [162.0] * 4


def test_nothing_fits_a_share_too_small():
    # the MVAU alone costs 300 LUTs of control (FINN's lut_estimation constant): a 100-LUT share fits nothing
    limit = share_limit(load_board("pynq-z1"), 100 / 53200)
    assert fastest_cycles(conv(8), InputSpec(8, 4, 4, 4), load_board("pynq-z1"), limit) == float("inf")


@pytest.mark.parametrize("x", [6, 13, 16])
def test_sweep_agrees_with_the_whole_design_model(x):
    """The batched sweep equals a brute force through CostModel.evaluate_dataflow: every folding the
    optimizer considers, the layer's kernels' cycles (max) and resources (sum), the fastest that fits."""
    board = load_board("pynq-z1")
    limit = share_limit(board, 0.85 / 5)
    layer, source = conv(x), InputSpec(16, 4, 4, 4)
    model = CostModel(Network(input=source, layers=(layer,)), board)
    spec = model.fold_specs[0]
    grid = np.array(np.meshgrid(spec.values("pe"), spec.values("simd"), [AUTO, BRAM, LUTRAM], [MAC_LUT, MAC_DSP],
                                indexing="ij")).reshape(4, -1)
    result = model.evaluate_dataflow(grid[0][:, None], grid[1][:, None], mem=grid[2][:, None], mac=grid[3][:, None])
    kernels = [st for st in result.stages if st.layer == "c" and st.op.role is Role.KERNEL]
    assert {st.kind for st in kernels} >= {"swg", "mvau"}
    cycles = np.max([np.where(st.active, st.cycles, 0) for st in kernels], axis=0)
    used = np.stack([sum(st.res.LUTRAM if k == "LUTRAM" else getattr(st.res, k) for st in kernels) for k in LIMITED],
                    axis=1)
    ok = np.all([st.legal & (st.width <= 2 ** 15) for st in kernels], axis=0) & np.all(used <= limit, axis=1)
    assert ok.any() and fastest_cycles(layer, source, board, limit) == float(cycles[ok].min())


def test_one_batch_over_many_widths_equals_one_layer_at_a_time():
    # the batch stacks the layers' shapes into arrays (a window over x input channels, an MVAU of
    # 9x inputs): the same figures as each layer scored alone with its own scalar shape
    board = load_board("zc706")
    limit = share_limit(board, 0.85 / 5)
    readers = [(conv(32), InputSpec(x, 4, 4, 4)) for x in (1, 5, 12, 30, 64)]
    writers = [(Layer(name="d", type="dense", out_features=x, weight_bits=2, act_bits=2), InputSpec(64, 1, 1, 2))
               for x in (3, 16, 17)]
    for batch in (readers, writers):
        assert sweep(batch, board, limit).tolist() == [fastest_cycles(l, s, board, limit) for l, s in batch]
    with pytest.raises(ValueError, match="one layer type"):
        sweep(readers + writers, board, limit)


# ---------------------------------------------------------------- fit, groups, choice

def test_fit_recovers_a_known_power_law():
    x = np.arange(1, 129, dtype=float)
    fit = htas.fit_power_law(x, 3.5 * x ** 1.7 + 120.0)
    assert fit.k == pytest.approx(3.5, rel=1e-4) and fit.alpha == pytest.approx(1.7, rel=1e-5)
    assert fit.b == pytest.approx(120.0, rel=1e-3)
    given = htas.fit_power_law(x, 2.0 * x + 5.0, alpha=1.0)  # alpha given: k and b by linear least squares
    assert (given.k, given.alpha, given.b) == (pytest.approx(2.0), 1.0, pytest.approx(5.0))


def test_groups_split_min_max_into_runs():
    parts = htas.groups(8, 64, 8)
    assert len(parts) == 8 and np.concatenate(parts).tolist() == list(range(8, 65))
    assert {len(p) for p in parts} == {7, 8}  # 57 counts: one group of 8, seven of 7
    assert [p.tolist() for p in htas.groups(5, 7, 8)] == [[5], [6], [7]]  # fewer counts than groups


def test_choose_keeps_each_groups_fastest_count_against_the_fit():
    # m(x) = 10x + 100 + d(x), x = 1..12, with d(5) = -30, d(6) = +60, d(7) = -30 and x = 9 fitting
    # nothing (inf). sum(d) = 0 and sum(d*x) = -150 + 360 - 210 = 0, so the least-squares line
    # (alpha = 1) through the finite points is still exactly 10x + 100, and s(x) = f(x) - m(x) = -d(x):
    # s(5) = s(7) = 30, s(6) = -60, s(9) = -inf, else 0. Groups of 4..9 (g = 2): 4..6 -> 5, 7..9 -> 7.
    m = 10.0 * np.arange(1, 13) + 100.0
    m[[4, 5, 6]] += [-30.0, 60.0, -30.0]
    m[8] = np.inf
    fit, scores, chosen, bounds = htas.choose(m, 4, 9, 2, alpha=1.0)
    assert (fit.k, fit.alpha, fit.b) == (pytest.approx(10.0), 1.0, pytest.approx(100.0))
    assert scores[[4, 5, 6]].tolist() == pytest.approx([30.0, -60.0, 30.0]) and scores[8] == -np.inf
    assert bounds == ((4, 6), (7, 9)) and chosen == (5, 7)
    # nothing of a group fits: the group keeps its smallest count
    assert htas.choose(np.full(12, np.inf), 4, 9, 2)[2] == (4, 7)


# ---------------------------------------------------------------- board-specific choices

def test_two_boards_choose_differently_and_each_pick_is_its_groups_best():
    zc, pynq = load_space(context=ZC706), load_space(context=PYNQ)
    assert zc.channels.per_slot != pynq.channels.per_slot
    for space in (zc, pynq):
        for field in ("channels", "dense_features"):
            found = htas.choices(space, field)
            assert [c.slot for c in found] == htas.slots_of(space, field) and found
            for c in found:
                assert dict(getattr(space, field).per_slot)[c.slot] == c.chosen
                assert len(c.chosen) == 8 and c.fit is not None
                for (first, last), x in zip(c.groups, c.chosen):
                    assert first <= x <= last and np.isfinite(c.score(x))
                    assert all(c.score(x) >= c.score(y) for y in range(first, last + 1))
    # decisions are per position: conv1's channel choices are conv1's own
    d = {dec.name: dec.choices for dec in zc.decisions}
    assert d["conv1.channels"] == dict(zc.channels.per_slot)["conv1"]


def test_saved_choices_are_reused_for_the_same_board_and_measured_again_for_another(tmp_path, monkeypatch):
    space = load_space(context=PYNQ)
    path = tmp_path / "space.yaml"
    save_space(space, path)

    def refuse(*args, **kwargs):
        raise AssertionError("measured again")

    monkeypatch.setattr(htas, "choices", refuse)
    again = load_space(path, PYNQ)  # a resume: the saved choices, not a new measurement
    assert again.decisions == space.decisions and again.channels.per_slot == space.channels.per_slot
    first = dict(space.channels.per_slot)["conv0"]
    edited = [8 if first[0] != 8 else 9, *first[1:]]
    path.write_text(path.read_text().replace(f"conv0: {list(first)}", f"conv0: {edited}"))
    assert dict(load_space(path, PYNQ).channels.per_slot)["conv0"] == tuple(edited)  # the file's lists, as written
    monkeypatch.undo()
    other = load_space(path, ZC706)
    assert other.channels.per_slot == load_space(context=ZC706).channels.per_slot


def test_alpha_given_and_a_space_without_dense_positions():
    space = space_from_dict({"network": {"dense_layers": [0], "conv_blocks": [1],
                                         "channels": {"rule": "htas", "min": 4, "max": 12, "g": 3, "alpha": 1}}},
                            context=PYNQ)
    assert [slot for slot, _ in space.channels.per_slot] == ["conv0"] and len(space.channels.at("conv0")) == 3
    assert space.dense_features.per_slot == () and "dense_features: no position" in "\n".join(space.describe())
    assert all(c.fit.alpha == 1.0 for c in htas.choices(space, "channels"))


# ---------------------------------------------------------------- codesign space

def test_space_command_prints_the_table_and_writes_the_space(tmp_path, capsys):
    out = tmp_path / "resolved.yaml"
    assert main(["space", "--board", "pynq-z1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "not measured on a board" in text and "conv2: 3x3 conv" in text and "score" in text
    written = load_space(out, PYNQ)
    assert written.channels.per_slot == load_space(context=PYNQ).channels.per_slot


@pytest.mark.parametrize("argv, fragment", [
    (["space", "--board", "nope"], "nope"),
    (["space", "--board", "zc706", "--dataset", "imagenet"], "unknown dataset"),
    (["space", "--board", "zc706", "--space", "BAD"], "network.channels.rule"),
    (["space", "--board", "zc706", "--out", "FILE/space.yaml"], "FILE"),
])
def test_space_command_bad_input_is_one_line(tmp_path, capsys, argv, fragment):
    bad = tmp_path / "bad.yaml"
    bad.write_text("network: {channels: {rule: primes, min: 8, max: 64}}\n")
    (tmp_path / "FILE").write_text("a file, not a folder\n")
    argv = [str(bad) if a == "BAD" else a.replace("FILE", str(tmp_path / "FILE")) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("codesign: error:") and fragment in err
    assert not (tmp_path / "FILE").is_dir()


def test_htas_space_errors_name_the_field():
    with pytest.raises(CodesignError, match=r"network.dense_features: htas measures every count 1..e\*max"):
        space_from_dict({"network": {"dense_features": {"rule": "htas", "min": 16, "max": 512, "e": 4}}})
