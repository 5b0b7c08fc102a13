"""Ingest: raw files (any layout, local or s3://) -> the canonical long frame as Parquet."""

from __future__ import annotations

from typing import Any

from kubeline.steps.base import executor, write_parquet


@executor
def run(*, data: str, out: str, data_version: str = "") -> dict[str, Any]:
    """Read ``data`` and write the canonical frame (with source file and line) to ``out``."""
    from kubeline.data.ingest import ingest
    from kubeline.data.schema import SOURCE_FILE, TICKER

    frame = ingest(data)
    write_parquet(frame, out)
    return {
        "source": data,
        "data_version": data_version,
        "rows": frame.height,
        "tickers": frame[TICKER].n_unique(),
        "files": frame[SOURCE_FILE].n_unique(),
        "columns": [c for c in frame.columns if not c.startswith("_")],
    }
