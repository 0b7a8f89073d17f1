"""Objectives as named objects: the registry, the reward as their one scalarization (the same numbers
as the MNASNet formula), the fronts, chooser and report over a run's objective list, the strategies'
use of it, and the list saved in config.json and fixed on resume."""

import json
import math
import types
from dataclasses import asdict

import numpy as np
import pytest

from codesign.cli import main
from codesign.commands import search
from codesign.search.journal import TrialRecord
from codesign.search.objectives import (
    ACCURACY,
    DEFAULT_OBJECTIVES,
    FPS,
    LATENCY,
    OBJECTIVES,
    Reward,
    describe,
    describe_grouped,
    objective_list,
    objective_vector,
    points,
    use_objectives,
    values_of,
    with_resources,
)
from codesign.search.report import RunSummary, choose, pareto_front, render_report, resource_front, write_pareto
from codesign.search.space import Context, load_space, save_space
from codesign.search.strategies import EvolutionStrategy, RandomStrategy, RLStrategy
from codesign.search.study import Study, objectives_of
from hw_space.boards import load_board
from hw_space.errors import CodesignError
from hw_space.model import CostModel

DESIGN = {"network": {"layers": [{"type": "conv", "out_channels": 8, "kernel": 3, "weight_bits": 2, "act_bits": 2},
                                 {"type": "dense", "out_features": 10, "weight_bits": 4}]},
          "hardware": {"template": "dataflow", "layers": {"conv0": {"pe": 1, "simd": 1}}}}


def rec(n, acc, fps, latency=None, lut=1000, bram=2, dsp=0, status="trained"):
    design = json.loads(json.dumps(DESIGN))
    design["hardware"]["layers"]["conv0"]["pe"] = n + 1  # distinct designs
    res = {"LUT": lut, "FF": 2 * lut, "BRAM18": bram, "URAM": 0, "DSP": dsp}
    est = {"fps": fps, "latency_us": 1e6 / fps if latency is None else latency, "ii_cycles": 100, "resources": res,
           "layers": [{"name": "conv0", "kind": "mvau", "shape": "", "pe": 1, "simd": 1, "cycles": 100, **res}]}
    return TrialRecord(number=n, tokens=[n], design=design, network_hash=f"h{n}", status=status,
                       reward=0.0 if status == "pruned" else acc, accuracy=None if status == "pruned" else acc,
                       estimate=est)


# 0 is the most accurate and has the lowest latency but the lowest FPS (a deep pipeline vs a short one)
RECORDS = [rec(0, 0.95, 1e4, latency=10.0), rec(1, 0.90, 1e5, latency=50.0), rec(2, 0.85, 5e4, latency=20.0),
           rec(3, 0.0, 1e6, status="pruned")]


def test_registry_names_directions_and_readings():
    assert list(OBJECTIVES)[:3] == ["accuracy", "fps", "latency_us"]
    assert {"LUT", "BRAM18", "DSP", "FF", "URAM"} <= set(OBJECTIVES)
    assert [o.direction for o in (ACCURACY, FPS, LATENCY, OBJECTIVES["LUT"])] == \
        ["maximize", "maximize", "minimize", "minimize"]
    r = RECORDS[1]
    assert (ACCURACY.of(r), FPS.of(r), LATENCY.of(r), OBJECTIVES["LUT"].of(r)) == (0.90, 1e5, 50.0, 1000.0)
    assert ACCURACY.of(RECORDS[3]) is None and FPS.of(RECORDS[3]) == 1e6
    assert FPS.maximized(1e5) == 5.0 and FPS.maximized(1e5, scaled=False) == 1e5 and LATENCY.maximized(50.0) == -50.0
    assert FPS.maximized(0.0) == -9.0  # log10 of the floor, as the front always read a zero FPS
    assert ACCURACY.show(0.95) == "95.0%" and FPS.show(12345.6) == "12,346 FPS" and LATENCY.show(12.5) == "12.5 us"
    assert objective_list("accuracy, latency_us") == (ACCURACY, LATENCY) and DEFAULT_OBJECTIVES == (ACCURACY, FPS)
    for bad, why in (("accuracy,speed", "'speed' is not allowed"), ("fps,fps", "twice"), (" , ", "no objective")):
        with pytest.raises(CodesignError, match=why):
            objective_list(bad)


