"""quant.train: determinism, early stopping, NaN handling, budgets, and (slow) the accuracy figures."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from hw_space.design import Network, design_from_dict, load_design
from hw_space.errors import CodesignError
from quant.data import Dataset, load_dataset
from quant.train import Budget, predict, train

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TINY = Budget(epochs=2, subset=0.25, batch_size=64)


def digits_net(w: int = 4, a: int = 4, in_bits: int = 8, widths: tuple[int, int, int] = (8, 16, 32)) -> Network:
    c0, c1, f = widths
    return design_from_dict({"network": {
        "input": {"channels": 1, "height": 8, "width": 8, "bits": in_bits},
        "layers": [
            {"type": "conv", "out_channels": c0, "kernel": 3, "padding": 1, "weight_bits": w, "act_bits": a},
            {"type": "maxpool", "kernel": 2},
            {"type": "conv", "out_channels": c1, "kernel": 3, "padding": 1, "weight_bits": w, "act_bits": a},
            {"type": "maxpool", "kernel": 2},
            {"type": "dense", "out_features": f, "weight_bits": w, "act_bits": a},
            {"type": "dense", "out_features": 10, "weight_bits": w}]}}).network


def test_same_seed_same_model_different_seed_different_model():
    net = digits_net()
    first = train(net, "digits", TINY)
    second = train(net, "digits", TINY)
    other = train(net, "digits", Budget(epochs=2, subset=0.25, seed=1))
    x = load_dataset("digits").x_test
    assert first.accuracy == second.accuracy
    assert torch.equal(predict(first.model, x), predict(second.model, x))
    assert not torch.equal(predict(first.model, x), predict(other.model, x))


def test_result_fields_progress_and_eval_mode():
    calls = []
    budget = Budget(epochs=3, subset=0.5)
    result = train(digits_net(), "digits", budget, progress=lambda e, loss, val: calls.append((e, loss, val)))
    assert [c[0] for c in calls] == [1, 2, 3]
    assert all(math.isfinite(c[1]) and c[2] is None for c in calls)  # patience 0: no validation split
    assert calls[2][1] < calls[0][1]  # it learns
    assert result.epochs == 3 and result.reason == "completed 3 epochs"
    assert result.test_samples == 360 and result.train_seconds > 0 and not result.model.training
    assert result.accuracy > 0.5  # far above chance (0.1) after 3 short epochs


def test_early_stopping_on_validation_split():
    calls = []
    budget = Budget(epochs=12, subset=0.3, patience=1, lr=1e-9)  # nothing improves: stop after 1 flat epoch
    result = train(digits_net(), "digits", budget, progress=lambda e, loss, val: calls.append(val))
    assert result.epochs < 12
    assert result.reason.startswith("early stop")
    assert all(v is not None for v in calls)
    assert result.val_accuracy == max(calls)


def test_nan_input_ends_with_zero_accuracy():
    digits = load_dataset("digits")
    x = digits.x_train.clone()
    x[5] = float("nan")
    poisoned = Dataset("digits", x, digits.y_train, digits.x_test, digits.y_test, 10)
    result = train(digits_net(), poisoned, Budget(epochs=3, batch_size=2000))
    assert result.accuracy == 0.0
    assert "loss became nan" in result.reason and result.epochs == 1


def test_diverging_learning_rate_ends_with_zero_accuracy():
    result = train(digits_net(), "digits", Budget(epochs=3, lr=1e30))
    assert result.accuracy == 0.0 and "loss became" in result.reason and not result.model.training


def test_time_limit_stops_early():
    result = train(digits_net(), "digits", Budget(epochs=50, max_seconds=0.01))
    assert result.epochs == 1 and "time limit" in result.reason


@pytest.mark.parametrize("changes,fragment", [
    ({"epochs": 0}, "epochs"), ({"subset": 0.0}, "subset"), ({"subset": 1.5}, "subset"),
    ({"lr": -1.0}, "lr"), ({"batch_size": 1}, "batch_size"), ({"patience": -1}, "patience"),
])
def test_bad_budget_is_one_line(changes, fragment):
    with pytest.raises(CodesignError) as exc:
        train(digits_net(), "digits", Budget(**changes))
    assert fragment in str(exc.value) and "\n" not in str(exc.value)


def test_mismatched_design_refused_before_training():
    net = design_from_dict({"network": {"input": {"channels": 3, "height": 32, "width": 32},
                                        "layers": [{"type": "dense", "out_features": 10, "weight_bits": 2}]}}).network
    with pytest.raises(CodesignError, match="design input is 3x32x32 but dataset digits is 1x8x8"):
        train(net, "digits", TINY)


def test_threads_setting_is_restored():
    before = torch.get_num_threads()
    train(digits_net(), "digits", Budget(epochs=1, subset=0.2, threads=2 if before == 1 else 1))
    assert torch.get_num_threads() == before


# ---------------------------------------------------------------- the figures (slow)

@pytest.mark.slow
def test_w4a4_example_reaches_95_percent_within_30_seconds():
    net = load_design(EXAMPLES / "digits_w4a4.yaml").network
    result = train(net, "digits", Budget())
    assert result.accuracy >= 0.95, result
    assert result.train_seconds <= 30


@pytest.mark.slow
def test_w1a1_reaches_85_percent():
    result = train(digits_net(1, 1, in_bits=1, widths=(32, 64, 128)), "digits", Budget())
    assert result.accuracy >= 0.85, result
    assert result.train_seconds <= 30
