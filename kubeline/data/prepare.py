"""Raw price files in, one features Parquet file out, in memory-bounded batches of whole files.

ingest -> validate -> features per batch; each batch is one row group of the output, written
with pyarrow's ParquetWriter to a temporary file that is renamed into place only when every
batch validated. Problems from all batches are collected and raised together as one DataError,
and nothing is left at ``out`` on failure. Tickers never span batches (a ticker found in a
second file is itself an error), so per-ticker features are exact batch by batch.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow.parquet as pq

from kubeline import features as feature_engine
from kubeline import storage
from kubeline.data import schema as s
from kubeline.data.ingest import read_files
from kubeline.data.layouts import detect_layout
from kubeline.data.snapshot import combine, ticker_digests
from kubeline.data.validate import validate, validation_error
from kubeline.errors import DataError, Problem

if TYPE_CHECKING:
    from kubeline.settings import Settings

DEFAULT_FILES_PER_BATCH = 1000  # ~3M daily rows: well under 1 GB at peak
MAX_ROW_GROUP = 1 << 20  # a one-file long layout still gets readable row groups


@dataclass
class PrepareSummary:
    """What ``prepare_features`` wrote and what it dropped or warned about."""

    out: str
    rows: int
    tickers: int
    batches: int
    features: list[str]
    skipped: dict[str, list[str]]
    dropped_tickers: list[str]
    warnings: list[Problem]
    seconds: float
    content_hash: str | None = None
    target: str = "next_return"
    horizon: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form for metadata and ``--json`` output."""
        out = asdict(self)
        out["warnings"] = [str(p) for p in self.warnings]
        return out


def prepare_features(
    location: str | Path,
    out: Path | str,
    *,
    features: list[str] | None = None,
    target: str = "next_return",
    horizon: int = 1,
    min_rows: int | None = None,
    files_per_batch: int = DEFAULT_FILES_PER_BATCH,
    on_progress: Callable[[int, int], None] | None = None,
    hash_content: bool = True,
    settings: Settings | None = None,
) -> PrepareSummary:
    """Compute features for every ticker at ``location`` into the Parquet file ``out``.

    ``min_rows`` defaults to the history the features need plus ``horizon`` (one trainable row
    per ticker). ``on_progress(files_done, files_total)`` is called after each batch.
    """
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kubeline-prepare-") as workdir:
        layout = detect_layout(storage.fetch(location, Path(workdir), settings))
        files = layout.files
        total = len(files)
        step = max(1, files_per_batch)
        errors: list[Problem] = []
        warnings: list[Problem] = []
        dropped: list[str] = []
        first_file: dict[str, str] = {}
        digests: dict[str, bytes] = {}
        plan: feature_engine.FeaturePlan | None = None
        rows = batches = 0
        writer: pq.ParquetWriter | None = None
        with storage.output_location(out, settings) as tmp:
            try:
                for first in range(0, total, step):
                    batch_files = files[first : first + step]
                    try:
                        raw = read_files(layout, batch_files)
                    except DataError as exc:
                        errors += exc.problems or [Problem(str(location), None, None, exc.message)]
                        _progress(on_progress, first + len(batch_files), total)
                        continue
                    errors += _seen_elsewhere(raw, first_file)
                    if plan is None:
                        plan = feature_engine.plan(features, raw.columns, target, horizon)
                    needed = min_rows if min_rows is not None else plan.required_history + horizon
                    result = validate(raw, min_rows=needed)
                    del raw
                    errors += result.errors
                    warnings += result.warnings
                    dropped += result.dropped_tickers
                    if errors:  # keep checking the rest, but writing is pointless now
                        _progress(on_progress, first + len(batch_files), total)
                        continue
                    clean = _with_columns_of_plan(result.clean, plan, target)
                    if hash_content:
                        digests.update(ticker_digests(clean))
                    table = (
                        feature_engine.build_lazy(clean, plan, target, horizon).collect().to_arrow()
                    )
                    del clean, result
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
                    writer.write_table(
                        table.cast(writer.schema), row_group_size=min(MAX_ROW_GROUP, table.num_rows)
                    )
                    rows += table.num_rows
                    batches += 1
                    _progress(on_progress, first + len(batch_files), total)
                if errors:
                    raise validation_error(errors)
                if writer is None or plan is None:
                    raise DataError(f"no rows to write from {location}")
            finally:
                if writer is not None:
                    writer.close()
    assert plan is not None  # every path without a plan raised above
    return PrepareSummary(
        out=str(out),
        rows=rows,
        tickers=len(first_file) - len(set(dropped)),
        batches=batches,
        features=plan.features,
        skipped=plan.skipped,
        dropped_tickers=sorted(set(dropped)),
        warnings=warnings,
        seconds=round(time.perf_counter() - started, 3),
        content_hash=combine(digests) if hash_content else None,
        target=target,
        horizon=horizon,
    )


def _progress(callback: Callable[[int, int], None] | None, done: int, total: int) -> None:
    if callback is not None:
        callback(done, total)


def _seen_elsewhere(frame: pl.DataFrame, first_file: dict[str, str]) -> list[Problem]:
    """Tickers already read from a file of an earlier batch (validate sees one batch only)."""
    pairs = frame.group_by(s.TICKER).agg(pl.col(s.SOURCE_FILE).first()).sort(s.TICKER)
    problems = []
    for ticker, file in pairs.iter_rows():
        earlier = first_file.setdefault(ticker, file)
        if earlier != file:
            problems.append(
                Problem(
                    file,
                    None,
                    s.TICKER,
                    f"ticker {ticker} is also in {earlier}; keep each ticker in one file",
                )
            )
    return problems


def _with_columns_of_plan(
    frame: pl.DataFrame, plan: feature_engine.FeaturePlan, target: str
) -> pl.DataFrame:
    """Null columns for inputs the plan uses but this batch's files lack, so schemas agree."""
    needed = {c for name in plan.features for c in feature_engine.FEATURES[name].inputs}
    needed.update(feature_engine.TARGETS[target].inputs)
    missing = [c for c in s.VALUES if c in needed and c not in frame.columns]
    return frame.with_columns(pl.lit(None, dtype=pl.Float64).alias(c) for c in missing)
