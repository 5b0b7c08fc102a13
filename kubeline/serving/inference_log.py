"""The inference log: every served prediction, buffered and written as Parquet in batches.

The service calls ``InferenceLog.record`` once per request. ``record`` only converts the
request's arrays and appends them to an in-memory buffer; a background thread writes the buffer
when it holds ``KUBELINE_INFERENCE_LOG_BATCH_ROWS`` rows or its oldest row has waited
``KUBELINE_INFERENCE_LOG_FLUSH_SECONDS``, so no request waits for storage. This log is the
"current data" the monitor reads (``read_log``).

Layout, at the location from ``log_location(settings)`` (a local folder or ``s3://bucket/prefix``)::

    <location>/date=YYYY-MM-DD/<HHMMSSmmm>-<uuid>.parquet

``date=`` is the UTC day of the rows' ``timestamp`` (when they were served), not the bars'
dates; a file holds rows of one day and one feature set. Columns, in this order:

=================  ========================  ==============================================
column             type                      meaning
=================  ========================  ==============================================
request_id         string                    the request (a multi-row request shares one)
timestamp          timestamp[ms, UTC]        when the service recorded the prediction
endpoint           string                    e.g. ``predict``, ``predict_history``
model_name         string                    registered model name
model_version      string                    registered version that predicted
pipeline_run_id    string, nullable          the training pipeline run behind that version
ticker             string, nullable          the row's ticker, when the request named one
date               date32, nullable          the bar's date the features describe
bars               string, nullable          ``/predict_history``: the request's bars as
                                             JSON, so the monitor can recompute the features
                                             with the training code (training/serving skew)
<feature>...       float64, one per feature  the model's inputs, under their own names
prediction         float64                   the model's output
=================  ========================  ==============================================

Model versions with different feature lists are written to different files (each file's schema
is one feature set); ``read_log`` returns their union, NaN where a file lacks a feature.

The partition key and the bar's date share the name ``date`` (the layout asked for). Measured
with pyarrow 25 and polars 2.1: ``polars.scan_parquet(..., hive_partitioning=True)`` silently
replaces the bar's date by the partition's day, and ``pyarrow.dataset(..., partitioning="hive")``
fails on the two types; both read the files' own column when partitions are not inferred (their
defaults for a glob or a folder). ``read_log`` reads each file as it is.

Guarantees:

* each file appears whole or not at all: a local file is written under a hidden temporary name
  (``.<name>.tmp-*``, skipped by readers) and renamed; an S3 object is one PutObject of the
  complete file, which S3 makes visible only once complete, so no temporary key (and no
  copy + delete, which would double the requests and could leave temporary keys behind) is
  needed;
* when the store fails, rows stay buffered and are retried with exponential backoff; the buffer
  holds at most ``KUBELINE_INFERENCE_LOG_MAX_BUFFERED_ROWS`` rows, and rows that do not fit are
  dropped, counted (``stats().dropped_rows``) and logged, never silently;
* ``close`` writes what is left (until its timeout; what is still unwritten then is counted as
  dropped), so every row recorded is either written or counted as dropped.
"""

from __future__ import annotations

import io
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kubeline.data.schema import DATE, PREDICTION, TICKER
from kubeline.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from kubeline.settings import Settings

log = logging.getLogger(__name__)

REQUEST_ID = "request_id"
TIMESTAMP = "timestamp"
ENDPOINT = "endpoint"
MODEL_NAME = "model_name"
MODEL_VERSION = "model_version"
PIPELINE_RUN_ID = "pipeline_run_id"
# Every column but the features, in file order (the features sit between DATE and PREDICTION).
KEY_COLUMNS = (REQUEST_ID, TIMESTAMP, ENDPOINT, MODEL_NAME, MODEL_VERSION, PIPELINE_RUN_ID)
BARS = "bars"
ROW_COLUMNS = (TICKER, DATE, BARS)
RESERVED = (*KEY_COLUMNS, *ROW_COLUMNS, PREDICTION)
PARTITION = "date"  # the hive partition key: the UTC day rows were served
DEFAULT_FOLDER = "inference-log"
# Backoff after a failed write: from the first delay, doubled per failure, up to the last.
RETRY_SECONDS = (0.5, 30.0)
# One attempt per write, and no minute-long hang on a blackholed endpoint: the flusher retries
# on its own schedule, and close() must finish within its timeout.
S3_TIMEOUT_SECONDS = 5.0
DROP_LOG_EVERY_SECONDS = 10.0


