"""Batch scoring on a real sqlite MLflow store with a really trained and registered model.

The executor and ``kubeline predict`` (in-process) score raw files of any layout, local or
s3://, with the champion or a pinned version; their predictions equal ``ServedModel.predict`` on
the features training's code computes from the same data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from test_executors import NAME, prices, register_run, train_and_evaluate

from kubeline import features
from kubeline.errors import DataError, ModelNotFoundError
from kubeline.serving.loaded import load_served
from kubeline.settings import Settings, get_settings
from kubeline.steps import predict

pytestmark = pytest.mark.integration

OUTPUT_COLUMNS = ["ticker", "date", "prediction", "model_name", "model_version"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Version 1 champion, version 2 challenger (a real train, evaluate and register each)."""
    root = tmp_path_factory.mktemp("scoring")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KUBELINE_STATE_DIR", str(root / "state"))
        mp.setenv("KUBELINE_SETTINGS_FILE", "")
        get_settings.cache_clear()
        assert register_run(train_and_evaluate(root / "a")).alias == "champion"
        assert register_run(train_and_evaluate(root / "b", seed=1)).alias == "challenger"
        get_settings.cache_clear()
    return root


@pytest.fixture
def scoring_env(store: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("KUBELINE_STATE_DIR", str(store / "state"))
    monkeypatch.setenv("KUBELINE_MODEL_NAME", NAME)
    get_settings.cache_clear()
    return get_settings()


@pytest.fixture(scope="module")
def market() -> pl.DataFrame:
    """New data to score: 4 tickers, 80 bars each, another seed than training's."""
    return prices(seed=5, phi=0.3, tickers=4, days=80)


@pytest.fixture
def long_csv(tmp_path: Path, market: pl.DataFrame) -> Path:
    path = tmp_path / "market.csv"
    market.write_csv(path)
    return path


def expected_predictions(market: pl.DataFrame, settings: Settings, version: str | None = None):
    """What training's feature code and the service's ``ServedModel.predict`` give."""
    served = load_served(settings, version=version)
    table, _ = features.build_polars(
        market, features=served.feature_names, target=served.card.target, horizon=1
    )
    complete = table.drop_nulls(served.feature_names)
    return complete, served.predict(complete.select(served.feature_names).to_pandas())


def test_score_predicts_every_complete_bar_and_counts_the_rest(
    scoring_env: Settings, long_csv: Path, market: pl.DataFrame, tmp_path: Path
) -> None:
    out = tmp_path / "out" / "predictions.parquet"
    scored = predict.score(long_csv, str(out), settings=scoring_env)
    written = pl.read_parquet(out)
    assert written.columns == OUTPUT_COLUMNS
    assert (scored.model_name, scored.model_version) == (NAME, "1")
    assert set(written["model_version"]) == {"1"} and set(written["model_name"]) == {NAME}
    # volatility_20 needs 20 returns, hence 21 bars: the first 20 of each ticker wait.
    assert scored.incomplete_rows == 4 * 20
    assert scored.rows == written.height == market.height - scored.incomplete_rows
    assert scored.tickers == 4 and scored.dropped_tickers == []
    assert scored.data_hash.startswith("sha256:") and scored.model_data_hash
    assert scored.last_date == str(market["date"].max())
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary

    complete, expected = expected_predictions(market, scoring_env)
    joined = complete.select("ticker", "date").with_columns(expected=pl.Series(expected))
    got = written.join(joined, on=["ticker", "date"], how="inner")
    assert got.height == written.height
    np.testing.assert_array_equal(got["prediction"].to_numpy(), got["expected"].to_numpy())


def test_a_pinned_version_scores_with_that_version(
    scoring_env: Settings, long_csv: Path, market: pl.DataFrame, tmp_path: Path
) -> None:
    out = tmp_path / "v2.csv"
    scored = predict.score(long_csv, str(out), version="2", settings=scoring_env)
    written = pl.read_csv(out)
    assert scored.model_version == "2" and set(written["model_version"].cast(str)) == {"2"}
    _, expected = expected_predictions(market, scoring_env, version="2")
    np.testing.assert_allclose(written["prediction"].to_numpy(), expected, rtol=1e-12)
    with pytest.raises(ModelNotFoundError, match="has no version 9"):
        predict.score(long_csv, str(tmp_path / "x.parquet"), version="9", settings=scoring_env)
    assert not (tmp_path / "x.parquet").exists()


def test_a_ticker_too_short_for_the_windows_is_named_not_scored(
    scoring_env: Settings, market: pl.DataFrame, tmp_path: Path
) -> None:
    short = prices(seed=9, phi=0.0, tickers=1, days=12).with_columns(
        pl.lit("SHORT").alias("ticker")
    )
    data = tmp_path / "with-short.csv"
    pl.concat([market, short]).write_csv(data)
    scored = predict.score(data, str(tmp_path / "p.parquet"), settings=scoring_env)
    assert scored.dropped_tickers == ["SHORT"] and scored.tickers == 4
    assert any("SHORT" in w for w in scored.warnings)


def test_invalid_data_is_refused_with_the_row_and_nothing_is_written(
    scoring_env: Settings, long_csv: Path, tmp_path: Path
) -> None:
    lines = long_csv.read_text().splitlines()
    fields = lines[5].split(",")
    fields[2] = "-3.0"  # a negative close
    lines[5] = ",".join(fields)
    long_csv.write_text("\n".join(lines) + "\n")
    out = tmp_path / "p.parquet"
    with pytest.raises(DataError) as err:
        predict.score(long_csv, str(out), settings=scoring_env)
    assert any(p.row == 6 for p in err.value.problems)
    assert not out.exists()


def test_the_predict_command_scores_and_reports_what_it_left_out(
    cli, scoring_env: Settings, long_csv: Path, tmp_path: Path
) -> None:
    out = tmp_path / "cli.parquet"
    done = cli("predict", "--data", long_csv, "--out", out)
    assert done.exit_code == 0, done.output
    assert f"by {NAME} version 1" in done.flat
    assert "80 rows not scored: a feature is unknown there" in done.flat
    assert pl.read_parquet(out).height == 4 * 60
    pinned = cli("predict", "--data", long_csv, "--out", out, "--version", "2", "--json")
    assert pinned.exit_code == 0 and '"model_version": "2"' in pinned.stdout
    absent = cli("predict", "--data", long_csv, "--out", out, "--version", "9")
    assert absent.exit_code != 0 and "has no version 9" in absent.flat
    assert "Traceback" not in absent.output


def test_score_reads_and_writes_s3(
    scoring_env: Settings, s3_server, market: pl.DataFrame, tmp_path: Path, monkeypatch
) -> None:
    folder = tmp_path / "yahoo"
    folder.mkdir()
    for (ticker,), part in market.group_by("ticker"):
        part.drop("ticker").write_csv(folder / f"{ticker}.csv")
    data = s3_server.upload(folder, "scoring/raw")
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    settings = get_settings()
    out = f"s3://{s3_server.bucket}/scoring/out/predictions.parquet"
    scored = predict.score(data, out, settings=settings)
    assert scored.rows == 4 * 60
    local = tmp_path / "back.parquet"
    s3_server.client().download_file(
        s3_server.bucket, "scoring/out/predictions.parquet", str(local)
    )
    assert pl.read_parquet(local).columns == OUTPUT_COLUMNS


def test_the_compiled_batch_pipeline_runs_with_kfp_local(
    scoring_env: Settings, long_csv: Path, market: pl.DataFrame
) -> None:
    from kubeline.runner import run_local

    result = run_local(
        {"data": str(long_csv), "data_version": "", "model_name": NAME, "version": ""},
        scoring_env,
        pipeline="batch_scoring",
        runner="subprocess",
    )
    assert [e.step for e in result.steps if e.status == "SUCCESS"] == ["ingest", "predict"]
    artifact = result.outputs["predictions"]
    written = pl.read_parquet(artifact.path)
    assert written.columns == OUTPUT_COLUMNS and written.height == 4 * 60
    lineage = artifact.metadata
    served = load_served(scoring_env)
    assert (lineage["model_name"], lineage["model_version"]) == (NAME, "1")
    assert lineage["mlflow_run_id"] == served.mlflow_run_id
    assert lineage["pipeline_run_id"] == served.pipeline_run_id == "run-a"
    assert lineage["data_hash"].startswith("sha256:") and lineage["incomplete_rows"] == 80
    assert lineage["source"] == str(long_csv)
    complete, expected = expected_predictions(market, scoring_env)
    joined = written.join(
        complete.select("ticker", "date").with_columns(expected=pl.Series(expected)),
        on=["ticker", "date"],
    )
    np.testing.assert_array_equal(joined["prediction"].to_numpy(), joined["expected"].to_numpy())
