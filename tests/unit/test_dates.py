"""Date text in any common unambiguous format becomes a date; anything else is reported."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl
import pytest

from kubeline.data.dates import parse_date_column
from kubeline.errors import DataError


def _frame(values: list[str], files: list[str] | None = None) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "date": values,
            "_file": files or ["a.csv"] * len(values),
            "_row": list(range(2, len(values) + 2)),
        }
    )


@pytest.mark.parametrize(
    "text",
    [
        "2000-01-03",
        "2000/01/03",
        "20000103",
        "Jan 3 2000",
        "Jan 3, 2000",
        "3 January 2000",
        "3 Jan 2000",
        "January 3, 2000",
        "2000-01-03T00:00:00",
        "2000-01-03 16:00:00-05:00",
        "2000-01-03T23:30:00+09:00",
        " 2000-01-03 ",
    ],
)
def test_parse_reads_each_common_format(text: str) -> None:
    out, problems = parse_date_column(_frame([text]))
    assert problems == []
    assert out.get_column("date").to_list() == [date(2000, 1, 3)]


def test_parse_reads_slashes_month_first_when_a_second_field_exceeds_12() -> None:
    out, _ = parse_date_column(_frame(["01/03/2000", "01/13/2000"]))
    assert out.get_column("date").to_list() == [date(2000, 1, 3), date(2000, 1, 13)]


def test_parse_reads_slashes_day_first_when_a_first_field_exceeds_12() -> None:
    out, _ = parse_date_column(_frame(["03/01/2000", "13/01/2000"]))
    assert out.get_column("date").to_list() == [date(2000, 1, 3), date(2000, 1, 13)]


def test_parse_decides_day_month_order_per_file() -> None:
    frame = _frame(
        ["03/01/2000", "13/01/2000", "01/03/2000", "01/13/2000"], ["d.csv"] * 2 + ["u.csv"] * 2
    )
    out, problems = parse_date_column(frame)
    assert problems == []
    assert out.get_column("date").to_list() == [date(2000, 1, 3), date(2000, 1, 13)] * 2


def test_parse_rejects_ambiguous_day_month_order_naming_file_and_column() -> None:
    with pytest.raises(DataError) as caught:
        parse_date_column(_frame(["01/03/2000", "02/03/2000"], ["x/AAA.csv"] * 2))
    assert "x/AAA.csv" in str(caught.value) and "'date'" in str(caught.value)
    assert "ISO" in (caught.value.hint or "")


def test_parse_reports_unparseable_values_with_file_row_and_value() -> None:
    out, problems = parse_date_column(_frame(["2000-01-03", "not a date", "2000-01-05"]))
    assert out.get_column("date").null_count() == 1
    (problem,) = problems
    assert (problem.file, problem.row, problem.column) == ("a.csv", 3, "date")
    assert "'not a date'" in problem.message


def test_parse_accepts_different_formats_in_different_files() -> None:
    frame = _frame(["2000-01-03", "Jan 4 2000"], ["a.csv", "b.csv"])
    out, problems = parse_date_column(frame)
    assert problems == []
    assert out.get_column("date").to_list() == [date(2000, 1, 3), date(2000, 1, 4)]


def test_parse_keeps_missing_values_null_without_a_problem() -> None:
    out, problems = parse_date_column(_frame(["2000-01-03", None]))  # type: ignore[list-item]
    assert problems == [] and out.get_column("date").null_count() == 1


def test_parse_passes_date_columns_through_and_truncates_datetimes() -> None:
    dates = pl.DataFrame({"date": [date(2000, 1, 3)]})
    assert parse_date_column(dates)[0].equals(dates)
    stamps = pl.DataFrame({"date": [datetime(2000, 1, 3, 15, 30)]})
    assert parse_date_column(stamps)[0].get_column("date").to_list() == [date(2000, 1, 3)]


def test_parse_reads_yyyymmdd_numbers() -> None:
    out, _ = parse_date_column(pl.DataFrame({"date": [20000103, 20000104]}))
    assert out.get_column("date").to_list() == [date(2000, 1, 3), date(2000, 1, 4)]


@pytest.mark.parametrize("text", ["1/3/05", "05-01-03", "3 Jan 05", "Jan 3, 05", "03-Jan-05"])
def test_a_two_digit_year_is_rejected_not_read_as_year_one_to_twelve(text: str) -> None:
    frame = pl.DataFrame({"date": ["2005-01-04", text], "_file": ["a.csv"] * 2, "_row": [2, 3]})
    out, problems = parse_date_column(frame)
    assert [(p.file, p.row, p.column) for p in problems] == [("a.csv", 3, "date")]
    assert "two-digit year" in problems[0].message
    assert out["date"].to_list() == [date(2005, 1, 4), None]


def test_intraday_timestamps_are_one_problem_in_text_and_datetime_columns() -> None:
    text = ["2020-01-02 09:30", "2020-01-02 10:30", "2020-01-03 09:30", "2020-01-03 10:30"]
    for column in (pl.Series(text), pl.Series(text).str.to_datetime()):
        frame = pl.DataFrame({"date": column, "_file": ["m.csv"] * 4, "_row": [2, 3, 4, 5]})
        _, problems = parse_date_column(frame)
        assert len(problems) == 1 and problems[0].row == 2
        assert "intraday bars are not supported" in problems[0].message
        assert "(2 dates with several times here)" in problems[0].message


def test_daily_timestamps_with_a_changing_offset_are_daily_bars() -> None:
    text = ["2020-03-06 00:00:00-05:00", "2020-03-09 00:00:00-04:00"]
    out, problems = parse_date_column(pl.DataFrame({"date": text}))
    assert problems == [] and out["date"].to_list() == [date(2020, 3, 6), date(2020, 3, 9)]
