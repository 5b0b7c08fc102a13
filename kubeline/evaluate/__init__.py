"""Score a trained model on the holdout against naive baselines, backtest it, gate it.

``evaluate`` gathers everything the registry, the reports and the KFP Metrics artifact need;
``compare`` is the single rule for "is A better than B by enough", used for the gate against
the naive baseline and against the current champion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from kubeline.data.schema import DATE, DIRECTION_REF, NAIVE_LAST, TARGET, TICKER
from kubeline.errors import ConfigError
from kubeline.evaluate.backtest import (
    LEVEL_TARGET_NOTE,
    BacktestResult,
    backtest,
    infer_periods_per_year,
)
from kubeline.evaluate.baseline import BASELINE_COLUMNS, naive_predictions
from kubeline.evaluate.metrics import METRICS, better, regression_metrics
from kubeline.runconfig import RunConfig

__all__ = [
    "Evaluation",
    "GateDecision",
    "compare",
    "decide_gate",
    "evaluate",
    "score_model",
]


@dataclass
class GateDecision:
    """Whether the candidate may become champion, with one readable reason per comparison."""

    passed: bool
    reasons: list[str]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form for tags and reports."""
        return {"passed": self.passed, "reasons": list(self.reasons)}


@dataclass
class Evaluation:
    """Holdout metrics of the model and of the naive baselines, the backtest, the predictions."""

    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]]  # {"persistence": {...}, "moving_average": {...}}
    backtest: BacktestResult | None
    backtest_note: str | None  # why there is no backtest, when there is none
    predictions: pd.DataFrame = field(repr=False)  # date, ticker, actual, prediction, naive
    gate_inputs: dict[str, Any] = field(default_factory=dict)
    target_kind: str = "return"
    n_rows: int = 0
    n_dropped_rows: int = 0  # holdout rows without a naive forecast, left out of every score
    champion: dict[str, float] | None = None  # the current champion's metrics on the same rows

    def to_metrics(self) -> dict[str, float]:
        """One flat mapping of every number, e.g. ``rmse``, ``persistence_rmse``, backtest stats."""
        flat = dict(self.metrics)
        for name, values in self.baselines.items():
            flat.update({f"{name}_{k}": v for k, v in values.items()})
        if self.backtest is not None:
            flat.update(self.backtest.flat_stats())
        flat["n_holdout_rows"] = float(self.n_rows)
        return flat


def input_columns(
    model: Any, frame: pd.DataFrame, feature_names: list[str] | None = None
) -> list[str]:
    """The columns a fitted model reads (``feature_names_in_`` unless given), all in ``frame``."""
    names = list(feature_names or getattr(model, "feature_names_in_", []))
    if not names:
        raise ConfigError("cannot tell which columns the model reads; pass feature_names")
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise ConfigError(
            f"the frame lacks feature(s) {', '.join(missing)} the model was trained on",
            hint="score models trained on different features on frames that carry both sets",
        )
    return names


def score_model(
    model: Any, frame: pd.DataFrame, feature_names: list[str] | None = None
) -> dict[str, float]:
    """Metrics of any fitted model on a features frame (e.g. the champion on this holdout).

    Without ``feature_names`` the model's own ``feature_names_in_`` are used.
    """
    pred = model.predict(frame[input_columns(model, frame, feature_names)])
    return regression_metrics(frame[TARGET], pred, _direction_ref(frame))


def evaluate(
    model: Any,
    holdout: pd.DataFrame,
    feature_names: list[str],
    config: RunConfig,
    *,
    target_kind: str,
    champion: Any = None,
) -> Evaluation:
    """Score the model, both naive baselines and the champion (if given) on the same rows.

    Rows without a naive forecast are left out of every score, so all comparisons are like for
    like; the model is backtested on those rows too.
    """
    naive_cols = list(BASELINE_COLUMNS.values())
    present = [c for c in naive_cols if c in holdout.columns]
    known = np.isfinite(holdout[[TARGET, *present]].to_numpy(dtype=float)).all(axis=1)
    rows = holdout.loc[known].reset_index(drop=True)
    # Every score uses the same rows, so model and baselines are compared like for like.
    prediction = np.asarray(model.predict(rows[feature_names]), dtype=float)
    actual = rows[TARGET].to_numpy(dtype=float)
    ref = _direction_ref(rows, target_kind)
    metrics = regression_metrics(actual, prediction, ref)
    baselines = {
        kind: regression_metrics(actual, naive_predictions(rows, kind), ref)
        for kind in BASELINE_COLUMNS
    }
    gate_baseline = strongest_baseline(baselines, config.gate.metric, config.gate.baseline)
    predictions = pd.DataFrame(
        {
            DATE: pd.to_datetime(rows[DATE]),
            TICKER: rows[TICKER].to_numpy(),
            "actual": actual,
            "prediction": prediction,
            "naive": naive_predictions(rows, gate_baseline),
        }
    )
    result, note = _backtest(predictions, config, target_kind)
    return Evaluation(
        metrics=metrics,
        baselines=baselines,
        backtest=result,
        backtest_note=note,
        predictions=predictions,
        gate_inputs={
            "metric": config.gate.metric,
            "min_improvement": config.gate.min_improvement,
            "baseline": gate_baseline,
            "candidate": dict(metrics),
            "reference": dict(baselines[gate_baseline]),
        },
        target_kind=target_kind,
        n_rows=len(rows),
        n_dropped_rows=int((~known).sum()),
        champion=None if champion is None else score_model(champion, rows),
    )


