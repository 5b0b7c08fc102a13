"""Naive forecasts a model has to beat: the constant one, persistence and the moving average.

The constant forecast comes first: for a return it is zero (a model that does not beat "no
move" has no skill, whatever else it beats); for a level it is the training window's mean. The
feature engine computes persistence and the moving average at time t from data known at t
(``_naive_last`` and ``_naive_ma``), so no baseline needs fitting and none can leak.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from kubeline.data.schema import NAIVE_LAST, NAIVE_MA
from kubeline.errors import ConfigError, DataError

BaselineKind = Literal["constant", "persistence", "moving_average"]
BASELINES: tuple[str, ...] = ("constant", "persistence", "moving_average")
# The feature-frame column each frame-based baseline reads.
BASELINE_COLUMNS: dict[str, str] = {"persistence": NAIVE_LAST, "moving_average": NAIVE_MA}


def constant_value(target_kind: str, train_mean: float) -> float:
    """The constant forecast: zero for returns (no move), the training mean for a level."""
    return train_mean if target_kind == "level" else 0.0


def naive_predictions(
    frame: pd.DataFrame, kind: BaselineKind | str, constant: float = 0.0
) -> np.ndarray:
    """The naive forecast of the target for each row of a features frame."""
    if kind == "constant":
        return np.full(len(frame), float(constant))
    column = BASELINE_COLUMNS.get(kind)
    if column is None:
        raise ConfigError(f"unknown baseline {kind!r}; allowed: {', '.join(BASELINES)}")
    if column not in frame.columns:
        raise DataError(
            f"the features frame has no {column} column, needed by the {kind} baseline",
            hint="build the frame with kubeline.features, which adds the naive columns",
        )
    return frame[column].to_numpy(dtype=float)
