"""Synthetic data: realistic shape, deterministic, written in every layout ingest reads."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from kubeline.data import schema as s
from kubeline.data.generate import PLANTED_RETURN_AR, etf_tickers, generate, write_dataset
from kubeline.errors import KubelineError, StorageError
from kubeline.storage import MANIFEST


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    return generate(tickers=12, years=4, seed=3)


def test_generate_same_seed_gives_identical_frames(frame: pl.DataFrame) -> None:
    assert generate(tickers=12, years=4, seed=3).equals(frame)


def test_generate_different_seed_gives_different_prices(frame: pl.DataFrame) -> None:
    other = generate(tickers=12, years=4, seed=4)
    assert not other.get_column(s.CLOSE).head(100).equals(frame.get_column(s.CLOSE).head(100))


def test_generate_has_canonical_columns_sorted_by_ticker_and_date(frame: pl.DataFrame) -> None:
    assert frame.columns == [
        s.TICKER,
        s.DATE,
        s.OPEN,
        s.HIGH,
        s.LOW,
        s.CLOSE,
        s.ADJ_CLOSE,
        s.VOLUME,
    ]
    assert frame.schema[s.DATE] == pl.Date
    assert frame.equals(frame.sort(s.TICKER, s.DATE))
    assert frame.select(pl.struct(s.TICKER, s.DATE).is_unique().all()).item()


def test_generate_names_tickers_like_symbols(frame: pl.DataFrame) -> None:
    tickers = frame.get_column(s.TICKER).unique().to_list()
    assert len(tickers) == 12
    assert all(t.isalpha() and t.isupper() and len(t) in (3, 4) for t in tickers)


def test_generate_uses_trading_days_only(frame: pl.DataFrame) -> None:
    dates = frame.get_column(s.DATE)
    assert dates.min() == date(2000, 1, 3)
    assert (dates.dt.weekday() <= 5).all()
    assert not ((dates.dt.month() == 12) & (dates.dt.day() == 25)).any()
    assert 4 * 245 <= dates.n_unique() <= 4 * 252


def test_generate_bars_are_consistent_and_positive(frame: pl.DataFrame) -> None:
    ok = frame.select(
        a=(pl.col(s.LOW) <= pl.col(s.OPEN)).all(),
        b=(pl.col(s.OPEN) <= pl.col(s.HIGH)).all(),
        c=(pl.col(s.LOW) <= pl.col(s.CLOSE)).all(),
        d=(pl.col(s.CLOSE) <= pl.col(s.HIGH)).all(),
        e=(pl.col(s.LOW) > 0).all(),
        f=(pl.col(s.VOLUME) > 0).all(),
    )
    assert all(ok.row(0))


def test_generate_adj_close_carries_dividends_and_meets_close_at_the_end(
    frame: pl.DataFrame,
) -> None:
    last = frame.group_by(s.TICKER).agg(pl.all().last())
    assert (last.get_column(s.ADJ_CLOSE) - last.get_column(s.CLOSE)).abs().max() < 1e-3
    first = frame.group_by(s.TICKER).agg(pl.all().first())
    assert (first.get_column(s.ADJ_CLOSE) < first.get_column(s.CLOSE) * 0.99).any()


def test_generate_leaves_some_days_missing_for_some_tickers(frame: pl.DataFrame) -> None:
    counts = frame.group_by(s.TICKER).len().get_column("len")
    assert counts.min() < frame.get_column(s.DATE).n_unique()


def test_generate_volume_is_persistent(frame: pl.DataFrame) -> None:
    one = frame.filter(pl.col(s.TICKER) == frame.item(0, s.TICKER))
    logv = np.log(one.get_column(s.VOLUME).to_numpy().astype(float))
    assert np.corrcoef(logv[:-1], logv[1:])[0, 1] > 0.5


def _lag1_autocorrelation(frame: pl.DataFrame) -> float:
    r = frame.select(
        pl.col(s.ADJ_CLOSE).log().diff().over(s.TICKER).alias("r"),
        pl.col(s.ADJ_CLOSE).log().diff().shift(1).over(s.TICKER).alias("lag"),
    ).drop_nulls()
    return float(np.corrcoef(r.get_column("r"), r.get_column("lag"))[0, 1])


def test_generate_plants_the_documented_return_autocorrelation() -> None:
    # With ~57k pairs the standard error is ~0.004, so these bounds are 5 sigma wide.
    assert abs(_lag1_autocorrelation(generate(60, 4, seed=11)) - PLANTED_RETURN_AR) < 0.02
    assert abs(_lag1_autocorrelation(generate(60, 4, seed=11, return_ar=0.05)) - 0.05) < 0.02


def test_generate_without_a_planted_signal_has_uncorrelated_returns() -> None:
    assert abs(_lag1_autocorrelation(generate(60, 4, seed=11, return_ar=0.0))) < 0.02


@pytest.mark.parametrize("return_ar", [1.0, -1.0, 1.5])
def test_generate_rejects_a_non_stationary_signal(return_ar: float) -> None:
    with pytest.raises(KubelineError, match="strictly between -1 and 1"):
        generate(tickers=2, years=1, seed=1, return_ar=return_ar)


def test_generate_rejects_no_tickers() -> None:
    with pytest.raises(KubelineError, match="at least 1 ticker"):
        generate(tickers=0, years=1, seed=1)


def test_write_dataset_yahoo_writes_one_file_per_ticker_with_yahoo_header(
    frame: pl.DataFrame, tmp_path: Path
) -> None:
    paths = write_dataset(frame, tmp_path / "y", "yahoo")
    assert len(paths) == 12
    first = paths[0].read_text().splitlines()
    assert first[0] == "Date,Open,High,Low,Close,Adj Close,Volume"
    assert first[1].startswith("2000-01-03,") or first[1][:4].isdigit()


def test_write_dataset_kaggle_splits_stocks_and_etfs_and_writes_metadata(
    tmp_path: Path,
) -> None:
    frame = generate(tickers=40, years=0.2, seed=5)
    paths = write_dataset(frame, tmp_path / "k", "kaggle")
    etfs = etf_tickers(frame.get_column(s.TICKER).unique().to_list())
    assert 0 < len(etfs) < 40
    assert {p.stem for p in paths if p.parent.name == "etfs"} == etfs
    meta = pl.read_csv(tmp_path / "k" / "symbols_valid_meta.csv")
    assert meta.columns[:3] == ["Nasdaq Traded", "Symbol", "Security Name"]
    assert set(meta.filter(pl.col("ETF") == "Y").get_column("Symbol")) == etfs


@pytest.mark.parametrize("name", ["prices.csv", "prices.parquet"])
def test_write_dataset_long_writes_one_file_with_a_ticker_column(
    frame: pl.DataFrame, tmp_path: Path, name: str
) -> None:
    (path,) = write_dataset(frame, tmp_path / name, "long")
    back = pl.read_parquet(path) if name.endswith("parquet") else pl.read_csv(path)
    assert back.height == frame.height and s.TICKER in back.columns


def test_write_dataset_replaces_its_own_earlier_output_whole(
    frame: pl.DataFrame, tmp_path: Path
) -> None:
    out = tmp_path / "y"
    write_dataset(frame, out, "yahoo")
    first = frame.item(0, s.TICKER)
    write_dataset(frame.filter(pl.col(s.TICKER) == first), out, "yahoo")
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, f"{first}.csv"]
    assert [p.name for p in tmp_path.iterdir()] == ["y"]  # no temporary folder left behind


def test_write_dataset_refuses_a_folder_holding_the_users_files(
    frame: pl.DataFrame, tmp_path: Path
) -> None:
    out = tmp_path / "data"
    (out / "mine").mkdir(parents=True)
    (out / "prices.csv").write_text("my own data")
    (out / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(StorageError, match="already holds files kubeline did not write"):
        write_dataset(frame, out, "yahoo")
    assert (out / "prices.csv").read_text() == "my own data"
    assert (out / "mine" / "notes.txt").read_text() == "keep me"
    assert [p.name for p in tmp_path.iterdir()] == ["data"]


def test_write_dataset_refuses_a_file_where_a_folder_is_expected(
    frame: pl.DataFrame, tmp_path: Path
) -> None:
    out = tmp_path / "prices"
    out.write_text("a file")
    with pytest.raises(StorageError, match="is a file, where a folder is expected"):
        write_dataset(frame, out, "yahoo")
    assert out.read_text() == "a file"
    folder = tmp_path / "taken.csv"
    folder.mkdir()
    with pytest.raises(StorageError, match="is a folder, where a file is expected"):
        write_dataset(frame, folder, "long")
