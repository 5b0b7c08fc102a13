"""Score a trained model on the holdout against naive baselines, backtest it, gate it.

``evaluate`` gathers everything the verdict, the reports and the metrics need; ``compare`` is
the single rule for "is A better than B by enough", used for the gate against the strongest
naive forecast and against the current champion; ``decide_gate`` adds the significance of the
gain over that forecast (on by default) and the optional conditions (directional accuracy,
backtest edge), and says which one failed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from kubeline.data.schema import DATE, TARGET, TICKER
from kubeline.errors import ConfigError
from kubeline.evaluate.backtest import (
    LEVEL_TARGET_NOTE,
    BacktestResult,
    backtest,
    infer_periods_per_year,
)
from kubeline.evaluate.baseline import (
    BASELINE_COLUMNS,
    BASELINES,
    constant_value,
    naive_predictions,
)
from kubeline.evaluate.metrics import (
    METRICS,
    better,
    direction_ref,
    improvement_p_value,
    regression_metrics,
)
from kubeline.evaluate.verdict import (
    BacktestSummary,
    Champion,
    Condition,
    GateDecision,
    Holdout,
    Verdict,
)
from kubeline.model import predict
from kubeline.runconfig import RunConfig

if TYPE_CHECKING:
    from kubeline.model import ModelCard
    from kubeline.runconfig import GateConfig

__all__ = [
    "Evaluation",
    "compare",
    "decide_gate",
    "evaluate",
    "score_model",
    "to_verdict",
]


@dataclass
class Evaluation:
    """Holdout metrics of the model and of every naive forecast, the backtest, the predictions."""

    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]]  # {"constant": {...}, "persistence": {...}, ...}
    gate_baseline: str  # the baseline the gate compares with
    backtest: BacktestResult | None
    backtest_note: str | None  # why there is no backtest, when there is none
    predictions: pd.DataFrame = field(repr=False)  # date, ticker, actual, prediction, naive
    target_kind: str = "return"
    n_rows: int = 0
    n_dropped_rows: int = 0  # holdout rows without a naive forecast, left out of every score
    champion: dict[str, float] | None = None  # the current champion's metrics on the same rows
    cost_bps: float = 0.0
    # How likely the model's gain over the gate baseline is luck (one-sided Diebold-Mariano).
    baseline_p_value: float = math.nan


def score_model(
    model: Any, frame: pd.DataFrame, feature_names: list[str] | None = None
) -> dict[str, float]:
    """Metrics of any fitted model on a features frame (e.g. the champion on this holdout).

    Without ``feature_names`` the model's own ``feature_names_in_`` are used.
    """
    return regression_metrics(
        frame[TARGET], predict(model, frame, feature_names), direction_ref(frame)
    )


def evaluate(
    model: Any,
    holdout: pd.DataFrame,
    feature_names: list[str],
    config: RunConfig,
    *,
    target_kind: str,
    train_mean: float = math.nan,
    champion: Any = None,
) -> Evaluation:
    """Score the model, every naive forecast and the champion (if given) on the same rows.

    Rows without a naive forecast are left out of every score, so all comparisons are like for
    like; the model is backtested on those rows too. ``train_mean`` is the training window's
    mean target, the constant forecast of a level target.
    """
    naive_cols = list(BASELINE_COLUMNS.values())
    present = [c for c in naive_cols if c in holdout.columns]
    known = np.isfinite(holdout[[TARGET, *present]].to_numpy(dtype=float)).all(axis=1)
    rows = holdout.loc[known].reset_index(drop=True)
    # Every score uses the same rows, so model and baselines are compared like for like.
    prediction = predict(model, rows, feature_names)
    actual = rows[TARGET].to_numpy(dtype=float)
    ref = direction_ref(rows, target_kind)
    metrics = regression_metrics(actual, prediction, ref)
    constant = constant_value(target_kind, train_mean)
    forecasts = {kind: naive_predictions(rows, kind, constant) for kind in BASELINES}
    baselines = {kind: regression_metrics(actual, f, ref) for kind, f in forecasts.items()}
    gate_baseline = strongest_baseline(baselines, config.gate.metric, config.gate.baseline)
    predictions = pd.DataFrame(
        {
            DATE: pd.to_datetime(rows[DATE]),
            TICKER: rows[TICKER].to_numpy(),
            "actual": actual,
            "prediction": prediction,
            "naive": forecasts[gate_baseline],
        }
    )
    result, note = _backtest(predictions, config, target_kind)
    p_value = improvement_p_value(
        actual,
        prediction,
        forecasts[gate_baseline],
        predictions[DATE].to_numpy(),
        config.gate.metric,
        direction_ref=ref,
        lag=config.horizon - 1,
    )
    return Evaluation(
        metrics=metrics,
        baselines=baselines,
        gate_baseline=gate_baseline,
        backtest=result,
        backtest_note=note,
        predictions=predictions,
        target_kind=target_kind,
        n_rows=len(rows),
        n_dropped_rows=int((~known).sum()),
        champion=None if champion is None else score_model(champion, rows),
        cost_bps=config.backtest.cost_bps,
        baseline_p_value=p_value,
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


def decide_gate(
    evaluation: Evaluation,
    gate: GateConfig,
    champion: dict[str, float] | None = None,
    champion_note: str | None = None,
) -> GateDecision:
    """Pass when the model beats the strongest naive forecast significantly (unless
    ``max_p_value`` is None), the champion (if any) and the optional directional-accuracy and
    backtest-edge floors; each condition says why.

    ``champion_note`` says why there is a champion that could not be compared: a champion we
    cannot compare with is not one we may silently replace.
    """
    metric, margin = gate.metric, gate.min_improvement
    candidate = evaluation.metrics
    baseline = evaluation.gate_baseline
    passed, reason = compare(
        candidate,
        evaluation.baselines[baseline],
        metric,
        margin,
        reference_name=f"the {baseline.replace('_', ' ')} baseline",
    )
    conditions = [Condition(name="baseline", passed=passed, reason=reason)]
    if gate.max_p_value is not None:
        conditions.append(_significance(evaluation, gate.max_p_value))
    if champion_note is not None:
        reason = f"{champion_note}; promote by hand with `kubeline promote`"
        conditions.append(Condition(name="champion", passed=False, reason=reason))
    elif champion is not None:
        passed, reason = compare(candidate, champion, metric, margin, reference_name="the champion")
        conditions.append(Condition(name="champion", passed=passed, reason=reason))
    else:
        conditions.append(
            Condition(name="champion", passed=True, reason="no current champion to beat")
        )
    if gate.min_directional_accuracy is not None:
        conditions.append(_directional_floor(candidate, gate.min_directional_accuracy))
    if gate.min_backtest_edge is not None:
        conditions.append(_backtest_edge(evaluation, gate.min_backtest_edge))
    return GateDecision(
        metric=metric,
        baseline=baseline,
        min_improvement=margin,
        conditions=conditions,
        p_value=evaluation.baseline_p_value,
    )


def _significance(evaluation: Evaluation, max_p_value: float) -> Condition:
    """A gain over the baseline must be unlikely to be luck on this holdout."""
    p = evaluation.baseline_p_value
    passed = not math.isnan(p) and p <= max_p_value
    shown = "undefined" if math.isnan(p) else f"{p:.3f}"
    verb = "is within" if passed else "is above"
    name = evaluation.gate_baseline.replace("_", " ")
    return Condition(
        name="significance",
        passed=passed,
        reason=(
            f"the gain over the {name} baseline has p = {shown} (one-sided Diebold-Mariano "
            f"test on per-date losses), which {verb} the allowed {max_p_value:g}"
        ),
    )


def _directional_floor(metrics: dict[str, float], floor: float) -> Condition:
    hit = float(metrics.get("directional_accuracy", math.nan))
    passed = not math.isnan(hit) and hit >= floor
    shown = "undefined" if math.isnan(hit) else f"{hit:.1%}"
    verb = "reaches" if passed else "is below"
    return Condition(
        name="directional_accuracy",
        passed=passed,
        reason=f"directional accuracy {shown} {verb} the required {floor:.1%}",
    )


def _backtest_edge(evaluation: Evaluation, floor: float) -> Condition:
    """The strategy's Sharpe (after costs) minus buy-and-hold's must be at least ``floor``."""
    if evaluation.backtest is None:
        why = evaluation.backtest_note or "no backtest"
        return Condition(
            name="backtest_edge", passed=False, reason=f"a backtest edge is required but {why}"
        )
    stats = evaluation.backtest.stats
    edge = stats["strategy"]["sharpe"] - stats["buy_and_hold"]["sharpe"]
    passed = edge >= floor
    verb = "reaches" if passed else "is below"
    return Condition(
        name="backtest_edge",
        passed=passed,
        reason=(
            f"backtest Sharpe edge over buy-and-hold {edge:+.2f} (after "
            f"{evaluation.cost_bps:g} bps costs) {verb} the required {floor:+.2f}"
        ),
    )


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


def to_verdict(
    evaluation: Evaluation,
    gate: GateDecision,
    card: ModelCard,
    *,
    model_name: str,
    question: dict[str, str],
    champion: Champion | None = None,
    lineage: dict[str, str] | None = None,
) -> Verdict:
    """The typed verdict of an evaluation and its gate decision, as register and reports read it."""
    if champion is not None and evaluation.champion is not None:
        champion = champion.model_copy(update={"metrics": dict(evaluation.champion)})
    backtest = (
        None
        if evaluation.backtest is None
        else BacktestSummary(cost_bps=evaluation.cost_bps, stats=evaluation.backtest.stats)
    )
    dates = evaluation.predictions[DATE]
    return Verdict(
        model_name=model_name,
        question=question,
        candidate=card.candidate,
        params=card.params,
        target=card.target,
        metrics=evaluation.metrics,
        baselines=evaluation.baselines,
        champion=champion,
        backtest=backtest,
        backtest_note=evaluation.backtest_note,
        gate=gate,
        holdout=Holdout(
            start=card.holdout_start if dates.empty else str(dates.min().date()),
            end=card.holdout_end if dates.empty else str(dates.max().date()),
            rows=evaluation.n_rows,
            dropped_rows=evaluation.n_dropped_rows,
        ),
        lineage={k: str(v) for k, v in (lineage or {}).items()},
    )
