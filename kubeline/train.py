"""Tune every configured candidate on walk-forward folds, pick the best, refit it.

Only the training window is ever used for fitting and selection; the holdout rows are split off
first and handed back untouched for evaluation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from kubeline.candidates import CandidateSpec, build_candidates
from kubeline.data.schema import DATE, TARGET, TICKER
from kubeline.errors import TrainingError
from kubeline.evaluate.metrics import METRICS, better, direction_ref, regression_metrics
from kubeline.model import check_feature_names
from kubeline.runconfig import RunConfig
from kubeline.splits import Fold, holdout_split, walk_forward_folds

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline


@dataclass
class TrainResult:
    """The chosen, refitted model and everything needed to log and evaluate it."""

    model: Pipeline
    candidate: str
    params: dict[str, Any]
    cv_results: pd.DataFrame  # one row per (candidate, parameter combination)
    feature_names: list[str]
    target_kind: str
    selection_metric: str
    n_train_rows: int
    n_holdout_rows: int
    train_dates: tuple[pd.Timestamp, pd.Timestamp]
    holdout_dates: tuple[pd.Timestamp, pd.Timestamp]
    holdout: pd.DataFrame = field(repr=False)
    n_dropped_rows: int = 0  # rows with a missing feature or target (warm-up, latest rows)
    train_target_mean: float = float("nan")

    def summary(self) -> dict[str, Any]:
        """JSON-friendly facts about the run (the fields of ``kubeline.model.ModelCard``)."""
        best = self.cv_results.loc[self.cv_results["selected"]].iloc[0]
        return {
            "candidate": self.candidate,
            "params": dict(self.params),
            "selection_metric": self.selection_metric,
            "cv_score": float(best[f"mean_{self.selection_metric}"]),
            "target_kind": self.target_kind,
            "feature_names": list(self.feature_names),
            "train_target_mean": self.train_target_mean,
            "n_train_rows": self.n_train_rows,
            "n_holdout_rows": self.n_holdout_rows,
            "n_dropped_rows": self.n_dropped_rows,
            "train_start": self.train_dates[0].date().isoformat(),
            "train_end": self.train_dates[1].date().isoformat(),
            "holdout_start": self.holdout_dates[0].date().isoformat(),
            "holdout_end": self.holdout_dates[1].date().isoformat(),
        }


@dataclass(frozen=True)
class _Window:
    """The rows a run fits and selects on, split once the same way by every step."""

    rows: pd.DataFrame
    n_dropped: int
    train_rows: pd.DataFrame
    holdout: pd.DataFrame
    holdout_index: np.ndarray
    folds: list[Fold]
    x: pd.DataFrame
    y: np.ndarray
    ref: np.ndarray | None


def _window(frame: pd.DataFrame, config: RunConfig, feature_names: list[str]) -> _Window:
    rows, n_dropped = usable_rows(frame, config, feature_names)
    split = holdout_split(
        rows[DATE], holdout_fraction=config.split.holdout_fraction, gap=config.purge_gap
    )
    train_rows = rows.iloc[split.train_index].reset_index(drop=True)
    return _Window(
        rows=rows,
        n_dropped=n_dropped,
        train_rows=train_rows,
        holdout=rows.iloc[split.holdout_index].reset_index(drop=True),
        holdout_index=np.asarray(split.holdout_index),
        folds=walk_forward_folds(
            train_rows[DATE], n_splits=config.split.n_splits, gap=config.purge_gap
        ),
        x=train_rows[feature_names],
        y=train_rows[TARGET].to_numpy(dtype=float),
        ref=direction_ref(train_rows),
    )


def candidate_count(config: RunConfig) -> int:
    """How many candidates the run config tunes: the training pipeline's fan-out width."""
    return len(config.models)


def tune(
    frame: pd.DataFrame, config: RunConfig, *, feature_names: list[str], candidate: int
) -> pd.DataFrame:
    """Cross-validate every grid combination of one candidate (its index in ``models``).

    One row per combination, with the raw parameters in ``_params`` and the candidate's index
    in ``_index``: what ``train(scores=...)`` ranks, the same rows whether the candidates were
    tuned here one after another or by the training pipeline's parallel ``tune`` tasks.
    """
    specs = build_candidates(config)
    if not 0 <= candidate < len(specs):
        raise TrainingError(
            f"candidate {candidate} does not exist: the run config has {len(specs)} "
            f"(0-{len(specs) - 1})",
            hint="tune each index the run config's models list has",
        )
    window = _window(frame, config, feature_names)
    return _tune(specs[candidate], candidate, window)


def train(
    frame: pd.DataFrame,
    config: RunConfig,
    *,
    feature_names: list[str],
    scores: list[pd.DataFrame] | None = None,
) -> TrainResult:
    """Split by date, tune each candidate on walk-forward folds, refit the best on training.

    ``scores`` are the candidates' tables from ``tune`` when they were tuned elsewhere (the
    pipeline's fan-out); ``None`` tunes them here, in turn.
    """
    window = _window(frame, config, feature_names)
    specs = build_candidates(config)
    if scores is None:
        scores = [_tune(spec, i, window) for i, spec in enumerate(specs)]
    table = _combine(scores, specs)
    from threadpoolctl import threadpool_limits

    metric = config.selection_metric
    table = _rank(table, metric)
    best = table.loc[table["selected"]].iloc[0]
    spec = specs[int(best["_index"])]
    model = spec.with_params(best["_params"])
    with threadpool_limits(limits=1):
        _fit(model, window.x, window.y, spec.name, best["_params"])

    dates = pd.to_datetime(window.rows[DATE])
    train_dates = pd.to_datetime(window.train_rows[DATE])
    holdout_dates = dates.iloc[window.holdout_index]
    return TrainResult(
        model=model,
        candidate=spec.name,
        params=dict(best["_params"]),
        cv_results=table.drop(columns=["_params", "_index"]),
        feature_names=list(feature_names),
        target_kind=config.target_kind,
        selection_metric=metric,
        n_train_rows=len(window.train_rows),
        n_holdout_rows=len(window.holdout),
        train_dates=(train_dates.min(), train_dates.max()),
        holdout_dates=(holdout_dates.min(), holdout_dates.max()),
        holdout=window.holdout,
        n_dropped_rows=window.n_dropped,
        train_target_mean=float(np.mean(window.y)),
    )


