"""`kubeline monitor history`: the table of the last checks and the trend PNG."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kubeline.monitor.summary import SUMMARY_FILE, CheckSummary, check_key
from kubeline.monitor.trend import recent, row, write_plot

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def summary(when: datetime, decision: str, share: float, rmse: float | None, model: str = "m"):
    return CheckSummary(
        decision=decision, reason="r", exit_code=0, checked_at=when.isoformat(timespec="seconds"),
        model_name=model, model_version="3", mlflow_run_id=None, pipeline_run_id=None,
        source="inference log", window_start="2026-01-01", window_end="2026-01-08", rows=50,
        drift_rows=50, sampled=False, reference_rows=100, drift_method="wasserstein",
        drift_threshold=0.3, drifted_share=share, drifted_features=[], drift_scores={},
        prediction_drift=0.1, truth_rows=0, rmse=rmse, mae=None, holdout_rmse=None,
        check_id=check_key(when, model, "3"),
    )  # fmt: skip


def checks() -> list[CheckSummary]:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    return [
        summary(start, "ok", 0.1, 0.011),
        summary(start + timedelta(days=1), "drift", 0.6, None),
        summary(start + timedelta(days=2), "ok", 0.0, 0.012, model="other"),
        summary(start + timedelta(days=3), "decay", 0.2, 0.03),
    ]


def test_recent_keeps_the_last_n_of_one_model_oldest_first() -> None:
    chosen = recent(checks(), 2, "m")
    assert [c.decision for c in chosen] == ["drift", "decay"]
    assert [c.decision for c in recent(checks(), 10)] == ["ok", "drift", "ok", "decay"]
    assert recent(checks(), 0) == []


def test_a_row_shows_what_was_measured_and_a_dash_for_what_was_not() -> None:
    values = row(checks()[1])
    assert values[1] == "2026-01-01 to 2026-01-08"
    assert values[2:6] == ("m v3", "drift", "60%", "-")
    assert values[6:] == ("-", checks()[1].check_id)  # no retraining recorded


def test_the_plot_is_a_png_written_in_place(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "trend.png"
    assert write_plot(checks(), str(target)) == str(target)
    assert target.read_bytes()[:8] == PNG_MAGIC
    assert [p.name for p in target.parent.iterdir()] == ["trend.png"]  # no temporary left


def written_checks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """``checks()`` in their folders, and the settings pointing at them."""
    root = tmp_path / "checks"
    for item in checks():
        (root / item.check_id).mkdir(parents=True)
        (root / item.check_id / SUMMARY_FILE).write_text(item.to_json())
    monkeypatch.setenv("KUBELINE_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("KUBELINE_MONITOR_LOCATION", str(root))
    return root


def test_history_prints_the_table_and_writes_the_trend_beside_the_checks(
    cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    root = written_checks(monkeypatch, tmp_path)
    done = cli("monitor", "history", "-n", "2", "--model", "m")
    assert done.exit_code == 0, done.output
    assert "decay" in done.stdout and "60%" in done.stdout
    assert checks()[0].check_id not in done.stdout  # only the last two of model m
    assert "other" not in done.stdout
    assert (root / "trend.png").read_bytes()[:8] == PNG_MAGIC
    assert f"trend: {root / 'trend.png'}" in done.stdout.replace("\n", "")
    # the trend file beside the checks is not mistaken for a check
    again = cli("monitor", "history")
    assert again.exit_code == 0, again.output


def test_history_with_no_checks_says_so(
    cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KUBELINE_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("KUBELINE_MONITOR_LOCATION", raising=False)
    done = cli("monitor", "history")
    assert done.exit_code == 0, done.output
    assert "no checks" in done.stdout


def test_history_refuses_a_bad_count_and_a_bad_plot_path_before_listing(
    cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    written_checks(monkeypatch, tmp_path)
    zero = cli("monitor", "history", "-n", "0")
    assert zero.exit_code == 2 and "Traceback" not in zero.output
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    bad = cli("monitor", "history", "--plot", str(blocker / "trend.png"))
    assert bad.exit_code == 1 and "--plot" in bad.output and "a file" in bad.output
    assert checks()[0].check_id not in bad.stdout  # nothing listed before the refusal
    unknown = cli("monitor", "history", "--model", "nope")
    assert unknown.exit_code == 0 and "no checks of model nope" in unknown.stdout


def test_window_bounds_read_as_days_at_midnight_and_minutes_otherwise() -> None:
    from kubeline.monitor.trend import _moment

    assert _moment("2005-06-01T00:00:00") == "2005-06-01"
    assert _moment("2026-12-03T14:52:01.123+00:00") == "2026-12-03 14:52"
    assert _moment("not a time") == "not a time"
