"""/predict_history's feature row: bars that give a feature no number are refused by name."""

from __future__ import annotations

import pandas as pd
import pytest

from kubeline.errors import RequestError
from kubeline.model import ModelCard
from kubeline.serving.inputs import bars_needed, history_features

FEATURES = ["ret_1", "volatility_20", "volume_ratio_30"]


def card() -> ModelCard:
    return ModelCard(
        candidate="ridge", params={}, selection_metric="rmse", cv_score=0.0,
        target="next_return", horizon=1, target_kind="return", feature_names=FEATURES,
        train_target_mean=0.0, n_train_rows=1, n_holdout_rows=1, n_dropped_rows=0,
        train_start="2020-01-01", train_end="2020-06-01",
        holdout_start="2020-06-02", holdout_end="2020-12-31",
    )  # fmt: skip


def bars(n: int, volume: float) -> list[dict[str, object]]:
    days = pd.bdate_range("2024-01-02", periods=n)
    return [
        {"date": str(d.date()), "close": 10.0 + i % 3, "volume": volume} for i, d in enumerate(days)
    ]


def test_enough_finite_bars_give_the_feature_row() -> None:
    row, date = history_features("T0", bars(80, 1000.0), card())
    assert row.columns == FEATURES and date == "2024-04-22"


def test_a_volume_of_zero_throughout_is_refused_naming_the_feature_not_the_bar_count() -> None:
    assert bars_needed(card()) < 80
    with pytest.raises(RequestError, match="volume_ratio_30 no finite value") as raised:
        history_features("T0", bars(80, 0.0), card())
    assert "too few" not in raised.value.message
    assert raised.value.detail == [
        {"loc": ["bars"], "msg": "feature volume_ratio_30 is not a finite number"}
    ]


def test_too_few_bars_are_still_said_to_be_too_few() -> None:
    with pytest.raises(RequestError, match="10 bars are too few"):
        history_features("T0", bars(10, 1000.0), card())