def _tune(spec: CandidateSpec, index: int, window: _Window) -> pd.DataFrame:
    from threadpoolctl import threadpool_limits

    # One native thread: the fits are small, and OpenMP threads (hist_gbm) that spin-wait on a
    # busy machine made training 3-5x slower than one thread in measurements on two cores.
    with threadpool_limits(limits=1):
        rows = [
            _score(spec, params, window.x, window.y, window.ref, window.folds)
            for params in spec.grid or [{}]
        ]
    return pd.DataFrame(rows).assign(_index=index)


def _combine(scores: list[pd.DataFrame], specs: list[CandidateSpec]) -> pd.DataFrame:
    """Every candidate's rows in config order, each candidate exactly once.

    Config order matters: ties in the ranking go to the earlier candidate, so the selected model
    does not depend on the order parallel tasks finished in.
    """
    if not scores:
        raise TrainingError("no candidate was tuned", hint="the run config needs a model")
    table = pd.concat(scores, ignore_index=True)
    # Each table is one tune call: an index in two of them was tuned twice.
    tuned = sorted(i for frame in scores for i in set(frame["_index"].astype(int)))
    if tuned != list(range(len(specs))):
        raise TrainingError(
            f"scores for candidates {tuned}, but the run config has {len(specs)} "
            f"({', '.join(s.name for s in specs)})",
            hint="tune every candidate of the same run config, each once",
        )
    for index, name in table[["_index", "candidate"]].drop_duplicates().itertuples(index=False):
        if specs[int(index)].name != name:
            raise TrainingError(
                f"candidate {int(index)} was tuned as {name}, the run config's is "
                f"{specs[int(index)].name}",
                hint="train with the run config the candidates were tuned with",
            )
    return table.sort_values("_index", kind="stable").reset_index(drop=True)


def usable_rows(
    frame: pd.DataFrame, config: RunConfig, feature_names: list[str]
) -> tuple[pd.DataFrame, int]:
    """Rows with every feature and the target known, date-ordered.

    Returns the rows and how many were dropped for a missing or non-finite value.
    """
    check_feature_names(feature_names)
    missing = [c for c in (TICKER, DATE, *feature_names, TARGET) if c not in frame.columns]
    if missing:
        raise TrainingError(
            f"the features frame lacks column(s) {', '.join(missing)}",
            hint="check the run config's features against the feature engine's output",
        )
    # The configured tickers were selected where the data entered (validate or prepare,
    # ``kubeline.data.schema.select_tickers``): this frame holds those tickers only.
    rows = frame
    needed = rows[[*feature_names, TARGET]].apply(pd.to_numeric, errors="coerce")
    known = np.isfinite(needed.to_numpy(dtype=float)).all(axis=1)
    rows = rows.loc[known].sort_values([DATE, TICKER], kind="stable").reset_index(drop=True)
    if rows.empty:
        raise TrainingError(
            "no row has every feature and the target known",
            hint="the history may be shorter than the longest feature window; supply more data",
        )
    return rows, int((~known).sum())


def _score(
    spec: CandidateSpec,
    params: dict[str, Any],
    x: pd.DataFrame,
    y: np.ndarray,
    ref: np.ndarray | None,
    folds: list[Fold],
) -> dict[str, Any]:
    """Mean and spread of each metric over the folds for one parameter combination."""
    per_fold: list[dict[str, float]] = []
    started = time.perf_counter()
    for fit_idx, val_idx in folds:
        model = spec.with_params(params)
        _fit(model, x.iloc[fit_idx], y[fit_idx], spec.name, params)
        pred = model.predict(x.iloc[val_idx])
        per_fold.append(regression_metrics(y[val_idx], pred, None if ref is None else ref[val_idx]))
    row: dict[str, Any] = {
        "candidate": spec.name,
        "params": ", ".join(f"{k}={v}" for k, v in params.items()) or "(defaults)",
        "_params": params,
    }
    for metric in METRICS:
        values = np.array([fold[metric] for fold in per_fold])
        row[f"mean_{metric}"] = float(np.nanmean(values)) if np.isfinite(values).any() else np.nan
        row[f"std_{metric}"] = float(np.nanstd(values)) if np.isfinite(values).any() else np.nan
    row["fit_seconds"] = round(time.perf_counter() - started, 3)
    return row


def _rank(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Rank combinations by the selection metric (NaN last; ties keep config order)."""
    ascending = better(metric) == "lower"
    order = table[f"mean_{metric}"].rank(method="first", ascending=ascending, na_option="bottom")
    table = table.assign(rank=order.astype(int))
    return table.assign(selected=table["rank"] == 1)


def _fit(model: Pipeline, x: pd.DataFrame, y: np.ndarray, name: str, params: dict) -> None:
    try:
        model.fit(x, y)
    except (ValueError, TypeError) as exc:
        raise TrainingError(
            f"candidate {name} with {params or 'default parameters'} failed to fit: {exc}",
            hint="check the parameter values in the run config's models list",
        ) from exc
