"""Training: candidates tuned on walk-forward folds of the training window only, then refit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kubeline.data.schema import DATE, DIRECTION_REF, NAIVE_LAST, NAIVE_MA, TARGET, TICKER
from kubeline.errors import TrainingError
from kubeline.runconfig import RunConfig
from kubeline.train import train

FEATURES = ["ret_1", "trend", "noise"]


def features_frame(n_dates: int = 120, tickers: tuple[str, ...] = ("AAA", "BBB"), seed: int = 0):
    """A tiny features frame: the target depends on ret_1; ``trend`` drifts so means differ."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2023-01-02", periods=n_dates)
    parts = []
    for i, ticker in enumerate(tickers):
        ret_1 = rng.normal(0, 0.01, n_dates)
        target = 0.5 * ret_1 + rng.normal(0, 0.002, n_dates)
        parts.append(
            pd.DataFrame(
                {
                    TICKER: ticker,
                    DATE: dates,
                    "ret_1": ret_1,
                    "trend": np.arange(n_dates) / n_dates + i,
                    "noise": rng.normal(size=n_dates),
                    NAIVE_LAST: ret_1,
                    NAIVE_MA: pd.Series(ret_1).rolling(5, min_periods=1).mean(),
                    DIRECTION_REF: 0.0,
                    TARGET: target,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def config(text: str = "") -> RunConfig:
    base = "models: [{name: ridge, params: {alpha: [0.001, 1.0]}}]\nsplit: {n_splits: 3}\n"
    return RunConfig.from_yaml_text(base + text)


def test_train_returns_a_fitted_pipeline_and_one_cv_row_per_combination() -> None:
    result = train(features_frame(), config(), feature_names=FEATURES)
    assert result.candidate == "ridge"
    assert list(result.cv_results["params"]) == ["alpha=0.001", "alpha=1.0"]
    assert result.cv_results["selected"].sum() == 1
    assert list(result.model.feature_names_in_) == FEATURES
    assert result.model.predict(result.holdout[FEATURES]).shape == (result.n_holdout_rows,)


def test_train_reports_row_counts_and_date_ranges_of_train_and_holdout() -> None:
    frame = features_frame(n_dates=100)
    result = train(
        frame, config("split: {n_splits: 3, holdout_fraction: 0.2}"), feature_names=FEATURES
    )
    dates = pd.bdate_range("2023-01-02", periods=100)
    assert result.holdout_dates == (dates[80], dates[99])
    assert result.train_dates == (dates[0], dates[78])  # one date purged (horizon 1)
    assert (result.n_train_rows, result.n_holdout_rows) == (79 * 2, 20 * 2)
    summary = result.summary()
    assert summary["holdout_start"] == dates[80].date().isoformat()
    assert summary["candidate"] == "ridge" and len(summary["feature_names"]) == 3


def test_scaler_is_fit_on_the_training_window_only() -> None:
    frame = features_frame()
    result = train(frame, config(), feature_names=FEATURES)
    scaler = result.model.named_steps["scale"]
    train_rows = frame[frame[DATE] <= result.train_dates[1]]
    np.testing.assert_allclose(scaler.mean_, train_rows[FEATURES].mean().to_numpy())
    assert not np.allclose(scaler.mean_, frame[FEATURES].mean().to_numpy())


def test_changing_holdout_rows_does_not_change_the_model() -> None:
    frame = features_frame()
    first = train(frame, config(), feature_names=FEATURES)
    changed = frame.copy()
    in_holdout = changed[DATE] >= first.holdout_dates[0]
    changed.loc[in_holdout, FEATURES] *= 100.0
    changed.loc[in_holdout, TARGET] = -changed.loc[in_holdout, TARGET]
    second = train(changed, config(), feature_names=FEATURES)
    probe = frame[FEATURES].head(20)
    np.testing.assert_array_equal(first.model.predict(probe), second.model.predict(probe))
    pd.testing.assert_frame_equal(
        first.cv_results.drop(columns="fit_seconds"), second.cv_results.drop(columns="fit_seconds")
    )


def test_poly2_expands_features_inside_the_pipeline_after_scaling() -> None:
    result = train(
        features_frame(),
        config("models: [{name: poly2, params: {alpha: [1.0]}}]"),
        feature_names=FEATURES,
    )
    assert list(result.model.named_steps) == ["scale", "poly", "model"]
    assert result.model.named_steps["poly"].n_output_features_ == 9  # 3 linear + 6 quadratic


def test_selection_follows_the_metric_direction() -> None:
    models = "models: [{name: ridge, params: {alpha: [0.001, 100000.0]}}]\n"
    for metric, pick in (("rmse", "idxmin"), ("r2", "idxmax")):
        result = train(
            features_frame(), config(models + f"selection_metric: {metric}"), feature_names=FEATURES
        )
        table = result.cv_results
        assert table.loc[getattr(table[f"mean_{metric}"], pick)(), "selected"]
        assert result.params == {"alpha": 0.001}


def test_best_candidate_is_picked_across_model_families() -> None:
    text = "models: [{name: ridge, params: {alpha: [100000.0]}}, {name: poly2, params: {alpha: [0.01]}}]"
    result = train(features_frame(), config(text), feature_names=FEATURES)
    assert result.candidate == "poly2"
    assert set(result.cv_results["candidate"]) == {"ridge", "poly2"}


def test_training_is_deterministic_for_the_seed() -> None:
    text = "models: [{name: random_forest, params: {n_estimators: [10], max_depth: [3]}}]\nseed: 3"
    frame = features_frame()
    a = train(frame, config(text), feature_names=FEATURES)
    b = train(frame, config(text), feature_names=FEATURES)
    np.testing.assert_array_equal(
        a.model.predict(frame[FEATURES]), b.model.predict(frame[FEATURES])
    )
    assert a.model.named_steps["model"].random_state == 3


def test_custom_estimator_by_import_path_trains() -> None:
    text = "models: [{estimator: sklearn.linear_model.Lasso, params: {alpha: [0.0001]}}]"
    result = train(features_frame(), config(text), feature_names=FEATURES)
    assert result.candidate == "Lasso"
    assert list(result.model.named_steps) == ["model"]  # custom models are not scaled by default


def test_rows_with_missing_features_or_target_are_dropped_and_counted() -> None:
    frame = features_frame()
    frame.loc[0:4, "ret_1"] = np.nan
    frame.loc[frame.index[-1], TARGET] = np.nan
    result = train(frame, config(), feature_names=FEATURES)
    assert result.n_dropped_rows == 6
    assert result.n_train_rows + result.n_holdout_rows == len(frame) - 6 - 2  # 2 rows purged


def test_too_little_history_for_the_folds_is_an_actionable_error() -> None:
    with pytest.raises(TrainingError) as info:
        train(features_frame(n_dates=8), config(), feature_names=FEATURES)
    assert "walk-forward folds" in str(info.value) and "split.n_splits" in str(info.value)


def test_helper_and_target_columns_are_refused_as_features() -> None:
    with pytest.raises(TrainingError, match="_naive_last, target cannot be model inputs"):
        train(features_frame(), config(), feature_names=["ret_1", NAIVE_LAST, TARGET])


def test_missing_feature_column_is_named() -> None:
    with pytest.raises(TrainingError, match="lacks column\\(s\\) rsi_14"):
        train(features_frame(), config(), feature_names=["ret_1", "rsi_14"])


def test_invalid_parameter_value_is_a_training_error_naming_the_candidate() -> None:
    with pytest.raises(TrainingError, match="candidate ridge"):
        train(
            features_frame(),
            config("models: [{name: ridge, params: {alpha: [-1.0]}}]"),
            feature_names=FEATURES,
        )
