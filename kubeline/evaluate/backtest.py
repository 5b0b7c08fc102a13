"""A long-or-flat backtest of return forecasts against equal-weight buy-and-hold.

Per ticker and date the strategy holds the stock when the forecast of its next return is
positive and cash otherwise; tickers are equal-weighted each date. This asks whether the
forecasts are useful for a decision, which error metrics alone do not tell.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from kubeline.data.schema import DATE, TICKER
from kubeline.errors import ConfigError

LEVEL_TARGET_NOTE = (
    "no backtest: the target is a level (e.g. volume), not a return, so a forecast of it "
    "does not say whether to hold the stock"
)

STAT_NAMES = (
    "cumulative_return",
    "sharpe",
    "max_drawdown",
    "exposure",
    "turnover",
    "n_periods",
)
_PERIODS = ((1.5, 252), (8.0, 52), (35.0, 12), (100.0, 4))  # max median spacing in days


@dataclass
class BacktestResult:
    """Equity curves (growth of 1) and summary statistics for the strategy and the benchmark."""

    curve: pd.DataFrame  # date, strategy, buy_and_hold
    stats: dict[str, dict[str, float]]  # {"strategy": {...}, "buy_and_hold": {...}}


def infer_periods_per_year(dates: pd.Series | pd.DatetimeIndex | np.ndarray | list) -> int:
    """Bars per year from the median spacing of the distinct dates (daily 252, weekly 52...)."""
    unique = np.unique(pd.to_datetime(pd.Series(dates)).dropna().to_numpy(dtype="datetime64[ns]"))
    if len(unique) < 2:
        return 252
    spacing_days = float(np.median(np.diff(unique)) / np.timedelta64(1, "D"))
    return next((n for limit, n in _PERIODS if spacing_days <= limit), 1)


def backtest(
    predictions: pd.DataFrame,
    *,
    target_kind: str,
    periods_per_year: int,
    cost_bps: float = 0.0,
) -> BacktestResult | None:
    """Simulate long-or-flat per ticker; None for a level target (see ``LEVEL_TARGET_NOTE``).

    ``predictions`` has date, ticker, prediction and actual (the realized next-bar return, or
    log return for ``target_kind="log_return"``). Costs are ``cost_bps`` basis points of each
    position change, charged to both the strategy and buy-and-hold (on entry); ``turnover``
    reports how much of the book changes hands per period.
    """
    if target_kind == "level":
        return None
    if target_kind not in ("return", "log_return"):
        raise ConfigError(
            f"unknown target kind {target_kind!r}; allowed: return, log_return, level"
        )
    frame = predictions[[DATE, TICKER, "prediction", "actual"]].dropna()
    frame = frame.assign(**{DATE: pd.to_datetime(frame[DATE])}).sort_values([TICKER, DATE])
    realized = frame["actual"].to_numpy(dtype=float)
    if target_kind == "log_return":
        realized = np.expm1(realized)
    # A log-return forecast is positive exactly when the simple-return forecast is.
    position = (frame["prediction"].to_numpy(dtype=float) > 0).astype(float)
    cost = cost_bps / 1e4
    frame = frame.assign(
        _ret=realized,
        _pos=position,
    )
    first = ~frame[TICKER].duplicated()
    previous = frame.groupby(TICKER, sort=False)["_pos"].shift(1).fillna(0.0)
    frame["_turn"] = (frame["_pos"] - previous).abs()
    frame["_bench_turn"] = first.astype(float)
    frame["_strategy"] = frame["_pos"] * frame["_ret"] - cost * frame["_turn"]
    frame["_bench"] = frame["_ret"] - cost * frame["_bench_turn"]

    by_date = frame.groupby(DATE, sort=True)
    daily = pd.DataFrame(
        {
            "strategy": by_date["_strategy"].mean(),
            "buy_and_hold": by_date["_bench"].mean(),
            "exposure": by_date["_pos"].mean(),
            "turnover": by_date["_turn"].mean(),
            "bench_turnover": by_date["_bench_turn"].mean(),
        }
    )
    curve = (1.0 + daily[["strategy", "buy_and_hold"]]).cumprod().reset_index()
    stats = {
        "strategy": _stats(
            daily["strategy"], daily["exposure"], daily["turnover"], periods_per_year
        ),
        "buy_and_hold": _stats(
            daily["buy_and_hold"], None, daily["bench_turnover"], periods_per_year
        ),
    }
    return BacktestResult(curve=curve, stats=stats)


def _stats(
    returns: pd.Series, exposure: pd.Series | None, turnover: pd.Series, periods_per_year: int
) -> dict[str, float]:
    r = returns.to_numpy(dtype=float)
    if r.size == 0:
        nan = float("nan")
        return dict.fromkeys(STAT_NAMES, nan) | {"n_periods": 0.0}
    equity = np.cumprod(1.0 + r)
    peak = np.maximum.accumulate(np.maximum(equity, 1.0))
    std = float(np.std(r, ddof=1)) if r.size > 1 else 0.0
    return {
        "cumulative_return": float(equity[-1] - 1.0),
        # A series that never moves (e.g. always flat) has no risk to scale by: Sharpe 0.
        "sharpe": float(np.mean(r) / std * np.sqrt(periods_per_year)) if std > 0 else 0.0,
        "max_drawdown": float(np.min(equity / peak - 1.0)),  # <= 0, e.g. -0.12 for a 12% fall
        "exposure": float(exposure.mean()) if exposure is not None else 1.0,
        # The share of the book traded per period: 1.0 = all in or all out every bar.
        "turnover": float(turnover.mean()),
        "n_periods": float(r.size),
    }
