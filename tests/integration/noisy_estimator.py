"""A regressor whose predictions change from call to call: what the infra check must catch.

A run config names it by import path (``noisy_estimator.NoisyRegressor``); pytest puts this
folder on ``sys.path``, so the train step and the registry's loader can both import it.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin


class NoisyRegressor(RegressorMixin, BaseEstimator):
    def fit(self, x, y):  # type: ignore[no-untyped-def]
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, x):  # type: ignore[no-untyped-def]
        return self.mean_ + np.random.default_rng().normal(0.0, 1e-3, len(x))