@dataclass(frozen=True)
class LogStats:
    """Counters of an inference log (``/metrics`` shows them)."""

    queued_rows: int  # recorded, not yet written (waiting or being written)
    written_rows: int
    dropped_rows: int  # beyond the buffer's bound, after close, or unwritten at close's timeout
    failed_writes: int
    last_error: str | None
    written_files: int = 0


@dataclass(frozen=True, slots=True)
class _Chunk:
    """The rows of one ``record`` call, already converted (the flusher only encodes)."""

    at_ms: int
    queued_at: float  # time.monotonic() when recorded: the age trigger
    request_id: str
    endpoint: str
    model_name: str
    model_version: str
    pipeline_run_id: str | None
    feature_names: tuple[str, ...]
    values: np.ndarray  # rows x features, float64
    predictions: np.ndarray
    tickers: tuple[str | None, ...] | None
    dates: np.ndarray | None  # datetime64[D], NaT where unknown
    bars: tuple[str | None, ...] | None = None  # per row: the request's bars as JSON

    @property
    def rows(self) -> int:
        return len(self.predictions)

    @property
    def day(self) -> str:
        return time.strftime("%Y-%m-%d", time.gmtime(self.at_ms / 1000))

    def head(self, n: int) -> _Chunk:
        return replace(
            self,
            values=self.values[:n],
            predictions=self.predictions[:n],
            tickers=None if self.tickers is None else self.tickers[:n],
            dates=None if self.dates is None else self.dates[:n],
            bars=None if self.bars is None else self.bars[:n],
        )


def log_location(settings: Settings) -> str:
    """Where the inference log lives: the setting, else beside the artifacts, else the state.

    ``KUBELINE_INFERENCE_LOG_LOCATION`` if set; else ``inference-log`` under
    ``KUBELINE_MLFLOW_ARTIFACT_LOCATION`` when that is local or s3://; else
    ``<state folder>/inference-log``. The monitor finds the log through this same function.
    """
    if settings.inference_log_location:
        return _local_or_s3(settings.inference_log_location)
    root = settings.mlflow_artifact_location
    if root:
        if root.startswith("s3://"):
            return f"{root.rstrip('/')}/{DEFAULT_FOLDER}"
        if root.startswith("file://") or "://" not in root:
            return str(Path(_local_or_s3(root)) / DEFAULT_FOLDER)
        raise ConfigError(
            f"the inference log cannot be written beside the artifacts at {root}: only a local "
            "folder or s3:// can hold it",
            hint="set KUBELINE_INFERENCE_LOG_LOCATION to a local folder or s3://BUCKET/prefix",
        )
    return str(settings.state_path / DEFAULT_FOLDER)


def _local_or_s3(location: str) -> str:
    if location.startswith("file://"):
        from urllib.parse import unquote, urlsplit

        return unquote(urlsplit(location).path)
    return location


