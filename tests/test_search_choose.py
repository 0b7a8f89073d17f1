"""Choosing one design: the --choose rules on hand-made records, the accuracy floor, the
accuracy-FPS front vs the resource-aware front, the evolution warning and the --target-fps pre-check."""

import json

import numpy as np
import pytest

from codesign.commands import search
from codesign.search.journal import TrialRecord
from codesign.search.report import (
    CHOOSE_RULES,
    Choice,
    RunSummary,
    accuracy_floor,
    choose,
    pareto_front,
    render_report,
    resource_front,
    write_pareto,
)
from codesign.search.space import Context, load_space, space_from_dict
from codesign.search.strategies import EvolutionStrategy, RandomStrategy
from hw_space.boards import load_board
from hw_space.errors import CodesignError
from hw_space.model import CostModel

DESIGN = {"network": {"layers": [{"type": "conv", "out_channels": 8, "kernel": 3, "weight_bits": 2, "act_bits": 2},
                                 {"type": "dense", "out_features": 10, "weight_bits": 4}]},
          "hardware": {"template": "dataflow", "layers": {"conv0": {"pe": 1, "simd": 1}}}}
CAPACITY = {"LUT": 100_000, "FF": 200_000, "BRAM18": 200, "URAM": 0, "DSP": 400}


def rec(n, acc, fps, lut=1000, bram=2, dsp=0, status="trained"):
    design = json.loads(json.dumps(DESIGN))
    design["hardware"]["layers"]["conv0"]["pe"] = n + 1  # distinct designs
    res = {"LUT": lut, "FF": 2 * lut, "BRAM18": bram, "URAM": 0, "DSP": dsp}
    est = {"fps": fps, "latency_us": 1e6 / fps, "ii_cycles": 100, "resources": res, "capacity": CAPACITY,
           "utilization": {k: res[k] / CAPACITY[k] if CAPACITY[k] else 0.0 for k in res},
           "layers": [{"name": "conv0", "kind": "mvau", "shape": "", "pe": 1, "simd": 1, "cycles": 100, **res}]}
    return TrialRecord(number=n, tokens=[n], design=design, network_hash=f"h{n}", status=status,
                       reward=0.0 if status == "pruned" else acc, accuracy=None if status == "pruned" else acc,
                       estimate=est)


# The tester's run: 95% at 1.39M FPS beats 84% at 390k FPS in both accuracy and speed, but the old
# chooser took the latter - over a 5-objective front where it used fewer resources.
TESTER = [rec(0, 0.95, 1.39e6, lut=20_000, bram=20, dsp=10), rec(1, 0.84, 3.9e5, lut=3_000, bram=2),
          rec(2, 0.22, 2.78e6, lut=1_500, bram=1), rec(3, 0.60, 5e5, lut=2_500, bram=2),
          rec(4, 0.0, 1e7, status="pruned")]


def test_default_is_the_accuracy_fps_front_and_the_tester_case():
    front = pareto_front(TESTER)
    assert [r.number for r in front] == [0, 2]  # 1 and 3 are slower and less accurate than 0
    assert {r.number for r in resource_front(TESTER)} == {0, 1, 2, 3}  # each is smallest somewhere
    c = choose(TESTER, num_classes=10)
    assert c.record.number == 0 and c.rule == "best-trade-off" and c.floor == pytest.approx(0.2)
    assert "ideal point" in c.why and "MENNDL" in c.why


# Accuracy vs FPS: 93% at 200k is the balanced design; a 12%-accurate (chance is 10%) fast design
# would stretch the accuracy scale so much that 80% at 400k looked best.
FLOOR = [rec(0, 0.95, 1e5), rec(1, 0.93, 2e5), rec(2, 0.80, 4e5), rec(3, 0.12, 4e6)]


def test_the_floor_keeps_chance_level_designs_out_of_the_normalization():
    assert accuracy_floor(10) == pytest.approx(0.2) and accuracy_floor(None) is None
    c = choose(FLOOR, num_classes=10)
    assert c.record.number == 1 and "1 design(s) below the 20% accuracy floor (2 x chance for 10 classes) left out" in c.why
    assert choose(FLOOR, floor=0.0).record.number == 2  # with the 12% design in the scale
    assert choose(FLOOR, rule="fastest", num_classes=10).record.number == 2  # not the 12% one
    assert choose(FLOOR, rule="fastest", floor=0.0).record.number == 3
    assert choose(FLOOR, rule="most-accurate", num_classes=10).record.number == 0