def test_points_and_vectors_are_the_numbers_of_before():
    pts = points(RECORDS[:3], with_resources(DEFAULT_OBJECTIVES))
    old = np.array([[r.accuracy, math.log10(max(r.fps, 1e-9))] + [-float(r.estimate["resources"][k])
                                                                  for k in ("LUT", "BRAM18", "DSP")]
                    for r in RECORDS[:3]])
    assert np.array_equal(pts, old)
    assert points([], DEFAULT_OBJECTIVES).shape == (0, 2)
    values = objectives_of(RECORDS[0])
    assert values["feasible"] == 1.0 and values["latency_us"] == 10.0 and values == {**values_of(RECORDS[0]),
                                                                                      "feasible": 1.0}
    assert objective_vector(values) == [0.95, math.log10(1e4)]
    assert objective_vector(values, (ACCURACY, LATENCY)) == [0.95, -10.0]
    assert objective_vector(objectives_of(RECORDS[3])) is None and objective_vector(None) is None


def test_reward_is_the_mnasnet_scalarization_to_the_bit():
    est = {"fps": 20_000.0, "latency_us": 50.0}
    soft = Reward("fps", 10_000.0, "soft")
    assert soft(0.9, est) == 0.9 * (10_000.0 / max(20_000.0, 1e-9)) ** -0.07
    assert Reward("latency", 100.0)(0.9, est) == 0.9 * (max(50.0, 1e-9) / 100.0) ** -0.07
    assert Reward("latency", 100.0).objective is LATENCY and soft.objectives == (ACCURACY, FPS)
    assert Reward("fps", 30_000.0, "hard")(0.9, est) == 0.0 and Reward("fps", 20_000.0, "hard")(0.9, est) == 0.9
    assert Reward("LUT", 2_000.0)(0.5, {"resources": {"LUT": 1_000}}) == 0.5 * 0.5 ** -0.07  # any named objective
    assert soft.formula() == ("soft (MNASNet): reward = accuracy * ratio^w, w = -0.07, ratio = (1/FPS) / (1/T) = "
                              "T / FPS, T = 10,000 FPS (given by the user); pruned candidates get 0")
    assert Reward("latency", 12.5, "hard").formula() == (
        "hard constraint: reward = accuracy when LAT / T <= 1 (w = 0), otherwise the penalty 0 without training; "
        "ratio = LAT / T, LAT the simulated first-frame latency in us, T = 12.5 us (given by the user)")
    for bad, why in ((dict(metric="accuracy"), "metric 'accuracy' is not allowed"),
                     (dict(metric="joules"), "not allowed"), (dict(kind="firm"), "kind 'firm'")):
        with pytest.raises(CodesignError, match=why):
            Reward(**bad)


def test_a_hard_target_is_checked_on_the_batch_as_the_cost_model_did():
    space = load_space(context=Context(1, 8, 8, 10, board="zc706"))
    board, rng = load_board("zc706"), np.random.default_rng(0)
    tokens = space.sample(rng)
    designs = [space.decode(space.resample_hardware(tokens, rng)) for _ in range(40)]
    designs = [d for d in designs if d.hardware.template == designs[0].hardware.template]  # one batch: one template
    net, clock = designs[0].network, designs[0].hardware.clock_mhz
    result = CostModel(net, board, clock).evaluate_designs(designs)
    fps = float(np.median(result.fps))
    with_target = CostModel(net, board, clock, target_fps=fps).evaluate_designs(designs)
    assert np.array_equal(result.feasible & Reward("fps", fps, "hard").meets_batch(result), with_target.feasible)
    assert not with_target.feasible.all() and with_target.feasible.any()
    lat = float(np.median(result.latency_cycles / result.clock_mhz))
    assert np.array_equal(Reward("latency", lat, "hard").meets_batch(result),
                          result.latency_cycles / result.clock_mhz <= lat)
    assert Reward("fps", 1e12).meets_batch(result).all()  # soft: no pruning


