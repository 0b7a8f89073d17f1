"""Power, energy and model size (hw_space.power, the estimate's keys), their journal and pareto.json
fields, old journals without them, the energy and model_bits objectives, and MENNDL's table."""

import json
from dataclasses import replace

import numpy as np
import pytest

from codesign.cli import main
from codesign.search.evaluator import Evaluator, default_target
from codesign.search.journal import Journal, TrialRecord
from codesign.search.menndl import lower_bound, metrics_for, picks, plot_lower_bounds, render_table
from codesign.search.objectives import (
    ACCURACY,
    ENERGY,
    FPS,
    LATENCY,
    MODEL_BITS,
    Reward,
    objective_list,
    reward_objective,
    values_of,
)
from codesign.search.report import choose, write_pareto
from codesign.search.space import Context, load_space
from codesign.search.strategies import make_strategy
from hw_space.boards import load_board
from hw_space.design import design_from_dict, save_design
from hw_space.errors import CodesignError
from hw_space.estimate import ENERGY_KEYS, estimate
from hw_space.model import CostModel
from hw_space.power import (
    ZYNQ_7000,
    ZYNQ_ULTRASCALE_PLUS,
    energy_batch1_mj,
    energy_stream_mj,
    estimate_power,
    family_of,
)
from hw_space.power_reports import SERIES7_REPORTS, ULTRASCALE_PLUS_REPORTS, median_coefficients, spread

SMALL = {"network": {"input": {"channels": 1, "height": 4, "width": 4, "bits": 8},
                     "layers": [{"type": "conv", "out_channels": 2, "kernel": 3, "weight_bits": 2, "act_bits": 2},
                                {"type": "dense", "out_features": 10, "weight_bits": 4}]},
         "hardware": {"board": "zc706", "clock_mhz": 100, "template": "dataflow"}}


def test_power_and_energy_by_hand():
    zc706, pynq, kv260 = load_board("zc706"), load_board("pynq-z1"), load_board("kv260")
    res = {"LUT": 1000, "FF": 2000, "BRAM18": 4, "URAM": 0, "DSP": 2}
    p = estimate_power(res, 100.0, zc706)
    # static: the xc7z045's 0.219 W (its whole 218,600 LUTs)
    assert p.static_w[0] == pytest.approx(0.219)
    # dynamic, the 7-series medians (test_coefficients_are_derived_from_the_reports_by_hand) in uW/MHz
    # x count x 100 MHz: LUT 0.0269920 * 1000 * 100 = 2699.2 uW; FF 0.0521815 * 2000 * 100 = 10436.3 uW;
    # BRAM18 5.55405 * 4 * 100 = 2221.6 uW; DSP 10.0 * 2 * 100 = 2000 uW; total 17357.1 uW = 17.3571 mW
    assert p.dynamic_by_resource["LUT"][0] == pytest.approx(0.0026992, rel=1e-4)
    assert p.dynamic_by_resource["FF"][0] == pytest.approx(0.0104363, rel=1e-4)
    assert p.dynamic_by_resource["BRAM18"][0] == pytest.approx(0.0022216, rel=1e-4)
    assert p.dynamic_by_resource["DSP"][0] == pytest.approx(0.0020)
    assert p.dynamic_w[0] == pytest.approx(0.0173571, rel=1e-4)
    assert p.total_w[0] == pytest.approx(0.219 + 0.0173571, rel=1e-5)
    # twice the toggle rate (25 %): twice the dynamic power, same static
    assert estimate_power(res, 100.0, zc706, activity=0.25).total_w[0] == pytest.approx(0.219 + 0.0347142, rel=1e-5)
    # half the clock: half the dynamic power, 17.3571 / 2 = 8.67855 mW
    assert estimate_power(res, 50.0, zc706).dynamic_w[0] == pytest.approx(0.00867855, rel=1e-4)
    # a smaller part of the family: static scaled by LUTs, 0.219 * 53,200 / 218,600 = 0.0532974
    assert estimate_power(res, 100.0, pynq).static_w[0] == pytest.approx(0.0532974, rel=1e-5)
    # UltraScale+ prices URAM: (7.24638 + 6.66667) / 2 = 6.95652 uW/MHz; 2 x 6.95652 x 100 MHz = 1391.3 uW
    assert family_of(kv260) is ZYNQ_ULTRASCALE_PLUS
    assert estimate_power({"URAM": 2}, 100.0, kv260).dynamic_w[0] == pytest.approx(0.0013913, rel=1e-4)
    # UltraScale+ static: median PL static per LUT over (0.625, 0.620) / 230,400, 0.301 / 117,120 and
    # 2.472 / 1,182,240 = median(2.7127, 2.6910, 2.5700, 2.0909) uW = (2.5700 + 2.6910) / 2 = 2.6305 uW per LUT;
    # the K26's 117,120 LUTs: 0.30808 W
    assert estimate_power({}, 100.0, kv260).static_w[0] == pytest.approx(0.30808, rel=1e-4)
    # vectorized: a batch of two designs
    batch = estimate_power({"LUT": np.array([0, 1000])}, 100.0, zc706)
    assert batch.dynamic_w.tolist() == pytest.approx([0.0, 0.0026992], rel=1e-4)
    # energy: 0.2237 W x 50 us = 11.185 uJ = 0.011185 mJ; streaming at 20,000 FPS: 0.2237 / 20,000 J = 0.011185 mJ
    assert float(energy_batch1_mj(0.2237, 50.0)) == pytest.approx(0.011185)
    assert float(energy_stream_mj(0.2237, 20_000.0)) == pytest.approx(0.011185)


