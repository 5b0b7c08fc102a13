"""The inference log against a real S3 server (SeaweedFS), including an outage of that server."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

from kubeline.serving.inference_log import InferenceLog, read_log
from kubeline.settings import Settings

pytestmark = pytest.mark.integration


def settings_for(server: Any) -> Settings:
    return Settings(
        s3_endpoint_url=server.endpoint,
        s3_access_key_id=server.access_key,  # type: ignore[arg-type]
        s3_secret_access_key=server.secret_key,  # type: ignore[arg-type]
    )


def until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def send(log: InferenceLog, request: str, rows: int) -> None:
    log.record(
        request_id=request,
        endpoint="predict_history",
        model_name="m",
        model_version="3",
        pipeline_run_id="run-9",
        features=pd.DataFrame({"ret_1": [0.01] * rows, "vol_20": [0.2] * rows}),
        predictions=[0.001] * rows,
        tickers=["AAA"] * rows,
        dates=["2024-05-02"] * rows,
    )


def test_rows_land_in_the_bucket_as_date_partitioned_parquet(s3_server: Any) -> None:
    prefix = f"log-{uuid.uuid4().hex[:8]}"
    location = f"s3://{s3_server.bucket}/{prefix}"
    settings = settings_for(s3_server)
    log = InferenceLog(location, settings=settings, batch_rows=10, flush_seconds=3600)
    for i in range(25):
        send(log, f"r{i}", rows=1)
    log.close()
    stats = log.stats()
    assert (stats.written_rows, stats.dropped_rows, stats.failed_writes) == (25, 0, 0)
    keys = s3_server.keys(prefix + "/")
    day = time.strftime("%Y-%m-%d", time.gmtime())
    assert keys and all(k.startswith(f"{prefix}/date=") and k.endswith(".parquet") for k in keys)
    assert {k.split("/")[1] for k in keys} <= {f"date={day}", f"date={_yesterday()}"}
    rows = read_log(location, settings)
    assert sorted(rows.request_id) == sorted(f"r{i}" for i in range(25))
    assert set(rows.ticker) == {"AAA"} and set(rows.model_version) == {"3"}
    assert not any(".tmp" in k for k in keys)


def _yesterday() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(time.time() - 86_400))


def test_an_outage_keeps_rows_buffered_and_counts_what_does_not_fit(
    restartable_s3_server: Any,
) -> None:
    # A server of this test's own: stopping the session's would break other tests.
    s3 = restartable_s3_server
    settings = settings_for(s3.server)
    location = f"s3://{s3.server.bucket}/outage"
    log = InferenceLog(
        location,
        settings=settings,
        batch_rows=5,
        flush_seconds=0.2,
        max_buffered_rows=50,
        retry_seconds=(0.2, 1.0),
    )
    sent = 0
    for i in range(4):
        send(log, f"before-{i}", rows=5)
        sent += 5
    until(lambda: log.stats().written_rows == 20, 30)

    s3.stop()  # by PID: the store goes away mid-run
    for i in range(6):
        send(log, f"during-{i}", rows=5)
        sent += 5
    until(lambda: log.stats().failed_writes >= 2, 30)  # tried, failed, tried again
    assert log.stats().queued_rows == 30
    for i in range(8):  # 20 more fit under the bound of 50, 20 do not
        send(log, f"beyond-{i}", rows=5)
        sent += 5
    stats = log.stats()
    assert (stats.queued_rows, stats.dropped_rows, stats.written_rows) == (50, 20, 20)
    assert stats.last_error

    s3.start()
    until(lambda: log.stats().written_rows == 70, 60)  # the retries land after the restart
    log.close()
    stats = log.stats()
    assert sent == stats.written_rows + stats.dropped_rows == 90
    assert stats.queued_rows == 0

    rows = read_log(location, settings)
    assert len(rows) == 70
    counts = rows.request_id.str.split("-").str[0].value_counts().to_dict()
    assert counts == {"before": 20, "during": 30, "beyond": 20}