def test_fronts_chooser_and_report_follow_the_objective_list(tmp_path):
    lat = (ACCURACY, LATENCY)
    assert [r.number for r in pareto_front(RECORDS)] == [0, 1]  # 2 is slower and less accurate than 1
    assert [r.number for r in pareto_front(RECORDS, lat)] == [0]  # 0 is the most accurate and the quickest
    assert {r.number for r in resource_front(RECORDS, lat)} == {0}
    assert describe(lat) == "accuracy (max) and latency (min)"
    assert describe_grouped(with_resources(lat)) == "accuracy (max) and latency, LUT, BRAM18 and DSP (min)"
    c = choose(RECORDS, objectives=(FPS, LATENCY))
    assert c.record.number == 2 and "the FPS-latency front design nearest the ideal point" in c.why
    assert "the ideal is (100,000 FPS, 10 us), the best FPS and the best latency of the 3 front designs" in c.why
    assert "normalizing log10 FPS and latency over those designs (MENNDL; weights 1 and 1)" in c.why
    default = choose(RECORDS)
    assert "the accuracy-FPS front design nearest the ideal point: the ideal is (95.0%, 100,000 FPS), the best " \
           "accuracy and the best FPS of the 2 front designs considered" in default.why
    write_pareto(tmp_path, pareto_front(RECORDS, lat), resource_front(RECORDS, lat), lat)
    data = json.loads((tmp_path / "pareto.json").read_text())
    assert data["objectives"] == {"accuracy": "max", "latency_us": "min"}
    assert data["resource_front"]["objectives"] == {"accuracy": "max", "latency_us": "min", "LUT": "min",
                                                    "BRAM18": "min", "DSP": "min"}
    summary = RunSummary(board="zc706", dataset="digits", strategy="evolution", seed=0, space_lines=[],
                         space_decisions=(1, 1), space_size=1, records=RECORDS, reward_formula="R",
                         front=pareto_front(RECORDS, lat), choice=choose(RECORDS, objectives=lat),
                         stages={"total": 1.0}, hls={"skipped": "--skip-hls was given"}, objectives=lat)
    text = render_report(summary)
    assert "Non-dominated over accuracy (max) and latency (min): 1 of the 3 trained designs" in text
    assert "(`--choose best-trade-off`; the accuracy-latency front design nearest the ideal point" in text


def test_front_size_is_the_resource_aware_front_of_the_run_objectives():
    study = types.SimpleNamespace(records=RECORDS, objectives=DEFAULT_OBJECTIVES)
    done = [r for r in RECORDS if r.status != "pruned"]
    old = np.array([[r.accuracy, r.fps] + [-float(r.estimate["resources"][k]) for k in ("LUT", "BRAM18", "DSP")]
                    for r in done])
    from codesign.search.pareto import pareto_mask

    assert Study.front_size(study) == int(pareto_mask(old).sum()) == 2
    assert Study.front_size(types.SimpleNamespace(records=RECORDS, objectives=(ACCURACY, LATENCY))) == 1
    assert Study.front_size(types.SimpleNamespace(records=RECORDS[3:], objectives=DEFAULT_OBJECTIVES)) == 0


