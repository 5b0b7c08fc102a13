"""A check's numbers for Prometheus: pushed to a Pushgateway, or written as a textfile.

A CronJob lives for one check and cannot be scraped, so it hands its numbers on: to a
Pushgateway (``KUBELINE_PUSHGATEWAY_URL``) under job ``kubeline-monitor`` grouped by model,
so a model's next check replaces its previous series instead of piling up beside them; or,
with no gateway, to a file node-exporter's textfile collector reads (``KUBELINE_MONITOR_TEXTFILE``).
A failed hand-over is a warning, never a failed check: the summary is already written, and the
exit code stays the decision's, which is what a CronJob's alerting keys on.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import TYPE_CHECKING

from kubeline.monitor.decision import Outcome

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Gauge

    from kubeline.monitor.summary import CheckSummary
    from kubeline.settings import Settings

JOB = "kubeline-monitor"
PREFIX = "kubeline_monitor_"
LABELS = ("model", "version")
PUSH_TIMEOUT_SECONDS = 10.0


def registry_for(summary: CheckSummary) -> CollectorRegistry:
    """A fresh registry holding this one check's gauges (never the process-wide default)."""
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()
    labels = {"model": summary.model_name, "version": summary.model_version}

    def gauge(name: str, doc: str, value: float | None, extra: tuple[str, ...] = ()) -> Gauge:
        metric = Gauge(PREFIX + name, doc, [*LABELS, *extra], registry=registry)
        if value is not None and not extra:
            metric.labels(**labels).set(value)
        return metric

    gauge("drifted_share", "Share of the model's features that drifted.", summary.drifted_share)
    scores = gauge("drift_score", "Drift score per feature (its method's).", None, ("feature",))
    for feature, score in summary.drift_scores.items():
        scores.labels(**labels, feature=feature).set(score)
    gauge("prediction_drift", "Drift score of the prediction.", summary.prediction_drift)
    gauge("rmse", "RMSE on the window's rows with ground truth.", summary.rmse)
    gauge("mae", "MAE on the window's rows with ground truth.", summary.mae)
    gauge("rows", "Rows in the checked window.", float(summary.rows))
    gauge("truth_rows", "Rows of the window with ground truth.", float(summary.truth_rows))
    decision = gauge(
        "decision", "1 for the check's decision, 0 for the others.", None, ("decision",)
    )
    for outcome in Outcome:
        decision.labels(**labels, decision=outcome.value).set(
            1.0 if outcome.value == summary.decision else 0.0
        )
    gauge(
        "skewed_rows",
        "/predict_history rows whose features the training code computes otherwise.",
        float(summary.skewed_rows + summary.skew_failed) if summary.skew_checked else None,
    )
    gauge("exit_code", "The check's exit code.", float(summary.exit_code))
    checked = datetime.fromisoformat(summary.checked_at).timestamp()
    gauge("last_check_timestamp_seconds", "When the check ran (Unix time).", checked)
    gauge("check_duration_seconds", "How long the check took.", summary.seconds)
    return registry


def publish(summary: CheckSummary, settings: Settings) -> str | None:
    """Push or write the check's metrics as configured; a warning (returned, and printed to
    stderr) when that fails, None otherwise."""
    if not (settings.pushgateway_url or settings.monitor_textfile):
        return None  # and prometheus_client is never imported
    from prometheus_client import push_to_gateway, write_to_textfile

    registry = registry_for(summary)
    try:
        if settings.pushgateway_url:
            # PUT (push_to_gateway, not pushadd) replaces every series of the group.
            push_to_gateway(
                settings.pushgateway_url,
                job=JOB,
                registry=registry,
                grouping_key={"model": summary.model_name},
                timeout=PUSH_TIMEOUT_SECONDS,
            )
        elif settings.monitor_textfile:
            # write_to_textfile writes a temp file beside the target and os.replace()s it in,
            # so the collector never reads half a file.
            settings.monitor_textfile.parent.mkdir(parents=True, exist_ok=True)
            write_to_textfile(str(settings.monitor_textfile), registry)
    except (OSError, ValueError) as exc:  # URLError and HTTPError are OSErrors
        where = settings.pushgateway_url or settings.monitor_textfile
        warning = f"warning: the check's metrics were not sent to {where}: {exc}"
        print(warning, file=sys.stderr)
        return warning
    return None
