"""A window's claim on the S3 server the fixtures start: a conditional put that the store
itself refuses the second time, so two racing checks cannot both start a retraining."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from kubeline.monitor.retrain import CLAIMS_FOLDER, claim_window, window_key
from kubeline.monitor.summary import CheckSummary, check_key
from kubeline.settings import Settings

pytestmark = pytest.mark.integration


def check(hour: int) -> CheckSummary:
    when = datetime(2026, 3, 10, hour, tzinfo=UTC)
    return CheckSummary(
        decision="drift", reason="r", exit_code=10, checked_at=when.isoformat(),
        model_name="m", model_version="3", mlflow_run_id=None, pipeline_run_id=None,
        source="inference log", window_start="2026-03-01", window_end="2026-03-08", rows=500,
        drift_rows=500, sampled=False, reference_rows=100, drift_method="wasserstein",
        drift_threshold=0.3, drifted_share=0.5, drifted_features=["a"], drift_scores={},
        prediction_drift=0.1, truth_rows=0, rmse=None, mae=None, holdout_rmse=None,
        check_id=check_key(when, "m", "3"),
    )  # fmt: skip


def test_the_s3_store_refuses_a_second_claim_of_a_window(s3_server, monkeypatch, request) -> None:
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    location = f"s3://{s3_server.bucket}/claims-{request.node.name[-8:]}"
    barrier = threading.Barrier(8)
    won: list[bool] = []

    def race(hour: int) -> None:
        barrier.wait()
        won.append(claim_window(location, check(hour), settings))

    threads = [threading.Thread(target=race, args=(h,)) for h in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(won) == [False] * 7 + [True]
    prefix = location.removeprefix(f"s3://{s3_server.bucket}/")
    assert s3_server.keys(prefix) == [f"{prefix}/{CLAIMS_FOLDER}/{window_key(check(0))}.json"]
    assert not claim_window(location, check(9), settings)  # later, sequentially: still refused
