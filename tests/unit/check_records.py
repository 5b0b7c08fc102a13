"""Check summaries as ``kubeline monitor`` writes them, for the history and loop-back tests."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from kubeline.monitor.summary import SUMMARY_FILE, CheckSummary, check_key


def summary(
    when: datetime,
    decision: str = "ok",
    version: str = "1",
    *,
    model: str = "m",
    start: str | None = None,
    end: str | None = None,
) -> CheckSummary:
    """One check of ``model`` version ``version`` made at ``when``; its id is its folder's."""
    return CheckSummary(
        decision=decision, reason="r", exit_code=0, checked_at=when.isoformat(),
        model_name=model, model_version=version, mlflow_run_id=None, pipeline_run_id=None,
        source="inference log", window_start=start, window_end=end, rows=500, drift_rows=500,
        sampled=False, reference_rows=100, drift_method="wasserstein", drift_threshold=0.3,
        drifted_share=0.5, drifted_features=["a"], drift_scores={"a": float("nan")},
        prediction_drift=0.1, truth_rows=0, rmse=None, mae=None, holdout_rmse=None,
        check_id=check_key(when, model, version),
    )  # fmt: skip


def write(root: Path, item: CheckSummary, text: str | None = None) -> None:
    """The check's folder under ``root`` with its summary.json (``text`` instead, if given)."""
    folder = root / item.check_id
    folder.mkdir(parents=True)
    (folder / SUMMARY_FILE).write_text(text or item.to_json())
