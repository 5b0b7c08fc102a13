"""Monitor: one check of the champion (or a pinned version) against a current window.

``check`` loads the version (the service's loader), its reference (the training features logged
with it at register), the window (the inference log, or market data scored with the training
code), compares them for drift with Evidently, judges decay where targets are realized, decides
(``kubeline.monitor.decision``) and writes, under a dated key of the checks' location (local or
s3://, each file atomically): ``report.html`` (Evidently's report) and ``summary.json``
(``CheckSummary``). The headline numbers go to MLflow, in a run tagged with the judged
version and the pipeline run behind it.
"""

from __future__ import annotations

import json
import math
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubeline.monitor.summary import SUMMARY_FILE, CheckSummary, check_key
from kubeline.steps.base import run_config

if TYPE_CHECKING:
    from kubeline.monitor.window import Window
    from kubeline.serving.loaded import ServedModel
    from kubeline.settings import Settings

REPORT_FILE = "report.html"
CHECKS_FOLDER = "monitor"


def checks_location(settings: Settings) -> str:
    """Where checks are written: the setting, else beside the artifacts when they are on S3,
    else the state folder."""
    if settings.monitor_location:
        return settings.monitor_location.removeprefix("file://")
    root = settings.mlflow_artifact_location or ""
    if root.startswith("s3://"):
        return f"{root.rstrip('/')}/{CHECKS_FOLDER}"
    return str(settings.state_path / CHECKS_FOLDER)


def resolve_since(since: str | None, now: datetime) -> str | None:
    """``24h`` or ``7d`` (what a CronJob passes: the hours before each run) as an ISO time;
    anything else as given (a date or an ISO time)."""
    from kubeline.durations import parse_duration

    if since is None:
        return None
    span = parse_duration(since)
    if span is not None:
        return (now - span).isoformat()
    try:
        datetime.fromisoformat(since.strip())
    except ValueError:
        from kubeline.errors import ConfigError

        raise ConfigError(
            f"--since {since!r} is not a date, a time or a duration",
            hint="give YYYY-MM-DD, an ISO time (2026-12-01T06:00), or 24h / 7d",
        ) from None
    return since


def _holdout_rmse(settings: Settings, served: ServedModel) -> float:
    """The version's holdout rmse, from the scores register tagged it with."""
    from kubeline import registry
    from kubeline.registry import Tag

    version = registry.connect(settings).get_model_version(served.name, served.version)
    scores = json.loads(version.tags.get(Tag.SCORES, "{}") or "{}")
    if scores.get("metric") == "rmse" and isinstance(scores.get("model"), int | float):
        return float(scores["model"])
    return math.nan


def check(
    *,
    current: str | None = None,
    truth: str | None = None,
    since: str | None = None,
    until: str | None = None,
    version: str | None = None,
    model_name: str | None = None,
    config: str = "",
    out: str | None = None,
    report_copy: str | None = None,
    settings: Settings | None = None,
) -> CheckSummary:
    """Run one check and write its report and summary; see the module docstring."""
    from kubeline.data.schema import PREDICTION, TARGET
    from kubeline.monitor import decay as decay_mod
    from kubeline.monitor import window as window_mod
    from kubeline.monitor.decision import EXIT_CODES, decide
    from kubeline.monitor.drift import drift_report, sample_window
    from kubeline.monitor.reference import load_reference
    from kubeline.monitor.skew import recompute
    from kubeline.serving.loaded import load_served
    from kubeline.settings import get_settings
    from kubeline.storage import check_folder_target, is_s3

    started = time.perf_counter()
    # MLflow draws a progress bar for every artifact read; a CronJob's log wants none.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    settings = settings or get_settings()
    if out and not is_s3(out):  # a wrong place fails before the registry is asked anything
        check_folder_target(out, "--out")
    cfg = run_config(config).monitor
    served = load_served(settings, name=model_name or None, version=version or None)
    card = served.card
    reference = load_reference(served)
    since = resolve_since(since, datetime.now(UTC))
    window: Window = (
        window_mod.from_market_data(current, served, settings, since, until)
        if current
        else window_mod.from_inference_log(served, settings, since, truth, until)
    )
    frame = window.frame
    skew = recompute(frame, card)
    now = datetime.now(UTC)
    features = served.feature_names
    enough = window.rows >= cfg.min_rows
    compared = sample_window(frame) if enough else frame
    drift = snapshot = None
    if enough:
        drift, snapshot = drift_report(
            reference, compared, features, PREDICTION,
            method=cfg.drift_method, threshold=cfg.drift_threshold,
            drifted_share=cfg.drifted_share,
        )  # fmt: skip
    known = frame.dropna(subset=[TARGET]) if TARGET in frame.columns else frame.iloc[0:0]
    decay = None
    if len(known) >= cfg.min_rows:
        decay = decay_mod.judge(
            known,
            card,
            prediction=PREDICTION,
            holdout_rmse=_holdout_rmse(settings, served),
            allowed_decay=cfg.allowed_decay,
        )
    drifted = drift is not None and drift.share >= cfg.drifted_share
    outcome, reason = decide(
        rows=window.rows,
        min_rows=cfg.min_rows,
        drifted=drifted,
        decayed=None if decay is None else decay.decayed,
        truth_rows=len(known),
        truth_asked=window.truth_asked,
    )
    if outcome.value == "decay" and decay is not None:
        reason = f"{reason}: {'; '.join(decay.reasons)}"
    elif outcome.value == "drift" and drift is not None:
        top = ", ".join(f"{c.column} ({c.score:.2f})" for c in drift.drifted[:5])
        reason = f"{drift.share:.0%} of the features drifted: {top}"
    key = check_key(now, served.name, served.version)
    location = out or f"{checks_location(settings).rstrip('/')}/{key}"
    summary = CheckSummary(
        decision=outcome.value,
        reason=reason,
        exit_code=EXIT_CODES[outcome],
        checked_at=now.isoformat(timespec="seconds"),
        model_name=served.name,
        model_version=served.version,
        mlflow_run_id=served.mlflow_run_id,
        pipeline_run_id=served.pipeline_run_id,
        source=window.source,
        window_start=window.start,
        window_end=window.end,
        rows=window.rows,
        drift_rows=len(compared) if drift is not None else 0,
        sampled=drift is not None and len(compared) < len(frame),
        reference_rows=len(reference),
        drift_method=cfg.drift_method,
        drift_threshold=cfg.drift_threshold,
        drifted_share=drift.share if drift is not None else 0.0,
        drifted_features=[c.column for c in drift.drifted] if drift is not None else [],
        drift_scores={c.column: c.score for c in drift.features} if drift is not None else {},
        prediction_drift=drift.prediction.score if drift is not None else None,
        truth_rows=len(known),
        rmse=decay.rmse if decay else None,
        mae=decay.mae if decay else None,
        holdout_rmse=decay.holdout_rmse if decay else None,
        naive_rmse=decay.naive_rmse if decay else {},
        decay_reasons=decay.reasons if decay else [],
        report=f"{location}/{REPORT_FILE}" if snapshot is not None else None,
        check_id=key,
        skew_rows=skew.rows,
        skew_checked=skew.checked,
        skewed_rows=skew.skewed_rows,
        skew_failed=skew.failed,
        skewed_features=skew.max_abs_diff,
        skew_examples=skew.examples,
        skew_note=skew.line(),
    )
    summary.seconds = round(time.perf_counter() - started, 3)
    _write(location, snapshot, summary, settings)
    if out is None:  # a check written elsewhere (--out) is not in the history the guards read
        from kubeline.monitor import loop

        loop.act(summary, cfg, settings, location=checks_location(settings), config_text=config)
    if report_copy:  # a KFP HTML artifact: the report, or why there is none
        _write_report(report_copy, snapshot, summary)
    _log_to_mlflow(settings, summary)
    # Last, and never fatal: the summary is written whatever Prometheus or the webhook say.
    from kubeline.monitor import prometheus, webhook

    prometheus.publish(summary, settings)
    webhook.notify(summary, settings)
    return summary