def test_coefficients_are_derived_from_the_reports_by_hand():
    """The family coefficients are medians of per-report coefficients computed from the report table."""
    by_repo = {r.source.split()[0]: r for r in SERIES7_REPORTS}
    ensc = by_repo["dkeum/ENSC452"].coefficients()
    # dkeum/ENSC452 at 100 MHz: LUT = Slice Logic 0.013 W + Signals 0.018 W x LUT share 7,507 / (7,507 + 11,098)
    # = 0.013 + 0.018 x 0.403494 = 0.0202629 W; / 7,507 / 100 MHz = 2.69920e-8 W/MHz = 0.0269920 uW/MHz
    assert ensc["LUT"] == pytest.approx(0.0269920, rel=1e-5)
    # DSP: 0.014 W / 12 / 100 MHz = 11.6667 uW/MHz; BRAM: 13 tiles = 26 BRAM18, 0.008 / 26 / 100 = 3.07692
    assert ensc["DSP"] == pytest.approx(11.6667, rel=1e-5) and ensc["BRAM18"] == pytest.approx(3.07692, rel=1e-5)
    # the 7-series DSP median over the three reports with DSP power >= 2 mW:
    # LexPG12138 0.017 / 18 / 100 = 9.4444, agustinsilva447 0.002 / 2 / 100 = 10.0, dkeum 11.6667 -> 10.0
    dsp = spread(SERIES7_REPORTS)["DSP"]
    assert (dsp.n, dsp.median, dsp.low, dsp.high) == pytest.approx((3, 10.0, 9.44444, 11.6667), rel=1e-5)
    # JustABear1210/conv-64's 148 DSPs show 0.000 W: under MIN_CATEGORY_W, no DSP figure from it
    assert by_repo["JustABear1210/conv-64"].coefficients()["DSP"] is None
    # BRAM18 median of six: 2.5, 3.07692, 5.10811 (theCow61: 0.027 / 37 / 142.857), 6.0, 15.0, 17.037
    # -> (5.10811 + 6.0) / 2 = 5.55405
    assert spread(SERIES7_REPORTS)["BRAM18"].median == pytest.approx(5.55405, rel=1e-5)
    assert ZYNQ_7000.dynamic_uw_per_mhz["BRAM18"] == pytest.approx(5.55405, rel=1e-5)
    assert ZYNQ_7000.dynamic_uw_per_mhz["LUT"] == pytest.approx(0.0269920, rel=1e-5)  # the median of 7 is ENSC452's
    assert ZYNQ_7000.dynamic_uw_per_mhz["URAM"] == 0.0  # the family has none
    # no data for a resource the family should have: an error, not a silent zero
    with pytest.raises(ValueError, match="URAM"):
        median_coefficients(SERIES7_REPORTS, absent={})