class InferenceLog:
    """A buffered, batched, non-blocking writer of served predictions (see the module doc)."""

    def __init__(
        self,
        location: str,
        *,
        settings: Settings | None = None,
        batch_rows: int = 1000,
        flush_seconds: float = 10.0,
        max_buffered_rows: int = 100_000,
        retry_seconds: tuple[float, float] = RETRY_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.location = location
        self._store = _store(location, settings, writer=True)
        self._batch_rows = batch_rows
        self._flush_seconds = flush_seconds
        self._max_rows = max_buffered_rows
        self._retry = retry_seconds
        self._clock = clock
        self._cond = threading.Condition()
        self._pending: list[_Chunk] = []
        self._pending_rows = 0
        self._inflight_rows = 0
        self._written_rows = 0
        self._written_files = 0
        self._dropped_rows = 0
        self._dropped_logged = 0
        self._last_drop_log = 0.0
        self._failed_writes = 0
        self._failures_in_a_row = 0
        self._retry_at = 0.0
        self._last_error: str | None = None
        self._flush_requested = False
        self._closing = False
        self._deadline = float("inf")
        self._thread = threading.Thread(
            target=self._run, name="kubeline-inference-log", daemon=True
        )
        self._thread.start()

    @classmethod
    def from_settings(cls, settings: Settings) -> InferenceLog | None:
        """The log the settings describe, or None when ``KUBELINE_INFERENCE_LOG_ENABLED`` is off."""
        if not settings.inference_log_enabled:
            return None
        return cls(
            log_location(settings),
            settings=settings,
            batch_rows=settings.inference_log_batch_rows,
            flush_seconds=settings.inference_log_flush_seconds,
            max_buffered_rows=settings.inference_log_max_buffered_rows,
        )

    def record(
        self,
        *,
        request_id: str,
        endpoint: str,
        model_name: str,
        model_version: str,
        pipeline_run_id: str | None,
        features: pd.DataFrame,
        predictions: Sequence[float],
        tickers: Sequence[str] | None = None,
        dates: Sequence[str] | None = None,
        bars: Sequence[str | None] | None = None,
    ) -> None:
        """Queue one request's rows (one per feature row); returns at once, never does I/O.

        Raises DataError when the lengths disagree, a feature is not numeric, a date does not
        parse or a feature is named like a log column: a caller's bug, shown at once rather
        than a batch that could never be written.
        """
        names, values, predicted, ticker_values, days = _arrays(
            request_id, features, predictions, tickers, dates
        )
        if bars is not None and len(bars) != len(predicted):
            raise DataError(
                f"request {request_id} has rows of different lengths: "
                f"predictions {len(predicted)}, bars {len(bars)}"
            )
        chunk = _Chunk(
            at_ms=int(self._clock() * 1000),
            queued_at=time.monotonic(),
            request_id=str(request_id),
            endpoint=str(endpoint),
            model_name=str(model_name),
            model_version=str(model_version),
            pipeline_run_id=None if pipeline_run_id is None else str(pipeline_run_id),
            feature_names=names,
            values=values,
            predictions=predicted,
            tickers=ticker_values,
            dates=days,
            bars=None if bars is None else tuple(bars),
        )
        if chunk.rows == 0:
            return
        with self._cond:
            if self._closing:
                self._dropped_rows += chunk.rows
                closed = True
            else:
                closed = False
                room = self._max_rows - self._pending_rows - self._inflight_rows
                if room < chunk.rows:
                    self._dropped_rows += chunk.rows - max(room, 0)
                    chunk = chunk.head(max(room, 0))
                if chunk.rows:
                    was_empty = not self._pending
                    self._pending.append(chunk)
                    self._pending_rows += chunk.rows
                    # Wake the flusher only when it has something new to decide.
                    if was_empty or self._pending_rows >= self._batch_rows:
                        self._cond.notify_all()
        if closed:  # after shutdown: the caller's thread is the only one left to say so
            log.warning("inference log closed: %d rows of %s dropped", chunk.rows, request_id)

    def stats(self) -> LogStats:
        with self._cond:
            return LogStats(
                queued_rows=self._pending_rows + self._inflight_rows,
                written_rows=self._written_rows,
                dropped_rows=self._dropped_rows,
                failed_writes=self._failed_writes,
                last_error=self._last_error,
                written_files=self._written_files,
            )

    def flush(self, timeout: float = 10.0) -> bool:
        """Write what is queued now (after any retry delay); True once nothing is queued."""
        with self._cond:
            self._flush_requested = True
            self._cond.notify_all()
            return self._cond.wait_for(
                lambda: self._pending_rows + self._inflight_rows == 0, timeout
            )

    def close(self, timeout: float = 10.0) -> None:
        """Write everything left and stop the thread; rows unwritten after ``timeout`` are dropped.

        Idempotent. Wire it to the service's shutdown (SIGTERM).
        """
        with self._cond:
            if not self._closing:
                self._closing = True
                self._deadline = time.monotonic() + timeout
            self._cond.notify_all()
        # A write in progress when the deadline passes is bounded by the S3 timeout.
        self._thread.join(timeout + S3_TIMEOUT_SECONDS + 1)
        if self._thread.is_alive():
            log.warning("inference log: the writer did not stop within %.1f s", timeout)

    # The flusher thread -------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                batch = self._next_batch()
                if batch is None:
                    return
            self._write(batch)

    def _next_batch(self) -> list[_Chunk] | None:
        """Wait (holding the lock) until a batch is due; None when closed and done."""
        while True:
            self._report_drops()
            now = time.monotonic()
            if self._closing and now >= self._deadline and self._pending:
                left = self._pending_rows
                self._dropped_rows += left
                self._pending, self._pending_rows = [], 0
                log.error(
                    "inference log: %d rows could not be written before shutdown and are "
                    "dropped (last error: %s)",
                    left,
                    self._last_error,
                )
                self._cond.notify_all()
            if self._closing and not self._pending:
                self._report_drops()
                return None
            if self._pending and now >= self._retry_at and self._due(now):
                batch, self._pending = self._pending, []
                self._inflight_rows, self._pending_rows = self._pending_rows, 0
                self._flush_requested = False
                return batch
            self._cond.wait(self._wait_seconds(now))

    def _due(self, now: float) -> bool:
        return (
            self._closing
            or self._flush_requested
            or self._pending_rows >= self._batch_rows
            or now - self._pending[0].queued_at >= self._flush_seconds
        )

    def _wait_seconds(self, now: float) -> float | None:
        if not self._pending:
            return None  # record() or close() wakes the thread
        if now < self._retry_at:
            wake = self._retry_at
        else:
            wake = self._pending[0].queued_at + self._flush_seconds
        if self._closing:
            wake = min(wake, self._deadline)
        # Wake at least now and then, so drops are logged while the buffer stays full.
        return max(0.0, min(wake - now, DROP_LOG_EVERY_SECONDS))

    def _write(self, batch: list[_Chunk]) -> None:
        """Write one file per (day, feature set); keep what failed for the next attempt."""
        groups: dict[tuple[str, tuple[str, ...]], list[_Chunk]] = {}
        for chunk in batch:
            groups.setdefault((chunk.day, chunk.feature_names), []).append(chunk)
        failed: list[_Chunk] = []
        written = files = 0
        error: str | None = None
        unencodable = 0
        for (day, _), chunks in groups.items():
            try:
                payload = _parquet(chunks)
            except Exception as exc:  # rows that can never be written: not retried forever
                unencodable += sum(c.rows for c in chunks)
                log.error("inference log: %d rows cannot be encoded, dropped: %s", unencodable, exc)
                continue
            try:
                self._store.put(_file_key(day, chunks[0].at_ms), payload)
            except Exception as exc:  # any store failure: keep the rows, retry later
                failed += chunks
                error = f"{type(exc).__name__}: {exc}"
            else:
                written += sum(c.rows for c in chunks)
                files += 1
        with self._cond:
            self._inflight_rows = 0
            self._dropped_rows += unencodable
            self._dropped_logged += unencodable  # logged just above, with the reason
            self._written_rows += written
            self._written_files += files
            if failed:
                self._pending = failed + self._pending
                self._pending_rows += sum(c.rows for c in failed)
                self._failed_writes += 1
                self._failures_in_a_row += 1
                first, last = self._retry
                delay = min(last, first * 2 ** (self._failures_in_a_row - 1))
                self._retry_at = time.monotonic() + delay
                self._last_error = error
                log.warning(
                    "inference log: cannot write to %s (%s); %d rows kept, retry in %.1f s",
                    self.location,
                    error,
                    self._pending_rows,
                    delay,
                )
            else:
                self._failures_in_a_row = 0
                self._retry_at = 0.0
            self._cond.notify_all()

    def _report_drops(self) -> None:
        """Log drops from the flusher's thread (at most every few seconds), not the caller's."""
        new = self._dropped_rows - self._dropped_logged
        now = time.monotonic()
        if new and (self._closing or now - self._last_drop_log >= DROP_LOG_EVERY_SECONDS):
            log.error(
                "inference log: dropped %d rows (%d in all): the buffer holds at most %d rows "
                "while %s is unreachable (last error: %s)",
                new,
                self._dropped_rows,
                self._max_rows,
                self.location,
                self._last_error,
            )
            self._dropped_logged = self._dropped_rows
            self._last_drop_log = now


def _arrays(
    request_id: str,
    features: pd.DataFrame,
    predictions: Sequence[float],
    tickers: Sequence[str] | None,
    dates: Sequence[str] | None,
) -> tuple[
    tuple[str, ...], np.ndarray, np.ndarray, tuple[str | None, ...] | None, np.ndarray | None
]:
    """A request's rows as arrays: feature names, values, predictions, tickers, dates."""
    names = tuple(str(c) for c in features.columns)
    clash = sorted((set(names) & set(RESERVED)) | {n for n in names if names.count(n) > 1})
    if clash:
        raise DataError(
            f"feature(s) {', '.join(clash)} of request {request_id} are named twice or like "
            "inference-log columns",
            hint=f"give each feature its own name; {', '.join(RESERVED)} are the log's columns",
        )
    try:
        values = features.to_numpy(dtype=np.float64, copy=True)
        predicted = np.array(predictions, dtype=np.float64)
        days = None if dates is None else np.array(dates, dtype="datetime64[D]")
    except (TypeError, ValueError) as exc:
        raise DataError(f"request {request_id} cannot be logged: {exc}") from None
    lengths = {
        "features": len(values),
        "predictions": len(predicted),
        **({"tickers": len(tickers)} if tickers is not None else {}),
        **({"dates": len(days)} if days is not None else {}),
    }
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{k} {v}" for k, v in lengths.items())
        raise DataError(f"request {request_id} has rows of different lengths: {shown}")
    shown_tickers = (
        None if tickers is None else tuple(None if x is None else str(x) for x in tickers)
    )
    return names, values, predicted, shown_tickers, days


def _file_key(day: str, at_ms: int) -> str:
    """``date=YYYY-MM-DD/HHMMSSmmm-<uuid>.parquet``: names sort by time within a day."""
    clock = time.strftime("%H%M%S", time.gmtime(at_ms / 1000)) + f"{at_ms % 1000:03d}"
    return f"{PARTITION}={day}/{clock}-{uuid.uuid4().hex}.parquet"


def _table(chunks: list[_Chunk]) -> pa.Table:
    """One feature set's rows as an Arrow table in the documented column order."""
    import pyarrow as pa

    counts = [c.rows for c in chunks]

    def repeated(values: list[Any]) -> np.ndarray:
        return np.repeat(np.array(values, dtype=object), counts)

    tickers: list[str | None] = []
    for c in chunks:
        tickers += list(c.tickers) if c.tickers is not None else [None] * c.rows
    dates = np.concatenate(
        [
            c.dates if c.dates is not None else np.full(c.rows, "NaT", "datetime64[D]")
            for c in chunks
        ]
    )
    bars: list[str | None] = []
    for c in chunks:
        bars += list(c.bars) if c.bars is not None else [None] * c.rows
    values = np.concatenate([c.values for c in chunks])
    columns: dict[str, pa.Array] = {
        REQUEST_ID: pa.array(repeated([c.request_id for c in chunks]), pa.string()),
        TIMESTAMP: pa.array(
            np.repeat(np.array([c.at_ms for c in chunks], dtype=np.int64), counts),
            pa.timestamp("ms", tz="UTC"),
        ),
        ENDPOINT: pa.array(repeated([c.endpoint for c in chunks]), pa.string()),
        MODEL_NAME: pa.array(repeated([c.model_name for c in chunks]), pa.string()),
        MODEL_VERSION: pa.array(repeated([c.model_version for c in chunks]), pa.string()),
        PIPELINE_RUN_ID: pa.array(repeated([c.pipeline_run_id for c in chunks]), pa.string()),
        TICKER: pa.array(tickers, pa.string()),
        DATE: pa.array(dates, pa.date32()),
        BARS: pa.array(bars, pa.string()),
    }
    for index, name in enumerate(chunks[0].feature_names):
        columns[name] = pa.array(values[:, index], pa.float64())
    columns[PREDICTION] = pa.array(np.concatenate([c.predictions for c in chunks]), pa.float64())
    return pa.table(columns)


def _parquet(chunks: list[_Chunk]) -> bytes:
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(_table(chunks), sink, compression="zstd")
    return sink.getvalue()


class _LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, key: str, payload: bytes) -> None:
        from kubeline.storage import atomic_path

        with atomic_path(self.root / key) as tmp:
            tmp.write_bytes(payload)

    def keys(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*.parquet"))

    def get(self, key: str) -> bytes:
        return (self.root / key).read_bytes()


class _S3Store:
    def __init__(self, uri: str, settings: Settings | None, *, writer: bool) -> None:
        from kubeline.storage import s3_client, split_s3

        self.uri = uri.rstrip("/")
        self.bucket, prefix = split_s3(self.uri)
        self.prefix = prefix.strip("/")
        self.settings = settings
        # Made here, in the constructing thread: boto3's default session is not safe to make
        # clients from in two threads at once (the flusher and a request thread could).
        # The writer tries once per write and never hangs: the flusher has its own retries and
        # close() a deadline. A reader uses boto3's retries.
        if writer:
            self._client = s3_client(settings, attempts=1, timeout=S3_TIMEOUT_SECONDS)
        else:
            self._client = s3_client(settings)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, payload: bytes) -> None:
        self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=payload)

    def keys(self) -> list[str]:
        from kubeline.storage import list_s3

        base = f"s3://{self.bucket}/{self._key('')}"
        return sorted(
            u[len(base) :] for u in list_s3(base, self.settings) if u.endswith(".parquet")
        )

    def get(self, key: str) -> bytes:
        body = self._client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        return bytes(body.read())


