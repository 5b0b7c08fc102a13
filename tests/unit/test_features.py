"""The feature engine: equal to a plain pandas computation, no look-ahead, robust to gaps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest
from polars.testing import assert_frame_equal

import kubeline.features as engine
from kubeline.data import schema as s
from kubeline.data.generate import generate
from kubeline.errors import ConfigError

ALL = list(engine.FEATURES)


@pytest.fixture(scope="module")
def prices() -> pl.DataFrame:
    frame = generate(tickers=3, years=0.5, seed=21)
    # A gap in an optional column mid-series must be handled like pandas handles NaN.
    return frame.with_columns(
        pl.when(pl.int_range(pl.len()).over(s.TICKER) == 60)
        .then(None)
        .otherwise(pl.col(s.VOLUME))
        .alias(s.VOLUME)
    )


def _pandas_reference(group: pd.DataFrame) -> pd.DataFrame:
    """Every feature computed the textbook way on one ticker's rows."""
    p, v = group[s.ADJ_CLOSE], group[s.VOLUME].astype(float)

    def ema(x: pd.Series, span: int) -> pd.Series:
        return x.ewm(span=span, adjust=False, min_periods=span).mean()

    change = p.diff()
    gain = change.clip(lower=0).ewm(alpha=1 / 14, adjust=False, min_periods=14).mean()
    loss = (-change).clip(lower=0).ewm(alpha=1 / 14, adjust=False, min_periods=14).mean()
    macd = ema(p, 12) - ema(p, 26)
    signal = ema(macd, 9)
    out = {
        "ret_1": p / p.shift(1) - 1,
        "logret_1": np.log(p / p.shift(1)),
        "ret_5": p / p.shift(5) - 1,
        "ret_20": p / p.shift(20) - 1,
        "sma_10": p.rolling(10).mean(),
        "sma_20": p.rolling(20).mean(),
        "ema_12": ema(p, 12),
        "ema_26": ema(p, 26),
        "dist_sma_20": p / p.rolling(20).mean() - 1,
        "dist_ema_12": p / ema(p, 12) - 1,
        "volume_mean_30": v.rolling(30).mean(),
        "adj_close_median_30": p.rolling(30).median(),
        "volume_ratio_30": v / v.rolling(30).mean(),
        "rsi_14": 100 * gain / (gain + loss),
        "macd": macd,
        "macd_signal": signal,
        "macd_hist": macd - signal,
        "macd_norm": macd / p,
        "macd_signal_norm": signal / p,
        "macd_hist_norm": (macd - signal) / p,
        "bollinger_width_20": 4 * p.rolling(20).std() / p.rolling(20).mean(),
        "volatility_20": np.log(p / p.shift(1)).rolling(20).std(),
        "hl_range": (group[s.HIGH] - group[s.LOW]) / group[s.CLOSE],
        s.NAIVE_LAST: p / p.shift(1) - 1,
        s.NAIVE_MA: (p / p.shift(1) - 1).rolling(20).mean(),
        s.TARGET: p.shift(-1) / p - 1,
    }
    return pd.DataFrame(out, index=group.index)


def test_build_equals_a_pandas_per_ticker_computation_for_every_feature(
    prices: pl.DataFrame,
) -> None:
    ours = engine.build(prices.to_pandas(), features=ALL)
    frame = prices.to_pandas()
    expected = pd.concat([_pandas_reference(g) for _, g in frame.groupby(s.TICKER, sort=True)])
    assert len(ours) == len(expected)
    for column in [*ALL, s.NAIVE_LAST, s.NAIVE_MA, s.TARGET]:
        np.testing.assert_allclose(
            ours[column].to_numpy(dtype=float),
            expected[column].to_numpy(dtype=float),
            rtol=1e-9,
            atol=1e-12,
            equal_nan=True,
            err_msg=column,
        )


def test_adj_close_median_30_is_a_true_median_not_a_mean() -> None:
    frame = pl.DataFrame(
        {
            s.TICKER: ["A"] * 30,
            s.DATE: pl.date_range(pl.date(2000, 1, 1), pl.date(2000, 1, 30), eager=True),
            s.CLOSE: [1.0] * 29 + [100.0],
        }
    )
    out = engine.build(frame, features=["adj_close_median_30"])
    assert out.get_column("adj_close_median_30").to_list()[-1] == 1.0


