"""The current window a check judges: what the champion was asked, with what really happened.

Two sources. The inference log (what the service predicted, its default): the logged
features and predictions since a time. Or market data in any layout ingest reads, local or
``s3://``: validated and scored with the training code (``kubeline.steps.predict``), so the
features are the training path's, never a copy. Ground truth is the realized target, computed
by the same code from market data (``truth``) and joined by ticker and date; for market data
given as the window, its own later bars are the truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kubeline.errors import DataError

if TYPE_CHECKING:
    from datetime import datetime

    import pandas as pd

    from kubeline.serving.loaded import ServedModel
    from kubeline.settings import Settings


@dataclass
class Window:
    """The rows judged (features, prediction; the target where realized) and where from."""

    frame: pd.DataFrame
    source: str  # "inference log at ..." or "market data at ..."
    start: str | None
    end: str | None
    truth_asked: bool

    @property
    def rows(self) -> int:
        return len(self.frame)


def _span(frame: pd.DataFrame, column: str) -> tuple[str | None, str | None]:
    if frame.empty:
        return None, None

    def text(value: object) -> str:
        shown = str(value)[:19]
        return shown.removesuffix(" 00:00:00")  # a bar's date, not a time

    return text(frame[column].min()), text(frame[column].max())


def scored(location: str, served: ServedModel, settings: Settings) -> pd.DataFrame:
    """Market data scored by the served version: the whole features table, as pandas."""
    from kubeline.data.ingest import ingest
    from kubeline.steps.predict import scored_table

    table, _ = scored_table(ingest(location, settings=settings), served)
    return table.to_pandas()


def from_market_data(
    location: str,
    served: ServedModel,
    settings: Settings,
    since: str | None = None,
    until: str | None = None,
) -> Window:
    """The bars after the version's holdout (or from ``since``), before ``until`` if given,
    scored with training's code."""
    import pandas as pd

    from kubeline.data import schema as s

    start = pd.Timestamp(since) if since else pd.Timestamp(served.card.holdout_end)
    frame = scored(location, served, settings)
    inclusive = bool(since)  # the holdout's own last day was judged at training: leave it out
    keep = frame[s.DATE] >= start if inclusive else frame[s.DATE] > start
    if until:
        keep &= frame[s.DATE] < pd.Timestamp(until).tz_localize(None)
    window = frame.loc[keep].reset_index(drop=True)
    first, last = _span(window, s.DATE)
    return Window(window, f"market data at {location}", first, last, truth_asked=True)


def from_inference_log(
    served: ServedModel,
    settings: Settings,
    since: datetime | str | None = None,
    truth: str | None = None,
    until: datetime | str | None = None,
) -> Window:
    """The rows the served version predicted from ``since`` to before ``until``; the target
    joined from ``truth``."""
    from kubeline.data import schema as s
    from kubeline.serving.inference_log import log_location, read_log

    location = log_location(settings)
    logged = read_log(location, settings, since=since, until=until, model_name=served.name)
    if not logged.empty:
        logged = logged.loc[logged["model_version"] == served.version]
    names = served.feature_names
    lacking = [c for c in names if c not in logged.columns]
    if not logged.empty and lacking:
        raise DataError(
            f"the inference log at {location} lacks feature(s) {', '.join(lacking)} of "
            f"{served.name} version {served.version}"
        )
    frame = logged.reset_index(drop=True)
    if truth is not None and not frame.empty:
        realized = scored(truth, served, settings)
        keys = [s.TICKER, s.DATE]
        extra = [c for c in realized.columns if c not in frame.columns or c in keys]
        frame[s.DATE] = frame[s.DATE].astype("datetime64[ms]")
        realized[s.DATE] = realized[s.DATE].astype("datetime64[ms]")
        frame = frame.merge(realized[extra], on=keys, how="left")
    first, last = _span(frame, "timestamp") if "timestamp" in frame else (None, None)
    return Window(frame, f"inference log at {location}", first, last, truth_asked=truth is not None)