def test_nothing_above_the_floor_is_said():
    low = [rec(0, 0.15, 1e5), rec(1, 0.12, 4e5)]
    c = choose(low, num_classes=10)
    assert c.record is not None and "no design reaches the 20% accuracy floor" in c.why
    assert choose(low, rule="fastest", num_classes=10).record.number == 1


def test_most_accurate_breaks_ties_by_fps_and_fastest_by_accuracy():
    recs = [rec(0, 0.9, 1e5), rec(1, 0.9, 3e5), rec(2, 0.5, 3e5), rec(3, 0.7, 3e5)]
    assert choose(recs, rule="most-accurate").record.number == 1
    assert choose(recs, rule="fastest").record.number == 1
    c = choose(recs, rule="fastest", num_classes=10)
    assert c.record.number == 1 and "the fastest design" in c.why


def test_smallest_is_the_least_share_of_the_most_used_resource():
    recs = [rec(0, 0.9, 1e5, lut=50_000, bram=10),   # LUT 50%
            rec(1, 0.8, 1e5, lut=10_000, bram=60),   # BRAM 30%
            rec(2, 0.85, 1e5, lut=20_000, bram=40, dsp=40),  # 20%, 20%, 10%: smallest peak
            rec(3, 0.10, 1e5, lut=100, bram=1)]      # tiny but below the floor
    c = choose(recs, rule="smallest", num_classes=10)
    assert c.record.number == 2 and "20% of its most used resource" in c.why
    assert choose(recs, rule="smallest", floor=0.0).record.number == 3
    tie = [rec(0, 0.8, 1e5, lut=20_000, bram=40), rec(1, 0.9, 1e5, lut=20_000, bram=40)]
    assert choose(tie, rule="smallest").record.number == 1  # same share: the more accurate


def test_a_target_restricts_every_rule_and_unknown_rules_fail():
    recs = [rec(0, 0.95, 1e5), rec(1, 0.90, 3e5), rec(2, 0.85, 6e5), rec(3, 0.5, 9e5)]
    assert choose(recs, target_fps=2e5, num_classes=10).record.number == 1  # default: most accurate meeting it
    assert choose(recs, target_fps=2e5, rule="fastest", num_classes=10).record.number == 3
    assert choose(recs, target_fps=2e5, rule="best-trade-off", num_classes=10).record.number in {1, 2}
    c = choose(recs, target_fps=1e7, rule="most-accurate")
    assert c.record.number == 0 and "no trained design meets the target of 10,000,000 FPS" in c.why
    with pytest.raises(ValueError, match="allowed"):
        choose(recs, rule="cheapest")
    assert choose([rec(0, 0.0, 1e4, status="pruned")]).record is None
    assert set(CHOOSE_RULES) == {"best-trade-off", "most-accurate", "fastest", "smallest"}


def test_report_and_pareto_json_show_both_fronts_and_the_rule(tmp_path):
    front, res = pareto_front(TESTER), resource_front(TESTER)
    write_pareto(tmp_path, front, res)
    data = json.loads((tmp_path / "pareto.json").read_text())
    assert [r["number"] for r in data["front"]] == [0, 2]
    assert sorted(r["number"] for r in data["resource_front"]["front"]) == [0, 1, 2, 3]
    assert (tmp_path / "pareto.csv").read_text().count("\n") == 3
    c = choose(TESTER, rule="fastest", num_classes=10)
    summary = RunSummary(board="zc706", dataset="digits", strategy="random", seed=0, space_lines=[],
                         space_decisions=(1, 1), space_size=1, records=TESTER, reward_formula="R", front=front,
                         choice=c, stages={"total": 1.0}, hls={"skipped": "--skip-hls was given"})
    text = render_report(summary)
    pareto = text[text.index("## Pareto front"):text.index("### Resource-aware front")]
    assert "accuracy (max) and FPS (max): 2 of the 4 trained designs" in pareto and "\n| 1 |" not in pareto
    assert "Resource-aware front" in text and "4 of the 4" in text and "| 1 | 0.8400 |" in text
    assert "Rule: **fastest** (`--choose fastest`" in text and "Why: the fastest design" in text
    assert "Candidate #2: accuracy 0.2200, 2,780,000 FPS" in text  # 22% is above the 20% floor
    low = RunSummary(**{**summary.__dict__, "choice": Choice(TESTER[0], "x", "most-accurate", 0.5)})
    assert "0.2200 (below floor)" in render_report(low)


