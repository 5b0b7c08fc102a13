"""Tell a person: a Slack-compatible message to ``KUBELINE_MONITOR_WEBHOOK_URL`` on drift or decay.

The URL is a secret (a Slack webhook's path is its token): it is never printed, not even in the
warning a failed post leaves. ``ok`` and ``insufficient-data`` send nothing: a message every
morning saying all is well teaches people to ignore the channel.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubeline.monitor.summary import CheckSummary
    from kubeline.settings import Settings

NOTIFY_ON = ("drift", "decay")
TOP_FEATURES = 5
TIMEOUT_SECONDS = 10.0


def top_drifted(summary: CheckSummary, n: int = TOP_FEATURES) -> list[tuple[str, float]]:
    """The drifted features with their scores, in the order the check ranked them."""
    return [(f, summary.drift_scores.get(f, float("nan"))) for f in summary.drifted_features[:n]]


def message(summary: CheckSummary) -> dict[str, Any]:
    """The Slack message: ``text`` for notifications and clients without blocks, ``blocks``."""
    head = f"kubeline monitor: {summary.decision} for {summary.model_name} v{summary.model_version}"
    top = top_drifted(summary)
    features = ", ".join(f"{name} ({score:.2f})" for name, score in top) or "none"
    report = summary.report or "no report (drift was not compared)"
    fields = [
        f"*Decision:* {summary.decision}",
        f"*Model:* {summary.model_name} version {summary.model_version}",
        f"*Drifted share:* {summary.drifted_share:.0%}",
        f"*Rows:* {summary.rows}",
    ]
    if summary.rmse is not None:
        fields.append(f"*Window RMSE:* {summary.rmse:.4g}")
    if summary.skewed_rows or summary.skew_failed:
        fields.append(f"*Skew:* {summary.skew_note.removeprefix('skew: ')}")
    if summary.retrain_note:  # the person reading it may be the one to approve
        fields.append(f"*Retraining:* {summary.retrain_note.removeprefix('retrain: ')}")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": head[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*Reason:* {summary.reason}"}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": t} for t in fields]},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": f"*Top drifted features:* {features}"},
        },
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": f"Report: {report}"},
                {"type": "mrkdwn", "text": f"Check: {summary.check_id}"},
            ],
        },
    ]
    text = f"{head}: {summary.reason}. Top drifted: {features}. Report: {report}. Check {summary.check_id}"
    if summary.retrain_note:
        text = f"{text}. {summary.retrain_note}"
    return {"text": text, "blocks": blocks}


def notify(summary: CheckSummary, settings: Settings) -> str | None:
    """Post the message when the check found drift or decay and a webhook is set; a warning
    (returned, and printed to stderr) when the post fails, None otherwise."""
    url = settings.monitor_webhook_url
    if url is None or summary.decision not in NOTIFY_ON:
        return None
    # The standard library: no HTTP client is among the monitor image's declared dependencies.
    request = urllib.request.Request(
        url.get_secret_value(),
        data=json.dumps(message(summary)).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS):
            pass
    except urllib.error.HTTPError as exc:
        reason = f"it answered HTTP {exc.code}"
    except OSError as exc:  # URLError, timeouts, refused connections
        detail = str(getattr(exc, "reason", exc))  # the URL is a secret: a reason quoting it is cut
        shown = "" if url.get_secret_value() in detail or not detail else f": {detail}"
        reason = f"{type(exc).__name__}{shown}"
    else:
        return None
    warning = f"warning: the monitor webhook (KUBELINE_MONITOR_WEBHOOK_URL) was not told: {reason}"
    print(warning, file=sys.stderr)
    return warning
