"""Turn a column of date text in any common unambiguous format into dates, vectorized.

Formats are tried on the distinct values only (a 25M-row column has a few thousand), and the
whole column is then parsed once with the format that fits; when none fits every value (formats
differ between files), each value is parsed by the format it matches. Numeric day/month/year text
(``01/03/2000``) is read month-first or day-first per file, decided by which field exceeds 12
somewhere in that file; a file where neither does is ambiguous and rejected with a hint, because
guessing would silently shift every date. Times and time zones are dropped: the date is the one
written in the text, not its UTC date.

Two things are refused rather than guessed: a two-digit year (``1/3/05`` would otherwise read
as the year 1, 3 or 5 and scramble the series; each file's first such row is named), and
intraday bars (several times on one date in one file): one "intraday bars are not supported"
error, not one duplicate per bar.
"""

from __future__ import annotations

import polars as pl

from kubeline.data import schema as s
from kubeline.errors import DataError, Problem

# Formats whose field order is fixed by their shape; at most one can fit a given value.
UNAMBIGUOUS_FORMATS = (
    "%Y-%m-%d",
    "%Y/%m/%d",
    "%Y.%m.%d",
    "%Y%m%d",
    "%B %d %Y",  # chrono's %B also accepts three-letter month names
    "%B %d, %Y",
    "%d %B %Y",
    "%d %B, %Y",
    "%d-%B-%Y",
)
_DMY = r"^(\d{1,2})([/.-])(\d{1,2})[/.-]\d{4}$"
_ISO_WITH_TIME = r"^\d{4}-\d{2}-\d{2}[T ]"
_ISO_HINT = "write dates as ISO 8601 (YYYY-MM-DD), which cannot be misread"
# 1/3/05, 05-01-03, 3 Jan 05, Jan 3, 05, 03-Jan-05: day, month and a year of two digits.
_TWO_DIGIT_YEAR = r"^(\d{1,2}[/.-]\d{1,2}[/.-]\d{2}|\d{1,2}[ -][A-Za-z]{3,}[ ,-]+\d{2}|[A-Za-z]{3,} \d{1,2},? \d{2})$"
_EARLIEST_YEAR = 1800  # no exchange kept daily bars before; an earlier year is a misread


def _normalized(text: pl.Expr) -> pl.Expr:
    """Trimmed text, with any time of day and zone cut off ISO timestamps."""
    text = text.str.strip_chars()
    return pl.when(text.str.contains(_ISO_WITH_TIME)).then(text.str.slice(0, 10)).otherwise(text)


def infer_format(values: pl.Series) -> str | None:
    """The one unambiguous format in which every non-null value parses, or None."""
    distinct = values.drop_nulls().unique()
    distinct = distinct.to_frame("v").select(_normalized(pl.col("v"))).to_series()
    if distinct.is_empty():
        return UNAMBIGUOUS_FORMATS[0]
    for fmt in UNAMBIGUOUS_FORMATS:
        if distinct.str.to_date(fmt, strict=False).null_count() == 0:
            return fmt
    return None


def parse_date_column(
    frame: pl.DataFrame, column: str = s.DATE
) -> tuple[pl.DataFrame, list[Problem]]:
    """``frame`` with ``column`` as dates, and one Problem per value that is not a date.

    Date columns pass through; datetimes keep their (local) date. Text is parsed with one format
    for the whole column when one fits, else per value, with day/month order decided per file.
    Problems locate values through the ``_file``/``_row`` columns when present. Values that do
    not parse become null. Raises DataError for files whose day/month order is ambiguous.
    """
    dtype = frame.schema[column]
    if dtype == pl.Date:
        return frame, []
    if isinstance(dtype, pl.Datetime):
        stamp = pl.col(column)
        intraday = _intraday(frame, stamp.dt.date(), stamp.dt.time().cast(pl.String), column)
        return frame.with_columns(stamp.dt.date()), intraday
    if dtype != pl.String:  # e.g. 20000103 read as a number
        frame = frame.with_columns(pl.col(column).cast(pl.String))
    raw = pl.col(column).str.strip_chars()
    timed = raw.str.contains(_ISO_WITH_TIME)
    intraday = _intraday(
        frame.filter(timed), raw.str.slice(0, 10), raw.str.slice(10).str.strip_chars(), column
    )
    if intraday:
        return frame.with_columns(pl.lit(None, dtype=pl.Date).alias(column)), intraday
    two_digit = raw.str.contains(_TWO_DIGIT_YEAR)
    short_year = _first_per_file(
        frame.filter(two_digit),
        column,
        "has a two-digit year, which cannot be read safely (05 is 1905 or 2005, and other "
        "formats would read the first field as the year); write four-digit years",
    )
    text = _normalized(pl.col(column))
    fmt = infer_format(frame.filter(~two_digit).get_column(column))
    parsed = _parse_mixed(frame, column) if fmt is None else text.str.to_date(fmt, strict=False)
    parsed = pl.when(two_digit).then(None).otherwise(parsed)
    out = frame.with_columns(parsed.alias(column))
    failed = frame.filter(
        out.get_column(column).is_null() & frame.get_column(column).is_not_null() & ~two_digit
    )
    problems = [
        Problem(
            file=str(row.get(s.SOURCE_FILE, "<frame>")),
            row=row.get(s.SOURCE_ROW),
            column=column,
            message=f"{row[column]!r} is not a date in any known format",
        )
        for row in failed.iter_rows(named=True)
    ]
    early = out.get_column(column).dt.year() < _EARLIEST_YEAR
    problems += _first_per_file(
        frame.filter(early.fill_null(False)),
        column,
        f"reads as a year before {_EARLIEST_YEAR}, which is a misread; write YYYY-MM-DD",
    )
    if problems or short_year:
        out = out.with_columns(
            pl.when(early.fill_null(False)).then(None).otherwise(pl.col(column)).alias(column)
        )
    return out, short_year + problems


