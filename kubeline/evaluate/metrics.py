"""Regression metrics, plus whether the forecast got the direction of the move right.

Plain numpy, so scoring needs no scikit-learn import and the same function scores the
walk-forward folds, the holdout and the naive baselines.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

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
