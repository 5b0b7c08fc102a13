from typing import NamedTuple

from kfp.dsl import HTML, Metrics, Output
from kubeline.components.image import kubeline_component


@kubeline_component
def monitor(
    config: str,
    metrics: Output[Metrics],
    report: Output[HTML],
    current: str = "",
    truth: str = "",
    since: str = "",
    until: str = "",
    model_name: str = "",
    version: str = "",
) -> NamedTuple("MonitorOutputs", [("decision", str)]):  # type: ignore[valid-type]  # the form KFP reads
    """Check the champion for drift and decay against a window (the inference log by default).

    The check is ``kubeline monitor``'s: the version's training reference against the window,
    Evidently's drift per feature and for the prediction, decay judged against the holdout and
    the naive forecasts where targets are realized. Its report and summary also go to the
    checks' location (KUBELINE_MONITOR_LOCATION), where ``kubeline monitor`` finds its history.
    A drift or decay is a result, not a failure: the task succeeds and says it in ``decision``.

    Args:
        config: The run config as YAML text, not a path ("" = the defaults): the monitor's
            thresholds.
        current: s3:// prefix of market data to judge instead of the inference log.
        truth: s3:// prefix of market data giving the logged predictions their realized targets.
        since: The window's start (a date or an ISO time); "" = all of it.
        until: The inference log window's end; "" = now.
        model_name: Registered model name; "" = the KUBELINE_MODEL_NAME setting.
        version: Model version to judge; "" = the one behind the champion alias now.

    Returns:
        metrics: The headline numbers: rows, drifted share, per-feature drift scores, the
            prediction's, and the window's rmse/mae where targets are realized.
        report: Evidently's drift report (or the reason there is none).
        decision: ok, drift, decay or insufficient-data.
    """
    from collections import namedtuple

    from kubeline.pod import require_cluster_settings
    from kubeline.steps import monitor as step

    require_cluster_settings()
    summary = step.check(
        current=current or None,
        truth=truth or None,
        since=since or None,
        until=until or None,
        model_name=model_name or None,
        version=version or None,
        config=config,
        report_copy=report.path,
    )
    for name, value in step.headline_metrics(summary).items():
        metrics.log_metric(name, value)
    report.metadata.update({"decision": summary.decision, "reason": summary.reason})
    # Defined here: the component's source is all KFP ships to the container.
    return namedtuple("MonitorOutputs", ["decision"])(summary.decision)
