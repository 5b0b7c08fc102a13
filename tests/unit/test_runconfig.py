"""The run config: defaults, validation messages that locate the bad key, YAML round trip."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kubeline.errors import ConfigError
from kubeline.runconfig import BUILTIN_PARAMS, RunConfig, load_run_config


def load(text: str) -> RunConfig:
    return RunConfig.from_yaml_text(text, source="configs/x.yaml")


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(text)
    return str(info.value)


def test_defaults_match_the_documented_values() -> None:
    config = RunConfig()
    assert config.model_name is None
    assert config.target == "next_return" and config.horizon == 1
    assert config.features is None
    assert (config.split.holdout_fraction, config.split.n_splits, config.split.gap) == (
        0.2,
        4,
        None,
    )
    assert [m.name for m in config.models] == ["ridge", "hist_gbm"]
    assert config.selection_metric == "rmse"
    assert (config.gate.metric, config.gate.min_improvement, config.gate.baseline) == (
        "rmse",
        0.0,
        "best",
    )
    assert config.backtest.enabled is True and config.backtest.cost_bps == 5.0
    assert config.seed == 42


def test_load_run_config_none_gives_defaults() -> None:
    assert load_run_config(None) == RunConfig()


def test_empty_file_gives_defaults() -> None:
    assert load("") == RunConfig()


def test_to_yaml_round_trips_a_non_default_config() -> None:
    config = load(
        """
        model_name: m
        data: {tickers: [AAA], min_rows: 300}
        target: next_volume
        horizon: 5
        features: [volume_mean_30]
        split: {holdout_fraction: 0.25, n_splits: 3, gap: 7}
        models:
          - {name: poly2, params: {alpha: [0.5]}, scale: true}
          - {estimator: sklearn.linear_model.Lasso, params: {alpha: [0.01, 0.1]}}
        selection_metric: mae
        gate: {metric: mae, min_improvement: 0.05, baseline: moving_average}
        backtest: {enabled: false, cost_bps: 5}
        seed: 7
        """
    )
    assert load(config.to_yaml()) == config
    assert load(RunConfig().to_yaml()) == RunConfig()


def test_purge_gap_defaults_to_the_horizon() -> None:
    assert load("horizon: 5").purge_gap == 5
    assert load("horizon: 5\nsplit: {gap: 0}").purge_gap == 0


def test_target_kind_follows_the_target() -> None:
    assert load("target: next_log_return").target_kind == "log_return"
    assert load("target: next_volume").target_kind == "level"


def test_unknown_top_level_key_is_named_with_the_allowed_keys() -> None:
    message = error_of("modles: []")
    assert message.startswith("configs/x.yaml: modles: unknown key")
    assert "models" in message and "selection_metric" in message


def test_unknown_nested_key_is_named_with_its_path() -> None:
    message = error_of("split: {holdout: 0.1}")
    assert (
        "configs/x.yaml: split.holdout: unknown key; allowed: holdout_fraction, n_splits, gap"
        in message
    )


def test_unknown_model_parameter_is_located_by_index_and_name() -> None:
    message = error_of("models: [{name: ridge}, {name: hist_gbm, params: {alpha: [1]}}]")
    assert "configs/x.yaml: models[1].params.alpha: unknown parameter for hist_gbm" in message
    assert "learning_rate" in message


def test_out_of_range_value_says_what_is_allowed() -> None:
    assert "split.holdout_fraction: Input should be less than 0.5" in error_of(
        "split: {holdout_fraction: 0.6}"
    )
    assert "horizon: Input should be greater than or equal to 1" in error_of("horizon: 0")


def test_unknown_target_lists_the_choices() -> None:
    assert "'next_return', 'next_log_return' or 'next_volume'" in error_of("target: price")


def test_candidate_needs_exactly_one_of_name_and_estimator() -> None:
    assert "exactly one of 'name'" in error_of("models: [{params: {}}]")
    assert "exactly one of 'name'" in error_of(
        "models: [{name: ridge, estimator: sklearn.linear_model.Lasso}]"
    )


def test_estimator_import_path_is_resolved_at_load() -> None:
    config = load("models: [{estimator: sklearn.linear_model.Lasso, params: {alpha: [0.1]}}]")
    assert config.models[0].label == "Lasso"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("nosuchpackage.Model", "cannot import module 'nosuchpackage'"),
        ("sklearn.linear_model.NoSuchModel", "has no attribute 'NoSuchModel'"),
        ("sklearn.linear_model.LogisticRegression", "is a classifier, not a regressor"),
        ("sklearn.cluster.KMeans", "is a clusterer, not a regressor"),
        ("sklearn.preprocessing.StandardScaler", "not a regressor"),
        ("Lasso", "is not an import path"),
    ],
)
def test_bad_estimator_path_is_a_clear_error(path: str, expected: str) -> None:
    message = error_of(f"models: [{{estimator: {path}}}]")
    assert "models[0].estimator:" in message and expected in message


def test_estimator_parameters_are_checked_against_the_class() -> None:
    message = error_of("models: [{estimator: sklearn.linear_model.Lasso, params: {depth: [1]}}]")
    assert "models[0].params.depth: unknown parameter" in message


def test_scalar_parameter_is_a_one_value_grid() -> None:
    assert load("models: [{name: ridge, params: {alpha: 3}}]").models[0].params == {"alpha": [3]}


def test_empty_grid_is_an_error() -> None:
    assert "models[0].params.alpha: give at least one value" in error_of(
        "models: [{name: ridge, params: {alpha: []}}]"
    )


def test_invalid_yaml_names_the_source() -> None:
    assert error_of("models: [").startswith("configs/x.yaml: not valid YAML")


def test_non_mapping_document_is_an_error() -> None:
    assert "a run config is a mapping" in error_of("- ridge")


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="run config not found"):
        load_run_config(tmp_path / "nope.yaml")


def test_every_error_is_reported_not_only_the_first() -> None:
    message = error_of("horizon: 0\nseed: x")
    assert "horizon:" in message and "seed:" in message


def test_builtin_parameter_names_are_real_estimator_parameters() -> None:
    from kubeline.candidates import build_pipeline

    for name, params in BUILTIN_PARAMS.items():
        candidate = load(f"models: [{{name: {name}}}]").models[0]
        pipeline = build_pipeline(candidate, seed=0)
        known = pipeline.get_params()
        for param in params:
            step = "poly" if param == "interaction_only" else "model"
            assert f"{step}__{param}" in known, (name, param)


def test_importing_runconfig_does_not_import_sklearn() -> None:
    code = (
        "import sys, kubeline.runconfig as r; r.load_run_config(None);"
        "r.RunConfig.from_yaml_text('models: [{name: poly2}]');"
        "assert 'sklearn' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
