"""Decay: the champion's live error judged as the training gate judges a holdout.

On the window's rows whose target is known, the model's error is compared with its own holdout
error and with the naive forecasts (constant, persistence, moving average) scored on the same
rows. A model that no longer beats every one of them is decayed, however small its error: on
returns a small error is easy, and only skill over the naive forecasts is worth serving.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from kubeline.model import ModelCard


@dataclass(frozen=True)
class Decay:
    rows: int  # window rows with a realized target
    rmse: float
    mae: float
    holdout_rmse: float
    naive_rmse: dict[str, float] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    @property
    def decayed(self) -> bool:
        return bool(self.reasons)


def judge(
    window: pd.DataFrame,
    card: ModelCard,
    *,
    prediction: str,
    holdout_rmse: float,
    allowed_decay: float,
) -> Decay:
    """``window`` holds the target (``target``), the prediction and the naive columns."""
    from kubeline.data.schema import TARGET
    from kubeline.evaluate.baseline import BASELINE_COLUMNS, constant_value, naive_predictions
    from kubeline.evaluate.metrics import regression_metrics

    actual = window[TARGET].to_numpy(dtype=float)
    scores = regression_metrics(actual, window[prediction].to_numpy(dtype=float))
    naive: dict[str, float] = {}
    constant = constant_value(card.target_kind, card.train_target_mean)
    for kind in ("constant", *BASELINE_COLUMNS):
        if kind != "constant" and BASELINE_COLUMNS[kind] not in window.columns:
            continue
        guess = naive_predictions(window, kind, constant)
        naive[kind] = regression_metrics(actual, guess)["rmse"]
    rmse = scores["rmse"]
    reasons = []
    if math.isfinite(holdout_rmse) and rmse > holdout_rmse * (1.0 + allowed_decay):
        reasons.append(
            f"rmse {rmse:.5g} is {rmse / holdout_rmse - 1:.0%} above the holdout's "
            f"{holdout_rmse:.5g} (allowed {allowed_decay:.0%})"
        )
    beaten_by = [k for k, v in naive.items() if v <= rmse]
    if beaten_by:
        reasons.append(
            "no longer beats the naive forecast(s) "
            + ", ".join(f"{k.replace('_', ' ')} (rmse {naive[k]:.5g})" for k in beaten_by)
            + f" on the same rows (model {rmse:.5g})"
        )
    return Decay(
        rows=len(window),
        rmse=rmse,
        mae=scores["mae"],
        holdout_rmse=holdout_rmse,
        naive_rmse=naive,
        reasons=reasons,
    )
