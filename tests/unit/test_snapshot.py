"""Content hashes identify canonical content exactly; summaries describe a data set."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, timedelta

import polars as pl
import pytest

from kubeline.data import schema as s
from kubeline.data.snapshot import combine, content_hash, summary, ticker_digests

# Pinned: a change here means every earlier snapshot's hash changed meaning.
PINNED = "sha256:d03ff5f58126f38e808298d5020e8ab0550e391de73529033e90676990481570"
MAKE = """
import polars as pl
from datetime import date
frame = pl.DataFrame({
    "ticker": ["A", "A", "B"],
    "date": [date(2000, 1, 3), date(2000, 1, 4), date(2000, 1, 3)],
    "close": [1.5, 2.25, -0.0],
    "adj_close": [1.5, None, 3.0],
    "volume": [10, 20, 30],
})
"""


@pytest.fixture
def frame() -> pl.DataFrame:
    scope: dict[str, pl.DataFrame] = {}
    exec(MAKE, scope)
    return scope["frame"]


def test_content_hash_is_pinned_for_a_known_frame(frame: pl.DataFrame) -> None:
    assert content_hash(frame) == PINNED


def test_content_hash_is_the_same_in_another_process() -> None:
    code = MAKE + "from kubeline.data.snapshot import content_hash\nprint(content_hash(frame))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == PINNED


def test_content_hash_ignores_row_order_lineage_column_order_and_volume_type(
    frame: pl.DataFrame,
) -> None:
    shuffled = (
        frame.reverse()
        .select(reversed(frame.columns))
        .with_columns(
            pl.col(s.VOLUME).cast(pl.Float64),
            pl.lit("x.csv").alias(s.SOURCE_FILE),
            pl.lit(7).alias(s.SOURCE_ROW),
        )
    )
    assert content_hash(shuffled) == PINNED


@pytest.mark.parametrize(
    "change",
    [
        pl.col(s.CLOSE) * 1.0000001,
        pl.col(s.CLOSE).abs() + 1e-300,
        pl.when(pl.col(s.TICKER) == "B").then(None).otherwise(pl.col(s.CLOSE)),
    ],
)
def test_content_hash_changes_when_a_value_changes(frame: pl.DataFrame, change: pl.Expr) -> None:
    changed = frame.with_columns(change.alias(s.CLOSE))
    assert content_hash(changed) != PINNED


def test_content_hash_changes_with_a_date_a_ticker_or_a_column(frame: pl.DataFrame) -> None:
    assert content_hash(frame.with_columns(pl.col(s.DATE) + timedelta(days=1))) != PINNED
    assert content_hash(frame.with_columns(pl.col(s.TICKER).str.to_lowercase())) != PINNED
    assert content_hash(frame.drop(s.VOLUME)) != PINNED


def test_per_ticker_digests_combine_to_the_whole_hash(frame: pl.DataFrame) -> None:
    parts = {**ticker_digests(frame.filter(pl.col(s.TICKER) == "B"))}
    parts.update(ticker_digests(frame.filter(pl.col(s.TICKER) == "A")))
    assert combine(parts) == PINNED


def test_summary_describes_rows_tickers_dates_columns_and_frequency(frame: pl.DataFrame) -> None:
    info = summary(frame)
    assert info == {
        "rows": 3,
        "tickers": 2,
        "first_date": "2000-01-03",
        "last_date": "2000-01-04",
        "columns": [s.TICKER, s.DATE, s.CLOSE, s.ADJ_CLOSE, s.VOLUME],
        "frequency": "daily",
    }


@pytest.mark.parametrize(("step", "name"), [(7, "weekly"), (30, "monthly"), (91, "quarterly")])
def test_summary_infers_longer_bar_frequencies(step: int, name: str) -> None:
    dates = [date(2000, 1, 3) + timedelta(days=step * i) for i in range(6)]
    frame = pl.DataFrame({s.TICKER: ["A"] * 6, s.DATE: dates, s.CLOSE: [1.0] * 6})
    assert summary(frame)["frequency"] == name
