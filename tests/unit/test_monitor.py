"""The monitor's parts on generated data: drift, decay, the decision, the planted regime change."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import polars as pl
import pytest

from kubeline import features as feature_engine
from kubeline.data.generate import DRIFT_VOLATILITY, generate
from kubeline.data.schema import DATE, NAIVE_LAST, NAIVE_MA, TARGET
from kubeline.model import ModelCard
from kubeline.monitor.decay import judge
from kubeline.monitor.decision import EXIT_CODES, Outcome, decide
from kubeline.monitor.drift import drift_report

SHIFT = date(2004, 1, 2)
FEATURES = ["ret_1", "ret_5", "volatility_20", "hl_range", "volume_ratio_30", "rsi_14"]


def feature_rows(drift_from: date | None, since: date, until: date) -> pd.DataFrame:
    """Features of generated bars between two dates; ``prediction`` stands for a model's."""
    bars = generate(tickers=12, years=5, seed=3, drift_from=drift_from)
    table, _ = feature_engine.build_polars(bars, features=FEATURES)
    rows = feature_engine.trainable(table).filter((pl.col(DATE) >= since) & (pl.col(DATE) < until))
    frame = rows.to_pandas()
    frame["prediction"] = 0.1 * frame["ret_1"]
    return frame


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return feature_rows(None, date(2000, 3, 1), date(2003, 1, 1))


def check(reference: pd.DataFrame, current: pd.DataFrame) -> list[str]:
    result, _ = drift_report(
        reference, current, FEATURES, "prediction", method="wasserstein", threshold=0.1
    )
    return [c.column for c in result.drifted]


def test_the_planted_regime_change_leaves_the_bars_before_it_unchanged() -> None:
    calm = generate(tickers=3, years=5, seed=3)
    shifted = generate(tickers=3, years=5, seed=3, drift_from=SHIFT)
    before = pl.col(DATE) < SHIFT
    assert calm.filter(before).equals(shifted.filter(before))
    after = pl.col(DATE) >= SHIFT

    def vol(frame: pl.DataFrame) -> float:
        moves = frame.filter(after).with_columns(pl.col("close").log().diff().over("ticker"))
        return float(moves["close"].std())

    assert vol(shifted) / vol(calm) == pytest.approx(DRIFT_VOLATILITY, rel=0.2)


def test_an_unshifted_window_stays_under_the_default_drifted_share(reference: pd.DataFrame) -> None:
    # A later year of the same process: regimes come and go per ticker, so one volatility
    # feature may move past 0.1, but not the 30% of the features the default calls drift.
    current = feature_rows(None, date(2004, 3, 1), date(2005, 1, 1))
    drifted = check(reference, current)
    assert len(drifted) / len(FEATURES) < 0.3, drifted


def test_a_shifted_window_names_the_shifted_features_and_not_the_scale_free_ones(
    reference: pd.DataFrame,
) -> None:
    current = feature_rows(SHIFT, date(2004, 3, 1), date(2005, 1, 1))
    drifted = check(reference, current)
    # Volatility and range scale with sigma; the volume ratio is a ratio to its own average.
    assert {"volatility_20", "hl_range", "ret_1", "ret_5"} <= set(drifted), drifted
    assert "volume_ratio_30" not in drifted


def card(holdout_rmse_target: str = "next_return") -> ModelCard:
    return ModelCard(
        candidate="ridge", params={}, selection_metric="rmse", cv_score=0.0,
        target=holdout_rmse_target, horizon=1, target_kind="return", feature_names=FEATURES,
        train_target_mean=0.0, n_train_rows=1, n_holdout_rows=1, n_dropped_rows=0,
        train_start="2000-01-01", train_end="2002-12-31",
        holdout_start="2003-01-02", holdout_end="2003-12-31",
    )  # fmt: skip


