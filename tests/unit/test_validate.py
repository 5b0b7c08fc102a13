"""Each validation rule: broken input is located by file, row and column; safe repairs warn."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest

from kubeline.data import schema as s
from kubeline.data.validate import validate
from kubeline.errors import DataError, Problem

D0 = date(2000, 1, 3)


def _rows(ticker: str, n: int, file: str | None = None, **overrides: list[object]) -> pl.DataFrame:
    data: dict[str, list[object]] = {
        s.TICKER: [ticker] * n,
        s.DATE: [D0 + timedelta(days=i) for i in range(n)],
        s.OPEN: [10.0] * n,
        s.HIGH: [11.0] * n,
        s.LOW: [9.0] * n,
        s.CLOSE: [10.5] * n,
        s.ADJ_CLOSE: [10.4] * n,
        s.VOLUME: [100.0] * n,
        s.SOURCE_FILE: [file or f"{ticker}.csv"] * n,
        s.SOURCE_ROW: list(range(2, n + 2)),
    }
    for column, values in overrides.items():
        data[column] = values
    schema = {s.DATE: pl.Date, s.SOURCE_ROW: pl.Int64}
    return pl.DataFrame(data, schema_overrides=schema)


def _one_error(frame: pl.DataFrame) -> Problem:
    result = validate(frame, min_rows=1)
    assert len(result.errors) == 1, result.errors
    return result.errors[0]


def test_validate_passes_clean_data_without_lineage_columns() -> None:
    result = validate(pl.concat([_rows("A", 3), _rows("B", 3)]), min_rows=2)
    assert result.problems == []
    assert result.clean.columns == [s.TICKER, s.DATE, *s.VALUES]
    assert result.clean.height == 6
    result.raise_for_errors()


def test_validate_sorts_the_clean_frame() -> None:
    frame = pl.concat([_rows("B", 2), _rows("A", 2)]).reverse()
    clean = validate(frame, min_rows=1).clean
    assert clean.select(s.TICKER, s.DATE).rows() == [
        ("A", D0),
        ("A", D0 + timedelta(days=1)),
        ("B", D0),
        ("B", D0 + timedelta(days=1)),
    ]


def test_validate_rejects_missing_dates() -> None:
    problem = _one_error(_rows("A", 3, date=[D0, None, D0 + timedelta(days=2)]))
    assert (problem.file, problem.row, problem.column) == ("A.csv", 3, s.DATE)


def test_validate_rejects_unparseable_date_text_naming_the_value() -> None:
    frame = _rows("A", 2).with_columns(pl.Series(s.DATE, ["2000-01-03", "soon"]))
    problem = _one_error(frame)
    assert (problem.file, problem.row, problem.column) == ("A.csv", 3, s.DATE)
    assert "'soon'" in problem.message


def test_validate_drops_exact_duplicate_rows_with_a_warning() -> None:
    frame = pl.concat(
        [
            _rows("A", 3),
            _rows("A", 3).slice(1, 1).with_columns(pl.lit(9, dtype=pl.Int64).alias(s.SOURCE_ROW)),
        ]
    )
    result = validate(frame, min_rows=1)
    assert result.errors == []
    (warning,) = result.warnings
    assert (warning.file, warning.row, warning.column) == ("A.csv", 9, s.DATE)
    assert "row 3" in warning.message
    assert result.clean.height == 3


def test_validate_rejects_conflicting_duplicates() -> None:
    duplicate = _rows("A", 1, close=[10.7]).with_columns(
        pl.lit(9, dtype=pl.Int64).alias(s.SOURCE_ROW)
    )
    problem = _one_error(pl.concat([_rows("A", 3), duplicate]))
    assert (problem.file, problem.row, problem.column) == ("A.csv", 9, s.DATE)
    assert "other values" in problem.message


@pytest.mark.parametrize("column", [s.OPEN, s.HIGH, s.LOW, s.CLOSE, s.ADJ_CLOSE])
@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_validate_rejects_non_positive_or_non_finite_prices(column: str, bad: float) -> None:
    # A bar that stays otherwise consistent, so only the price rule fires.
    values = {s.OPEN: 10.0, s.HIGH: 11.0, s.LOW: 9.0, s.CLOSE: 10.5, s.ADJ_CLOSE: 10.4}
    values[column] = bad
    frame = _rows("A", 3).with_columns(
        pl.when(pl.col(s.SOURCE_ROW) == 3).then(pl.lit(v)).otherwise(pl.col(c)).alias(c)
        for c, v in values.items()
    )
    errors = validate(frame, min_rows=1).errors
    assert any((p.file, p.row, p.column) == ("A.csv", 3, column) for p in errors), errors
    assert all(p.row == 3 for p in errors)


def test_validate_allows_missing_optional_values() -> None:
    frame = _rows("A", 3, open=[None, 10.0, 10.0], volume=[100.0, None, 1.0])
    assert validate(frame, min_rows=1).problems == []


def test_validate_drops_rows_with_every_value_missing_with_a_warning() -> None:
    nulls: list[object] = [10.0, None, 10.0]
    frame = _rows("A", 3, open=nulls, high=[11.0, None, 11.0], low=[9.0, None, 9.0])
    frame = frame.with_columns(
        pl.when(pl.col(s.SOURCE_ROW) == 3).then(None).otherwise(pl.col(c)).alias(c)
        for c in (s.CLOSE, s.ADJ_CLOSE, s.VOLUME)
    )
    result = validate(frame, min_rows=1)
    assert result.errors == []
    assert [(p.file, p.row) for p in result.warnings] == [("A.csv", 3)]
    assert result.clean.height == 2


def test_validate_rejects_a_missing_close_when_other_values_exist() -> None:
    problem = _one_error(_rows("A", 2, close=[10.5, None]))
    assert (problem.file, problem.row, problem.column) == ("A.csv", 3, s.CLOSE)


def test_validate_rejects_high_below_low() -> None:
    frame = _rows("A", 2, high=[11.0, 8.0], low=[9.0, 9.0], close=[10.5, 8.5], open=[10.0, 8.5])
    errors = validate(frame, min_rows=1).errors
    assert ("A.csv", 3, s.HIGH) in [(p.file, p.row, p.column) for p in errors]


def test_validate_rejects_close_outside_low_high() -> None:
    problem = _one_error(_rows("A", 2, close=[10.5, 11.5]))
    assert (problem.file, problem.row, problem.column) == ("A.csv", 3, s.CLOSE)
    assert "11.5" in problem.message


def test_validate_tolerates_rounding_at_the_edge_of_the_bar() -> None:
    assert validate(_rows("A", 2, close=[10.5, 11.0 + 1e-9]), min_rows=1).problems == []


def test_validate_rejects_negative_volume() -> None:
    problem = _one_error(_rows("A", 2, volume=[1.0, -5.0]))
    assert (problem.file, problem.row, problem.column) == ("A.csv", 3, s.VOLUME)


def test_validate_drops_tickers_too_short_for_the_feature_windows() -> None:
    result = validate(pl.concat([_rows("A", 5), _rows("B", 2)]), min_rows=4)
    assert result.errors == []
    (warning,) = result.warnings
    assert warning.file == "B.csv" and "2 rows" in warning.message
    assert result.dropped_tickers == ["B"]
    assert result.clean.get_column(s.TICKER).unique().to_list() == ["A"]


def test_validate_rejects_when_no_ticker_is_long_enough() -> None:
    result = validate(_rows("A", 2), min_rows=4)
    assert any("no ticker has" in p.message for p in result.errors)


def test_validate_rejects_a_ticker_in_two_files() -> None:
    frame = pl.concat([_rows("A", 2, file="stocks/A.csv"), _rows("A", 2, file="etfs/A.csv")])
    frame = frame.with_columns(
        pl.Series(
            s.DATE, [D0, D0 + timedelta(days=1), D0 + timedelta(days=2), D0 + timedelta(days=3)]
        )
    )
    problem = _one_error(frame)
    assert (problem.file, problem.column) == ("stocks/A.csv", s.TICKER)
    assert "etfs/A.csv" in problem.message


def test_raise_for_errors_raises_every_error_with_a_count_of_files() -> None:
    frame = pl.concat([_rows("A", 2, volume=[-1.0, 1.0]), _rows("B", 2, close=[10.5, 99.0])])
    with pytest.raises(DataError, match="validation failed: 2 problems in 2 files") as caught:
        validate(frame, min_rows=1).raise_for_errors()
    assert {p.file for p in caught.value.problems} == {"A.csv", "B.csv"}


def test_validate_names_frames_without_lineage_as_frame() -> None:
    frame = _rows("A", 2, volume=[-1.0, 1.0]).drop(s.SOURCE_FILE, s.SOURCE_ROW)
    problem = _one_error(frame)
    assert (problem.file, problem.row, problem.column) == ("<frame>", None, s.VOLUME)


def test_validate_accepts_close_only_frames() -> None:
    frame = _rows("A", 3).select(s.TICKER, s.DATE, s.CLOSE)
    result = validate(frame, min_rows=1)
    assert result.problems == []
    assert result.clean.columns == [s.TICKER, s.DATE, s.CLOSE, s.ADJ_CLOSE]


def test_validate_rejects_a_missing_ticker() -> None:
    frame = _rows("A", 2).with_columns(pl.Series(s.TICKER, ["A", None], pl.String))
    problem = _one_error(frame)
    assert (problem.file, problem.row, problem.column) == ("A.csv", 3, s.TICKER)


def test_select_tickers_keeps_only_the_configured_tickers() -> None:
    frame = pl.concat([_rows("A", 3), _rows("B", 3), _rows("C", 3)])
    kept = s.select_tickers(frame, ["C", "A"])
    assert kept.get_column(s.TICKER).unique().sort().to_list() == ["A", "C"]
    assert s.select_tickers(frame, None).height == frame.height


def test_select_tickers_names_every_configured_ticker_the_data_lacks() -> None:
    frame = pl.concat([_rows("A", 3), _rows("B", 3)])
    with pytest.raises(DataError, match=r"\['X', 'Y'\]") as caught:
        s.select_tickers(frame, ["A", "X", "Y"])
    assert caught.value.hint is not None and "A, B" in caught.value.hint


def test_min_rows_is_the_run_configs_else_the_feature_history_plus_the_horizon() -> None:
    from kubeline.features import plan_for
    from kubeline.runconfig import RunConfig

    columns = [s.CLOSE, s.HIGH, s.LOW, s.VOLUME]
    default = plan_for(RunConfig(), columns)
    assert default.min_rows == default.required_history + 1
    longer = plan_for(RunConfig.from_yaml_text("horizon: 5"), columns)
    assert longer.min_rows == longer.required_history + 5
    assert plan_for(RunConfig.from_yaml_text("data: {min_rows: 400}"), columns).min_rows == 400
