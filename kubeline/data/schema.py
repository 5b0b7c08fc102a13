"""The canonical long frame every layout is read into, and the names of its columns.

One row per (ticker, date). ``ticker``, ``date`` and ``close`` are always present; the other
price/volume columns are present only when the source has them (``adj_close`` falls back to
``close``). ``_file`` and ``_row`` say where each row came from (row = 1-based line number in
the file, header = line 1) so validation can point at it; they are dropped from clean snapshots.
"""

from __future__ import annotations

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
