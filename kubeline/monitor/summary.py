"""One check's record: what ``summary.json`` holds, what ``kubeline monitor`` prints.

The check's id is the name of its folder under the checks' location (``check_key``): the time it
ran, then the model and version it judged, so ids sort by time and say what they are about.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

SUMMARY_FILE = "summary.json"


def check_key(when: datetime, model_name: str, model_version: str) -> str:
    return f"{when:%Y%m%dT%H%M%SZ}-{model_name}-v{model_version}"


@dataclass
class CheckSummary:
    """One check, as summary.json holds it and ``kubeline monitor`` prints it."""

    decision: str
    reason: str
    exit_code: int
    checked_at: str
    model_name: str
    model_version: str
    mlflow_run_id: str | None
    pipeline_run_id: str | None
    source: str
    window_start: str | None
    window_end: str | None
    rows: int
    drift_rows: int  # rows compared for drift (a sample when the window is larger)
    sampled: bool
    reference_rows: int
    drift_method: str
    drift_threshold: float
    drifted_share: float
    drifted_features: list[str]
    drift_scores: dict[str, float]
    prediction_drift: float | None
    truth_rows: int
    rmse: float | None
    mae: float | None
    holdout_rmse: float | None
    naive_rmse: dict[str, float] = field(default_factory=dict)
    decay_reasons: list[str] = field(default_factory=list)
    report: str | None = None
    seconds: float = 0.0
    check_id: str = ""
    # What the check did about retraining (kubeline.monitor.loop): the record's status, and
    # the line the monitor prints of it.
    retrain: str = ""
    retrain_note: str = ""
    # Training/serving skew (kubeline.monitor.skew): /predict_history rows recomputed with the
    # training code, how many differ (or were refused), the largest gap per feature.
    skew_rows: int = 0
    skew_checked: int = 0
    skewed_rows: int = 0
    skew_failed: int = 0
    skewed_features: dict[str, float] = field(default_factory=dict)
    skew_examples: list[dict[str, Any]] = field(default_factory=list)
    skew_note: str = ""

    def to_json(self) -> str:
        def clean(value: Any) -> Any:  # NaN is not JSON
            if isinstance(value, float) and not math.isfinite(value):
                return None
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items()}
            return value

        return json.dumps({k: clean(v) for k, v in asdict(self).items()}, indent=2)

    @classmethod
    def from_json(cls, text: str, check_id: str = "") -> CheckSummary:
        """A summary written by this or an older kubeline: unknown keys are ignored, and a
        summary written before checks had ids takes its folder's name."""
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        summary = cls(**{k: v for k, v in data.items() if k in known})
        summary.check_id = summary.check_id or check_id
        return summary
