"""Results on hand-made records: the front, the chosen design, the pruning figures, the files."""

import json

import pytest

from codesign.search import report
from codesign.search.journal import TrialRecord
from codesign.search.report import Choice, RunSummary, choose, pareto_front, pruning_stats, render_report

DESIGN = {"network": {"layers": [{"type": "conv", "out_channels": 8, "kernel": 3, "weight_bits": 2, "act_bits": 2},
                                 {"type": "maxpool"}, {"type": "dense", "out_features": 10, "weight_bits": 4}]},
          "hardware": {"template": "dataflow", "layers": {"conv0": {"pe": 2, "simd": 1}}}}


def rec(n, acc, fps, lut=1000, bram=2, dsp=0, status="trained", seconds=2.0):
    design = json.loads(json.dumps(DESIGN))
    design["hardware"]["layers"]["conv0"]["pe"] = n + 1  # distinct designs
    est = {"fps": fps, "latency_us": 1e6 / fps, "ii_cycles": 100, "resources":
           {"LUT": lut, "FF": 2 * lut, "BRAM18": bram, "URAM": 0, "DSP": dsp},
           "layers": [{"name": "conv0", "kind": "mvau", "shape": "1x8x8 -> 8x8x8", "pe": 2, "simd": 1, "cycles": 100,
                       "LUT": lut, "FF": 2 * lut, "BRAM18": bram, "URAM": 0, "DSP": dsp}]}
    return TrialRecord(number=n, tokens=[n], design=design, network_hash=f"h{n}", status=status,
                       reward=0.0 if status == "pruned" else acc, accuracy=None if status == "pruned" else acc,
                       estimate=est, train_seconds=seconds if status == "trained" else 0.0,
                       resampled=10 if status == "pruned" else 0, rejected=11 if status == "pruned" else 0)


RECORDS = [rec(0, 0.95, 1e4), rec(1, 0.90, 1e5), rec(2, 0.85, 5e4),  # 2 is dominated by 1
           rec(3, 0.97, 2e3, lut=500), rec(4, 0.0, 1e6, status="pruned"), rec(5, 0.90, 1e5, status="cached"),
           rec(6, 0.80, 1e6, lut=90_000)]


def test_front_excludes_dominated_and_pruned():
    front = pareto_front(RECORDS)
    assert [r.number for r in front] == [3, 0, 1, 5, 6]  # by decreasing accuracy; 5 is another design
    assert all(r.status != "pruned" for r in front)


def test_choice_with_and_without_target():
    c = choose(RECORDS, target_fps=5e4)  # with a target the default rule is most-accurate among those meeting it
    assert c.record.number == 1 and "meeting the target" in c.why and c.rule == "most-accurate"
    c = choose(RECORDS, target_latency_us=20.0)  # latency 1e6/fps <= 20 us -> fps >= 5e4
    assert c.record.number == 1
    c = choose(RECORDS, target_fps=1e7)
    assert "no trained design meets" in c.why and c.record is not None
    c = choose(RECORDS)
    assert c.record.number == 1 and "ideal point" in c.why and c.rule == "best-trade-off"
    assert choose([rec(0, 0.0, 1e4, status="pruned")]).record is None


def test_pruning_figures():
    p = pruning_stats(RECORDS)
    assert p["trials"] == 7 and p["trained"] == 5 and p["cached"] == 1 and p["pruned"] == 1
    assert p["pruned_share"] == pytest.approx(1 / 7) and p["mean_train_s"] == pytest.approx(2.0)
    assert p["saved_s"] == pytest.approx(2.0) and p["samples"] == 7 + 10 and p["rejected"] == 11


def test_files_and_report(tmp_path):
    front = pareto_front(RECORDS)
    report.write_pareto(tmp_path, front, report.resource_front(RECORDS))
    data = json.loads((tmp_path / "pareto.json").read_text())
    assert [row["number"] for row in data["front"]] == [r.number for r in front]
    assert data["objectives"] == {"accuracy": "max", "fps": "max"} and "design" in data["front"][0]
    assert data["resource_front"]["objectives"]["LUT"] == "min" and "design" in data["resource_front"]["front"][0]
    assert (tmp_path / "pareto.csv").read_text().count("\n") == len(front) + 1
    report.plot_pareto(tmp_path / "pareto.png", RECORDS, front, front[0], title="t")
    assert (tmp_path / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    summary = RunSummary(board="zc706", dataset="digits", strategy="rl", seed=0, space_lines=["a: 1"],
                         space_decisions=(3, 4), space_size=10, records=RECORDS, reward_formula="R = acc",
                         front=front, choice=Choice(front[0], "test"), stages={"search": 1.0, "total": 2.0},
                         hls={"failed": "g++ could not compile"})
    text = render_report(summary)
    assert "No verdict - the HLS step failed: g++ could not compile" in text and "PASS" not in text
    assert "**14.3%** of the candidates (1 of 7)" in text and "saved **2 s**" in text
    assert text.count("| 3 | 0.9700") == 2  # candidate 3's rows in the front and the resource-aware front tables
    assert "### Resource-aware front" in text and "Rule: **best-trade-off**" in text and "Why: test." in text


def test_report_names_the_template_of_each_front_design():
    tiled = rec(7, 0.99, 3e5)
    tiled.design["hardware"] = {"board": "zc706", "template": "tiled",
                                "engine": {"tm": 16, "tn": 4, "tr": 8, "tc": 8}}
    records = RECORDS + [tiled]
    front = pareto_front(records)
    assert report.template_of(tiled.design) == "tiled" and report.template_of(RECORDS[0].design) == "dataflow"
    summary = RunSummary(board="zc706", dataset="digits", strategy="rl", seed=0, space_lines=["a: 1"],
                         space_decisions=(3, 4), space_size=10, records=records, reward_formula="R = acc",
                         front=front, choice=Choice(tiled, "test"), stages={"search": 1.0, "total": 2.0}, hls={})
    text = render_report(summary)
    assert "| reward | template | design |" in text
    assert "| tiled | " in text and "| dataflow | " in text and "@ tiled 16x4x8x8" in text
    assert "Template: **tiled**." in text
