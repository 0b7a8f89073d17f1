"""The evaluator: cost-model pruning before training, hardware resampling, the per-network training
cache (a counting wrapper around the real quant.train on a tiny budget) and the reward."""

from collections import Counter

import numpy as np
import pytest

from codesign.search.evaluator import Evaluator, Reward, default_fps_target
from codesign.search.journal import Journal, TrialRecord
from codesign.search.space import Context, load_space, space_from_dict
from codesign.search.strategies import RandomStrategy
from codesign.search.study import StopRule, Study
from codesign.search.training import proxy_budget, train_network
from hw_space.boards import load_board

TINY = proxy_budget(1, seed=0, threads=1, subset=0.15)
CALLS: Counter = Counter()
SMALL = space_from_dict({
    "network": {"conv_blocks": [1], "dense_layers": [0], "kernel": [3], "channels": [8, 16],
                "pool": [True], "weight_bits": [2, 4], "act_bits": [2]},
    "hardware": {"pe": [0.0, 0.5, 1.0], "simd": [0.0, 0.5, 1.0], "weight_memory": ["auto", "lutram"]}},
    context=Context(1, 8, 8, 10))


def counting_trainer(network, dataset, data_dir, budget, model_path=None):
    """The real trainer, counting how often each network is trained."""
    CALLS[network.content_hash()] += 1
    return train_network(network, dataset, data_dir, budget, model_path)


class Scripted:
    """A strategy that proposes a fixed list of token sequences (to test the evaluator, not a search)."""

    name = "scripted"

    def __init__(self, space, proposals, seed=0):
        self.space, self.proposals, self.rng = space, list(proposals), np.random.default_rng(seed)
        self.told = []

    def ask(self):
        return self.proposals.pop(0)

    def resample_hardware(self, tokens, n):
        return [self.space.resample_hardware(tokens, self.rng) for _ in range(n)]

    def tell(self, tokens, reward, objectives=None):
        self.told.append((tokens, reward))

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


@pytest.fixture(autouse=True)
def _reset():
    CALLS.clear()


def hardware_variants(space, base, n, seed=0):
    """n proposals with base's network and distinct feasible hardware."""
    rng = np.random.default_rng(seed)
    out, seen = [], set()
    board = load_board("zc706")
    while len(out) < n:
        t = space.resample_hardware(base, rng)
        d = space.decode(t)
        key = str(d.hardware.to_dict())
        from hw_space.estimate import estimate

        if key not in seen and estimate(d, board).feasible:
            seen.add(key)
            out.append(t)
    return out


def test_same_network_other_hardware_is_trained_once(tmp_path):
    base = [0] * len(SMALL.sizes())
    other_net = list(base)
    other_net[SMALL.nn_positions[3]] = 1  # another channel count
    proposals = hardware_variants(SMALL, base, 4) + hardware_variants(SMALL, other_net, 3, seed=1)
    strategy = Scripted(SMALL, proposals)
    ev = Evaluator(SMALL, load_board("zc706"), Reward(target=1e4), budget=TINY, trainer=counting_trainer,
                   models_dir=tmp_path / "models")
    study = Study(strategy, ev, Journal(tmp_path / "journal.jsonl"), tmp_path / "state.pt",
                  StopRule(max_trials=7), batch=2)
    records = study.run()
    assert len(records) == 7 and all(v == 1 for v in CALLS.values()) and len(CALLS) == 2
    statuses = [r.status for r in records]
    assert statuses == ["trained", "cached", "cached", "cached", "trained", "cached", "cached"]
    assert len({r.accuracy for r in records[:4]}) == 1  # the cached accuracy is the trained one
    assert len({str(r.design["hardware"]) for r in records[:4]}) == 4
    assert [r.train_seconds > 0 for r in records] == [s == "trained" for s in statuses]
    assert (tmp_path / "models" / records[0].network_hash / "model.pt").exists()

    # resume: a new evaluator rebuilt from the journal trains nothing again
    ev2 = Evaluator(SMALL, load_board("zc706"), Reward(target=1e4), budget=TINY, trainer=counting_trainer)
    ev2.restore(Journal(tmp_path / "journal.jsonl").load())
    again = ev2.evaluate([proposals[0], proposals[5]], Scripted(SMALL, []), 7)
    assert [r.status for r in again] == ["cached", "cached"] and sum(CALLS.values()) == 2
    assert again[0].accuracy == records[0].accuracy


