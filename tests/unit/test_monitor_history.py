"""Checks read back from their folders: order, ids, old summaries, and a broken one named."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kubeline.errors import ConfigError, StorageError
from kubeline.monitor.history import find_check, list_checks
from kubeline.monitor.summary import SUMMARY_FILE, CheckSummary, check_key


def summary(when: datetime, decision: str = "ok", version: str = "1") -> CheckSummary:
    return CheckSummary(
        decision=decision, reason="r", exit_code=0, checked_at=when.isoformat(),
        model_name="m", model_version=version, mlflow_run_id=None, pipeline_run_id=None,
        source="inference log", window_start=None, window_end=None, rows=10, drift_rows=10,
        sampled=False, reference_rows=10, drift_method="wasserstein", drift_threshold=0.3,
        drifted_share=0.5, drifted_features=["a"], drift_scores={"a": float("nan")},
        prediction_drift=0.1, truth_rows=0, rmse=None, mae=None, holdout_rmse=None,
        check_id=check_key(when, "m", version),
    )  # fmt: skip


def write(root: Path, item: CheckSummary, text: str | None = None) -> None:
    folder = root / item.check_id
    folder.mkdir(parents=True)
    (folder / SUMMARY_FILE).write_text(text or item.to_json())


def test_checks_come_back_oldest_first_with_their_ids(tmp_path: Path) -> None:
    days = [datetime(2026, 12, d, 6, tzinfo=UTC) for d in (3, 1, 2)]
    for day in days:
        write(tmp_path, summary(day))
    (tmp_path / "stray").mkdir()  # a folder with no summary is not a check
    checks = list_checks(str(tmp_path))
    assert [c.checked_at[:10] for c in checks] == ["2026-12-01", "2026-12-02", "2026-12-03"]
    assert checks[0].check_id == "20261201T060000Z-m-v1"
    assert checks[0].drift_scores == {"a": None}  # NaN was written as null


def test_an_absent_location_is_no_checks(tmp_path: Path) -> None:
    assert list_checks(str(tmp_path / "none")) == []


def test_a_summary_from_before_ids_takes_its_folder_name(tmp_path: Path) -> None:
    item = summary(datetime(2026, 12, 1, tzinfo=UTC))
    old = dataclasses.replace(item, check_id="")
    text = old.to_json().replace('"check_id": ""', '"retired_field": 1')
    write(tmp_path, item, text)
    assert list_checks(str(tmp_path))[0].check_id == item.check_id


def test_a_broken_summary_is_named_not_skipped(tmp_path: Path) -> None:
    item = summary(datetime(2026, 12, 1, tzinfo=UTC))
    write(tmp_path, item, "{not json")
    with pytest.raises(StorageError, match=item.check_id):
        list_checks(str(tmp_path))


def test_find_check_names_the_latest_ids_when_missing(tmp_path: Path) -> None:
    item = summary(datetime(2026, 12, 1, tzinfo=UTC), decision="drift")
    write(tmp_path, item)
    assert find_check(str(tmp_path), item.check_id).decision == "drift"
    with pytest.raises(ConfigError, match="20261201T000000Z-m-v1"):
        find_check(str(tmp_path), "nope")
