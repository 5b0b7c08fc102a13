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
tickers differing only in case or      repair    one ticker, in upper case: "aapl" and
surrounding spaces                               "AAPL " are one series, not two fragments
a second date-like column              warn      dates come from the first alias; the other
                                                 (a "timestamp" next to "date") is ignored
a gap of more than a year in a ticker  warn      features would span it as one bar
bars of several frequencies            warn      windows and the horizon count bars, not days
                                                 (daily tickers beside weekly ones, or a
                                                 ticker that switches)
=====================================  ========  ===========================================

Two-digit years and intraday bars are rejected when dates are parsed (``kubeline.data.dates``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import polars as pl

from kubeline.data import schema as s
from kubeline.data.dates import parse_date_column
from kubeline.errors import DataError, Problem

MAX_PROBLEMS_PER_RULE = 1000  # beyond this one summary Problem stands for the rest
MAX_GAP_DAYS = 366  # a longer stretch without rows inside a ticker is worth a warning
MIN_MIXED_GAPS = 10  # daily and weekly steps both this common: a ticker switching frequency
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
    frame, ticker_problems = _one_spelling_per_ticker(frame)
    problems += ticker_problems + _also_dated(frame)
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
    if not frame.is_empty():
        gaps = _Gaps.of(frame)
        problems += _long_gaps(frame, gaps) + _mixed_frequencies(frame, gaps)
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
    clean = frame.select(s.TICKER, s.DATE, *values)  # without lineage or ALSO_DATED
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
    )
    hidden = repeated.height - MAX_PROBLEMS_PER_RULE
    repeated = repeated.head(MAX_PROBLEMS_PER_RULE)
    problems = []
    if hidden > 0:
        message = f"... and {hidden} more repeated (ticker, date) rows"
        problems.append(Problem(_UNKNOWN_FILE, None, s.DATE, message))
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


def _one_spelling_per_ticker(frame: pl.DataFrame) -> tuple[pl.DataFrame, list[Problem]]:
    """Tickers are matched ignoring surrounding spaces and, when spellings collide, case.

    ``" AAPL"`` is ``AAPL``; ``aapl`` and ``AAPL`` in one data set are one stock, written in upper
    case: read as two, each series would be cut into fragments the features are computed on.
    A ticker with a single spelling keeps its case. Every rewrite is a warning.
    """
    stripped = pl.col(s.TICKER).str.strip_chars()
    spellings = (
        frame.group_by(s.TICKER)
        .agg(pl.col(s.SOURCE_FILE).first())
        .drop_nulls(s.TICKER)
        .with_columns(stripped.alias("stripped"), stripped.str.to_uppercase().alias("key"))
        .with_columns(
            pl.when(pl.col("stripped").n_unique().over("key") > 1)
            .then(pl.col("key"))
            .otherwise(pl.col("stripped"))
            .alias("final")
        )
        .filter((pl.col(s.TICKER) != pl.col("final")).any().over("final"))
        .sort("final", s.TICKER)
    )
    if spellings.is_empty():
        return frame, []
    rename = dict(zip(spellings[s.TICKER].to_list(), spellings["final"].to_list(), strict=True))
    frame = frame.with_columns(pl.col(s.TICKER).replace(rename))
    problems = []
    for ticker, names, files in (
        spellings.group_by("final", maintain_order=True).agg(s.TICKER, s.SOURCE_FILE).iter_rows()
    ):
        shown = ", ".join(repr(n) for n in names)
        message = (
            f"tickers {shown} differ only in case or spaces; read as one ticker, {ticker}"
            if len(names) > 1
            else f"ticker {shown} has surrounding spaces; read as {ticker}"
        )
        problems.append(Problem(files[0], None, s.TICKER, message, "warning"))
    return frame, problems


def _also_dated(frame: pl.DataFrame) -> list[Problem]:
    """A warning per file that has a second date-like column next to the one dates come from."""
    if s.ALSO_DATED not in frame.columns:
        return []
    files = (
        frame.filter(pl.col(s.ALSO_DATED).is_not_null())
        .group_by(s.SOURCE_FILE)
        .agg(pl.col(s.ALSO_DATED).first())
        .sort(s.SOURCE_FILE)
    )
    return [
        Problem(
            file,
            1,
            others,
            f"has another date column ({others}) besides the one dates are read from; "
            "it is ignored: keep one date column",
            "warning",
        )
        for file, others in files.iter_rows()
    ]


