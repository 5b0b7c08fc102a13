"""Features: the clean snapshot -> features, naive-baseline columns and target, as Parquet.

Two entry points: ``run`` (the pipeline step: a validated snapshot in, a features table out)
and ``prepare`` (``kubeline features``: raw files in, one features Parquet file out, fetching the
input and committing the output itself). ``prepare`` works in memory-bounded batches of whole
files: ingest -> validate -> features per batch, each batch one row group of the output, written
to a temporary file that is renamed into place only when every batch validated. Problems from all
batches are collected and raised together as one DataError, and nothing is left at ``out`` on
failure. Tickers never span batches (a ticker found in a second file is itself an error), so
per-ticker features are exact batch by batch.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow.parquet as pq

from kubeline import features as feature_engine
from kubeline import storage
from kubeline.data import schema as s
from kubeline.data.ingest import read_files
from kubeline.data.layouts import Layout, detect_layout, match_columns, read_first_lines
from kubeline.data.snapshot import combine, ticker_digests
from kubeline.data.validate import validate, validation_error
from kubeline.errors import DataError, Problem
from kubeline.steps.base import executor, run_config, write_parquet

if TYPE_CHECKING:
    from kubeline.settings import Settings

DEFAULT_FILES_PER_BATCH = 1000  # ~3M daily rows: well under 1 GB at peak
MAX_ROW_GROUP = 1 << 20  # a one-file long layout still gets readable row groups


@executor
def run(*, snapshot: str, config: str, out: str, data_hash: str = "") -> dict[str, Any]:
    """Compute the configured features and target for every ticker of the snapshot."""
    cfg = run_config(config)
    clean = pl.read_parquet(snapshot)
    table, chosen = feature_engine.build_polars(
        clean, features=cfg.features, target=cfg.target, horizon=cfg.horizon
    )
    write_parquet(table, out)
    return {
        "rows": table.height,
        "tickers": table[s.TICKER].n_unique(),
        "features": list(chosen.features),
        "skipped_features": list(chosen.skipped),
        "target": cfg.target,
        "horizon": cfg.horizon,
        "data_hash": data_hash,
    }


@dataclass
class PrepareSummary:
    """What ``prepare`` wrote and what it dropped or warned about."""

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


def prepare(
    data: str | Path,
    out: str | Path,
    config_text: str = "",
    on_progress: Callable[[int, int], None] | None = None,
    hash_content: bool = False,
    *,
    files_per_batch: int = DEFAULT_FILES_PER_BATCH,
    settings: Settings | None = None,
) -> PrepareSummary:
    """Ingest, validate and featurize ``data`` (local or s3://) into the Parquet file ``out``.

    The run config chooses features, target, horizon, ``data.min_rows`` and ``data.tickers``
    (files named for other tickers are not even read). ``on_progress(files_done, files_total)``
    is called after each batch; ``hash_content`` also hashes the clean data.
    """
    cfg = run_config(config_text)
    tickers = cfg.data.tickers
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kubeline-prepare-") as workdir:
        layout = detect_layout(storage.fetch(data, Path(workdir), settings))
        files = _files_for(layout, tickers)
        total = len(files)
        step = max(1, files_per_batch)
        errors: list[Problem] = []
        warnings: list[Problem] = []
        dropped: list[str] = []
        first_file: dict[str, str] = {}
        plan: feature_engine.FeaturePlan | None = None
        sink = _Sink(hash_content)
        reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kubeline-read")
        with storage.output_location(out, settings) as tmp:
            try:
                batches = [files[first : first + step] for first in range(0, total, step)]
                # The next batch is read while this one is validated and featurized: polars
                # releases the GIL, so the reader's single-threaded stretches (headers, lineage)
                # fill the gaps of the compute. One batch ahead keeps memory at ~3 batches.
                ahead = reader.submit(read_files, layout, batches[0]) if batches else None
                done = 0
                for index, batch_files in enumerate(batches):
                    done += len(batch_files)
                    current = ahead
                    ahead = (
                        reader.submit(read_files, layout, batches[index + 1])
                        if index + 1 < len(batches)
                        else None
                    )
                    try:
                        assert current is not None
                        raw = current.result()
                    except DataError as exc:
                        errors += exc.problems or [Problem(str(data), None, None, exc.message)]
                        _progress(on_progress, done, total)
                        continue
                    raw = s.keep_tickers(raw, tickers)
                    if raw.is_empty():
                        _progress(on_progress, done, total)
                        continue
                    errors += _seen_elsewhere(raw, first_file)
                    if plan is None:
                        plan = feature_engine.plan_for(cfg, raw.columns)
                    result = validate(raw, min_rows=plan.min_rows)
                    del raw
                    errors += result.errors
                    warnings += result.warnings
                    dropped += result.dropped_tickers
                    if errors:  # keep checking the rest, but writing is pointless now
                        _progress(on_progress, done, total)
                        continue
                    clean = result.clean
                    table = feature_engine.build_lazy(
                        clean, plan, cfg.target, cfg.horizon
                    ).collect()
                    sink.put(tmp, clean, table)
                    del clean, result, table
                    _progress(on_progress, done, total)
                sink.finish()
                absent = s.absent_tickers_error(tickers, first_file)
                if absent is not None:
                    raise absent
                if errors:
                    raise validation_error(errors)
                if sink.rows == 0 or plan is None:
                    raise DataError(f"no rows to write from {data}")
            finally:
                reader.shutdown(wait=True, cancel_futures=True)
                sink.close()
    assert plan is not None  # every path without a plan raised above
    return PrepareSummary(
        out=str(out),
        rows=sink.rows,
        tickers=len(first_file) - len(set(dropped)),
        batches=sink.batches,
        features=plan.features,
        skipped=plan.skipped,
        dropped_tickers=sorted(set(dropped)),
        warnings=warnings,
        seconds=round(time.perf_counter() - started, 3),
        content_hash=combine(sink.digests) if hash_content else None,
        target=cfg.target,
        horizon=cfg.horizon,
    )


class _Sink:
    """Writes (and hashes) each batch in a background thread while the next one is computed.

    At most one batch waits in the thread, so memory stays at about two batches. pyarrow's
    writer and hashlib release the GIL, which is what makes the overlap real.
    """

    def __init__(self, hash_content: bool) -> None:
        self.hash_content = hash_content
        self.digests: dict[str, bytes] = {}
        self.rows = 0
        self.batches = 0
        self._writer: pq.ParquetWriter | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kubeline-write")
        self._pending: Future[None] | None = None

    def put(self, path: Path, clean: pl.DataFrame, features: pl.DataFrame) -> None:
        self.finish()
        self._pending = self._pool.submit(self._write, path, clean, features)

    def _write(self, path: Path, clean: pl.DataFrame, features: pl.DataFrame) -> None:
        # string_view columns convert without a copy.
        table = features.to_arrow(compat_level=pl.CompatLevel.newest())
        if self._writer is None:
            self._writer = pq.ParquetWriter(
                path,
                table.schema,
                # Float features barely compress; compressing only the keys halves write time.
                compression={s.TICKER: "snappy", s.DATE: "snappy"},
                use_dictionary=[s.TICKER],
            )
        self._writer.write_table(
            table.cast(self._writer.schema), row_group_size=min(MAX_ROW_GROUP, table.num_rows)
        )
        self.rows += table.num_rows
        self.batches += 1
        if self.hash_content:
            self.digests.update(ticker_digests(clean))

    def finish(self) -> None:
        """Wait for the batch being written; re-raise its error, if any."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def close(self) -> None:
        try:
            self.finish()
        finally:
            self._pool.shutdown(wait=True)
            if self._writer is not None:
                self._writer.close()


def _files_for(layout: Layout, tickers: list[str] | None) -> tuple[Path, ...]:
    """The layout's files, without per-ticker files named for tickers not asked for."""
    if not tickers or layout.kind == "long":
        return layout.files
    wanted = set(tickers)
    # A file with its own ticker column may hold any ticker: only name-only files are skipped.
    return tuple(
        f
        for f in layout.files
        if f.stem in wanted or s.TICKER in match_columns(read_first_lines(f)[0])
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
