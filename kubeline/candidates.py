"""Turn the run config's candidate list into unfitted scikit-learn pipelines and grids.

Every fitted transform (scaling, polynomial expansion) is a step of the pipeline, so it is fit
on whatever rows the pipeline is fit on (a fold's training rows, then the training window) and
never on the whole series.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubeline.errors import ConfigError
from kubeline.runconfig import Candidate, RunConfig, resolve_estimator

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

# Grid keys that belong to the polynomial step rather than the final regressor.
_POLY_PARAMS = frozenset({"interaction_only"})


@dataclass(frozen=True)
class CandidateSpec:
    """One candidate ready to tune: a display name, an unfitted pipeline, its parameter grid."""

    name: str
    pipeline: Pipeline
    grid: list[dict[str, Any]]  # user-facing parameter names, one dict per combination

    def with_params(self, params: dict[str, Any]) -> Pipeline:
        """A fresh unfitted copy of the pipeline with one grid combination applied."""
        from sklearn.base import clone

        pipeline = clone(self.pipeline)
        has_poly = "poly" in pipeline.named_steps
        pipeline.set_params(**{_step_key(k, has_poly): v for k, v in params.items()})
        return pipeline


def build_candidates(config: RunConfig) -> list[CandidateSpec]:
    """One spec per configured candidate; duplicate names get a #2, #3 suffix."""
    specs: list[CandidateSpec] = []
    seen: dict[str, int] = {}
    for i, candidate in enumerate(config.models):
        seen[candidate.label] = seen.get(candidate.label, 0) + 1
        name = candidate.label + (f"#{seen[candidate.label]}" if seen[candidate.label] > 1 else "")
        try:
            pipeline = build_pipeline(candidate, seed=config.seed)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"models[{i}] ({name}): cannot build the estimator: {exc}") from exc
        keys = sorted(candidate.params)
        grid = [
            dict(zip(keys, values, strict=True))
            for values in itertools.product(*(candidate.params[k] for k in keys))
        ]
        specs.append(CandidateSpec(name=name, pipeline=pipeline, grid=grid))
    return specs


def build_pipeline(candidate: Candidate, *, seed: int) -> Pipeline:
    """The unfitted pipeline for one candidate: [scale] -> [poly] -> model."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import PolynomialFeatures, StandardScaler

    steps: list[tuple[str, Any]] = []
    if candidate.scaled:
        steps.append(("scale", StandardScaler()))
    if candidate.name == "poly2":
        steps.append(("poly", PolynomialFeatures(degree=2, include_bias=False)))
    steps.append(("model", _regressor(candidate)))
    pipeline = Pipeline(steps)
    if "random_state" in pipeline.named_steps["model"].get_params(deep=False):
        pipeline.set_params(model__random_state=seed)
    return pipeline


def _regressor(candidate: Candidate) -> Any:
    # Defaults lean towards heavy regularization and speed: daily returns are mostly noise and
    # the default candidates must train on ~25k rows in seconds on two cores.
    if candidate.name in ("ridge", "poly2"):
        from sklearn.linear_model import Ridge

        return Ridge(alpha=1.0)
    if candidate.name == "random_forest":
        from sklearn.ensemble import RandomForestRegressor

        # One job: threads add tree outputs in a varying order, so predictions would differ in
        # the last bits from run to run and training would not be reproducible.
        return RandomForestRegressor(
            n_estimators=100, max_depth=8, min_samples_leaf=50, max_features=0.5, n_jobs=1
        )
    if candidate.name == "hist_gbm":
        from sklearn.ensemble import HistGradientBoostingRegressor

        return HistGradientBoostingRegressor(
            max_iter=100,
            learning_rate=0.05,
            max_leaf_nodes=15,
            min_samples_leaf=50,
            l2_regularization=1.0,
            early_stopping=False,
        )
    assert candidate.estimator is not None
    return resolve_estimator(candidate.estimator)()


def _step_key(param: str, has_poly: bool) -> str:
    return f"{'poly' if has_poly and param in _POLY_PARAMS else 'model'}__{param}"