def _store(location: str, settings: Settings | None, *, writer: bool) -> _LocalStore | _S3Store:
    if location.startswith("s3://"):
        return _S3Store(location, settings, writer=writer)
    return _LocalStore(Path(_local_or_s3(location)).expanduser())


def _utc(moment: datetime | date | str) -> pd.Timestamp:
    import pandas as pd

    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def read_log(
    location: str,
    settings: Settings | None = None,
    *,
    since: datetime | date | str | None = None,
    until: datetime | date | str | None = None,
    model_name: str | None = None,
) -> pd.DataFrame:
    """The logged rows with ``since <= timestamp < until`` (naive times are UTC), oldest first.

    Only the day partitions that can hold such rows are read. Files of other feature sets add
    their columns (NaN in rows that lack them); temporary files are never read.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from kubeline.errors import StorageError

    store = _store(location, settings, writer=False)
    low = None if since is None else _utc(since)
    high = None if until is None else _utc(until)
    frames = []
    try:
        keys = store.keys()
    except OSError as exc:
        raise StorageError(f"cannot list the inference log at {location}: {exc}") from None
    for key in keys:
        folder, _, name = key.rpartition("/")
        if name.startswith(".") or not folder.startswith(f"{PARTITION}="):
            continue  # a temporary file, or something that is not the log's
        day = folder.removeprefix(f"{PARTITION}=")
        if low is not None and day < low.strftime("%Y-%m-%d"):
            continue
        if high is not None and day > high.strftime("%Y-%m-%d"):
            continue
        try:
            table = pq.read_table(pa.BufferReader(store.get(key)))
        except (OSError, pa.ArrowException) as exc:
            raise StorageError(f"cannot read {location}/{key}: {exc}") from None
        frames.append(table.to_pandas(date_as_object=False))
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in RESERVED})
    out = pd.concat(frames, ignore_index=True, sort=False)
    keep = pd.Series(True, index=out.index)
    if low is not None:
        keep &= out[TIMESTAMP] >= low
    if high is not None:
        keep &= out[TIMESTAMP] < high
    if model_name is not None:
        keep &= out[MODEL_NAME] == model_name
    for column in ROW_COLUMNS:  # files written before a column existed lack it
        if column not in out.columns:
            out[column] = None
    features = [c for c in out.columns if c not in RESERVED]
    order = [*KEY_COLUMNS, *ROW_COLUMNS, *features, PREDICTION]
    out = out.loc[keep, order].sort_values(TIMESTAMP, kind="stable")
    return out.reset_index(drop=True)