def live_rows(skill: float, n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Realized targets; predictions carrying ``skill`` of the signal; the naive columns."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(0, 0.01, n)
    target = signal + rng.normal(0, 0.01, n)
    return pd.DataFrame(
        {
            TARGET: target,
            "prediction": skill * signal + (1 - skill) * rng.normal(0, 0.01, n),
            NAIVE_LAST: rng.normal(0, 0.014, n),
            NAIVE_MA: rng.normal(0, 0.005, n),
        }
    )


def test_a_model_with_skill_near_its_holdout_error_has_not_decayed() -> None:
    rows = live_rows(skill=0.9)
    found = judge(rows, card(), prediction="prediction", holdout_rmse=0.0105, allowed_decay=0.25)
    assert not found.decayed, found.reasons
    assert found.rmse < min(found.naive_rmse.values())
    assert set(found.naive_rmse) == {"constant", "persistence", "moving_average"}


def test_a_degraded_model_has_decayed_and_says_against_what() -> None:
    rows = live_rows(skill=0.0)  # noise: worse than predicting no move
    found = judge(rows, card(), prediction="prediction", holdout_rmse=0.0105, allowed_decay=0.25)
    assert found.decayed
    assert any("no longer beats the naive forecast(s) constant" in r for r in found.reasons)


def test_a_model_with_a_small_error_that_no_longer_beats_the_naive_forecasts_has_decayed() -> None:
    rows = live_rows(skill=0.0)
    # Its error is within the allowed decay of the holdout's, but the constant forecast wins.
    found = judge(rows, card(), prediction="prediction", holdout_rmse=0.02, allowed_decay=0.25)
    assert found.decayed and len(found.reasons) == 1


@pytest.mark.parametrize(
    ("rows", "drifted", "decayed", "truth_asked", "outcome"),
    [
        (10, True, True, True, Outcome.INSUFFICIENT),  # too few rows outrank everything
        (500, False, None, True, Outcome.INSUFFICIENT),  # truth asked for, none realized
        (500, True, True, True, Outcome.DECAY),  # decay outranks drift
        (500, True, False, True, Outcome.DRIFT),
        (500, True, None, False, Outcome.DRIFT),
        (500, False, None, False, Outcome.OK),  # decay not asked: said in the reason
        (500, False, False, True, Outcome.OK),
    ],
)
def test_the_decision(
    rows: int, drifted: bool, decayed: bool | None, truth_asked: bool, outcome: Outcome
) -> None:
    found, reason = decide(
        rows=rows, min_rows=200, drifted=drifted, decayed=decayed, truth_asked=truth_asked
    )
    assert found is outcome and reason
    if decayed is None and outcome is Outcome.OK:
        assert "decay not judged" in reason


def test_each_outcome_has_its_own_exit_code_clear_of_the_error_codes() -> None:
    codes = [EXIT_CODES[o] for o in Outcome]
    assert len(set(codes)) == len(codes) and EXIT_CODES[Outcome.OK] == 0
    assert not {1, 2, 3} & set(codes)


def test_a_cronjobs_since_is_the_hours_or_days_before_now() -> None:
    from datetime import UTC, datetime

    from kubeline.steps.monitor import resolve_since

    now = datetime(2026, 12, 3, 6, 30, tzinfo=UTC)
    assert resolve_since("24h", now) == "2026-12-02T06:30:00+00:00"
    assert resolve_since("7d", now) == "2026-11-26T06:30:00+00:00"
    assert resolve_since("2026-01-05", now) == "2026-01-05"
    assert resolve_since(None, now) is None
    from kubeline.errors import ConfigError

    with pytest.raises(ConfigError, match="'yesterday' is not a date, a time or a duration"):
        resolve_since("yesterday", now)


def test_a_wrong_out_fails_before_the_registry_is_asked(cli, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("KUBELINE_STATE_DIR", str(tmp_path / "fresh"))  # no registry at all
    (tmp_path / "file").write_text("x")
    done = cli("monitor", "--out", tmp_path / "file" / "check")
    assert done.exit_code != 0 and "--out" in done.flat and "is a file" in done.flat
    assert "registry" not in done.flat and not (tmp_path / "fresh").exists()
