"""Skew by recomputation: /predict_history rows as the service logs them, recomputed with the
training pipeline's read, check and feature build; a difference is counted and named."""

from __future__ import annotations

import json

import pandas as pd
from test_serving_history import card

from kubeline.data.generate import generate
from kubeline.monitor.skew import recompute
from kubeline.serving.inputs import history_features


def logged_rows(n: int = 3) -> pd.DataFrame:
    """What the inference log holds for ``n`` /predict_history requests and one /predict row."""
    raw = generate(tickers=1, years=1, seed=5).to_pandas()
    rows = []
    for i in range(n):
        recent = raw.iloc[i : i + 80]
        bars = [
            {"Date": str(r.date.date()), "Close": r.close, "High": r.high, "Low": r.low,
             "Open": r.open, "Volume": r.volume}
            for r in recent.itertuples()
        ]  # fmt: skip
        features, day = history_features("AAA", bars, card())
        rows.append(
            {
                "request_id": f"r{i}",
                "endpoint": "predict_history",
                "ticker": "AAA",
                "date": pd.Timestamp(day),
                "bars": json.dumps(bars),
                **features.to_dicts()[0],
            }
        )
    rows.append({"request_id": "p", "endpoint": "predict", "ticker": None, "date": None,
                 "bars": None, **dict.fromkeys(card().feature_names, 0.5)})  # fmt: skip
    return pd.DataFrame(rows)


def test_what_the_service_computed_is_what_training_computes() -> None:
    found = recompute(logged_rows(), card())
    assert (found.rows, found.checked, found.skewed_rows, found.failed) == (3, 3, 0, 0)
    assert found.line().startswith("skew: none; 3 /predict_history requests recomputed")


def test_one_changed_feature_of_one_request_is_counted_and_named() -> None:
    frame = logged_rows()
    frame.loc[1, "volatility_20"] *= 1.001
    found = recompute(frame, card())
    assert found.skewed_rows == 1 and list(found.max_abs_diff) == ["volatility_20"]
    (example,) = found.examples
    assert example["request_id"] == "r1" and example["feature"] == "volatility_20"
    assert "1 of 3 /predict_history requests differ" in found.line()


def test_bars_the_training_code_refuses_are_skew_too() -> None:
    frame = logged_rows(1)
    bars = json.loads(frame.loc[0, "bars"])
    bars[5]["Close"] = -1.0  # a price training's validation refuses
    frame.loc[0, "bars"] = json.dumps(bars)
    found = recompute(frame, card())
    assert found.failed == 1 and found.found and "refused by the training code" in found.line()
    assert "close" in found.examples[0]["error"].lower()


def test_a_window_without_history_requests_has_nothing_to_recompute() -> None:
    frame = logged_rows(1).iloc[1:]
    found = recompute(frame, card())
    assert found.rows == 0 and not found.found and "no /predict_history" in found.line()
    assert recompute(frame.drop(columns=["bars"]), card()).rows == 0  # a log from before
