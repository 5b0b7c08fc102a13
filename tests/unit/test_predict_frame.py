"""Batch scoring's core on a really trained model (no registry): features, gaps, refusals."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from kubeline import features, model
from kubeline.data.generate import generate
from kubeline.errors import DataError
from kubeline.serving.loaded import ServedModel
from kubeline.steps import train
from kubeline.steps.predict import predictions_frame

CONFIG = """
features: [ret_1, volume_ratio_30]
models: [{name: ridge, params: {alpha: [1.0]}}]
split: {n_splits: 2}
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> ServedModel:
    """A ridge model trained by the train step on generated OHLCV, as the service holds one."""
    folder = tmp_path_factory.mktemp("model")
    table, _ = features.build_polars(
        generate(tickers=3, years=2, seed=4), features=["ret_1", "volume_ratio_30"]
    )
    table.write_parquet(folder / "table.parquet")
    train.run(table=str(folder / "table.parquet"), config=CONFIG, out=str(folder / "model"))
    saved = model.load(folder / "model")
    return ServedModel(
        estimator=saved.estimator,
        card=saved.card,
        name="m",
        version="7",
        alias=None,
        mlflow_run_id=None,
        pipeline_run_id=None,
        git_revision=None,
        data_hash=None,
        input_example=[],
    )


def test_every_bar_with_all_features_is_scored_and_the_warm_up_is_counted(
    served: ServedModel,
) -> None:
    raw = generate(tickers=2, years=0.5, seed=8)
    out, found = predictions_frame(raw, served)
    assert out.columns == ["ticker", "date", "prediction", "model_name", "model_version"]
    # volume_ratio_30 needs 30 bars: each ticker's first 29 cannot be scored.
    assert found["incomplete_rows"] == 2 * 29
    assert out.height == raw.height - 2 * 29
    assert set(out["model_version"]) == {"7"} and found["dropped_tickers"] == []
    table, _ = features.build_polars(raw, features=served.feature_names)
    complete = table.drop_nulls(served.feature_names)
    expected = served.predict(complete.select(served.feature_names).to_pandas())
    np.testing.assert_array_equal(out["prediction"].to_numpy(), expected)


def test_data_without_a_column_the_model_reads_is_refused_naming_it(served: ServedModel) -> None:
    raw = generate(tickers=2, years=0.5, seed=8).drop("volume")
    with pytest.raises(
        DataError, match=r"lacks column\(s\) volume, which feature\(s\) volume_ratio_30"
    ):
        predictions_frame(raw, served)


def test_a_ticker_shorter_than_the_windows_is_dropped_and_named(served: ServedModel) -> None:
    raw = generate(tickers=2, years=0.5, seed=8)
    first = raw["ticker"][0]
    short = raw.filter(pl.col("ticker") != first).group_by("ticker").head(10)
    mixed = pl.concat([raw.filter(pl.col("ticker") == first), short])
    out, found = predictions_frame(mixed, served)
    assert set(out["ticker"]) == {first} and found["dropped_tickers"] == sorted(
        set(short["ticker"])
    )
    for ticker in found["dropped_tickers"]:
        assert any(
            f"ticker {ticker} has 10 rows, fewer than the 30" in w for w in found["warnings"]
        )


def test_only_short_tickers_is_an_error_not_an_empty_file(served: ServedModel) -> None:
    raw = generate(tickers=2, years=0.5, seed=8).group_by("ticker").head(10)
    with pytest.raises(DataError, match="no ticker has the 30 rows the feature windows need"):
        predictions_frame(raw, served)


def test_invalid_bars_are_refused(served: ServedModel) -> None:
    raw = generate(tickers=1, years=0.5, seed=8)
    bad = raw.with_columns(
        pl.when(pl.int_range(pl.len()) == 40).then(-1.0).otherwise(pl.col("close")).alias("close")
    )
    with pytest.raises(DataError, match="validation failed"):
        predictions_frame(bad, served)