def test_features_at_t_do_not_move_when_future_rows_change(prices: pl.DataFrame) -> None:
    longest = prices.group_by(s.TICKER).len().sort("len", s.TICKER).item(-1, s.TICKER)
    ticker, cut = longest, 80
    position = pl.int_range(pl.len()).over(s.TICKER)
    future = (pl.col(s.TICKER) == ticker) & (position > cut)
    changed = prices.with_columns(
        pl.when(future).then(pl.col(c) * 3.7).otherwise(pl.col(c)).alias(c)
        for c in (s.OPEN, s.HIGH, s.LOW, s.CLOSE, s.ADJ_CLOSE, s.VOLUME)
    )
    before, after = engine.build(prices, features=ALL), engine.build(changed, features=ALL)
    past = pl.col(s.TICKER).eq(ticker) & pl.int_range(pl.len()).over(s.TICKER).le(cut)
    inputs = [*ALL, s.NAIVE_LAST, s.NAIVE_MA, s.DIRECTION_REF]
    assert before.filter(past).select(inputs).equals(after.filter(past).select(inputs))
    # The target looks ahead by design: it moves at the last row before the change.
    assert before.filter(past).item(-1, s.TARGET) != after.filter(past).item(-1, s.TARGET)


def test_features_of_one_ticker_ignore_the_other_tickers(prices: pl.DataFrame) -> None:
    first = prices.item(0, s.TICKER)
    alone = engine.build(prices.filter(pl.col(s.TICKER) == first), features=ALL)
    together = engine.build(prices, features=ALL).filter(pl.col(s.TICKER) == first)
    assert alone.equals(together)


def test_build_orders_columns_features_then_helpers_then_target_last(prices: pl.DataFrame) -> None:
    out = engine.build(prices, features=["rsi_14", "ret_1"])
    assert out.columns == [
        s.TICKER,
        s.DATE,
        "rsi_14",
        "ret_1",
        s.NAIVE_LAST,
        s.NAIVE_MA,
        s.DIRECTION_REF,
        s.TARGET,
    ]


def test_build_keeps_every_row_with_null_targets_on_the_last_horizon_bars(
    prices: pl.DataFrame,
) -> None:
    out = engine.build(prices, horizon=3)
    assert out.height == prices.height
    tail = out.group_by(s.TICKER).tail(3)
    assert tail.get_column(s.TARGET).null_count() == tail.height
    assert out.get_column(s.TARGET).null_count() == 3 * 3


def test_build_returns_pandas_for_pandas_and_polars_for_polars(prices: pl.DataFrame) -> None:
    assert isinstance(engine.build(prices.to_pandas()), pd.DataFrame)
    assert isinstance(engine.build(prices), pl.DataFrame)


def test_build_accepts_unsorted_input_and_returns_rows_sorted(prices: pl.DataFrame) -> None:
    out = engine.build(prices.reverse())
    assert out.equals(engine.build(prices))


def test_plan_skips_features_whose_inputs_are_absent() -> None:
    plan = engine.plan(["ret_1", "hl_range", "volume_ratio_30"], [s.TICKER, s.DATE, s.CLOSE])
    assert plan.features == ["ret_1"]
    assert plan.skipped == {"hl_range": [s.HIGH, s.LOW], "volume_ratio_30": [s.VOLUME]}


def test_plan_required_history_covers_the_longest_window() -> None:
    assert engine.plan(["macd_signal_norm"], [s.CLOSE]).required_history == 34
    assert engine.plan(["ret_1"], [s.CLOSE], horizon=5).required_history == 25  # naive average


def test_build_on_close_only_data_computes_what_it_can(prices: pl.DataFrame) -> None:
    close_only = prices.select(s.TICKER, s.DATE, s.CLOSE)
    out = engine.build(close_only)
    assert "hl_range" not in out.columns and "volume_ratio_30" not in out.columns
    assert "rsi_14" in out.columns


def test_build_rejects_unknown_features_and_targets(prices: pl.DataFrame) -> None:
    with pytest.raises(ConfigError, match="nope"):
        engine.build(prices, features=["nope"])
    with pytest.raises(ConfigError, match="next_price"):
        engine.build(prices, target="next_price")


def test_next_volume_needs_a_volume_column(prices: pl.DataFrame) -> None:
    with pytest.raises(ConfigError, match="volume"):
        engine.build(prices.select(s.TICKER, s.DATE, s.CLOSE), target="next_volume")