def test_estimate_against_a_published_report():
    """Sanity check: the model, given a report's counts and clock, against that report's PL power."""
    search = ULTRASCALE_PLUS_REPORTS[0]  # koodg123/HBTXR Search build, xczu7ev (the ZCU104), 300 MHz
    res = {"LUT": search.luts, "FF": search.ffs, "BRAM18": search.bram18, "URAM": search.urams, "DSP": search.dsps}
    p = estimate_power(res, search.clock_mhz, load_board("zcu104"))
    reported = search.dynamic_w() + search.pl_static_w  # 3.632 W dynamic + 0.625 W PL static = 4.257 W
    assert reported == pytest.approx(4.257)
    # in-sample (this report is one of the four the medians come from): 4.051 W, 4.8 % under
    assert float(p.total_w[0]) == pytest.approx(4.051, abs=0.001)
    assert float(p.total_w[0]) / reported - 1 == pytest.approx(-0.048, abs=0.001)


def test_estimate_carries_power_energy_and_model_bits():
    design = design_from_dict(SMALL)
    est = estimate(design, simulate=False)
    # weights: conv 3*3*1*2 = 18 (4x4 input -> 2x2x2 = 8 outputs), dense 8*10 = 80 -> 98 weights;
    # bits: 18*2 + 80*4 = 36 + 320 = 356
    assert est.model_params == 98 and est.model_bits == 356
    again = estimate_power(est.resources, est.clock_mhz, load_board("zc706"))
    assert est.power_w == pytest.approx(float(again.total_w[0])) and est.static_w == pytest.approx(0.219)
    assert est.energy_mj == pytest.approx(est.power_w * est.latency_us / 1000)
    assert est.energy_stream_mj == pytest.approx(est.power_w / est.fps * 1000)
    # the vectorized cost model gives the batch the same figures
    r = CostModel(design.network, load_board("zc706")).evaluate_designs([design, design])
    assert r.model_bits.tolist() == [356, 356] and r.power_w[0] == pytest.approx(est.power_w)
    assert ENERGY.of_batch(r)[0] == pytest.approx(est.energy_mj) and MODEL_BITS.of_batch(r)[0] == 356


