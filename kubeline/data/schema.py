"""The canonical long frame every layout is read into, and the names of its columns.

One row per (ticker, date). ``ticker``, ``date`` and ``close`` are always present; the other
price/volume columns are present only when the source has them (``adj_close`` falls back to
``close``). ``_file`` and ``_row`` say where each row came from (row = 1-based line number in
the file, header = line 1) so validation can point at it; they are dropped from clean snapshots.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from kubeline.errors import DataError

if TYPE_CHECKING:
    import polars as pl

TICKER = "ticker"
DATE = "date"
OPEN = "open"
HIGH = "high"
LOW = "low"
CLOSE = "close"
ADJ_CLOSE = "adj_close"
VOLUME = "volume"
SOURCE_FILE = "_file"
SOURCE_ROW = "_row"

REQUIRED = (TICKER, DATE, CLOSE)
PRICES = (OPEN, HIGH, LOW, CLOSE, ADJ_CLOSE)
OPTIONAL = (OPEN, HIGH, LOW, ADJ_CLOSE, VOLUME)
VALUES = (OPEN, HIGH, LOW, CLOSE, ADJ_CLOSE, VOLUME)
LINEAGE = (SOURCE_FILE, SOURCE_ROW)
# Set by ingest on rows of a file that has a second date-like column (a "timestamp" next to its
# "date"): that column's name, for validation to warn about; never in a clean snapshot.
ALSO_DATED = "_also_dated"

# Columns of a features frame that are not model inputs: keys, naive-baseline helpers, target.
TARGET = "target"
NAIVE_LAST = "_naive_last"  # the target quantity's latest known value at t (persistence)
NAIVE_MA = "_naive_ma"  # its moving average at t
DIRECTION_REF = "_direction_ref"  # what "up" is measured against: 0 for returns, value at t else
# A model's output beside its inputs: in batch scores, the inference log and the monitor's frames.
PREDICTION = "prediction"


# Frame helpers more than one module needs. polars is imported inside them so that importing
# the names above (the run config does, through the target catalogue) stays free.


def is_sorted(frame: pl.DataFrame) -> bool:
    """Whether rows are in (ticker, date) order, checked in one vectorized pass."""
    import polars as pl

    if frame.height < 2:
        return True
    ticker, when = pl.col(TICKER), pl.col(DATE)
    ok = (ticker.shift(-1) > ticker) | ((ticker.shift(-1) == ticker) & (when.shift(-1) >= when))
    return bool(frame.select(ok.slice(0, frame.height - 1).all()).item())


def keep_tickers(frame: pl.DataFrame, tickers: Sequence[str] | None) -> pl.DataFrame:
    """The rows of ``tickers`` (all rows when None): what a per-stock run config selects."""
    import polars as pl

    if not tickers:
        return frame
    return frame.filter(pl.col(TICKER).is_in(pl.Series(list(tickers), dtype=pl.String).implode()))


def absent_tickers_error(
    wanted: Sequence[str] | None, present: Iterable[str], examples: Iterable[str] = ()
) -> DataError | None:
    """The error for tickers a run config asks for that the data does not have, if any.

    ``examples`` are tickers to suggest instead (default: a few of ``present``).
    """
    have = set(present)
    missing = [t for t in wanted or () if t not in have]
    if not missing:
        return None
    sample = sorted(set(examples) or have)[:10]
    return DataError(
        f"the run config asks for tickers {missing} that the data does not have",
        hint="set data.tickers to tickers in the data"
        + (f" (e.g. {', '.join(sample)})" if sample else ""),
    )


def select_tickers(frame: pl.DataFrame, tickers: Sequence[str] | None) -> pl.DataFrame:
    """Keep the configured tickers; DataError naming every one the frame lacks."""
    if not tickers:
        return frame
    error = absent_tickers_error(tickers, frame.get_column(TICKER).unique().to_list())
    if error is not None:
        raise error
    return keep_tickers(frame, tickers)
