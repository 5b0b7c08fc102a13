"""Naive forecasts a model has to beat: persistence and the moving average.

The feature engine computes both at time t from data known at t (``_naive_last`` and
``_naive_ma``), so a baseline needs no fitting and cannot leak.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from kubeline.data.schema import NAIVE_LAST, NAIVE_MA
from kubeline.errors import ConfigError, DataError

BaselineKind = Literal["persistence", "moving_average"]
BASELINE_COLUMNS: dict[str, str] = {"persistence": NAIVE_LAST, "moving_average": NAIVE_MA}


def naive_predictions(frame: pd.DataFrame, kind: BaselineKind | str) -> np.ndarray:
    """The naive forecast of the target for each row of a features frame."""
    column = BASELINE_COLUMNS.get(kind)
    if column is None:
        raise ConfigError(f"unknown baseline {kind!r}; allowed: {', '.join(BASELINE_COLUMNS)}")
    if column not in frame.columns:
        raise DataError(
            f"the features frame has no {column} column, needed by the {kind} baseline",
            hint="build the frame with kubeline.features, which adds the naive columns",
        )
    return frame[column].to_numpy(dtype=float)
