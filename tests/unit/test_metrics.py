"""Holdout metrics, naive baselines, the gate comparison and the evaluation bundle."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from kubeline.data.schema import DATE, DIRECTION_REF, NAIVE_LAST, NAIVE_MA, TARGET, TICKER
from kubeline.errors import ConfigError, DataError
from kubeline.evaluate import compare, decide_gate, evaluate, score_model
from kubeline.evaluate.baseline import naive_predictions
from kubeline.evaluate.metrics import regression_metrics
from kubeline.runconfig import RunConfig


def test_regression_metrics_match_hand_computed_values() -> None:
    m = regression_metrics([1.0, 2.0, 3.0], [1.0, 2.0, 5.0])
    assert m["rmse"] == pytest.approx(math.sqrt(4 / 3))
    assert m["mae"] == pytest.approx(2 / 3)
    assert m["r2"] == pytest.approx(1 - 4 / 2)
    assert set(m) == {"rmse", "mae", "r2", "directional_accuracy"}


def test_directional_accuracy_compares_signs_around_zero_for_returns() -> None:
    m = regression_metrics([0.02, -0.01, 0.03, -0.02], [0.01, 0.01, 0.02, -0.05])
    assert m["directional_accuracy"] == pytest.approx(3 / 4)


def test_directional_accuracy_uses_the_reference_for_levels() -> None:
    # Volume 100 today: 120 actual is up, the forecast 110 is up too; 90 actual is down, 105 up.
    m = regression_metrics([120.0, 90.0], [110.0, 105.0], direction_ref=[100.0, 100.0])
    assert m["directional_accuracy"] == pytest.approx(0.5)


def test_directional_accuracy_leaves_out_rows_that_did_not_move() -> None:
    m = regression_metrics([0.0, 0.01, 0.0], [0.5, 0.02, -0.3])
    assert m["directional_accuracy"] == 1.0


def test_undefined_metrics_are_nan() -> None:
    assert math.isnan(regression_metrics([], [])["rmse"])
    constant = regression_metrics([1.0, 1.0], [1.0, 2.0], direction_ref=1.0)
    assert math.isnan(constant["r2"]) and math.isnan(constant["directional_accuracy"])


def test_length_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="length mismatch"):
        regression_metrics([1.0, 2.0], [1.0])


def holdout_frame() -> pd.DataFrame:
    dates = pd.bdate_range("2024-01-01", periods=6)
    return pd.DataFrame(
        {
            TICKER: ["A"] * 6,
            DATE: dates,
            "x": [0.01, -0.02, 0.03, -0.01, 0.02, 0.01],
            NAIVE_LAST: [0.0, 0.01, -0.02, 0.03, -0.01, 0.02],
            NAIVE_MA: [0.0, 0.005, 0.0, 0.01, 0.0, 0.01],
            DIRECTION_REF: 0.0,
            TARGET: [0.01, -0.02, 0.03, -0.01, 0.02, 0.01],
        }
    )


class EchoModel:
    """Predicts the target exactly, because the test frame sets x equal to it."""

    feature_names_in_ = np.array(["x"])

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        return x["x"].to_numpy()


def test_naive_predictions_read_the_naive_columns() -> None:
    frame = holdout_frame()
    np.testing.assert_array_equal(naive_predictions(frame, "persistence"), frame[NAIVE_LAST])
    np.testing.assert_array_equal(naive_predictions(frame, "moving_average"), frame[NAIVE_MA])


def test_naive_predictions_need_the_naive_column() -> None:
    with pytest.raises(DataError, match="no _naive_ma column"):
        naive_predictions(holdout_frame().drop(columns=NAIVE_MA), "moving_average")


def test_evaluate_scores_model_and_every_baseline_on_the_same_rows() -> None:
    frame = holdout_frame()
    frame.loc[0, NAIVE_MA] = np.nan  # a row no baseline can forecast is left out of every score
    ev = evaluate(EchoModel(), frame, ["x"], RunConfig(), target_kind="return")
    assert ev.n_rows == 5 and ev.n_dropped_rows == 1
    assert ev.metrics["rmse"] == 0.0
    assert list(ev.baselines) == ["constant", "persistence", "moving_average"]
    expected = regression_metrics(frame[TARGET][1:], frame[NAIVE_LAST][1:])
    assert ev.baselines["persistence"] == pytest.approx(expected)
    # The constant forecast of a return is zero, scored on the same five rows.
    zero = regression_metrics(frame[TARGET][1:], np.zeros(5))
    assert ev.baselines["constant"]["rmse"] == pytest.approx(zero["rmse"])
    assert list(ev.predictions.columns) == [DATE, TICKER, "actual", "prediction", "naive"]
    # The default gate compares against whichever baseline scores best on rmse.
    best = min(ev.baselines, key=lambda k: ev.baselines[k]["rmse"])
    assert ev.gate_baseline == best
    assert ev.backtest is not None and ev.backtest_note is None


def test_the_constant_forecast_of_a_level_is_the_training_mean() -> None:
    frame = holdout_frame().assign(**{TARGET: [10.0, 12.0, 11.0, 9.0, 13.0, 11.0]})
    ev = evaluate(EchoModel(), frame, ["x"], RunConfig(), target_kind="level", train_mean=11.0)
    expected = regression_metrics(frame[TARGET], np.full(6, 11.0), frame[DIRECTION_REF])
    assert ev.baselines["constant"]["mae"] == pytest.approx(expected["mae"])
    np.testing.assert_array_equal(naive_predictions(frame, "constant", 11.0), np.full(6, 11.0))


def test_best_picks_the_constant_forecast_when_it_is_the_strongest() -> None:
    frame = holdout_frame().assign(**{NAIVE_LAST: 0.5, NAIVE_MA: 0.4})  # two straw men
    ev = evaluate(EchoModel(), frame, ["x"], RunConfig(), target_kind="return")
    assert ev.gate_baseline == "constant"
    np.testing.assert_array_equal(ev.predictions["naive"], np.zeros(6))


def test_evaluate_has_no_backtest_for_a_level_target_and_says_why() -> None:
    frame = holdout_frame()
    ev = evaluate(EchoModel(), frame, ["x"], RunConfig(), target_kind="level")
    assert ev.backtest is None and "level" in str(ev.backtest_note)


def test_evaluate_respects_a_disabled_backtest() -> None:
    config = RunConfig.from_yaml_text("backtest: {enabled: false}")
    ev = evaluate(EchoModel(), holdout_frame(), ["x"], config, target_kind="return")
    assert ev.backtest is None and "disabled" in str(ev.backtest_note)


def test_evaluate_backtests_every_horizon_th_date_for_multi_bar_targets() -> None:
    config = RunConfig.from_yaml_text("horizon: 2")
    ev = evaluate(EchoModel(), holdout_frame(), ["x"], config, target_kind="return")
    assert ev.backtest is not None and len(ev.backtest.curve) == 3


def test_score_model_uses_the_models_own_feature_names() -> None:
    assert score_model(EchoModel(), holdout_frame())["rmse"] == 0.0


def test_compare_lower_is_better_metric_with_relative_margin() -> None:
    passed, reason = compare(
        {"rmse": 0.9}, {"rmse": 1.0}, "rmse", 0.05, reference_name="the champion"
    )
    assert passed
    assert reason == "rmse 0.9 beats the champion (1): 10.0% lower, required at least 5.0%"
    passed, reason = compare({"rmse": 0.97}, {"rmse": 1.0}, "rmse", 0.05)
    assert not passed and "does not beat" in reason and "3.0% lower" in reason


def test_compare_higher_is_better_metric_with_absolute_margin() -> None:
    assert compare({"r2": 0.02}, {"r2": -0.01}, "r2", 0.01)[0]
    assert not compare(
        {"directional_accuracy": 0.505}, {"directional_accuracy": 0.5}, "directional_accuracy", 0.01
    )[0]


def test_compare_requires_a_strict_improvement_even_with_zero_margin() -> None:
    assert not compare({"mae": 1.0}, {"mae": 1.0}, "mae", 0.0)[0]
    assert compare({"mae": 0.99}, {"mae": 1.0}, "mae", 0.0)[0]


def test_compare_fails_when_a_metric_is_undefined() -> None:
    passed, reason = compare({"r2": float("nan")}, {"r2": 0.1}, "r2", 0.0)
    assert not passed and "undefined for the candidate" in reason


def test_compare_refuses_an_unknown_metric() -> None:
    with pytest.raises(ConfigError, match="unknown gate metric 'mape'"):
        compare({}, {}, "mape", 0.0)


def test_decide_gate_needs_both_the_baseline_and_the_champion_beaten() -> None:
    config = RunConfig()
    ev = evaluate(EchoModel(), holdout_frame(), ["x"], config, target_kind="return")
    assert decide_gate(ev, config.gate).passed
    decision = decide_gate(ev, config.gate, champion={"rmse": 0.0})
    assert not decision.passed and decision.failed == ["champion"]
    assert "the champion" in decision.reasons[-1]


def test_a_champion_that_cannot_be_compared_fails_the_gate_with_the_reason() -> None:
    config = RunConfig()
    ev = evaluate(EchoModel(), holdout_frame(), ["x"], config, target_kind="return")
    decision = decide_gate(ev, config.gate, champion_note="champion version 3 predicts x")
    assert decision.failed == ["champion"]
    assert "champion version 3 predicts x; promote by hand" in decision.reasons[-1]


class HalfWrongModel:
    """Gets the sign of every other row wrong: 50% directional accuracy, still a low rmse."""

    feature_names_in_ = np.array(["x"])

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        return x["x"].to_numpy() * np.resize([1.0, -0.1], len(x))


def test_the_directional_accuracy_floor_is_off_by_default_and_named_when_it_fails() -> None:
    loose = RunConfig()
    ev = evaluate(HalfWrongModel(), holdout_frame(), ["x"], loose, target_kind="return")
    names = [c.name for c in decide_gate(ev, loose.gate).conditions]
    assert names == ["baseline", "significance", "champion"]
    # Six dates cannot show significance; this test is about the floor alone.
    strict = RunConfig.from_yaml_text("gate: {min_directional_accuracy: 0.6, max_p_value: null}")
    decision = decide_gate(ev, strict.gate)
    assert decision.failed == ["directional_accuracy"]
    assert decision.reasons[-1] == "directional accuracy 50.0% is below the required 60.0%"


def test_the_backtest_edge_floor_names_the_edge_and_the_costs() -> None:
    strict = RunConfig.from_yaml_text("gate: {min_backtest_edge: 100.0}")
    ev = evaluate(EchoModel(), holdout_frame(), ["x"], strict, target_kind="return")
    decision = decide_gate(ev, strict.gate)
    assert decision.failed == ["backtest_edge"]
    assert "after 5 bps costs" in decision.reasons[-1]
    assert "is below the required +100.00" in decision.reasons[-1]
    no_backtest = RunConfig.from_yaml_text(
        "gate: {min_backtest_edge: 0.0}\nbacktest: {enabled: false}"
    )
    ev = evaluate(EchoModel(), holdout_frame(), ["x"], no_backtest, target_kind="return")
    assert (
        "a backtest edge is required but no backtest: disabled"
        in (decide_gate(ev, no_backtest.gate).reasons[-1])
    )


def test_best_baseline_is_the_stronger_on_the_gate_metric() -> None:
    from kubeline.evaluate import strongest_baseline

    baselines = {
        "persistence": {"rmse": 2.0, "r2": -0.5},
        "moving_average": {"rmse": 1.0, "r2": 0.1},
    }
    assert strongest_baseline(baselines, "rmse") == "moving_average"
    assert strongest_baseline(baselines, "r2") == "moving_average"
    assert strongest_baseline(baselines, "rmse", "persistence") == "persistence"
    baselines["persistence"]["rmse"] = 0.5
    assert strongest_baseline(baselines, "rmse") == "persistence"


def test_improvement_p_value_is_small_for_a_real_gain_and_large_for_none() -> None:
    from kubeline.evaluate.metrics import improvement_p_value

    rng = np.random.default_rng(0)
    dates = np.repeat(np.arange(300), 2)
    actual = rng.normal(0, 1, 600)
    good = actual + rng.normal(0, 0.5, 600)
    assert improvement_p_value(actual, good, np.zeros(600), dates, "rmse") < 0.001
    assert improvement_p_value(actual, np.zeros(600), good, dates, "mae") > 0.999
    same = improvement_p_value(actual, rng.normal(0, 1, 600), rng.normal(0, 1, 600), dates, "rmse")
    assert 0.01 < same < 0.99
    # Overlapping targets make the per-date gains come in runs; the Newey-West variance sees
    # the runs, so the same mean gain is weaker evidence.
    runs = np.repeat(rng.normal(0.2, 1.0, 60), 5)  # 300 dates, each gain repeated 5 times
    y = np.zeros(300)
    reference = np.sqrt(np.abs(runs) + 1.0)
    model = np.sqrt(np.maximum(reference**2 - runs, 0.0))
    days = np.arange(300)
    assert improvement_p_value(y, model, reference, days, "rmse", lag=4) > 2 * (
        improvement_p_value(y, model, reference, days, "rmse")
    )


def test_the_significance_condition_is_on_by_default_and_named_when_it_fails() -> None:
    config = RunConfig()
    assert config.gate.max_p_value == 0.05
    frame = pd.concat([holdout_frame()] * 3, ignore_index=True)  # six dates only
    ev = evaluate(HalfWrongModel(), frame, ["x"], config, target_kind="return")
    decision = decide_gate(ev, config.gate)
    assert decision.failed == ["significance"]
    assert "one-sided Diebold-Mariano" in decision.reasons[1]
    assert "which is above the allowed 0.05" in decision.reasons[1]
    off = RunConfig.from_yaml_text("gate: {max_p_value: null}")
    assert "significance" not in [c.name for c in decide_gate(ev, off.gate).conditions]