def test_designs_that_do_not_fit_are_pruned_without_training(tmp_path):
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text("part: xc-tiny\nLUT: 3000\nFF: 6000\nBRAM18: 4\nURAM: 0\nDSP: 4\nclock_mhz: 100\naxi_width: 64\n")
    board = load_board(str(tiny))
    space = load_space(context=Context(1, 8, 8, 10, board=str(tiny)))
    strategy = RandomStrategy(space, seed=0)
    ev = Evaluator(space, board, Reward(target=1e4), budget=TINY, trainer=counting_trainer)
    records = ev.evaluate([strategy.ask() for _ in range(6)], strategy, 0)
    assert all(r.status == "pruned" for r in records)
    assert not CALLS  # nothing was trained
    for r in records:
        assert r.reward == 0.0 and r.accuracy is None and r.resampled == 10 and r.rejected == 11
        assert "after 10 hardware resamples" in r.reason and r.estimate["feasible"] is False


def test_hardware_is_resampled_until_it_fits(tmp_path):
    # half a pynq-z2's LUTs: every parallelism level at its maximum needs ~38,000 LUTs (conv0 PE 16 x
    # SIMD 9 and fc0 PE 10 x SIMD 256 at 4-bit weights, weights in LUTRAM), over 85 % of 26,600 = 22,610
    half = tmp_path / "half.yaml"
    half.write_text("name: half-z2\npart: xc7z020clg400-1\nLUT: 26600\nFF: 106400\nBRAM18: 280\nURAM: 0\nDSP: 220\n"
                    "clock_mhz: 100\naxi_width: 64\n")
    board = load_board(str(half))
    space = SMALL.with_context(Context(1, 8, 8, 10, board=str(half)))
    top = [s - 1 for s in space.sizes()]  # every parallelism level at its maximum: too big for this board
    ev = Evaluator(space, board, Reward(target=1e4), budget=TINY, trainer=counting_trainer)
    costed = ev.cost(top, RandomStrategy(space, seed=1))
    assert not ev._fits([space.decode(top)])[0]
    assert costed.fits and 1 <= costed.resampled <= 10 and costed.rejected == costed.resampled
    assert [costed.tokens[i] for i in space.nn_positions] == [top[i] for i in space.nn_positions]
    assert costed.design.network == space.decode(top).network and costed.estimate["feasible"]


def test_hard_target_prunes_slow_designs():
    board = load_board("zc706")
    strategy = RandomStrategy(SMALL, seed=2)
    ev = Evaluator(SMALL, board, Reward(target=1e9, kind="hard"), budget=TINY, trainer=counting_trainer)
    records = ev.evaluate([strategy.ask() for _ in range(3)], strategy, 0)
    assert [r.status for r in records] == ["pruned"] * 3 and not CALLS
    assert all("hard target" in r.reason for r in records)


def test_reward_forms():
    est = {"fps": 20_000.0, "latency_us": 50.0}
    soft = Reward("fps", 10_000.0, "soft")
    assert soft(0.9, est) == pytest.approx(0.9 * (10_000 / 20_000) ** -0.07)
    assert soft(0.9, {"fps": 10_000.0}) == pytest.approx(0.9)
    lat = Reward("latency", 100.0, "soft")
    assert lat(0.9, est) == pytest.approx(0.9 * 0.5 ** -0.07)
    hard = Reward("fps", 30_000.0, "hard")
    assert hard(0.9, est) == 0.0 and Reward("fps", 10_000.0, "hard")(0.9, est) == 0.9
    assert "-0.07" in soft.formula() and "hard" in hard.formula()


def test_default_target_is_the_median_of_feasible_random_designs():
    board = load_board("zc706")
    t1 = default_fps_target(SMALL, board, 0.85, seed=0, samples=50)
    assert t1 == default_fps_target(SMALL, board, 0.85, seed=0, samples=50) and t1 > 0


def test_journal_record_is_complete(tmp_path):
    strategy = RandomStrategy(SMALL, seed=5)
    ev = Evaluator(SMALL, load_board("zc706"), Reward(target=1e4), budget=TINY, trainer=counting_trainer)
    (r,) = ev.evaluate([strategy.ask()], strategy, 3)
    assert isinstance(r, TrialRecord) and r.number == 3
    assert set(r.estimate) >= {"fps", "latency_us", "resources", "layers", "feasible"}
    assert r.design["network"]["layers"][-1]["out_features"] == 10 and r.cost_seconds > 0