def _write_report(path: str, snapshot: Any, summary: CheckSummary) -> None:
    from html import escape

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if snapshot is not None:
        snapshot.save_html(str(path))  # a str: given a Path, Evidently writes nothing
        return
    Path(path).write_text(
        f"<!doctype html><meta charset='utf-8'><title>kubeline monitor</title>"
        f"<h1>{escape(summary.decision)}</h1><p>{escape(summary.reason)}</p>"
        f"<p>{escape(summary.model_name)} version {escape(summary.model_version)}, "
        f"{summary.rows} rows of the {escape(summary.source)}</p>",
        encoding="utf-8",
    )


def headline_metrics(summary: CheckSummary) -> dict[str, float]:
    """The numbers MLflow and the KFP UI show for a check (finite values only)."""
    metrics = {"rows": float(summary.rows), "drifted_share": summary.drifted_share}
    if summary.skew_checked:
        metrics["skewed_rows"] = float(summary.skewed_rows + summary.skew_failed)
    metrics |= {f"drift_{k}": v for k, v in summary.drift_scores.items()}
    if summary.prediction_drift is not None:
        metrics["drift_prediction"] = summary.prediction_drift
    for name in ("rmse", "mae"):
        value = getattr(summary, name)
        if value is not None:
            metrics[f"window_{name}"] = value
    return {k: float(v) for k, v in metrics.items() if math.isfinite(v)}


def _write(location: str, snapshot: Any, summary: CheckSummary, settings: Settings) -> None:
    """The report (when drift was compared) and the summary, each file atomically."""
    from kubeline.storage import output_location

    if snapshot is not None:
        with output_location(f"{location}/{REPORT_FILE}", settings) as tmp:
            snapshot.save_html(str(tmp))  # a str: given a Path, Evidently writes nothing
    with output_location(f"{location}/{SUMMARY_FILE}", settings) as tmp:
        Path(tmp).write_text(summary.to_json(), encoding="utf-8")


def _log_to_mlflow(settings: Settings, summary: CheckSummary) -> None:
    """Headline numbers in a run of the monitoring experiment, tagged with what was judged."""
    import mlflow

    from kubeline import registry
    from kubeline.lineage import TAG_PREFIX

    client = registry.connect(settings)
    experiment = registry.ensure_experiment(
        client, f"{settings.experiment_name}-monitor", settings.artifact_location
    )
    tags = {
        f"{TAG_PREFIX}model_name": summary.model_name,
        f"{TAG_PREFIX}model_version": summary.model_version,
        f"{TAG_PREFIX}judged_run_id": summary.mlflow_run_id or "",
        f"{TAG_PREFIX}pipeline_run_id": summary.pipeline_run_id or "",
        f"{TAG_PREFIX}decision": summary.decision,
    }
    metrics = headline_metrics(summary)
    run_name = f"check-{summary.model_name}-v{summary.model_version}"
    with mlflow.start_run(experiment_id=experiment, run_name=run_name, tags=tags):
        mlflow.log_metrics(metrics)
        mlflow.log_text(summary.to_json(), SUMMARY_FILE)
