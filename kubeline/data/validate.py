"""Check a canonical frame rule by rule; repair what is safe, reject what is not.

Every rule is one vectorized polars pass; only failing rows become Problems, each naming the
file, row and column (from the ``_file``/``_row`` lineage ingest adds).

=====================================  ========  ===========================================
Rule                                   Action    Why
=====================================  ========  ===========================================
unparseable or missing date            reject    a row without a time cannot be placed
missing ticker (long layout)           reject    a row without a ticker cannot be placed
empty file                             reject    reported by ingest, which sees the files
text in a numeric column               reject    reported by ingest with the bad value
row with every value missing           repair    Yahoo writes such "null" rows for halts:
                                                 dropped, warning
missing close (other values present)   reject    the one required price is absent
exact duplicate (ticker, date) rows    repair    same facts twice: keep one, warning
conflicting duplicate (ticker, date)   reject    two different truths; no safe choice
price <= 0, NaN or infinite            reject    impossible price; optional nulls are fine
high < low                             reject    impossible bar
close outside [low, high]              reject    impossible bar (1e-6 relative tolerance
                                                 for rounding in exports)
negative or non-finite volume          reject    impossible count
ticker in two files                    reject    which file is right is unknowable
too few rows for the feature windows   repair    ticker dropped with a warning; reject when
                                                 no ticker is left
=====================================  ========  ===========================================
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from kubeline.data import schema as s
from kubeline.data.dates import parse_date_column
from kubeline.errors import DataError, Problem

MAX_PROBLEMS_PER_RULE = 1000  # beyond this one summary Problem stands for the rest
_TOLERANCE = 1e-6
_UNKNOWN_FILE = "<frame>"


@dataclass
class ValidationResult:
    """The repaired frame and every problem found; errors mean the input must be fixed."""

    clean: pl.DataFrame
    problems: list[Problem] = field(default_factory=list)
    dropped_tickers: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    def raise_for_errors(self) -> None:
        """Raise DataError listing every error, if there is any."""
        if self.errors:
            raise validation_error(self.errors)


def validation_error(errors: list[Problem]) -> DataError:
    """One DataError for many problems: "validation failed: N problems in M files"."""
    files = len({p.file for p in errors})
    return DataError(
        f"validation failed: {len(errors)} problems in {files} files",
        errors,
        hint="fix the rows listed (file, row, column) and run again",
    )


def validate(frame: pl.DataFrame, *, min_rows: int) -> ValidationResult:
    """Apply every rule in the module docstring; the frame needs ticker, date and close."""
    missing = [c for c in s.REQUIRED if c not in frame.columns]
    if missing:
        raise DataError(
            f"the frame has no {', '.join(missing)} column",
            [Problem(_UNKNOWN_FILE, None, c, "required column missing") for c in missing],
        )
    frame = _with_lineage(frame)
    problems: list[Problem] = []
    if frame.schema[s.DATE] != pl.Date:
        frame, date_problems = parse_date_column(frame, s.DATE)
        problems += date_problems
    values = [c for c in s.VALUES if c in frame.columns]
    frame = frame.with_columns(pl.col(c).cast(pl.Float64) for c in values)
    if s.ADJ_CLOSE not in frame.columns:
        frame = frame.with_columns(pl.col(s.CLOSE).alias(s.ADJ_CLOSE))
        values = [c for c in s.VALUES if c in frame.columns]
    frame = frame.with_columns(pl.col(s.TICKER).cast(pl.String))
    if not s.is_sorted(frame):
        # Sorted rows let duplicate and file checks compare neighbours instead of grouping.
        frame = frame.sort(s.TICKER, s.DATE, s.SOURCE_FILE, s.SOURCE_ROW, nulls_last=True)

    # Rows to drop with a warning: nothing recorded but the date.
    blank = pl.all_horizontal(pl.col(c).is_null() for c in values)
    problems += _rows(frame, blank, None, "no values on this row; dropped", "warning")
    frame = frame.filter(~blank)

    problems += _rows(
        frame, pl.col(s.DATE).is_null() & ~_parsed_already(problems), s.DATE, "date is missing"
    )
    problems += _rows(frame, pl.col(s.TICKER).is_null(), s.TICKER, "ticker is missing")
    problems += _rows(frame, pl.col(s.CLOSE).is_null(), s.CLOSE, "close is missing")
    duplicate_problems = _duplicates(frame, values)
    if duplicate_problems:
        problems += duplicate_problems
        frame = frame.filter(~_same_as_previous([s.TICKER, s.DATE, *values]))

    for column in (c for c in s.PRICES if c in frame.columns):
        bad = pl.col(column).is_not_null() & ~(pl.col(column).is_finite() & (pl.col(column) > 0))
        problems += _rows(
            frame, bad, column, "price must be a positive finite number", value=column
        )
    if s.HIGH in frame.columns and s.LOW in frame.columns:
        high, low = pl.col(s.HIGH), pl.col(s.LOW)
        problems += _rows(frame, high < low, s.HIGH, "high is below low", value=s.HIGH)
        close = pl.col(s.CLOSE)
        slack = _TOLERANCE * close.abs()
        outside = (close < low - slack) | (close > high + slack)
        problems += _rows(frame, outside, s.CLOSE, "close is outside [low, high]", value=s.CLOSE)
    if s.VOLUME in frame.columns:
        volume = pl.col(s.VOLUME)
        bad = volume.is_not_null() & ~(volume.is_finite() & (volume >= 0))
        problems += _rows(
            frame, bad, s.VOLUME, "volume must be a finite number >= 0", value=s.VOLUME
        )
    problems += _ticker_in_two_files(frame)

    frame = frame.filter(pl.col(s.DATE).is_not_null())
    counts = frame.group_by(s.TICKER).len()
    short = counts.filter(pl.col("len") < min_rows).sort(s.TICKER)
    dropped = short.get_column(s.TICKER).to_list()
    if dropped:
        first_file = frame.group_by(s.TICKER).agg(pl.col(s.SOURCE_FILE).first())
        where = dict(first_file.iter_rows())
        problems += [
            Problem(
                where.get(ticker, _UNKNOWN_FILE),
                None,
                None,
                f"ticker {ticker} has {n} rows, fewer than the {min_rows} the feature windows "
                "need; dropped",
                "warning",
            )
            for ticker, n in short.iter_rows()
        ]
        frame = frame.filter(~pl.col(s.TICKER).is_in(short.get_column(s.TICKER).implode()))
        if frame.is_empty():
            problems.append(
                Problem(
                    _UNKNOWN_FILE,
                    None,
                    None,
                    f"no ticker has the {min_rows} rows the feature windows need",
                )
            )
    clean = frame.select(s.TICKER, s.DATE, *values)
    return ValidationResult(clean, problems, dropped)


def _parsed_already(problems: list[Problem]) -> pl.Expr:
    """Rows whose date text was already reported as unparseable, so not reported twice."""
    rows = [(p.file, p.row) for p in problems if p.column == s.DATE and p.row is not None]
    if not rows:
        return pl.lit(False)
    keys = [f"{f}\x00{r}" for f, r in rows]
    return pl.concat_str(
        pl.col(s.SOURCE_FILE), pl.lit("\x00"), pl.col(s.SOURCE_ROW).cast(pl.String)
    ).is_in(pl.Series(keys).implode())


def _with_lineage(frame: pl.DataFrame) -> pl.DataFrame:
    """Lineage columns for frames not made by ingest: one unknown file, rows unnumbered."""
    if s.SOURCE_FILE not in frame.columns:
        frame = frame.with_columns(pl.lit(_UNKNOWN_FILE).alias(s.SOURCE_FILE))
    if s.SOURCE_ROW not in frame.columns:
        frame = frame.with_columns(pl.lit(None, dtype=pl.Int64).alias(s.SOURCE_ROW))
    return frame


def _rows(
    frame: pl.DataFrame,
    condition: pl.Expr,
    column: str | None,
    message: str,
    severity: str = "error",
    *,
    value: str | None = None,
) -> list[Problem]:
    """One Problem per row matching ``condition``, capped at MAX_PROBLEMS_PER_RULE."""
    hits = frame.filter(condition)
    if hits.is_empty():
        return []
    shown = hits.head(MAX_PROBLEMS_PER_RULE)
    extra = [value] if value else []
    out = []
    for row in shown.select(s.SOURCE_FILE, s.SOURCE_ROW, s.TICKER, s.DATE, *extra).iter_rows():
        detail = f" ({value}={row[4]!r})" if value else ""
        out.append(Problem(row[0], row[1], column, f"{message}{detail}", severity))
    if hits.height > len(shown):
        out.append(
            Problem(
                _UNKNOWN_FILE,
                None,
                column,
                f"... and {hits.height - len(shown)} more rows: {message}",
                severity,
            )
        )
    return out


def _same_as_previous(columns: list[str]) -> pl.Expr:
    """Row equals the one before it in every column (nulls equal nulls)."""
    return pl.all_horizontal(pl.col(c).eq_missing(pl.col(c).shift(1)) for c in columns)


def _duplicates(frame: pl.DataFrame, values: list[str]) -> list[Problem]:
    """Exact repeats of a (ticker, date) are warnings; differing ones are errors."""
    repeat = _same_as_previous([s.TICKER, s.DATE]) & pl.col(s.DATE).is_not_null()
    flagged = frame.select(repeat.alias("r")).to_series()
    if not flagged.any():
        return []
    # Duplicates are rare: the per-group work below touches only the affected keys.
    keys = frame.filter(flagged).select(s.TICKER, s.DATE).unique()
    repeated = (
        frame.join(keys, on=[s.TICKER, s.DATE], how="semi", maintain_order="left")
        .with_columns(
            exact=_same_as_previous([s.TICKER, s.DATE, *values]),
            first_file=pl.col(s.SOURCE_FILE).first().over(s.TICKER, s.DATE),
            first_row=pl.col(s.SOURCE_ROW).first().over(s.TICKER, s.DATE),
            rank=pl.int_range(pl.len()).over(s.TICKER, s.DATE),
        )
        .filter(pl.col("rank") > 0)
        .head(MAX_PROBLEMS_PER_RULE)
    )
    problems = []
    for row in repeated.iter_rows(named=True):
        first = f"{row['first_file']} row {row['first_row']}"
        where = (row[s.SOURCE_FILE], row[s.SOURCE_ROW], s.DATE)
        if row["exact"]:
            message = f"{row[s.TICKER]} {row[s.DATE]} repeats {first} exactly; dropped"
            problems.append(Problem(*where, message, "warning"))
        else:
            message = f"{row[s.TICKER]} {row[s.DATE]} also appears with other values at {first}"
            problems.append(Problem(*where, message))
    return problems


def _ticker_in_two_files(frame: pl.DataFrame) -> list[Problem]:
    same_ticker = pl.col(s.TICKER) == pl.col(s.TICKER).shift(1)
    changed = same_ticker & (pl.col(s.SOURCE_FILE) != pl.col(s.SOURCE_FILE).shift(1))
    tickers = frame.filter(changed).get_column(s.TICKER).unique()
    if tickers.is_empty():
        return []
    files = (
        frame.filter(pl.col(s.TICKER).is_in(tickers.implode()))
        .group_by(s.TICKER)
        .agg(pl.col(s.SOURCE_FILE).unique().sort())
        .sort(s.TICKER)
    )
    return [
        Problem(
            paths[1],
            None,
            s.TICKER,
            f"ticker {ticker} is also in {', '.join(p for p in paths if p != paths[1])}; "
            "keep each ticker in one file",
        )
        for ticker, paths in files.iter_rows()
    ]
