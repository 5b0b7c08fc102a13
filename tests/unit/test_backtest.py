"""The long-or-flat backtest against equal-weight buy-and-hold, and bar-frequency inference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kubeline.evaluate.backtest import backtest, infer_periods_per_year


def predictions(rows: list[tuple[str, str, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["date", "ticker", "prediction", "actual"])


def run(frame: pd.DataFrame, **kwargs):
    kwargs = {"target_kind": "return", "periods_per_year": 252} | kwargs
    result = backtest(frame, **kwargs)
    assert result is not None
    return result


def test_strategy_is_long_when_the_forecast_is_positive_and_flat_otherwise() -> None:
    frame = predictions(
        [
            ("2024-01-01", "A", 0.01, 0.10),
            ("2024-01-01", "B", -0.01, -0.20),
            ("2024-01-02", "A", -0.01, -0.10),
            ("2024-01-02", "B", 0.01, 0.05),
        ]
    )
    result = run(frame)
    # Day 1: A long (+10%), B flat -> +5%. Day 2: A flat, B long (+5%) -> +2.5%.
    np.testing.assert_allclose(result.curve["strategy"], [1.05, 1.05 * 1.025])
    # Buy-and-hold: (10 - 20)/2 = -5%, then (-10 + 5)/2 = -2.5%.
    np.testing.assert_allclose(result.curve["buy_and_hold"], [0.95, 0.95 * 0.975])
    assert result.stats["strategy"]["exposure"] == 0.5
    assert result.stats["buy_and_hold"]["exposure"] == 1.0
    assert result.stats["strategy"]["cumulative_return"] == pytest.approx(1.05 * 1.025 - 1)
    assert list(result.curve.columns) == ["date", "strategy", "buy_and_hold"]


def test_log_return_targets_are_compounded_as_simple_returns() -> None:
    frame = predictions([("2024-01-01", "A", 0.1, np.log(1.10))])
    assert run(frame, target_kind="log_return").curve["strategy"].iloc[0] == pytest.approx(1.10)


def test_costs_are_charged_on_each_position_change() -> None:
    frame = predictions(
        [
            ("2024-01-01", "A", 1.0, 0.0),
            ("2024-01-02", "A", 1.0, 0.0),
            ("2024-01-03", "A", -1.0, 0.0),
        ]
    )
    result = run(frame, cost_bps=10)
    # Enter on day 1, hold on day 2, exit on day 3: two changes of 10 bps each.
    np.testing.assert_allclose(result.curve["strategy"], [0.999, 0.999, 0.999**2])
    np.testing.assert_allclose(result.curve["buy_and_hold"], [0.999, 0.999, 0.999])


def test_max_drawdown_and_sharpe() -> None:
    frame = predictions(
        [
            (f"2024-01-0{d}", "A", 1.0, r)
            for d, r in zip(range(1, 5), [0.1, -0.5, 0.2, 0.1], strict=True)
        ]
    )
    stats = run(frame).stats["strategy"]
    assert stats["max_drawdown"] == pytest.approx(-0.5)
    r = np.array([0.1, -0.5, 0.2, 0.1])
    assert stats["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * np.sqrt(252))


def test_a_strategy_that_never_trades_has_zero_sharpe_and_exposure() -> None:
    frame = predictions([("2024-01-01", "A", -1.0, 0.1), ("2024-01-02", "A", -1.0, 0.2)])
    stats = run(frame).stats["strategy"]
    assert stats["sharpe"] == 0.0 and stats["exposure"] == 0.0 and stats["cumulative_return"] == 0.0


def test_level_targets_have_no_backtest() -> None:
    frame = predictions([("2024-01-01", "A", 1.0, 100.0)])
    assert backtest(frame, target_kind="level", periods_per_year=252, cost_bps=0.0) is None


def test_turnover_counts_each_position_change_and_buy_and_hold_enters_once() -> None:
    rows = [
        ("2024-01-01", "A", 1.0, 0.01),
        ("2024-01-02", "A", -1.0, 0.01),
        ("2024-01-03", "A", 1.0, 0.01),
        ("2024-01-04", "A", 1.0, 0.01),
    ]
    stats = run(predictions(rows)).stats
    assert stats["strategy"]["turnover"] == pytest.approx(3 / 4)  # in, out, in, hold
    assert stats["buy_and_hold"]["turnover"] == pytest.approx(1 / 4)


@pytest.mark.parametrize(
    ("freq", "expected"), [("B", 252), ("W-FRI", 52), ("BME", 12), ("QE", 4), ("YE", 1)]
)
def test_periods_per_year_follow_the_median_spacing(freq: str, expected: int) -> None:
    assert infer_periods_per_year(pd.date_range("2020-01-01", periods=30, freq=freq)) == expected