def strongest_baseline(
    baselines: dict[str, dict[str, float]], metric: str, choice: str = "best"
) -> str:
    """The baseline the gate compares against: ``choice``, or for "best" the one scoring best."""
    if choice != "best":
        return choice
    scored = {k: v.get(metric, math.nan) for k, v in baselines.items()}
    finite = {k: v for k, v in scored.items() if not math.isnan(v)}
    if not finite:
        return next(iter(baselines))
    pick = min if better(metric) == "lower" else max
    return pick(finite, key=lambda k: finite[k])


def compare(
    candidate: dict[str, float],
    reference: dict[str, float],
    metric: str,
    min_improvement: float,
    *,
    reference_name: str = "the reference",
) -> tuple[bool, str]:
    """Does ``candidate`` beat ``reference`` on ``metric`` by at least ``min_improvement``?

    The candidate must be strictly better. For rmse and mae the improvement is relative to the
    reference (0.05 = 5% lower error); for r2 and directional accuracy, which sit near zero or
    0.5 where a ratio means little, it is the absolute difference (0.01 = one point).
    """
    if metric not in METRICS:
        raise ConfigError(f"unknown gate metric {metric!r}; allowed: {', '.join(METRICS)}")
    cand = float(candidate.get(metric, math.nan))
    ref = float(reference.get(metric, math.nan))
    if math.isnan(cand) or math.isnan(ref):
        which = "the candidate" if math.isnan(cand) else reference_name
        return False, f"{metric} is undefined for {which}, so no improvement can be shown"
    if better(metric) == "lower":
        gain = (ref - cand) / abs(ref) if ref != 0 else (math.inf if cand < ref else 0.0)
        shown, required = f"{gain:.1%} lower", f"{min_improvement:.1%}"
    else:
        gain = cand - ref
        shown, required = f"{gain:+.4f} higher", f"{min_improvement:+.4f}"
    passed = (cand < ref if better(metric) == "lower" else cand > ref) and gain >= min_improvement
    verdict = "beats" if passed else "does not beat"
    return passed, (
        f"{metric} {cand:.6g} {verdict} {reference_name} ({ref:.6g}): {shown}, "
        f"required at least {required}"
    )


def decide_gate(evaluation: Evaluation, champion: dict[str, float] | None = None) -> GateDecision:
    """Pass when the model beats the configured naive baseline and, if any, the champion."""
    inputs = evaluation.gate_inputs
    metric, margin = inputs["metric"], inputs["min_improvement"]
    checks = [
        compare(
            inputs["candidate"],
            inputs["reference"],
            metric,
            margin,
            reference_name=f"the {inputs['baseline']} baseline",
        )
    ]
    if champion is not None:
        checks.append(
            compare(inputs["candidate"], champion, metric, margin, reference_name="the champion")
        )
    else:
        checks.append((True, "no current champion to beat"))
    return GateDecision(passed=all(p for p, _ in checks), reasons=[r for _, r in checks])


def _direction_ref(rows: pd.DataFrame, target_kind: str = "return") -> np.ndarray | None:
    if DIRECTION_REF in rows.columns:
        return rows[DIRECTION_REF].to_numpy(dtype=float)
    # A level moves "up" relative to its current value; returns relative to zero.
    if target_kind == "level" and NAIVE_LAST in rows.columns:
        return rows[NAIVE_LAST].to_numpy(dtype=float)
    return None


def _backtest(
    predictions: pd.DataFrame, config: RunConfig, target_kind: str
) -> tuple[BacktestResult | None, str | None]:
    if not config.backtest.enabled:
        return None, "no backtest: disabled in the run config (backtest.enabled: false)"
    if target_kind == "level":
        return None, LEVEL_TARGET_NOTE
    if predictions.empty:
        return None, "no backtest: no holdout rows"
    periods = infer_periods_per_year(predictions[DATE])
    if config.horizon > 1:
        # An h-bar return overlaps the next h-1 ones; trade every h-th date so none is counted
        # twice, and annualize at that slower pace.
        dates = np.unique(predictions[DATE].to_numpy())[:: config.horizon]
        predictions = predictions[predictions[DATE].isin(dates)]
        periods = max(1, round(periods / config.horizon))
    result = backtest(
        predictions,
        target_kind=target_kind,
        periods_per_year=periods,
        cost_bps=config.backtest.cost_bps,
    )
    return result, None