def test_evolution_warns_when_the_run_is_shorter_than_its_population():
    space = load_space()
    evo = EvolutionStrategy(space, population=16)
    text = evo.short_run_warning(8)
    assert "--trials 8" in text and "population of 16" in text and "--strategy random" in text
    assert evo.short_run_warning(16) is not None and evo.short_run_warning(17) is None
    assert not hasattr(RandomStrategy(space), "short_run_warning")


# ---------------------------------------------------------------- --target-fps pre-check

def _space(board: str, context=(1, 8, 8, 10), **hardware):
    ctx = Context(*context, board=board)
    return space_from_dict({"hardware": hardware}, context=ctx) if hardware else load_space(None, ctx)


@pytest.mark.parametrize("board, context, hardware", [
    ("pynq-z1", (1, 8, 8, 10), {}),
    ("zcu104", (3, 32, 32, 10), {"templates": ["dataflow", "tiled"]}),
])
def test_fps_ceiling_bounds_random_designs_and_the_folded_one(board, context, hardware):
    b = load_board(board)
    space = _space(board, context, **hardware)
    ceiling, why = search.fps_ceiling(space, b)
    rng = np.random.default_rng(0)
    fps = []
    for _ in range(120):
        d = space.decode(space.sample(rng))
        fps.append(float(CostModel(d.network, b, d.hardware.clock_mhz, 1.0).evaluate_designs([d]).fps[0]))
    reached = search.folded_fps(space, b, 0.85)
    assert max(fps) <= ceiling and reached is not None and reached <= ceiling
    assert reached >= 0.5 * ceiling  # the bound is not loose on the default space
    assert f"{context[1]}x{context[2]} first conv" in why


def test_fps_ceiling_of_a_space_starting_with_dense_is_the_input_port():
    b = load_board("pynq-z1")
    space = space_from_dict({"network": {"conv_blocks": [0, 1]}}, context=Context(1, 8, 8, 10, board="pynq-z1"))
    ceiling, why = search.fps_ceiling(space, b)
    assert ceiling == pytest.approx(b.clock_mhz * 1e6 / 8)  # 64 8-bit pixels, 8 to a 64-bit word
    assert "64-bit port" in why and "first (dense) layer" in why


def _run(board: str, target: float, tmp_path):
    cfg = search.SearchConfig(board=board, target_fps=target)
    r = search.SearchRun(cfg, tmp_path / "run")
    r.board, r.space = load_board(board), _space(board)
    return r


def test_unreachable_target_fails_with_the_reachable_maximum(tmp_path, capsys):
    with pytest.raises(CodesignError) as err:
        _run("pynq-z1", 1e8, tmp_path)._check_target_fps()
    text = str(err.value)
    assert "--target-fps 100,000,000 is out of reach on pynq-z1" in text and "\n" not in text
    assert "reaches 1,388,889 FPS" in text and "cannot" not in text and "can exceed 1,562,500 FPS" in text
    _run("pynq-z1", 1.5e6, tmp_path)._check_target_fps()  # under the ceiling: only a warning
    assert "warning: --target-fps 1,500,000 is above 1,388,889 FPS" in capsys.readouterr().err
    _run("pynq-z1", 1e5, tmp_path)._check_target_fps()
    assert capsys.readouterr().err == ""


def test_cli_exit_2_before_any_file_and_choose_is_passed(tmp_path, capsys, monkeypatch):
    from codesign.cli import main

    out = tmp_path / "run"
    assert main(["search", "--board", "pynq-z1", "--target-fps", "1e8", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "out of reach" in err[0] and "1,388,889" in err[0]
    assert not out.exists()
    seen = []
    monkeypatch.setattr(search.SearchRun, "execute", lambda self: seen.append(self.choose_rule) or 0)
    assert main(["search", "--board", "pynq-z1", "--choose", "smallest", "--out", str(out)]) == 0
    assert main(["search", "--board", "pynq-z1", "--out", str(tmp_path / "b")]) == 0
    assert seen == ["smallest", None]
    with pytest.raises(SystemExit) as exit_:
        main(["search", "--board", "pynq-z1", "--choose", "cheapest", "--out", str(out)])
    assert exit_.value.code == 2
