"""Data drift of the model's features and its prediction, with Evidently 0.7.

Evidently's traps, read from its source (0.7.23) and avoided here:

* ``Report.run`` takes the *current* data first, the reference second;
* a column list is always given: without one it drift-tests the target, the prediction and the
  ticker too, and a drifted ticker column means nothing;
* whether a column drifted is the status of its test (``include_tests=True``, off by
  default), not a comparison made here: for p-value methods a *low* score drifts, for distance
  methods a *high* one, and only the test knows which the method is;
* ``save_html`` writes nothing when handed a ``Path``: it is given a ``str``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

# A window above this many rows is compared on a deterministic sample of this many. Measured on
# the demo's reference against a 1,000,000-row shifted window: 27.8 s whole, 5.5 s on a
# 200,000-row sample, per-column scores within 0.0031, the same 5 columns drifted
# (bench/monitor.py measures it again).
DRIFT_SAMPLE_ROWS = 200_000

# What Evidently's report calls each method, for the summary and the console.
METHOD_NAMES = {
    "wasserstein": "Wasserstein distance (normed by the reference's standard deviation)",
    "psi": "population stability index",
}


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    score: float
    drifted: bool


@dataclass(frozen=True)
class DriftResult:
    """Each column's drift score and verdict; ``share`` is over the model's features only."""

    method: str
    threshold: float
    features: list[ColumnDrift]
    prediction: ColumnDrift

    @property
    def drifted(self) -> list[ColumnDrift]:
        """The drifted features, most drifted first."""
        return sorted((c for c in self.features if c.drifted), key=lambda c: -c.score)

    @property
    def share(self) -> float:
        return len(self.drifted) / len(self.features) if self.features else 0.0


def sample_window(
    frame: pd.DataFrame, rows: int = DRIFT_SAMPLE_ROWS, seed: int = 0
) -> pd.DataFrame:
    """The window itself, or a seeded uniform sample of ``rows`` of it in the window's order:
    the same window always gives the same sample, so a re-run check gives the same scores."""
    return frame.sample(n=rows, random_state=seed).sort_index() if len(frame) > rows else frame


def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: list[str],
    prediction: str,
    *,
    method: str,
    threshold: float,
    drifted_share: float = 0.5,
) -> tuple[DriftResult, Any]:
    """Compare ``current`` with ``reference`` column by column; the result and the snapshot
    (whose ``save_html`` writes the report). ``drifted_share`` is only what the report shows as
    its dataset threshold (Evidently counts the prediction among the columns; the decision
    counts features only)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    columns = [*features, prediction]
    definition = DataDefinition(numerical_columns=columns)
    report = Report(
        [
            DataDriftPreset(
                columns=columns, method=method, threshold=threshold, drift_share=drifted_share
            )
        ],
        include_tests=True,
    )
    snapshot = report.run(
        Dataset.from_pandas(current[columns], data_definition=definition),
        Dataset.from_pandas(reference[columns], data_definition=definition),
    )
    found = snapshot.dict()
    scores: dict[str, float] = {}
    for metric in found["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith(":ValueDrift"):
            scores[config["column"]] = float(metric["value"])
    failed: dict[str, bool] = {}
    for test in found.get("tests", []):
        params = test.get("metric_config", {}).get("params", {})
        if params.get("type", "").endswith(":ValueDrift"):
            failed[params["column"]] = test.get("status") == "FAIL"
    missing = [c for c in columns if c not in scores or c not in failed]
    if missing:  # Evidently changed its output: say so rather than call nothing drifted
        raise RuntimeError(f"Evidently's report holds no drift test for {', '.join(missing)}")
    result = DriftResult(
        method=method,
        threshold=threshold,
        features=[ColumnDrift(c, scores[c], failed[c]) for c in features],
        prediction=ColumnDrift(prediction, scores[prediction], failed[prediction]),
    )
    return result, snapshot
