"""Training/serving skew by recomputation: the features a request's bars give through the
training pipeline's own code, against the features the service computed and logged for it.

Only ``/predict_history`` rows can be checked: they are the requests that sent raw bars, and the
inference log keeps those bars (its ``bars`` column). Each request's bars are written as one
ticker's file and read back the way the training pipeline reads data: ``ingest`` (file layouts,
column spellings, date formats), ``validate``, then ``kubeline.features.build_polars``. A feature
whose recomputed value differs from the logged one beyond float rounding (relative 1e-9) is skew,
and every such row is counted and named: a mean difference would hide one bad feature behind
many good ones.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from kubeline.model import ModelCard

# Newest requests first, at most this many per check: each one is an ingest and a feature
# build of its own (a few ms); the summary says how many were checked of how many logged.
MAX_REQUESTS = 500
EXAMPLES = 10
RELATIVE = 1e-9  # float rounding between two runs of the same code stays far below this


@dataclass
class Skew:
    """What the recomputation found; ``rows`` 0 means no request sent bars."""

    rows: int = 0  # /predict_history rows in the window
    checked: int = 0
    skewed_rows: int = 0
    failed: int = 0  # bars the training code refused (the service accepted them): skew too
    max_abs_diff: dict[str, float] = field(default_factory=dict)  # per skewed feature
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return self.skewed_rows > 0 or self.failed > 0

    def line(self) -> str:
        if not self.rows:
            return "skew: no /predict_history requests in the window to recompute"
        of = f"{self.checked:,} of {self.rows:,}" if self.checked < self.rows else f"{self.rows:,}"
        if not self.found:
            return f"skew: none; {of} /predict_history requests recomputed with the training code"
        features = ", ".join(f"{k} (up to {v:.3g})" for k, v in self.max_abs_diff.items())
        refused = f"; {self.failed} refused by the training code" if self.failed else ""
        return (
            f"skew: {self.skewed_rows} of {of} /predict_history requests differ from the "
            f"training code: {features or 'none'}{refused}"
        )


def recompute(frame: pd.DataFrame, card: ModelCard) -> Skew:
    """Recompute the features of the window's ``/predict_history`` rows and compare."""
    from kubeline.serving.inference_log import BARS, ENDPOINT

    result = Skew()
    if BARS not in frame.columns or frame.empty:
        return result
    sent = frame[(frame[ENDPOINT] == "predict_history") & frame[BARS].notna()]
    result.rows = len(sent)
    chosen = sent.tail(MAX_REQUESTS)
    result.checked = len(chosen)
    for _, row in chosen.iterrows():
        _compare(row, card, result)
    result.max_abs_diff = dict(sorted(result.max_abs_diff.items(), key=lambda kv: -kv[1]))
    return result


def _compare(row: Any, card: ModelCard, result: Skew) -> None:
    from kubeline.data import schema as s
    from kubeline.errors import KubelineError

    where = {"request_id": row["request_id"], "ticker": row[s.TICKER], "date": str(row[s.DATE])}
    try:
        recomputed = training_features(str(row[s.TICKER]), json.loads(row["bars"]), card)
    except KubelineError as exc:
        result.failed += 1
        _example(result, {**where, "error": str(exc)})
        return
    day = str(row[s.DATE])[:10]
    if day not in recomputed:
        result.failed += 1
        _example(result, {**where, "error": f"the training code gives no feature row for {day}"})
        return
    differs = False
    for name, value in recomputed[day].items():
        logged = float(row[name])
        same = (math.isnan(value) and math.isnan(logged)) or math.isclose(
            value, logged, rel_tol=RELATIVE, abs_tol=1e-12
        )
        if same:
            continue
        differs = True
        gap = abs(value - logged) if math.isfinite(value - logged) else math.inf
        result.max_abs_diff[name] = max(result.max_abs_diff.get(name, 0.0), gap)
        _example(result, {**where, "feature": name, "logged": logged, "recomputed": value})
    result.skewed_rows += differs


def _example(result: Skew, item: dict[str, Any]) -> None:
    if len(result.examples) < EXAMPLES:
        result.examples.append(item)


def training_features(
    ticker: str, bars: list[dict[str, Any]], card: ModelCard
) -> dict[str, dict[str, float]]:
    """Each bar date's features from ``bars``, by the training pipeline's read, check and build."""
    import polars as pl

    from kubeline import features
    from kubeline.data import schema as s
    from kubeline.data.ingest import ingest
    from kubeline.data.validate import validate

    with tempfile.TemporaryDirectory(prefix="kubeline-skew-") as tmp:
        path = Path(tmp) / f"{ticker}.csv"
        pl.DataFrame(bars, infer_schema_length=None).write_csv(path)
        frame = ingest(path.parent)
    # min_rows 1: these are one ticker's recent bars, not a training set; the checks of each
    # bar (prices, dates, gaps) are training's own.
    checked = validate(frame, min_rows=1)
    checked.raise_for_errors()
    table, _ = features.build_polars(
        checked.clean, features=card.feature_names, target=card.target, horizon=card.horizon
    )
    out: dict[str, dict[str, float]] = {}
    for item in table.select([s.DATE, *card.feature_names]).iter_rows(named=True):
        day = str(item.pop(s.DATE))[:10]
        out[day] = {k: math.nan if v is None else float(v) for k, v in item.items()}
    return out
