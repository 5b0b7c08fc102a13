"""PNG charts of an evaluation: predicted vs actual, equity curves, residuals.

Figures are built with ``matplotlib.figure.Figure`` and its Agg canvas directly, never through
pyplot, so no global backend is switched and nothing leaks between calls or threads.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from kubeline.data.schema import DATE, TICKER

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from kubeline.evaluate import Evaluation

_DPI = 100
_MAX_SCATTER_POINTS = 5000  # beyond this a scatter is a blob and only costs time


def predicted_vs_actual(
    predictions: pd.DataFrame, path: str | Path, *, max_tickers: int = 4
) -> Path:
    """Scatter of prediction against actual with the y = x line, and series for a few tickers."""
    tickers = list(pd.unique(predictions[TICKER]))[:max_tickers]
    fig = _figure(width=10, height=3.2 + 2.0 * len(tickers))
    grid = fig.add_gridspec(1 + len(tickers), 1, height_ratios=[3.2] + [2.0] * len(tickers))
    ax = fig.add_subplot(grid[0])
    sample = predictions
    if len(sample) > _MAX_SCATTER_POINTS:
        sample = sample.sample(_MAX_SCATTER_POINTS, random_state=0)
    ax.scatter(sample["actual"], sample["prediction"], s=6, alpha=0.4, color="#2b6cb0", lw=0)
    finite = np.concatenate([sample["actual"], sample["prediction"]])
    finite = finite[np.isfinite(finite)]
    if finite.size:
        lo, hi = float(finite.min()), float(finite.max())
        ax.plot([lo, hi], [lo, hi], color="#c53030", lw=1, label="y = x")
        ax.legend(loc="upper left", frameon=False)
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")
    ax.set_title("Predicted vs actual (holdout)")
    for i, ticker in enumerate(tickers, start=1):
        rows = predictions[predictions[TICKER] == ticker].sort_values(DATE)
        axt = fig.add_subplot(grid[i])
        axt.plot(rows[DATE], rows["actual"], lw=0.9, color="#4a5568", label="actual")
        axt.plot(rows[DATE], rows["prediction"], lw=0.9, color="#2b6cb0", label="predicted")
        axt.set_title(str(ticker), loc="left", fontsize=9)
        axt.tick_params(labelsize=8)
        if i == 1:
            axt.legend(loc="upper right", frameon=False, fontsize=8, ncol=2)
    return _save(fig, path)


def equity_curves(curve: pd.DataFrame, path: str | Path) -> Path:
    """Growth of 1 for the long-or-flat strategy and for equal-weight buy-and-hold."""
    fig = _figure(width=10, height=4)
    ax = fig.add_subplot()
    ax.plot(curve[DATE], curve["strategy"], color="#2b6cb0", lw=1.4, label="strategy (long/flat)")
    ax.plot(curve[DATE], curve["buy_and_hold"], color="#718096", lw=1.2, label="buy and hold")
    ax.axhline(1.0, color="#a0aec0", lw=0.8, ls="--")
    ax.set_ylabel("growth of 1")
    ax.set_title("Backtest on the holdout")
    ax.legend(loc="upper left", frameon=False)
    return _save(fig, path)


def residual_histogram(predictions: pd.DataFrame, path: str | Path, *, bins: int = 50) -> Path:
    """Histogram of prediction minus actual."""
    residuals = (predictions["prediction"] - predictions["actual"]).to_numpy(dtype=float)
    residuals = residuals[np.isfinite(residuals)]
    fig = _figure(width=10, height=3.5)
    ax = fig.add_subplot()
    if residuals.size:
        ax.hist(residuals, bins=bins, color="#2b6cb0", alpha=0.8)
        ax.axvline(0.0, color="#c53030", lw=1)
    ax.set_xlabel("prediction - actual")
    ax.set_ylabel("rows")
    ax.set_title("Residuals (holdout)")
    return _save(fig, path)


def write_all(evaluation: Evaluation, folder: str | Path) -> dict[str, Path]:
    """Write every chart the evaluation supports into ``folder``; name -> PNG path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    images = {
        "predicted_vs_actual": predicted_vs_actual(
            evaluation.predictions, folder / "predicted_vs_actual.png"
        ),
        "residuals": residual_histogram(evaluation.predictions, folder / "residuals.png"),
    }
    if evaluation.backtest is not None:
        images["equity_curves"] = equity_curves(evaluation.backtest.curve, folder / "equity.png")
    return images


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=_DPI, layout="constrained")


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=_DPI)
    return path
