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

import itertools
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

# polars configures its allocator (jemalloc) when it is imported, handing freed pages back to
# the kernel after 0.5 s (``dirty_decay_ms:500``, pola-rs/polars#21829) unless
# ``_RJEM_MALLOC_CONF`` overrides it. A batch job then faults its pages in again, zero-filled,
# for every batch: on 1,500 tickers, keeping freed memory for the next batch cut kernel time
# from 2.4 to 1.7 s and process CPU by 12%, for 30% more peak memory (still under 3x the
# data). A process that imported polars before this module keeps its own setting.
if "polars" not in sys.modules:
    os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:-1,muzzy_decay_ms:-1")

import polars as pl  # after the allocator setting above
from polars.io.plugins import register_io_source

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
    from kubeline.runconfig import RunConfig
    from kubeline.settings import Settings

# ~730k daily rows. Smaller batches overlap reading with computing more evenly and reuse the
# same memory: 250 against 1,000 files took 14% less time and 27% less peak memory on 1,500
# tickers. Smaller still saves memory but costs time: 64 files took 9% more CPU on 8,000
# tickers, for 0.42 instead of 1.03 GB at peak.
DEFAULT_FILES_PER_BATCH = 250
# Rows per row group of the output. The sink holds a row group's rows until it writes them:
# 131,072 instead of 1,048,576 cut peak memory by 19% on 1,500 tickers and by a quarter on
# 8,000 (1.38 -> 1.03 GB), with no loss of speed.
MAX_ROW_GROUP = 1 << 17


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
    storage.refuse_writing_into_the_input(data, out, what="the features")
    cfg = run_config(config_text)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kubeline-prepare-") as workdir:
        layout = detect_layout(storage.fetch(data, Path(workdir), settings))
        files = _files_for(layout, cfg.data.tickers)
        step = max(1, files_per_batch)
        batches = [files[first : first + step] for first in range(0, len(files), step)]
        work = _Batches(layout, batches, cfg, hash_content, on_progress)
        tables = work.tables()
        first = next(tables, None)  # the first clean batch fixes the plan, hence the schema
        with storage.output_location(out, settings) as tmp:
            if first is not None:
                source = register_io_source(
                    lambda *_: itertools.chain([first], tables), schema=first.schema
                )
                # polars' own writer, uncompressed: float features barely compress, and every
                # codec tried cost more time than the bytes it saved.
                source.sink_parquet(tmp, compression="uncompressed", row_group_size=MAX_ROW_GROUP)
            for _ in tables:  # only after a failed batch: check the rest for every problem
                pass
            # Files named for other tickers were not read: their names are the suggestions.
            named = [f.stem for f in layout.files] if layout.kind != "long" else []
            absent = s.absent_tickers_error(cfg.data.tickers, work.first_file, named)
            if absent is not None:
                raise absent
            if work.errors:
                raise validation_error(work.errors)
            if work.rows == 0 or work.plan is None:
                raise DataError(f"no rows to write from {data}")
    return PrepareSummary(
        out=str(out),
        rows=work.rows,
        tickers=len(work.first_file) - len(set(work.dropped)),
        batches=work.batches,
        features=work.plan.features,
        skipped=work.plan.skipped,
        dropped_tickers=sorted(set(work.dropped)),
        warnings=work.warnings,
        seconds=round(time.perf_counter() - started, 3),
        content_hash=combine(work.digests) if hash_content else None,
        target=cfg.target,
        horizon=cfg.horizon,
    )


class _Batches:
    """The batches of files, read one ahead, validated, featurized; problems collected.

    ``tables()`` yields one features table per clean batch for as long as no batch had an
    error; after the first error it keeps reading and validating, to report every problem, but
    yields nothing more (writing is pointless then).
    """

    def __init__(
        self,
        layout: Layout,
        batches: list[tuple[Path, ...]],
        config: RunConfig,
        hash_content: bool,
        on_progress: Callable[[int, int], None] | None,
    ) -> None:
        self.layout, self.files, self.config = layout, batches, config
        self.hash_content, self.on_progress = hash_content, on_progress
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []
        self.dropped: list[str] = []
        self.first_file: dict[str, str] = {}
        self.digests: dict[str, bytes] = {}
        self.plan: feature_engine.FeaturePlan | None = None
        self.rows = 0
        self.batches = 0

    def tables(self) -> Iterator[pl.DataFrame]:
        total = sum(len(b) for b in self.files)
        done = 0
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kubeline-read") as reader:
            # The next batch is read while this one is validated and featurized (polars
            # releases the GIL). One batch ahead keeps memory at about three batches.
            ahead = [reader.submit(read_files, self.layout, b) for b in self.files[:1]]
            for index, batch_files in enumerate(self.files):
                current = ahead.pop()
                if index + 1 < len(self.files):
                    ahead.append(reader.submit(read_files, self.layout, self.files[index + 1]))
                table = self._one(current)
                done += len(batch_files)
                if self.on_progress is not None:
                    self.on_progress(done, total)
                if table is not None:
                    yield table

    def _one(self, read: Future[pl.DataFrame]) -> pl.DataFrame | None:
        try:
            raw = read.result()
        except DataError as exc:
            self.errors += exc.problems or [Problem(str(self.layout.root), None, None, exc.message)]
            return None
        raw = s.keep_tickers(raw, self.config.data.tickers)
        if raw.is_empty():
            return None
        self.errors += _seen_elsewhere(raw, self.first_file)
        if self.plan is None:
            self.plan = feature_engine.plan_for(self.config, raw.columns)
        result = validate(raw, min_rows=self.plan.min_rows)
        del raw
        self.errors += result.errors
        self.warnings += result.warnings
        self.dropped += result.dropped_tickers
        if self.errors:
            return None
        clean = result.clean
        if self.hash_content:
            self.digests.update(ticker_digests(clean))
        # The first batch's plan for every batch, so that every batch has the same columns.
        table = feature_engine.build_lazy(
            clean, self.plan, self.config.target, self.config.horizon
        ).collect(engine="in-memory")
        self.rows += table.height
        self.batches += 1
        return table


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
