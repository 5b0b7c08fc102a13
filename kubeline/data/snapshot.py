"""Identify a clean data set by its content, and describe it for artifact metadata.

The hash covers the canonical columns only (lineage, column order, row order and integer vs
float volume do not matter) and is built from fixed binary encodings, not from any library's
text formatting, so it is the same across processes, machines and polars/numpy versions:

* per ticker: sha256 over the ticker's name, the present value-column names, then per column
  the little-endian int32 day numbers (dates) or IEEE-754 float64 bits (values, -0.0 as 0.0,
  every NaN as one pattern), with a validity byte per row (nulls encode as 0 bits);
* overall: sha256 over the per-ticker digests in ticker order.

Per-ticker digests let ``prepare`` hash batch by batch and combine at the end.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import polars as pl

from kubeline.data import schema as s

HASH_VERSION = b"kubeline-content-v1"


def ticker_digests(frame: pl.DataFrame) -> dict[str, bytes]:
    """One sha256 digest per ticker of its canonical content."""
    values = [c for c in s.VALUES if c in frame.columns]
    frame = frame.select(
        pl.col(s.TICKER).cast(pl.String),
        pl.col(s.DATE).cast(pl.Date),
        *[pl.col(c).cast(pl.Float64) for c in values],
    ).sort(s.TICKER, s.DATE)
    header = ",".join(values).encode()
    runs = frame.get_column(s.TICKER).rle()
    lengths = runs.struct.field("len").to_numpy().astype(np.int64)
    names = runs.struct.field("value").to_list()
    ends = np.cumsum(lengths)
    starts = ends - lengths
    columns = [_encoded_date(frame.get_column(s.DATE))]
    columns += [_encoded_float(frame.get_column(c)) for c in values]
    digests: dict[str, bytes] = {}
    for name, start, end in zip(names, starts.tolist(), ends.tolist(), strict=True):
        digest = hashlib.sha256(HASH_VERSION)
        digest.update(name.encode() + b"\x00" + header + b"\x00")
        for data, valid in columns:
            digest.update(valid[start:end].tobytes())
            digest.update(data[start:end].tobytes())
        digests[name] = digest.digest()
    return digests


def combine(digests: dict[str, bytes]) -> str:
    """The content hash of a data set from its per-ticker digests: ``sha256:<hex>``."""
    total = hashlib.sha256(HASH_VERSION)
    for name in sorted(digests):
        total.update(digests[name])
    return f"sha256:{total.hexdigest()}"


def content_hash(frame: pl.DataFrame) -> str:
    """``sha256:<hex>`` of the canonical content: equal data, equal hash, in any process."""
    return combine(ticker_digests(frame))


def _encoded_date(column: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    valid = column.is_not_null().to_numpy().astype(np.uint8)
    days = column.cast(pl.Int32).fill_null(0).to_numpy().astype("<i4")
    return days, valid


def _encoded_float(column: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    valid = column.is_not_null().to_numpy().astype(np.uint8)
    data = column.fill_null(0.0).to_numpy().astype("<f8", copy=True)
    data[np.isnan(data)] = np.nan  # one NaN bit pattern
    data[data == 0.0] = 0.0  # -0.0 and 0.0 are the same value
    return data, valid


def infer_frequency(frame: pl.DataFrame) -> str:
    """``daily``, ``weekly``, ``monthly``, ``quarterly``, ``yearly`` or ``every N days``."""
    median = (
        frame.select(s.TICKER, s.DATE)
        .sort(s.TICKER, s.DATE)
        .select(pl.col(s.DATE).diff().dt.total_days().over(s.TICKER).alias("gap"))
        .filter(pl.col("gap") > 0)
        .get_column("gap")
        .median()
    )
    if median is None:
        return "unknown"
    return frequency_of(float(median))  # type: ignore[arg-type]  # a median of day counts


# Days between bars that each frequency allows (weekends and holidays make daily gaps 1-4).
FREQUENCIES = (
    ("daily", 0, 4),
    ("weekly", 5, 9),
    ("monthly", 26, 35),
    ("quarterly", 85, 95),
    ("yearly", 360, 370),
)


def frequency_of(gaps: float) -> str:
    """The name of a bar frequency from the median days between bars."""
    for name, low, high in FREQUENCIES:
        if low <= gaps <= high:
            return name
    return f"every {gaps:g} days"


def summary(frame: pl.DataFrame) -> dict[str, Any]:
    """Rows, tickers, date range, columns and bar frequency: metadata for a data artifact."""
    if frame.is_empty():
        return {"rows": 0, "tickers": 0, "first_date": None, "last_date": None, "columns": []}
    dates = frame.get_column(s.DATE)
    return {
        "rows": frame.height,
        "tickers": frame.get_column(s.TICKER).n_unique(),
        "first_date": str(dates.min()),
        "last_date": str(dates.max()),
        "columns": [c for c in (s.TICKER, s.DATE, *s.VALUES) if c in frame.columns],
        "frequency": infer_frequency(frame),
    }
