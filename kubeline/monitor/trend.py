"""The checks over time: the rows ``kubeline monitor history`` prints, and its trend chart.

The chart follows ``kubeline.report.plots``: a ``matplotlib.figure.Figure`` on the Agg canvas,
never pyplot, so no global backend is switched.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from kubeline.monitor.summary import CheckSummary

if TYPE_CHECKING:
    from kubeline.settings import Settings

TREND_FILE = "trend.png"
COLUMNS = ("time", "window", "model", "decision", "drifted", "rmse", "retrain", "check id")


def recent(
    checks: list[CheckSummary], last: int, model_name: str | None = None
) -> list[CheckSummary]:
    """The last ``last`` checks (of ``model_name`` when given), oldest first."""
    chosen = [c for c in checks if model_name is None or c.model_name == model_name]
    return chosen[-last:] if last > 0 else []


def row(check: CheckSummary) -> tuple[str, ...]:
    """One table row, in the order of ``COLUMNS``; a number a check did not measure is '-'."""
    window = (
        f"{_moment(check.window_start)} to {_moment(check.window_end or '')}"
        if check.rows and check.window_start
        else "-"
    )
    return (
        f"{_when(check.checked_at):%Y-%m-%d %H:%M}",
        window,
        f"{check.model_name} v{check.model_version}",
        check.decision,
        f"{check.drifted_share:.0%}" if check.drift_rows else "-",
        f"{check.rmse:.5g}" if check.rmse is not None else "-",
        check.retrain or "-",
        check.check_id,
    )


def default_plot_path(location: str, settings: Settings) -> str:
    """Beside the checks when they are local, else in the state folder (a PNG on S3 is not
    something a person running the command can open)."""
    from kubeline.storage import is_s3

    if is_s3(location):
        return str(settings.state_path / f"monitor-{TREND_FILE}")
    return str(Path(location) / TREND_FILE)


def write_plot(checks: list[CheckSummary], path: str, settings: Settings | None = None) -> str:
    """The drifted share and the window RMSE of ``checks`` over time, as a PNG at ``path``
    (local or s3://), written to a temporary name and moved into place."""
    from matplotlib.figure import Figure

    from kubeline.storage import output_location

    times = [_when(c.checked_at) for c in checks]
    fig = Figure(figsize=(10, 5.5), dpi=100, layout="constrained")
    share_ax, rmse_ax = fig.subplots(2, 1, sharex=True)
    measured = [(t, c.drifted_share) for t, c in zip(times, checks, strict=True) if c.drift_rows]
    if measured:
        share_ax.plot(*zip(*measured, strict=True), marker="o", lw=1.2, color="#2b6cb0")
    breached = [
        (t, c.drifted_share)
        for t, c in zip(times, checks, strict=True)
        if c.decision in ("drift", "decay") and c.drift_rows
    ]
    if breached:
        share_ax.scatter(*zip(*breached, strict=True), color="#c53030", zorder=3, label="breach")
        share_ax.legend(loc="upper left", frameon=False)
    share_ax.set_ylim(-0.05, 1.05)
    share_ax.set_ylabel("drifted share")
    share_ax.set_title("Checks over time")
    errors = [(t, c.rmse) for t, c in zip(times, checks, strict=True) if c.rmse is not None]
    if errors:
        rmse_ax.plot(*zip(*errors, strict=True), marker="o", lw=1.2, color="#4a5568")
    else:  # an empty panel would read as a zero error, or a broken chart
        rmse_ax.set_yticks([])
        rmse_ax.text(
            0.5, 0.5, "no check had realized targets yet (see kubeline monitor --truth)",
            transform=rmse_ax.transAxes, ha="center", va="center", color="#4a5568",
        )  # fmt: skip
    rmse_ax.set_ylabel("window rmse")
    rmse_ax.tick_params(axis="x", labelsize=8, labelrotation=20)
    with output_location(path, settings) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path


def _moment(text: str) -> str:
    """A window bound as a person reads it: the day alone when it is midnight (market data's
    bars), else to the minute."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    return f"{when:%Y-%m-%d}" if when.time() == datetime.min.time() else f"{when:%Y-%m-%d %H:%M}"


def _when(checked_at: str) -> datetime:
    return datetime.fromisoformat(checked_at.replace("Z", "+00:00"))
