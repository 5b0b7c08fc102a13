"""Time-ordered splits: global date cutoffs, purge gaps, ordered folds, nothing shuffled."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kubeline.errors import TrainingError
from kubeline.splits import date_ranks, holdout_split, walk_forward_folds


def panel_dates(n_dates: int = 50, tickers: int = 3, late_start: int = 10) -> pd.Series:
    """Dates of a long frame where the last ticker lists ``late_start`` days after the others."""
    days = pd.bdate_range("2024-01-01", periods=n_dates)
    rows = [d for t in range(tickers) for d in (days[late_start:] if t == tickers - 1 else days)]
    return pd.Series(rows)


def test_holdout_is_the_last_fraction_of_dates_for_every_ticker() -> None:
    dates = panel_dates(50)
    split = holdout_split(dates, holdout_fraction=0.2, gap=0)
    held = set(dates.iloc[split.holdout_index])
    assert held == set(pd.bdate_range("2024-01-01", periods=50)[40:])
    assert dates.iloc[split.train_index].max() < dates.iloc[split.holdout_index].min()


def test_holdout_purge_gap_leaves_out_gap_dates_before_the_holdout() -> None:
    dates = panel_dates(50)
    unique, _ = date_ranks(dates)
    split = holdout_split(dates, holdout_fraction=0.2, gap=3)
    train_end = np.searchsorted(unique, dates.iloc[split.train_index].max().to_datetime64())
    holdout_start = np.searchsorted(unique, dates.iloc[split.holdout_index].min().to_datetime64())
    assert holdout_start - train_end - 1 == 3
    assert split.train_end == unique[train_end] and split.holdout_start == unique[holdout_start]


def test_holdout_and_training_rows_cover_everything_but_the_gap() -> None:
    dates = panel_dates(50, tickers=2, late_start=0)
    split = holdout_split(dates, holdout_fraction=0.2, gap=2)
    assert len(split.train_index) + len(split.holdout_index) + 2 * 2 == len(dates)
    assert not set(split.train_index) & set(split.holdout_index)


def test_holdout_accepts_unsorted_rows_and_date_objects() -> None:
    dates = panel_dates(20).sample(frac=1.0, random_state=0).dt.date
    split = holdout_split(dates.to_numpy(), holdout_fraction=0.25, gap=1)
    train = pd.to_datetime(dates.iloc[split.train_index])
    held = pd.to_datetime(dates.iloc[split.holdout_index])
    assert train.max() < held.min()


def test_holdout_without_training_dates_raises_training_error() -> None:
    with pytest.raises(TrainingError, match="leave no training dates"):
        holdout_split(panel_dates(4, late_start=0), holdout_fraction=0.4, gap=2)


def test_folds_never_validate_on_a_date_they_train_on() -> None:
    dates = panel_dates(60)
    for fit_idx, val_idx in walk_forward_folds(dates, n_splits=4, gap=0):
        assert not set(dates.iloc[fit_idx]) & set(dates.iloc[val_idx])


def test_folds_group_all_rows_of_a_date_together() -> None:
    dates = panel_dates(60)
    for _fit_idx, val_idx in walk_forward_folds(dates, n_splits=4, gap=1):
        val_dates = set(dates.iloc[val_idx])
        assert set(np.flatnonzero(dates.isin(val_dates))) == set(val_idx)


def test_folds_are_ordered_and_train_strictly_before_validation_with_the_gap() -> None:
    dates = panel_dates(60)
    _unique, rank = date_ranks(dates)
    folds = walk_forward_folds(dates, n_splits=4, gap=2)
    assert len(folds) == 4
    previous_val_end = -1
    for fit_idx, val_idx in folds:
        assert rank[val_idx].min() > previous_val_end
        assert rank[val_idx].min() - rank[fit_idx].max() - 1 == 2
        previous_val_end = rank[val_idx].max()
    # Expanding window: each fold trains on at least what the previous one did.
    sizes = [len(fit_idx) for fit_idx, _ in folds]
    assert sizes == sorted(sizes)


def test_folds_work_as_sklearn_cv() -> None:
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import cross_val_score

    dates = panel_dates(40, tickers=2, late_start=0)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(len(dates), 2)), rng.normal(size=len(dates))
    scores = cross_val_score(Ridge(), x, y, cv=walk_forward_folds(dates, n_splits=3, gap=1))
    assert len(scores) == 3


def test_too_few_dates_for_the_folds_is_an_actionable_error() -> None:
    with pytest.raises(TrainingError) as info:
        walk_forward_folds(panel_dates(9, late_start=0), n_splits=4, gap=1)
    assert "9 distinct dates" in str(info.value) and "need at least 11" in str(info.value)
    assert "split.n_splits" in str(info.value)


def test_missing_dates_are_an_error() -> None:
    with pytest.raises(TrainingError, match="no date"):
        date_ranks(pd.Series([pd.Timestamp("2024-01-01"), pd.NaT]))