def test_estimate_cli_prints_the_keys(tmp_path, capsys):
    path = tmp_path / "small.yaml"
    save_design(design_from_dict(SMALL), path)
    assert main(["estimate", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(ENERGY_KEYS) <= set(data) and data["model_bits"] == 356
    assert data["energy_mj"] == pytest.approx(data["power_w"] * data["latency_us"] / 1000)
    assert main(["estimate", str(path)]) == 0
    text = capsys.readouterr().out
    assert "power_w " in text and "energy_mj " in text and "model_bits 356" in text


@pytest.fixture(scope="module")
def costed():
    """A few proposals of the default space costed into start records (no training)."""
    space = load_space(context=Context(1, 8, 8, 10, board="zc706"))
    ev = Evaluator(space, load_board("zc706"), Reward("energy", 0.01))
    strategy = make_strategy("random", space, seed=1)
    records = [ev.propose(i, strategy.ask(), strategy) for i in range(4)]
    ev.close()
    return records


def test_journal_records_and_pareto_json_carry_the_fields(tmp_path, costed):
    for r in costed:
        assert set(ENERGY_KEYS) <= set(r.estimate) and r.estimate["model_bits"] > 0
    done = [replace(r, status="trained", accuracy=0.5 + 0.1 * i) for i, r in enumerate(costed)]
    journal = Journal(tmp_path / "journal.jsonl")
    for r in done:
        journal.append(r)
    journal.close()
    loaded = Journal(tmp_path / "journal.jsonl").load()
    assert [r.estimate["energy_mj"] for r in loaded] == [r.estimate["energy_mj"] for r in done]
    write_pareto(tmp_path, done, None, (ACCURACY, ENERGY))
    data = json.loads((tmp_path / "pareto.json").read_text())
    assert data["objectives"] == {"accuracy": "max", "energy": "min"}
    for row in data["front"]:
        assert {"power_w", "energy_mj", "model_bits"} <= set(row) and row["power_w"] > 0
    assert "power_w,energy_mj,model_bits" in (tmp_path / "pareto.csv").read_text().splitlines()[0]


def test_an_old_journal_without_the_fields_loads_with_them(tmp_path, costed):
    new = replace(costed[0], status="trained", accuracy=0.8)
    old = new.to_dict()
    old["estimate"] = {k: v for k, v in old["estimate"].items() if k not in ENERGY_KEYS}
    (tmp_path / "journal.jsonl").write_text(json.dumps(old) + "\n")
    (record,) = Journal(tmp_path / "journal.jsonl").load()
    for key in ("power_w", "energy_mj", "energy_stream_mj", "model_bits", "model_params"):
        assert record.estimate[key] == pytest.approx(new.estimate[key]), key
    assert values_of(record)["energy"] == pytest.approx(new.estimate["energy_mj"])
    # a record whose design cannot be read keeps what it has (and loads)
    broken = {**old, "number": 1, "design": {"network": "?"}}
    (tmp_path / "broken.jsonl").write_text(json.dumps(broken) + "\n")
    (b,) = Journal(tmp_path / "broken.jsonl").load()
    assert "energy_mj" not in b.estimate and values_of(b)["energy"] == 0.0


def rec(n, acc, latency_us, bits, energy):
    est = {"fps": 1e6 / latency_us, "latency_us": latency_us, "energy_mj": energy, "model_bits": bits,
           "power_w": energy / latency_us * 1000, "resources": {"LUT": 100, "FF": 100, "BRAM18": 1, "URAM": 0, "DSP": 0}}
    return TrialRecord(number=n, tokens=[n], design={"n": n}, network_hash=f"h{n}", status="trained", reward=acc,
                       accuracy=acc, estimate=est)


# accuracy, latency us, model bits, energy mJ
MENNDL_SET = [rec(0, 0.95, 100.0, 80_000, 0.100), rec(1, 0.90, 10.0, 20_000, 0.010), rec(2, 0.60, 1.0, 1_000, 0.001),
              rec(3, 0.15, 0.5, 500, 0.0005),  # the lowest everything, but below the 20 % floor (10 classes)
              rec(4, 0.85, 50.0, 50_000, 0.050)]  # dominated by #1 in every metric


def test_menndl_table_on_known_records(tmp_path):
    metrics = metrics_for((ACCURACY, FPS))
    assert metrics == (LATENCY, MODEL_BITS, ENERGY, FPS)
    got = {(p.metric.name, p.role): p for p in picks(MENNDL_SET, metrics, floor=0.2)}
    for m in ("latency_us", "model_bits", "energy", "fps"):
        assert got[(m, "lowest")].record.number == 2  # #3 is lower but under the floor
        assert got[(m, "most accurate")].record.number == 0
        assert got[(m, "best trade-off")].record.number == 1
    # distances over each metric's lower bound {#0, #1, #2}: accuracy span 0.35, #1's accuracy gap 0.05/0.35
    acc_gap = 0.05 / 0.35
    # latency (linear): span 99, #1's gap 9/99 -> sqrt(0.142857^2 + 0.090909^2) = 0.16933
    assert got[("latency_us", "best trade-off")].distance == pytest.approx(np.hypot(acc_gap, 9 / 99))
    # energy (log10): -1, -2, -3 -> #1's gap 1/2 -> sqrt(0.142857^2 + 0.5^2) = 0.52001
    assert got[("energy", "best trade-off")].distance == pytest.approx(np.hypot(acc_gap, 0.5))
    # model bits (log10): gap (log 20,000 - log 1,000) / (log 80,000 - log 1,000) = 1.30103 / 1.90309
    assert got[("model_bits", "best trade-off")].distance == pytest.approx(np.hypot(acc_gap, np.log10(20) / np.log10(80)))
    assert got[("energy", "most accurate")].distance == pytest.approx(1.0)
    assert [r.number for r in lower_bound(MENNDL_SET, ENERGY)] == [3, 2, 1, 0]
    table = render_table(picks(MENNDL_SET, metrics, floor=0.2), metrics)
    assert "| energy | best trade-off | 1 | 90.0% | 10 us | 20,000 bits | 0.01 mJ | 100,000 FPS | 0.520 |" in table
    assert "| energy | lowest energy | 2 |" in table and "| FPS | highest FPS | 2 |" in table
    paths = plot_lower_bounds(tmp_path, MENNDL_SET, metrics[:1], picks(MENNDL_SET, metrics[:1], floor=0.2))
    assert paths == [tmp_path / "menndl_latency_us.png"] and paths[0].read_bytes()[:4] == b"\x89PNG"


def test_objectives_accuracy_energy_wiring():
    objectives = objective_list("accuracy,energy")
    assert objectives == (ACCURACY, ENERGY) and objective_list("accuracy,latency,model_bits")[1] is LATENCY
    assert reward_objective(objectives) is ENERGY and reward_objective((ACCURACY,)) is FPS
    # the chooser's best trade-off over (accuracy, energy): normalized over the front {#0, #1, #2} as above
    assert choose(MENNDL_SET, num_classes=10, objectives=objectives).record.number == 1
    # the reward on energy: soft below the target earns more than accuracy, a hard target prunes above it
    reward = Reward("energy", 0.01)
    assert reward(0.9, {"energy_mj": 0.005}) == pytest.approx(0.9 * 0.5 ** -0.07)
    space = load_space(context=Context(1, 8, 8, 10, board="zc706"))
    board = load_board("zc706")
    target = default_target(space, board, 0.85, ENERGY, seed=0, samples=40)
    assert target > 0 and target == default_target(space, board, 0.85, ENERGY, seed=0, samples=40)
    design = space.decode(space.sample(np.random.default_rng(0)))
    r = CostModel(design.network, board).evaluate_designs([design])
    hard = Reward("energy", float(r.energy_mj[0]) * 0.5, "hard")
    assert not hard.meets_batch(r)[0] and Reward("energy", float(r.energy_mj[0]) * 2, "hard").meets_batch(r)[0]


@pytest.mark.slow
def test_search_with_energy_objective_writes_menndl_and_resumes_an_old_journal(tmp_path, capsys):
    out = tmp_path / "run"
    tiny = ["search", "--board", "zc706", "--epochs", "1", "--workers", "1", "--skip-hls", "--strategy", "random",
            "--objectives", "accuracy,energy", "--out", str(out)]
    assert main([*tiny, "--trials", "4"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["objectives"] == ["accuracy", "energy"] and config["reward_metric"] == "energy"
    # strip the new keys from the journal, as a journal written before them would be, and resume it
    lines = [json.loads(line) for line in (out / "journal.jsonl").read_text().splitlines()]
    for log in lines:
        log["estimate"] = {k: v for k, v in log["estimate"].items() if k not in ENERGY_KEYS}
    (out / "journal.jsonl").write_text("".join(json.dumps(log) + "\n" for log in lines))
    assert main([*tiny, "--trials", "6", "--resume"]) == 0
    records = Journal(out / "journal.jsonl").load()
    assert len(records) == 6 and all(r.estimate["energy_mj"] > 0 for r in records)
    report = (out / "report.md").read_text()
    assert "## MENNDL's metrics: inference time, model size, energy" in report
    assert "ratio = E / T" in report and "| energy | best trade-off |" in report
    for name in ("latency_us", "model_bits", "energy"):
        assert (out / f"menndl_{name}.png").read_bytes()[:4] == b"\x89PNG"
    front = json.loads((out / "pareto.json").read_text())
    assert front["objectives"] == {"accuracy": "max", "energy": "min"}
    assert all(row["energy_mj"] > 0 and row["model_bits"] > 0 for row in front["front"])


def test_the_reward_metric_is_kept_on_resume(tmp_path):
    import argparse
    from dataclasses import asdict

    from codesign.commands import search

    parser = argparse.ArgumentParser()
    search.add_arguments(parser)
    args = parser.parse_args(["--board", "zc706"])
    saved = asdict(search.SearchConfig(board="zc706", objectives=("accuracy", "LUT")))
    assert search._config_from(args, {**saved, "reward_metric": "LUT"}).reward_metric == "LUT"
    # a run saved before the field existed was rewarded on fps whatever its objectives: it stays so
    old = {k: v for k, v in saved.items() if k != "reward_metric"}
    assert search._config_from(args, old).reward_metric == "fps"
    assert search._config_from(args, None).reward_metric is None  # a new run derives it from its objectives
    with pytest.raises(CodesignError, match="reward_metric 'joules'"):
        search._config_from(args, {**saved, "reward_metric": "joules"})
