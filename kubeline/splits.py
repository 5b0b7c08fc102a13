"""Time-ordered splits on a shared date axis: a holdout at the end, walk-forward folds before it.

Rows are never shuffled. Cuts are made on dates, not rows, so every ticker is cut at the same
moment and no ticker's future sits in training while another's past sits in validation. A purge
gap of ``gap`` dates separates each training window from what it is scored on, because a
training row's target looks ``horizon`` bars ahead: with ``gap >= horizon`` every training label
is already known before the first scored date.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from kubeline.errors import TrainingError

Fold = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class HoldoutSplit:
    """Row positions of the training window and of the holdout, and the dates bounding them."""

    train_index: np.ndarray
    holdout_index: np.ndarray
    train_end: pd.Timestamp
    holdout_start: pd.Timestamp


def date_ranks(dates: pd.Series | np.ndarray | list) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique dates and, for each row, the position of its date among them."""
    values = pd.to_datetime(pd.Series(dates)).to_numpy(dtype="datetime64[ns]")
    if pd.isna(values).any():
        raise TrainingError("some rows have no date; drop or repair them before training")
    unique = np.unique(values)
    return unique, np.searchsorted(unique, values)


def holdout_split(
    dates: pd.Series | np.ndarray | list, *, holdout_fraction: float, gap: int
) -> HoldoutSplit:
    """Hold out the last ``holdout_fraction`` of dates; train on dates ending ``gap`` before."""
    unique, rank = date_ranks(dates)
    n_dates = len(unique)
    n_holdout = max(1, round(n_dates * holdout_fraction))
    holdout_start = n_dates - n_holdout
    train_stop = holdout_start - gap
    if train_stop < 1:
        raise TrainingError(
            f"only {n_dates} distinct dates: a holdout of {n_holdout} and a purge gap of {gap} "
            "leave no training dates",
            hint="supply more history, or lower split.holdout_fraction or split.gap",
        )
    return HoldoutSplit(
        train_index=np.flatnonzero(rank < train_stop),
        holdout_index=np.flatnonzero(rank >= holdout_start),
        train_end=pd.Timestamp(unique[train_stop - 1]),
        holdout_start=pd.Timestamp(unique[holdout_start]),
    )


def walk_forward_folds(
    dates: pd.Series | np.ndarray | list, *, n_splits: int, gap: int, min_dates: int = 2
) -> list[Fold]:
    """Expanding-window folds grouped by date, ordered in time, usable as sklearn ``cv=``.

    The dates are cut into ``n_splits + 1`` blocks; fold k validates on block k and trains on
    every earlier date except the last ``gap`` before the block. Each validation block and the
    first training window must span at least ``min_dates`` dates.
    """
    unique, rank = date_ranks(dates)
    n_dates = len(unique)
    block = n_dates // (n_splits + 1)
    first_train = n_dates - n_splits * block - gap
    if block < min_dates or first_train < min_dates:
        needed = (n_splits + 1) * min_dates + gap
        raise TrainingError(
            f"the training window has {n_dates} distinct dates; {n_splits} walk-forward folds "
            f"with a purge gap of {gap} need at least {needed}",
            hint="supply more history, or lower split.n_splits, split.holdout_fraction or "
            "split.gap",
        )
    folds: list[Fold] = []
    for k in range(n_splits):
        val_start = n_dates - (n_splits - k) * block
        val_stop = val_start + block
        train_rows = np.flatnonzero(rank < val_start - gap)
        val_rows = np.flatnonzero((rank >= val_start) & (rank < val_stop))
        folds.append((train_rows, val_rows))
    return folds
