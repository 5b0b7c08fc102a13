"""The inference log on a local folder: batching, partitions, atomic files, the bound, retries."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from kubeline.errors import ConfigError, DataError
from kubeline.serving.inference_log import InferenceLog, LogStats, log_location, read_log
from kubeline.settings import Settings

FEATURES = ["ret_1", "vol_20"]
DAY1 = 1_733_000_000.0  # 2024-11-30 20:53:20 UTC
DAY2 = DAY1 + 86_400


def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` until it holds (the flusher works on its own thread)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def send(
    log: InferenceLog, request: str, rows: int = 1, names: list[str] = FEATURES, **extra: object
) -> None:
    frame = pd.DataFrame({n: [float(i) + k / 10 for i in range(rows)] for k, n in enumerate(names)})
    log.record(
        request_id=request,
        endpoint="predict",
        model_name="m",
        model_version="1",
        pipeline_run_id="run-1",
        features=frame,
        predictions=[0.5 * i for i in range(rows)],
        **extra,  # type: ignore[arg-type]
    )


def parquet_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.parquet") if not p.name.startswith("."))


@pytest.fixture
def make_log(tmp_path: Path) -> Iterator[Callable[..., InferenceLog]]:
    made: list[InferenceLog] = []

    def make(location: Path | None = None, **options: object) -> InferenceLog:
        options = {
            "batch_rows": 10_000,
            "flush_seconds": 3600,
            "retry_seconds": (0.05, 0.2),
        } | options
        log = InferenceLog(str(location or tmp_path / "log"), **options)  # type: ignore[arg-type]
        made.append(log)
        return log

    yield make
    for log in made:
        log.close(timeout=1)


def test_rows_are_written_once_a_batch_is_full(make_log, tmp_path: Path) -> None:
    log = make_log(batch_rows=5)
    for i in range(4):
        send(log, f"r{i}")
    assert log.stats().written_rows == 0  # the age trigger is an hour away
    send(log, "r4")
    until(lambda: log.stats().written_rows == 5)
    assert len(parquet_files(tmp_path / "log")) == 1


def test_rows_are_written_once_the_oldest_has_waited(make_log) -> None:
    log = make_log(flush_seconds=0.2)
    send(log, "r0", rows=3)
    until(lambda: log.stats().written_rows == 3)
    assert log.stats() == LogStats(0, 3, 0, 0, None, 1)


def test_files_are_partitioned_by_the_day_served_and_split_by_feature_set(
    make_log, tmp_path: Path
) -> None:
    now = [DAY1]
    log = make_log(clock=lambda: now[0])
    send(log, "a", rows=2, tickers=["AAA", "BBB"], dates=["2024-11-29", "2024-11-29"])
    send(log, "b", rows=1, names=["ret_1", "rsi_14", "vol_20"])
    now[0] = DAY2
    send(log, "c", rows=1)
    log.close()
    files = parquet_files(tmp_path / "log")
    days = sorted(p.parent.name for p in files)
    assert days == ["date=2024-11-30", "date=2024-11-30", "date=2024-12-01"]
    assert all(p.name.endswith(".parquet") and len(p.stem.split("-")[0]) == 9 for p in files)
    schemas = {tuple(pq.read_schema(p).names) for p in files}
    head = ("request_id", "timestamp", "endpoint", "model_name", "model_version")
    assert schemas == {
        (*head, "pipeline_run_id", "ticker", "date", "bars", "ret_1", "vol_20", "prediction"),
        (
            *head,
            "pipeline_run_id",
            "ticker",
            "date",
            "bars",
            "ret_1",
            "rsi_14",
            "vol_20",
            "prediction",
        ),
    }
    schema = pq.read_schema(files[0])
    assert str(schema.field("timestamp").type) == "timestamp[ms, tz=UTC]"
    assert str(schema.field("date").type) == "date32[day]"


def test_read_log_returns_the_union_filtered_by_time_and_model(make_log, tmp_path: Path) -> None:
    now = [DAY1]
    log = make_log(clock=lambda: now[0])
    send(log, "a", rows=2, tickers=["AAA", "BBB"], dates=["2024-11-29", "2024-11-28"])
    now[0] += 1
    send(log, "b", rows=1, names=["ret_1", "rsi_14", "vol_20"])
    now[0] = DAY2
    send(log, "c", rows=1)
    log.close()
    rows = read_log(str(tmp_path / "log"))
    assert list(rows.request_id) == ["a", "a", "b", "c"]
    assert list(rows.columns)[-1] == "prediction"
    assert rows.ticker.tolist()[:2] == ["AAA", "BBB"] and rows.ticker.isna().tolist()[2:] == [1, 1]
    assert rows.date.dt.strftime("%Y-%m-%d").tolist()[:2] == ["2024-11-29", "2024-11-28"]
    assert rows.rsi_14.isna().tolist() == [True, True, False, True]
    assert rows.prediction.tolist() == [0.0, 0.5, 0.0, 0.0]
    assert rows.ret_1.tolist() == [0.0, 1.0, 0.0, 0.0]
    assert (rows.timestamp.dt.tz is not None) and rows.timestamp.iloc[0].timestamp() == DAY1
    later = read_log(str(tmp_path / "log"), since="2024-12-01")
    assert list(later.request_id) == ["c"]
    earlier = read_log(str(tmp_path / "log"), until=pd.Timestamp(DAY2, unit="s"))
    assert list(earlier.request_id) == ["a", "a", "b"]
    assert read_log(str(tmp_path / "log"), model_name="other").empty


def test_read_log_of_a_log_never_written_is_empty(tmp_path: Path) -> None:
    rows = read_log(str(tmp_path / "nothing"))
    assert rows.empty and "prediction" in rows.columns


def test_no_partial_file_is_ever_visible(make_log, tmp_path: Path) -> None:
    root = tmp_path / "log"
    log = make_log()
    stop = threading.Event()
    seen: dict[Path, int] = {}
    errors: list[BaseException] = []

    def reader() -> None:
        while not stop.is_set():
            for path in parquet_files(root):
                try:
                    seen[path] = pq.read_metadata(path).num_rows
                except FileNotFoundError:
                    pass  # never: files are renamed into place, not removed
                except Exception as exc:  # a half-written file fails to parse
                    errors.append(exc)

    watcher = threading.Thread(target=reader)
    watcher.start()
    try:
        for i in range(200):
            send(log, f"r{i}", rows=10)
            assert log.flush()  # one file per request: many writes for the reader to catch
        log.close()
    finally:
        stop.set()
        watcher.join()
    assert not errors
    assert sum(pq.read_metadata(p).num_rows for p in parquet_files(root)) == 2000
    assert not [p for p in root.rglob("*") if p.name.startswith(".")]  # no temporary left


def test_close_writes_everything_left(make_log, tmp_path: Path) -> None:
    log = make_log()
    for i in range(7):
        send(log, f"r{i}", rows=i + 1)
    log.close()
    stats = log.stats()
    assert stats.written_rows == 28 and stats.queued_rows == 0 and stats.dropped_rows == 0
    assert len(read_log(str(tmp_path / "log"))) == 28
    send(log, "late")  # after close: counted, not lost silently
    assert log.stats().dropped_rows == 1


def test_a_failing_store_is_retried_until_it_works(make_log, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the log's folder should be\n")
    log = make_log(blocker / "log", flush_seconds=0.05)
    send(log, "r0", rows=4)
    until(lambda: log.stats().failed_writes >= 2)  # retried, with backoff
    assert log.stats().queued_rows == 4 and "NotADirectoryError" in str(log.stats().last_error)
    blocker.unlink()
    until(lambda: log.stats().written_rows == 4)
    assert len(read_log(str(blocker / "log"))) == 4


def test_rows_beyond_the_bound_are_dropped_counted_and_logged(
    make_log, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder\n")
    log = make_log(blocker / "log", flush_seconds=0.05, max_buffered_rows=10)
    send(log, "r0", rows=6)
    send(log, "r1", rows=6)  # 4 fit, 2 dropped
    send(log, "r2", rows=3)  # none fit
    stats = log.stats()
    assert (stats.queued_rows, stats.dropped_rows) == (10, 5)
    with caplog.at_level(logging.WARNING, logger="kubeline.serving.inference_log"):
        blocker.unlink()
        assert log.flush(timeout=10)
        log.close()
    stats = log.stats()
    assert (stats.written_rows, stats.dropped_rows) == (10, 5)
    assert stats.written_rows + stats.dropped_rows == 15  # every row sent is accounted for
    assert "dropped 5 rows (5 in all)" in caplog.text
    assert read_log(str(blocker / "log")).request_id.tolist() == ["r0"] * 6 + ["r1"] * 4


def test_rows_unwritten_at_the_close_timeout_are_counted_as_dropped(
    make_log, tmp_path: Path
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder\n")
    log = make_log(blocker / "log")
    send(log, "r0", rows=3)
    log.close(timeout=0.3)
    stats = log.stats()
    assert (stats.queued_rows, stats.written_rows, stats.dropped_rows) == (0, 0, 3)
    assert stats.failed_writes >= 1


def test_record_refuses_rows_of_different_lengths_and_clashing_names(make_log) -> None:
    log = make_log()
    frame = pd.DataFrame({"ret_1": [1.0, 2.0]})
    with pytest.raises(DataError, match="features 2, predictions 1"):
        log.record(
            request_id="x",
            endpoint="predict",
            model_name="m",
            model_version="1",
            pipeline_run_id=None,
            features=frame,
            predictions=[1.0],
        )
    with pytest.raises(DataError, match="prediction"):
        send(log, "y", names=["prediction"])
    with pytest.raises(DataError, match="ret_1 of request twice are named twice"):
        log.record(
            request_id="twice",
            endpoint="predict",
            model_name="m",
            model_version="1",
            pipeline_run_id=None,
            features=pd.DataFrame([[1.0, 2.0]], columns=["ret_1", "ret_1"]),
            predictions=[1.0],
        )
    with pytest.raises(DataError, match="cannot be logged"):
        send(log, "z", dates=["yesterday"])
    assert log.stats().queued_rows == 0


def test_the_location_follows_the_settings(tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert log_location(Settings(state_dir=state)) == str(state.resolve() / "inference-log")
    s3 = Settings(mlflow_artifact_location="s3://b/mlflow/")
    assert log_location(s3) == "s3://b/mlflow/inference-log"
    local = Settings(mlflow_artifact_location=(tmp_path / "art").as_uri())
    assert log_location(local) == str(tmp_path / "art" / "inference-log")
    named = Settings(inference_log_location="s3://b/log", mlflow_artifact_location="s3://x/y")
    assert log_location(named) == "s3://b/log"
    with pytest.raises(ConfigError, match="KUBELINE_INFERENCE_LOG_LOCATION"):
        log_location(Settings(mlflow_artifact_location="gs://b/x"))


def test_from_settings_is_none_when_disabled_and_uses_the_settings(tmp_path: Path) -> None:
    assert InferenceLog.from_settings(Settings(inference_log_enabled=False)) is None
    log = InferenceLog.from_settings(
        Settings(inference_log_location=str(tmp_path / "l"), inference_log_batch_rows=2)
    )
    assert log is not None
    try:
        send(log, "r0", rows=2)
        until(lambda: log.stats().written_rows == 2)
    finally:
        log.close()
    assert log.location == str(tmp_path / "l")
