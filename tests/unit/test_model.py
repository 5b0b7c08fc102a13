"""The model artifact: save/load round trip, the trusted-type allowlist, its input columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from kubeline import model
from kubeline.data.schema import DATE, DIRECTION_REF, NAIVE_LAST, NAIVE_MA, TARGET, TICKER
from kubeline.errors import ConfigError, TrainingError


class DoubleIt(BaseEstimator, RegressorMixin):
    """A regressor from outside scikit-learn: its module is not on the allowlist."""

    def fit(self, x: pd.DataFrame, y: np.ndarray) -> DoubleIt:
        self.feature_names_in_ = np.array(x.columns)
        return self

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        return 2.0 * x.iloc[:, 0].to_numpy(dtype=float)


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            TICKER: ["A"] * 8,
            DATE: pd.bdate_range("2024-01-01", periods=8),
            "ret_1": np.linspace(-0.02, 0.02, 8),
            "rsi_14": np.linspace(30, 70, 8),
            NAIVE_LAST: 0.0,
            NAIVE_MA: 0.0,
            DIRECTION_REF: 0.0,
            TARGET: np.linspace(-0.01, 0.01, 8),
        }
    )


def card(**changes: object) -> model.ModelCard:
    values: dict[str, object] = {
        "candidate": "ridge",
        "params": {"alpha": 1.0},
        "selection_metric": "rmse",
        "cv_score": 0.01,
        "target": "next_return",
        "horizon": 1,
        "target_kind": "return",
        "feature_names": ["ret_1", "rsi_14"],
        "train_target_mean": 0.0004,
        "n_train_rows": 8,
        "n_holdout_rows": 2,
        "n_dropped_rows": 0,
        "train_start": "2024-01-01",
        "train_end": "2024-01-08",
        "holdout_start": "2024-01-09",
        "holdout_end": "2024-01-10",
        "cv_results": [{"candidate": "ridge", "selected": True, "mean_rmse": 0.01}],
    }
    return model.ModelCard.model_validate(values | changes)


def test_input_columns_are_every_column_but_keys_baseline_helpers_and_target() -> None:
    assert model.input_columns(frame()) == ["ret_1", "rsi_14"]


def test_a_saved_model_loads_back_and_predicts_the_same(tmp_path: Path) -> None:
    data = frame()
    fitted = Pipeline([("scale", StandardScaler()), ("model", Ridge())]).fit(
        data[["ret_1", "rsi_14"]], data[TARGET]
    )
    model.save(fitted, card(), tmp_path / "m")
    saved = model.load(tmp_path / "m")
    assert saved.card == card()
    np.testing.assert_array_equal(saved.predict(data), fitted.predict(data[["ret_1", "rsi_14"]]))
    assert saved.card.cv_metrics() == {"cv_rmse": 0.01}


def test_the_allowlist_refuses_a_type_from_outside_scikit_learn(tmp_path: Path) -> None:
    data = frame()
    model.save(DoubleIt().fit(data[["ret_1"]], data[TARGET]), card(), tmp_path / "m")
    with pytest.raises(TrainingError, match=r"holds types kubeline does not trust: .*DoubleIt"):
        model.load(tmp_path / "m")
    # A module the run config named by import path is what the user asked to run: trusted.
    trusted = card(estimator_modules=[DoubleIt.__module__])
    model.save(DoubleIt().fit(data[["ret_1"]], data[TARGET]), trusted, tmp_path / "t")
    assert model.load(tmp_path / "t").predict(data)[0] == pytest.approx(-0.04)


def test_loading_a_folder_without_a_card_says_what_it_is_not(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="is not a kubeline model folder"):
        model.load(tmp_path)


def test_predict_names_the_missing_feature() -> None:
    fitted = Ridge().fit(frame()[["ret_1", "rsi_14"]], frame()[TARGET])
    with pytest.raises(ConfigError, match=r"lacks feature\(s\) rsi_14"):
        model.predict(fitted, frame().drop(columns="rsi_14"))


def test_keys_helpers_and_the_target_are_refused_as_features() -> None:
    with pytest.raises(TrainingError, match="_naive_ma, target cannot be model inputs"):
        model.check_feature_names(["ret_1", "target", "_naive_ma"])


def test_the_input_example_and_signature_name_the_model_inputs() -> None:
    example = model.input_example(frame(), ["ret_1", "rsi_14"])
    assert list(example.columns) == ["ret_1", "rsi_14"] and len(example) == model.EXAMPLE_ROWS
    sig = model.signature(example, np.zeros(len(example)))
    assert sig.inputs.input_names() == ["ret_1", "rsi_14"]


@pytest.mark.parametrize("name", ["ridge", "poly2", "random_forest", "hist_gbm"])
def test_the_positional_copy_predicts_like_the_named_pipeline_without_warnings(
    name: str,
) -> None:
    import warnings

    from kubeline.candidates import build_pipeline
    from kubeline.runconfig import Candidate

    rng = np.random.default_rng(3)
    x = pd.DataFrame(rng.normal(size=(400, 3)), columns=["ret_1", "rsi_14", "hl_range"])
    y = x["ret_1"] * 0.5 - x["hl_range"] * 0.2 + rng.normal(scale=0.1, size=400)
    fitted = build_pipeline(Candidate(name=name), seed=1).fit(x, y)
    fast = model.positional_copy(fitted, x.head(5))
    assert fast is not None
    assert hasattr(fitted, "feature_names_in_")  # the original keeps its names
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = model.predict(fitted, x, list(x.columns), fast)
    np.testing.assert_array_equal(got, fitted.predict(x))


def test_a_frame_in_another_order_is_predicted_by_name_not_by_position() -> None:
    x = frame()[["ret_1", "rsi_14"]]
    fitted = Pipeline([("scale", StandardScaler()), ("model", Ridge())]).fit(x, frame()[TARGET])
    fast = model.positional_copy(fitted, x)
    swapped = x[["rsi_14", "ret_1"]]
    got = model.predict(fitted, swapped, ["ret_1", "rsi_14"], fast)
    np.testing.assert_array_equal(got, fitted.predict(x))


def test_an_estimator_that_selects_columns_by_name_gets_no_positional_copy() -> None:
    from sklearn.compose import ColumnTransformer

    x = frame()[["ret_1", "rsi_14"]]
    by_name = ColumnTransformer([("keep", "passthrough", ["rsi_14"])])
    fitted = Pipeline([("pick", by_name), ("model", Ridge())]).fit(x, frame()[TARGET])
    assert model.positional_copy(fitted, x) is None
