"""Regression metrics, plus whether the forecast got the direction of the move right.

Plain numpy, so scoring needs no scikit-learn import and the same function scores the
walk-forward folds, the holdout and the naive baselines.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import pandas as pd

METRICS: tuple[str, ...] = ("rmse", "mae", "r2", "directional_accuracy")
LOWER_IS_BETTER: frozenset[str] = frozenset({"rmse", "mae"})

ArrayLike = npt.ArrayLike


def regression_metrics(
    y_true: ArrayLike, y_pred: ArrayLike, direction_ref: ArrayLike | None = None
) -> dict[str, float]:
    """rmse, mae, r2 and directional accuracy of ``y_pred`` against ``y_true``.

    Directional accuracy compares the sign of ``pred - ref`` with the sign of ``actual - ref``
    (``ref`` is 0 for returns, the current value for levels); rows where the actual equals the
    reference have no direction and are left out. Undefined values (no rows, constant target,
    no moves) are NaN.
    """
    actual = np.asarray(y_true, dtype=float).ravel()
    pred = np.asarray(y_pred, dtype=float).ravel()
    ref = (
        np.zeros_like(actual)
        if direction_ref is None
        else np.broadcast_to(np.asarray(direction_ref, dtype=float).ravel(), actual.shape)
    )
    if pred.shape != actual.shape or ref.shape != actual.shape:
        raise ValueError(
            f"length mismatch: {actual.size} actual, {pred.size} predicted, {ref.size} reference"
        )
    if actual.size == 0:
        return dict.fromkeys(METRICS, float("nan"))
    err = pred - actual
    sst = float(np.sum((actual - actual.mean()) ** 2))
    moved = actual != ref
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "r2": 1.0 - float(np.sum(err**2)) / sst if sst > 0 else float("nan"),
        "directional_accuracy": (
            float(np.mean(np.sign(pred[moved] - ref[moved]) == np.sign(actual[moved] - ref[moved])))
            if moved.any()
            else float("nan")
        ),
    }


def better(metric: str) -> Literal["lower", "higher"]:
    """Which way is better for ``metric``."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    return "lower" if metric in LOWER_IS_BETTER else "higher"


def improvement_p_value(
    actual: ArrayLike,
    pred: ArrayLike,
    reference: ArrayLike,
    dates: ArrayLike,
    metric: str,
    *,
    direction_ref: ArrayLike | None = None,
    lag: int = 0,
) -> float:
    """One-sided p-value that ``pred`` has lower loss than ``reference`` (Diebold-Mariano).

    The loss is the metric's own (squared error for rmse and r2, absolute error for mae, a
    miss for directional accuracy). Tickers on one date share the market's move, so the loss
    differences are averaged per date first and the test runs on that series; ``lag`` > 0
    (overlapping multi-bar targets) uses a Newey-West variance with that many lags. A small
    p-value says the gain is unlikely to be luck on this holdout; NaN when it cannot be told.
    """
    y = np.asarray(actual, dtype=float).ravel()
    ref = np.zeros_like(y) if direction_ref is None else np.asarray(direction_ref, dtype=float)
    ref = np.broadcast_to(ref.ravel(), y.shape)

    def loss(p: np.ndarray) -> np.ndarray:
        if metric in ("rmse", "r2"):
            return (p - y) ** 2
        if metric == "mae":
            return np.abs(p - y)
        if metric == "directional_accuracy":
            miss = (np.sign(p - ref) != np.sign(y - ref)).astype(float)
            return np.where(y != ref, miss, np.nan)
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")

    diff = loss(np.asarray(reference, dtype=float).ravel()) - loss(np.asarray(pred, dtype=float))
    keys = np.asarray(dates).ravel()
    keep = np.isfinite(diff)
    if not keep.any():
        return float("nan")
    uniq, inverse = np.unique(keys[keep], return_inverse=True)
    sums = np.bincount(inverse, weights=diff[keep], minlength=len(uniq))
    series = sums / np.bincount(inverse, minlength=len(uniq))
    n = series.size
    if n < 3:
        return float("nan")
    centred = series - series.mean()
    variance = float(np.dot(centred, centred)) / n
    for k in range(1, min(lag, n - 1) + 1):
        weight = 1.0 - k / (lag + 1)
        variance += 2.0 * weight * float(np.dot(centred[k:], centred[:-k])) / n
    if variance <= 0:
        return 0.0 if series.mean() > 0 else 1.0
    t = series.mean() / np.sqrt(variance / n)
    return float(0.5 * math.erfc(t / math.sqrt(2.0)))


def direction_ref(rows: pd.DataFrame, target_kind: str = "return") -> np.ndarray | None:
    """What "up" is measured against, row by row (the features' ``_direction_ref`` column)."""
    from kubeline.data.schema import DIRECTION_REF, NAIVE_LAST

    if DIRECTION_REF in rows.columns:
        return rows[DIRECTION_REF].to_numpy(dtype=float)
    # A level moves "up" relative to its current value; returns relative to zero.
    if target_kind == "level" and NAIVE_LAST in rows.columns:
        return rows[NAIVE_LAST].to_numpy(dtype=float)
    return None