def test_strategies_take_the_objectives_and_rl_needs_the_reward():
    space = load_space(context=Context(1, 8, 8, 10, board="zc706"))
    evo = EvolutionStrategy(space, seed=0, population=2)
    assert evo.objectives == DEFAULT_OBJECTIVES
    use_objectives(evo, (ACCURACY, LATENCY), None)  # evolution selects on the objectives: no reward needed
    assert evo.objectives == (ACCURACY, LATENCY)
    evo.tell(evo.ask(), 0.5, objectives_of(RECORDS[0]))
    assert evo.archive[-1][1] == [0.95, -10.0]
    rl = RLStrategy(space, seed=0)
    use_objectives(rl, DEFAULT_OBJECTIVES, Reward())  # the reward scalarizes them
    use_objectives(rl, (ACCURACY,), None)  # one objective is its own score
    with pytest.raises(CodesignError, match="strategy rl learns from one score and the run has 2 objectives"):
        use_objectives(rl, DEFAULT_OBJECTIVES, None)
    use_objectives(RandomStrategy(space, seed=0), DEFAULT_OBJECTIVES, None)  # learns nothing: any list


def args(**kw):
    base = dict(board="zc706", dataset=None, data_dir=None, trials=None, time_budget=None, target_fps=None,
                target_latency_us=None, max_util=None, strategy=None, rl_mode=None, reward=None, seed=None,
                workers=None, epochs=None, skip_hls=False, objectives=None)
    return types.SimpleNamespace(**{**base, **kw})


def test_the_list_is_saved_and_fixed_on_resume(tmp_path, capsys):
    cfg = search._config_from(args(), None)
    assert cfg.objectives == ("accuracy", "fps")
    cfg = search._config_from(args(objectives="accuracy,latency_us,LUT"), None)
    saved = json.loads(json.dumps(asdict(cfg)))
    assert saved["objectives"] == ["accuracy", "latency_us", "LUT"]
    assert search._config_from(args(), saved).objectives == ("accuracy", "latency_us", "LUT")  # kept on resume
    assert search._config_from(args(objectives="accuracy,latency_us,LUT"), saved).objectives == cfg.objectives
    with pytest.raises(CodesignError, match=r"--objectives accuracy,fps differs from the run being resumed "
                                            r"\(accuracy,latency_us,LUT\)"):
        search._config_from(args(objectives="accuracy,fps"), saved)
    old = {k: v for k, v in saved.items() if k != "objectives"}  # a run saved before the list existed
    assert search._config_from(args(), old).objectives == ("accuracy", "fps")
    # the CLI refuses before touching the run folder, in one line
    out = tmp_path / "run"
    out.mkdir()
    (out / search.CONFIG).write_text(json.dumps(saved))
    save_space(load_space(context=Context(1, 8, 8, 10, board="zc706")), out / search.SPACE)
    (out / "journal.jsonl").write_text("")
    before = sorted(p.name for p in out.iterdir())
    assert main(["search", "--board", "zc706", "--out", str(out), "--resume", "--objectives", "accuracy,fps"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "differs from the run being resumed" in err
    assert main(["search", "--board", "zc706", "--out", str(tmp_path / "new"), "--objectives", "accuracy,speed"]) == 2
    assert "objective 'speed' is not allowed" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir() if p.name != ".lock") == [n for n in before if n != ".lock"]
    assert not (tmp_path / "new" / search.CONFIG).exists()


def test_a_run_over_accuracy_and_latency_end_to_end(tmp_path):
    out = tmp_path / "run"
    assert main(["search", "--board", "zc706", "--epochs", "1", "--workers", "1", "--skip-hls", "--trials", "4",
                 "--strategy", "evolution", "--objectives", "accuracy,latency_us", "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["objectives"] == ["accuracy", "latency_us"]
    data = json.loads((out / "pareto.json").read_text())
    assert data["objectives"] == {"accuracy": "max", "latency_us": "min"}
    rows = data["front"]
    for a in rows:  # no front design is beaten in accuracy and latency by another
        assert not any(b["accuracy"] >= a["accuracy"] and b["latency_us"] <= a["latency_us"]
                       and (b["accuracy"], b["latency_us"]) != (a["accuracy"], a["latency_us"]) for b in rows)
    report = (out / "report.md").read_text()
    assert "Non-dominated over accuracy (max) and latency (min)" in report