@dataclass(frozen=True)
class _Gaps:
    """Days between each row and the previous row of its ticker, over a frame sorted by ticker.

    numpy over the sorted columns, not polars window functions: these checks run on every
    batch of the features path, and per-ticker medians there cost more than the rules are worth.
    """

    days: np.ndarray  # -1 at each ticker's first row
    tickers: list[str | None]
    starts: np.ndarray  # first row of each ticker's run
    dates: np.ndarray  # day numbers

    @classmethod
    def of(cls, frame: pl.DataFrame) -> _Gaps:
        runs = frame.get_column(s.TICKER).rle()
        lengths = runs.struct.field("len").to_numpy().astype(np.int64)
        starts = np.cumsum(lengths) - lengths
        dates = frame.get_column(s.DATE).cast(pl.Int32).fill_null(0).to_numpy()
        days = np.diff(dates, prepend=dates[:1]).astype(np.int64)
        days[starts] = -1
        return cls(days, runs.struct.field("value").to_list(), starts, dates)

    def count(self, low: int, high: int) -> np.ndarray:
        """Per ticker, how many of its gaps are ``low`` to ``high`` days."""
        return np.add.reduceat(
            ((self.days >= low) & (self.days <= high)).astype(np.int64), self.starts
        )


def _long_gaps(frame: pl.DataFrame, gaps: _Gaps) -> list[Problem]:
    """A warning for each stretch of more than a year with no rows inside one ticker."""
    rows = np.flatnonzero(gaps.days > MAX_GAP_DAYS)
    shown = rows[:MAX_PROBLEMS_PER_RULE]
    hits = frame.select(s.TICKER, s.SOURCE_FILE, s.SOURCE_ROW, s.DATE)[shown.tolist()]
    problems = [
        Problem(
            file,
            row,
            s.DATE,
            f"{ticker} has no rows from {when - timedelta(days=int(gap))} to {when} "
            f"({gap} days); the features treat the gap as one bar: split the ticker or drop "
            "the older rows",
            "warning",
        )
        for (ticker, file, row, when), gap in zip(
            hits.iter_rows(), gaps.days[shown].tolist(), strict=True
        )
    ]
    if len(rows) > len(shown):
        message = f"... and {len(rows) - len(shown)} more gaps of over a year"
        problems.append(Problem(_UNKNOWN_FILE, None, s.DATE, message, "warning"))
    return problems


def _mixed_frequencies(frame: pl.DataFrame, gaps: _Gaps) -> list[Problem]:
    """Warnings when tickers have bars of different frequencies, or one ticker switches."""
    from kubeline.data.snapshot import FREQUENCIES

    if frame.is_empty():
        return []
    counts = np.stack([gaps.count(low, high) for _, low, high in FREQUENCIES])
    total = np.add.reduceat((gaps.days >= 0).astype(np.int64), gaps.starts)
    daily, weekly = counts[0], counts[1]
    files = frame.get_column(s.SOURCE_FILE).gather(gaps.starts.tolist()).to_list()
    problems = []
    # A daily series misses a week now and then; a switch shows as many steps of each kind.
    low = np.minimum(daily, weekly)
    for i in np.flatnonzero((low >= MIN_MIXED_GAPS) & (low >= 0.1 * total)).tolist():
        problems.append(
            Problem(
                files[i],
                None,
                s.DATE,
                f"{gaps.tickers[i]} mixes daily and weekly bars ({daily[i]} daily and "
                f"{weekly[i]} weekly steps); the features count bars, not days: use one frequency",
                "warning",
            )
        )
    # Each ticker's frequency is the one most of its steps have (tickers of one row: none).
    kinds: dict[str, list[str]] = {}
    for i in np.flatnonzero(counts.max(axis=0) > 0).tolist():
        name = FREQUENCIES[int(counts[:, i].argmax())][0]
        kinds.setdefault(name, []).append(str(gaps.tickers[i]))
    if len(kinds) > 1:
        parts = [
            f"{len(names)} {kind} ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"
            for kind, names in sorted(kinds.items(), key=lambda kv: -len(kv[1]))
        ]
        problems.append(
            Problem(
                _UNKNOWN_FILE,
                None,
                s.DATE,
                f"tickers have bars of different frequencies: {'; '.join(parts)}; the features "
                "and the horizon count bars, not days: use one frequency",
                "warning",
            )
        )
    return problems
