"""The loop back's decisions on real check folders: held, pending, duplicate, the cooldown, and
what ``kubeline retrain --approve`` refuses. Starting a training run is in the integration tests
(the local runner, and KFP's API through the contract server)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from check_records import summary, write

from kubeline.errors import ConfigError
from kubeline.monitor import loop
from kubeline.monitor.summary import CheckSummary
from kubeline.runconfig import MonitorConfig
from kubeline.settings import Settings

DAY = datetime(2026, 12, 1, 6, tzinfo=UTC)


def breach(days: int, *, start: str | None = None, version: str = "1") -> CheckSummary:
    """A drift check ``days`` after DAY, each day's window its own unless ``start`` is shared."""
    when = DAY + timedelta(days=days)
    return summary(
        when, "drift", version, start=start or f"{when:%Y-%m-%d}", end=f"{when:%Y-%m-%d}"
    )


def act(root: Path, item: CheckSummary, **config: object) -> loop.RetrainRecord | None:
    """What the monitor does after writing a check: write it, then apply ``retrain``."""
    write(root, item)
    cfg = MonitorConfig.model_validate({"retrain": "manual", **config})
    settings = Settings(state_dir=root.parent / "state")
    return loop.act(item, cfg, settings, location=str(root), config_text="seed: 3\n")


def test_retrain_off_or_a_check_that_is_no_breach_records_nothing(tmp_path: Path) -> None:
    assert act(tmp_path, breach(0), retrain="off") is None
    assert act(tmp_path, summary(DAY + timedelta(days=1), "ok")) is None
    assert list(tmp_path.glob(f"*/{loop.RETRAIN_FILE}")) == []


def test_one_breach_is_held_and_the_second_in_a_row_waits_for_an_approval(
    tmp_path: Path,
) -> None:
    first = act(tmp_path, breach(0))
    assert first is not None and first.status == loop.Status.HELD
    assert first.reason == "1 consecutive breaching checks of 2 needed"
    second = act(tmp_path, breach(1))
    assert second is not None and second.status == loop.Status.PENDING
    assert "approve with `kubeline retrain --approve 20261202T060000Z-m-v1`" in second.line()
    # Written beside the check, with the run config an approval will train with.
    written = json.loads((tmp_path / second.check_id / loop.RETRAIN_FILE).read_text())
    assert written["status"] == "pending" and written["config"] == "seed: 3\n"
    assert [r.check_id for r in loop.pending(str(tmp_path))] == [second.check_id]


def test_a_second_check_of_the_same_window_is_a_duplicate_naming_the_first(
    tmp_path: Path,
) -> None:
    window = {"start": "2026-11-30", "end": "2026-12-01"}
    first = act(tmp_path, summary(DAY, "drift", **window), consecutive=1)
    later = summary(DAY + timedelta(hours=1), "decay", **window)
    again = act(tmp_path, later, consecutive=1)
    assert first is not None and first.status == loop.Status.PENDING
    assert again is not None and again.status == loop.Status.DUPLICATE
    assert again.reason == f"the window was claimed by {first.check_id} first"
    # A newer window of the same version is a window of its own.
    newer = act(tmp_path, breach(2), consecutive=1)
    assert newer is not None and newer.status == loop.Status.PENDING


def test_a_retraining_started_within_the_cooldown_holds_the_next_breach(tmp_path: Path) -> None:
    started = act(tmp_path, breach(0), consecutive=1)
    assert started is not None
    started.status, started.started_at = (
        loop.Status.STARTED,
        (DAY + timedelta(hours=20)).isoformat(),
    )
    loop.write(str(tmp_path), started, None)
    held = act(tmp_path, breach(1), consecutive=1, cooldown="7d")
    assert held is not None and held.status == loop.Status.HELD
    assert "within the cooldown" in held.reason
    # Another model's retraining does not hold this one, nor one that failed to start.
    assert loop.last_started(loop.records(str(tmp_path)), "other") is None
    started.status = loop.Status.FAILED
    loop.write(str(tmp_path), started, None)
    assert loop.last_started(loop.records(str(tmp_path)), "m") is None


def test_approving_an_unknown_an_ok_or_a_held_check_is_refused_saying_why(
    tmp_path: Path,
) -> None:
    settings = Settings(state_dir=tmp_path / "state")
    act(tmp_path, summary(DAY, "ok"))
    held = act(tmp_path, breach(1))
    assert held is not None
    where = str(tmp_path)
    with pytest.raises(ConfigError, match="no check 'nope'") as unknown:
        loop.approve("nope", settings, location=where)
    assert held.check_id in (unknown.value.hint or "")
    with pytest.raises(ConfigError, match="recommended no retraining: it was ok, not a breach"):
        loop.approve("20261201T060000Z-m-v1", settings, location=where)
    with pytest.raises(ConfigError, match="nothing to approve: its retraining is held"):
        loop.approve(held.check_id, settings, location=where)


def test_racing_approvals_start_one_retraining_and_a_failed_start_says_why(
    tmp_path: Path,
) -> None:
    act(tmp_path, breach(0))
    pending = act(tmp_path, breach(1))
    assert pending is not None and pending.status == loop.Status.PENDING
    # The data a retraining would read is not there: the start fails, for real, at once.
    settings = Settings(state_dir=tmp_path / "state", retrain_data=str(tmp_path / "no-data"))
    results: list[object] = []

    def approve() -> None:
        try:
            results.append(loop.approve(pending.check_id, settings, location=str(tmp_path)))
        except ConfigError as exc:
            results.append(exc)

    threads = [threading.Thread(target=approve) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    records = [r for r in results if isinstance(r, loop.RetrainRecord)]
    assert len(records) == 1, results
    (record,) = records
    assert record.status == loop.Status.FAILED and "no such file or folder" in record.reason
    assert record.approved_at is not None
    with pytest.raises(ConfigError, match="its retraining is failed"):
        loop.approve(pending.check_id, settings, location=str(tmp_path))


def test_a_check_in_a_pod_without_a_kfp_host_does_not_train_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    record = act(tmp_path, breach(0), retrain="auto", consecutive=1)
    assert record is not None and record.status == loop.Status.FAILED
    assert "through KFP, and KUBELINE_KFP_HOST is not set" in record.reason
