"""Input whose meaning a reader would have to guess: normalised with a warning, or rejected.

Each case runs through `kubeline validate` (ingest + validate, as the pipeline's steps do) and
`kubeline features` (the batch path), so both paths say the same thing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

HEADER = "Date,Open,High,Low,Close,Adj Close,Volume"
BAR = "10,11,9,10.5,10.4,1000"


def weekdays(start: date, n: int, step: int = 1) -> list[date]:
    days, day = [], start
    while len(days) < n:
        if day.weekday() < 5 or step > 1:
            days.append(day)
        day += timedelta(days=step)
    return days


def yahoo(folder: Path, name: str, days: list[date], header: str = HEADER) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("\n".join([header, *(f"{d.isoformat()},{BAR}" for d in days)]) + "\n")
    return path


def long_file(path: Path, rows: list[tuple[str, date]]) -> Path:
    lines = ["ticker,date,close"] + [f"{t},{d.isoformat()},10.5" for t, d in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_tickers_differing_only_in_case_or_spaces_are_one_ticker(
    tmp_path: Path, cli: Callable[..., object]
) -> None:
    days = weekdays(date(2001, 1, 2), 120)
    spellings = ["AAPL", "aapl", " AAPL "]
    rows = [(spellings[i % 3], d) for i, d in enumerate(days)]
    path = long_file(tmp_path / "prices.csv", rows + [("MSFT", d) for d in days])
    done = cli("validate", path)
    assert done.exit_code == 0, done.output
    merged = "tickers ' AAPL ', 'AAPL', 'aapl' differ only in case or spaces; read as one ticker"
    assert f"{merged}, AAPL" in done.flat
    assert "2 tickers" in done.flat  # AAPL (all 120 rows) and MSFT, not 4 fragments


def test_a_ticker_with_surrounding_spaces_is_trimmed_with_a_warning(
    tmp_path: Path, cli: Callable[..., object]
) -> None:
    days = weekdays(date(2001, 1, 2), 120)
    path = long_file(tmp_path / "prices.csv", [(" msft ", d) for d in days])
    done = cli("features", "--data", path, "--out", tmp_path / "f.parquet")
    assert done.exit_code == 0, done.output
    assert "ticker ' msft ' has surrounding spaces; read as msft" in done.flat
    assert pl.read_parquet(tmp_path / "f.parquet")["ticker"].unique().to_list() == ["msft"]


def test_two_digit_years_are_rejected_with_the_row_and_column(
    tmp_path: Path, cli: Callable[..., object]
) -> None:
    path = tmp_path / "AAA.csv"
    days = weekdays(date(2005, 1, 3), 80)
    path.write_text("\n".join([HEADER, *(f"{d.month}/{d.day}/{d:%y},{BAR}" for d in days)]) + "\n")
    for command in (("validate", path), ("features", "--data", path, "--out", tmp_path / "f.pq")):
        done = cli(*command)
        assert done.exit_code == 3, done.output
        assert "AAA.csv, row 2, column 'date': '1/3/05' has a two-digit year" in done.flat
        assert "(79 more rows like it in this file)" in done.flat
        assert "Traceback" not in done.output


def test_intraday_bars_are_one_error_not_a_flood_of_duplicates(
    tmp_path: Path, cli: Callable[..., object]
) -> None:
    lines = [HEADER]
    for d in weekdays(date(2020, 1, 2), 30):
        lines += [f"{d.isoformat()} {h:02d}:30:00,{BAR}" for h in range(9, 16)]
    (tmp_path / "AAA.csv").write_text("\n".join(lines) + "\n")
    done = cli("validate", tmp_path)
    assert done.exit_code == 3, done.output
    assert done.flat.count("intraday bars are not supported") == 1
    assert "also appears with other values" not in done.output


def test_a_date_column_next_to_a_timestamp_column_warns(
    tmp_path: Path, cli: Callable[..., object]
) -> None:
    days = weekdays(date(2001, 1, 2), 120)
    path = tmp_path / "AAA.csv"
    path.write_text(
        "\n".join(
            ["Date,Timestamp,Close", *(f"{d.isoformat()},{d.isoformat()}T16:00,10.5" for d in days)]
        )
        + "\n"
    )
    done = cli("validate", tmp_path)
    assert done.exit_code == 0, done.output
    assert "warning" in done.output
    assert "has another date column (Timestamp)" in done.flat


def test_a_gap_of_more_than_a_year_inside_a_ticker_warns(
    tmp_path: Path, cli: Callable[..., object]
) -> None:
    days = weekdays(date(2001, 1, 2), 80) + weekdays(date(2004, 6, 1), 80)
    yahoo(tmp_path, "AAA.csv", days)
    done = cli("validate", tmp_path)
    assert done.exit_code == 0, done.output
    assert "AAA.csv, row 82, column 'date': AAA has no rows from" in done.flat
    assert "to 2004-06-01" in done.flat


def test_daily_tickers_beside_weekly_ones_warn(tmp_path: Path, cli: Callable[..., object]) -> None:
    yahoo(tmp_path, "DAY.csv", weekdays(date(2001, 1, 2), 150))
    yahoo(tmp_path, "WEEK.csv", weekdays(date(2001, 1, 2), 150, step=7))
    done = cli("validate", tmp_path)
    assert done.exit_code == 0, done.output
    assert (
        "tickers have bars of different frequencies: 1 daily (DAY); 1 weekly (WEEK)" in (done.flat)
        or "1 weekly (WEEK); 1 daily (DAY)" in done.flat
    )


def test_a_ticker_switching_from_daily_to_weekly_warns(
    tmp_path: Path, cli: Callable[..., object]
) -> None:
    days = weekdays(date(2001, 1, 2), 100)
    days += weekdays(days[-1] + timedelta(days=7), 60, step=7)
    yahoo(tmp_path, "AAA.csv", days)
    done = cli("validate", tmp_path)
    assert done.exit_code == 0, done.output
    assert "AAA mixes daily and weekly bars" in done.flat


def test_a_flood_of_warnings_says_how_many_more(tmp_path: Path, cli: Callable[..., object]) -> None:
    for i in range(30):  # 30 tickers too short for the feature windows: 30 warnings
        yahoo(tmp_path, f"S{i:02d}.csv", weekdays(date(2001, 1, 2), 5))
    yahoo(tmp_path, "LONG.csv", weekdays(date(2001, 1, 2), 150))
    done = cli("validate", tmp_path)
    assert done.exit_code == 0, done.output
    assert done.stderr.count("warning:") == 21
    assert "... and 10 more warnings" in done.flat


def test_a_failed_step_gives_the_run_the_exit_code_of_its_error() -> None:
    # `kubeline run` on bad data exits 3, as `kubeline validate` does: the step prints its
    # error's code and the runner reads it back from the task's log (the integration test
    # test_broken_data_stops_before_training_and_registers_nothing runs the real pipeline).
    import contextlib
    import io

    from kubeline.errors import DataError
    from kubeline.runner.events import failure_exit_code
    from kubeline.steps.base import EXIT_CODE_PREFIX, executor

    @executor
    def step() -> None:
        raise DataError("validation failed: 1 problems in 1 files")

    log = io.StringIO()
    with contextlib.redirect_stdout(log), pytest.raises(DataError):
        step()
    assert f"{EXIT_CODE_PREFIX} 3" in log.getvalue()
    assert failure_exit_code(log.getvalue().splitlines()) == DataError.exit_code == 3
    assert failure_exit_code(["Traceback (most recent call last):"]) == 1