def _file_key(frame: pl.DataFrame) -> pl.Expr:
    if s.SOURCE_FILE in frame.columns:
        return pl.col(s.SOURCE_FILE)
    return pl.lit("<frame>").alias(s.SOURCE_FILE)


def _first_per_file(hits: pl.DataFrame, column: str, message: str) -> list[Problem]:
    """One Problem per file for its first row in ``hits``, saying how many more it has."""
    if hits.is_empty():
        return []
    row = pl.col(s.SOURCE_ROW) if s.SOURCE_ROW in hits.columns else pl.lit(None, pl.Int64)
    per_file = (
        hits.select(_file_key(hits), row.alias("row"), pl.col(column).alias("value"))
        .group_by(s.SOURCE_FILE, maintain_order=True)
        .agg(pl.col("row").first(), pl.col("value").first(), pl.len().alias("n"))
        .sort(s.SOURCE_FILE)
    )
    problems = []
    for file, line, value, n in per_file.iter_rows():
        more = f" ({n - 1} more rows like it in this file)" if n > 1 else ""
        problems.append(Problem(str(file), line, column, f"{value!r} {message}{more}"))
    return problems


def _intraday(frame: pl.DataFrame, day: pl.Expr, time: pl.Expr, column: str) -> list[Problem]:
    """One error when some file has several times on one date: bars shorter than a day."""
    if frame.is_empty():
        return []
    row = pl.col(s.SOURCE_ROW) if s.SOURCE_ROW in frame.columns else pl.lit(None, pl.Int64)
    times = (
        frame.select(_file_key(frame), day.alias("day"), time.alias("time"), row.alias("row"))
        .group_by(s.SOURCE_FILE, "day")
        .agg(pl.col("time").n_unique().alias("n"), pl.col("time").unique().sort().head(2), "row")
        .filter(pl.col("n") > 1)
        .sort(s.SOURCE_FILE, "day")
    )
    if times.is_empty():
        return []
    file, day_value, _, two, rows = times.row(0)
    files = times.get_column(s.SOURCE_FILE).n_unique()
    others = f" and {files - 1} other files" if files > 1 else ""
    return [
        Problem(
            str(file),
            min((r for r in rows if r is not None), default=None),
            column,
            f"intraday bars are not supported: {day_value} has bars at {two[0]} and {two[1]} "
            f"({times.height} dates with several times here{others}); "
            "aggregate to one bar per day first",
        )
    ]


def _parse_mixed(frame: pl.DataFrame, column: str) -> pl.Expr:
    """Per-value parsing when no single format fits: formats differ between files or rows."""
    text = _normalized(pl.col(column))
    unambiguous = pl.coalesce([text.str.to_date(f, strict=False) for f in UNAMBIGUOUS_FORMATS])
    numeric = frame.select(
        pl.col(s.SOURCE_FILE)
        if s.SOURCE_FILE in frame.columns
        else pl.lit("<frame>").alias(s.SOURCE_FILE),
        text.str.extract_groups(_DMY).alias("f"),
    ).unnest("f")
    numeric = numeric.rename({"1": "a", "2": "sep", "3": "b"}).drop_nulls("sep")
    if numeric.is_empty():
        return unambiguous
    order = numeric.group_by(s.SOURCE_FILE).agg(
        day_first=(pl.col("a").cast(pl.Int32) > 12).any(),
        month_first=(pl.col("b").cast(pl.Int32) > 12).any(),
    )
    # A file with fields above 12 on both sides is inconsistent, not ambiguous: it is read
    # month-first and the values that do not fit are reported one by one.
    undecided = order.filter(~pl.col("day_first") & ~pl.col("month_first"))
    if not undecided.is_empty():
        files = undecided.get_column(s.SOURCE_FILE).sort().to_list()
        raise DataError(
            f"dates in column {column!r} of {', '.join(files[:5])}"
            f"{' and more' if len(files) > 5 else ''} could be read month-first or day-first",
            [Problem(f, None, column, "day/month order is ambiguous") for f in files],
            hint=_ISO_HINT,
        )
    day_first_files = order.filter(pl.col("day_first") & ~pl.col("month_first")).get_column(
        s.SOURCE_FILE
    )
    in_day_first = (
        pl.col(s.SOURCE_FILE).is_in(day_first_files.implode())
        if s.SOURCE_FILE in frame.columns
        else pl.lit(len(day_first_files) > 0)
    )
    normalized = text.str.replace_all(r"[.-]", "/")
    numeric_date = (
        pl.when(in_day_first)
        .then(normalized.str.to_date("%d/%m/%Y", strict=False))
        .otherwise(normalized.str.to_date("%m/%d/%Y", strict=False))
    )
    return pl.coalesce(unambiguous, numeric_date)