def test_next_volume_target_uses_level_baselines(prices: pl.DataFrame) -> None:
    out = engine.build(prices.to_pandas(), features=["ret_1"], target="next_volume", horizon=2)
    one = prices.filter(pl.col(s.TICKER) == prices.item(0, s.TICKER)).to_pandas()
    volume = one[s.VOLUME].astype(float)
    head = out.iloc[: len(one)]
    np.testing.assert_array_equal(head[s.TARGET].to_numpy(), volume.shift(-2).to_numpy())
    np.testing.assert_array_equal(head[s.NAIVE_LAST].to_numpy(), volume.to_numpy())
    np.testing.assert_array_equal(head[s.DIRECTION_REF].to_numpy(), volume.to_numpy())
    np.testing.assert_allclose(
        head[s.NAIVE_MA].to_numpy(), volume.rolling(30).mean().to_numpy(), rtol=1e-9
    )


def test_next_log_return_is_the_log_of_the_forward_price_ratio(prices: pl.DataFrame) -> None:
    out = engine.build(prices, target="next_log_return", horizon=2)
    one = prices.filter(pl.col(s.TICKER) == prices.item(0, s.TICKER))
    p = one.get_column(s.ADJ_CLOSE).to_numpy()
    got = out.get_column(s.TARGET).to_numpy()[: len(p) - 2]
    np.testing.assert_allclose(got, np.log(p[2:] / p[:-2]), rtol=1e-12)
    assert (out.get_column(s.DIRECTION_REF) == 0.0).all()


def test_trainable_drops_rows_with_any_null_feature_helper_or_target(prices: pl.DataFrame) -> None:
    out = engine.build(prices, features=ALL)
    kept = engine.trainable(out)
    assert kept.null_count().sum_horizontal().item() == 0
    # Warm-up (34 bars), the volume gap's 30-bar shadow and the last row per ticker are gone.
    assert 0 < kept.height < out.height - 3 * 35
    assert len(engine.trainable(out.to_pandas())) == kept.height


def test_nulls_never_become_inf_or_nan(prices: pl.DataFrame) -> None:
    flat = prices.with_columns(pl.lit(5.0).alias(s.ADJ_CLOSE), pl.lit(0.0).alias(s.VOLUME))
    out = engine.build(flat, features=ALL)
    numbers = out.select(pl.exclude(s.TICKER, s.DATE))
    assert not numbers.select(
        pl.any_horizontal(pl.all().is_nan() | pl.all().is_infinite()).any()
    ).item()
    assert out.get_column("rsi_14").null_count() == out.height  # no gains, no losses: undefined


def test_feature_names_and_latest(prices: pl.DataFrame) -> None:
    out = engine.build(prices, features=["ret_1", "rsi_14"])
    assert engine.feature_names(out) == ["ret_1", "rsi_14"]
    last = engine.latest(out)
    assert last.height == 3 and last.get_column(s.TARGET).null_count() == 3


def test_default_features_are_scale_free() -> None:
    assert all(engine.FEATURES[name].scale_free for name in engine.DEFAULT_FEATURES)


def test_scale_free_features_do_not_move_when_prices_and_volume_are_rescaled(
    prices: pl.DataFrame,
) -> None:
    # A stock split, a currency or a unit of volume must not change a scale-free feature.
    price_factor, volume_factor = 37.5, 0.01
    rescaled = prices.with_columns(
        *[pl.col(c) * price_factor for c in s.PRICES],
        pl.col(s.VOLUME) * volume_factor,
    )
    before, after = engine.build(prices, features=ALL), engine.build(rescaled, features=ALL)
    free = [name for name in ALL if engine.FEATURES[name].scale_free]
    assert len(free) >= len(engine.DEFAULT_FEATURES)
    unchanged = [*free, s.NAIVE_LAST, s.NAIVE_MA, s.TARGET]  # the default target is a return
    assert_frame_equal(
        after.select(unchanged), before.select(unchanged), rel_tol=1e-9, abs_tol=1e-12
    )
    # The others are levels: they move with the scale, which shows the rescaling took effect.
    for name in (n for n in ALL if n not in free):
        factor = volume_factor if engine.FEATURES[name].inputs == (s.VOLUME,) else price_factor
        assert_frame_equal(
            after.select(name),
            before.select(pl.col(name) * factor),
            rel_tol=1e-9,
            abs_tol=1e-9,
        )


def test_the_run_config_accepts_and_the_engine_builds_every_catalogue_target(
    prices: pl.DataFrame,
) -> None:
    from kubeline.runconfig import RunConfig
    from kubeline.targets import TARGETS

    for name, spec in TARGETS.items():
        assert RunConfig.from_yaml_text(f"target: {name}").target_kind == spec.kind
        out = engine.build(prices, features=["ret_1"], target=name)
        assert out.get_column(s.TARGET).drop_nulls().len() > 0
