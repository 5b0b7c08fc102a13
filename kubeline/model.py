"""The model artifact: save and load (skops, a trusted-type allowlist), its inputs, predicting.

A saved model is a folder with the fitted scikit-learn pipeline (``model.skops``: no pickle) and
its card (``model.json``): what it predicts, which columns it reads, which dates it saw. Train
writes it; evaluate, register's infra check, serving and batch scoring read it only through
this module, so "which columns are model inputs" and "which types may be loaded" have one answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from kubeline.errors import ConfigError, TrainingError

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.models import ModelSignature

    from kubeline.runconfig import RunConfig
    from kubeline.train import TrainResult

MODEL_FILE = "model.skops"
CARD_FILE = "model.json"
EXAMPLE_ROWS = 5

# skops refuses to build any type it is not told to trust; these are what kubeline's candidates
# are made of. A model file with other types is refused rather than executed.
TRUSTED_MODULES = ("sklearn.", "numpy.", "scipy.", "builtins.", "collections.")


class ModelCard(BaseModel):
    """What a trained model is: its choice, its inputs, what it predicts and the dates it saw."""

    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="constants")

    candidate: str
    params: dict[str, Any]
    selection_metric: str
    cv_score: float  # the selected combination's mean CV score on ``selection_metric``
    target: str
    horizon: int
    target_kind: str
    feature_names: list[str]
    # The constant forecast of a level target is the training window's mean (see baseline.py).
    train_target_mean: float
    n_train_rows: int
    n_holdout_rows: int
    n_dropped_rows: int
    train_start: str
    train_end: str
    holdout_start: str
    holdout_end: str
    cv_results: list[dict[str, Any]] = Field(default_factory=list)
    estimator_modules: list[str] = Field(default_factory=list)

    @classmethod
    def of(cls, result: TrainResult, config: RunConfig) -> ModelCard:
        """The card of a training result under the run config that produced it."""
        import pandas as pd

        cv = result.cv_results.drop(columns=["_params"], errors="ignore")
        return cls(
            **result.summary(),
            target=config.target,
            horizon=config.horizon,
            cv_results=cv.astype(object).where(pd.notna(cv), None).to_dict(orient="records"),
            estimator_modules=sorted(
                {c.estimator.rsplit(".", 1)[0] for c in config.models if c.estimator}
            ),
        )

    def cv_metrics(self) -> dict[str, float]:
        """The selected combination's mean CV scores as ``cv_<metric>`` (NaN left out)."""
        for row in self.cv_results:
            if row.get("selected"):
                return {
                    f"cv_{k.removeprefix('mean_')}": float(v)
                    for k, v in row.items()
                    if k.startswith("mean_") and isinstance(v, int | float) and v == v
                }
        return {}

    def metadata(self) -> dict[str, Any]:
        """The card without the CV table: small enough for artifact metadata and run params."""
        return self.model_dump(mode="json", exclude={"cv_results"}) | {
            "n_features": len(self.feature_names),
            "framework": "scikit-learn",
        }


def check_feature_names(names: list[str]) -> None:
    """Refuse keys, baseline helpers and the target as model inputs."""
    from kubeline.features import NON_FEATURE_COLUMNS

    if not names:
        raise TrainingError("no feature columns given to train on")
    bad = sorted(n for n in names if n in NON_FEATURE_COLUMNS)
    if bad:
        raise TrainingError(
            f"{', '.join(bad)} cannot be model inputs: keys, the target and the naive-baseline "
            "columns are never features",
            hint="remove them from the run config's features list",
        )


def input_columns(frame: pd.DataFrame) -> list[str]:
    """The model-input columns of a features frame: every column but keys, helpers and target."""
    from kubeline.features import feature_names

    return feature_names(frame)


def columns_read(estimator: Any, frame: pd.DataFrame, names: list[str] | None = None) -> list[str]:
    """The columns a fitted estimator reads (``feature_names_in_`` unless given), all in frame."""
    wanted = list(names or getattr(estimator, "feature_names_in_", []))
    if not wanted:
        raise ConfigError("cannot tell which columns the model reads; pass feature_names")
    missing = [n for n in wanted if n not in frame.columns]
    if missing:
        raise ConfigError(
            f"the frame lacks feature(s) {', '.join(missing)} the model was trained on",
            hint="score a model on a frame built with the features it was trained on",
        )
    return wanted


def predict(
    estimator: Any,
    frame: pd.DataFrame,
    names: list[str] | None = None,
    positional: Any = None,
) -> np.ndarray:
    """Predictions of a fitted estimator on a frame holding (at least) its input columns.

    ``positional`` is the estimator's ``positional_copy``: used when the frame is exactly the
    model's columns in order, the only case where position and name agree.
    """
    wanted = columns_read(estimator, frame, names)
    # A frame already in the model's columns (the service builds them so) is not copied:
    # DataFrame.__getitem__ was 15% of a one-row request's samples (py-spy, the service at c32).
    exact = frame.columns.size == len(wanted) and all(frame.columns == wanted)
    if exact and positional is not None:
        return np.asarray(positional.predict(frame.to_numpy()), dtype=float)
    return np.asarray(estimator.predict(frame if exact else frame[wanted]), dtype=float)


def positional_copy(estimator: Any, example: pd.DataFrame) -> Any | None:
    """A copy of a fitted estimator that predicts arrays by position, or None when it cannot.

    scikit-learn checks a DataFrame's column names on every predict: with a one-row frame that
    check is most of the call (py-spy, the service at c32; 750 to 258 us per 1-row predict).
    The service already builds frames in the model's column order, so a copy without the
    fitted names, fed ``frame.to_numpy()``, computes the same thing. It is only handed out
    after it predicted ``example`` bit for bit like the original; an estimator that really
    needs names (a ColumnTransformer selecting columns by name) fails that and keeps the
    checked path. Every fitted ``feature_names_in_`` reachable from it is removed, so an array
    raises no "fitted with feature names" warning (the unit tests hold it to that).
    """
    import copy

    from sklearn.base import BaseEstimator

    bare = copy.deepcopy(estimator)
    seen: set[int] = set()
    stack: list[Any] = [bare]
    while stack:  # every fitted part, nested in pipelines, lists of steps and fitted attributes
        part = stack.pop()
        if id(part) in seen:
            continue
        seen.add(id(part))
        if isinstance(part, BaseEstimator):
            vars(part).pop("feature_names_in_", None)
            stack.extend(vars(part).values())
        elif isinstance(part, list | tuple):
            stack.extend(part)
        elif isinstance(part, dict):
            stack.extend(part.values())
    # No warnings.catch_warnings here: its filters are the process's, and the service makes
    # this copy in its reload thread while requests run; "error" there turned a request's
    # unrelated warning into a failed request (the hot-swap test caught one in 1,499).
    try:
        got = np.asarray(bare.predict(example.to_numpy()), dtype=float)
        want = np.asarray(estimator.predict(example), dtype=float)
    except Exception:  # any failure means the copy is not equivalent; the checked path stays
        return None
    return bare if np.array_equal(got, want, equal_nan=True) else None


def input_example(frame: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """The first rows of the model's inputs: what the registry stores and the infra check uses."""
    return frame[names].head(EXAMPLE_ROWS).reset_index(drop=True)


def signature(example: pd.DataFrame, predictions: Any) -> ModelSignature:
    """The MLflow signature: the input columns and their types, a float prediction out."""
    from mlflow.models import infer_signature

    return infer_signature(example, np.asarray(predictions, dtype=float))


class SavedModel:
    """A fitted estimator and its card, as ``save`` wrote them and ``load`` read them back."""

    def __init__(self, estimator: Any, card: ModelCard) -> None:
        self.estimator = estimator
        self.card = card

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return predict(self.estimator, frame, self.card.feature_names)


def save(estimator: Any, card: ModelCard, folder: str | Path) -> None:
    """Write the fitted pipeline (skops) and its card, atomically."""
    import skops.io

    from kubeline.storage import atomic_path

    with atomic_path(folder) as tmp:
        tmp.mkdir(parents=True)
        skops.io.dump(estimator, tmp / MODEL_FILE)
        (tmp / CARD_FILE).write_text(card.model_dump_json(indent=2))


def trusted_types(folder: str | Path, card: ModelCard) -> list[str]:
    """The types in a saved model that may be loaded: scikit-learn's and the config's own.

    Estimators named by import path in the run config are trusted by their module, because
    the config that named them is what the user asked to run.
    """
    import skops.io

    path = Path(folder) / MODEL_FILE
    modules = TRUSTED_MODULES + tuple(f"{m}." for m in card.estimator_modules)
    found = skops.io.get_untrusted_types(file=path)
    refused = [t for t in found if not t.startswith(modules)]
    if refused:
        raise TrainingError(
            f"{path} holds types kubeline does not trust: {', '.join(refused)}",
            hint="only models trained by kubeline from its candidates or the run config load",
        )
    return found


def load(folder: str | Path) -> SavedModel:
    """The fitted pipeline and its card from a model folder; untrusted types are refused."""
    import skops.io

    folder = Path(folder)
    try:
        card = ModelCard.model_validate_json((folder / CARD_FILE).read_text())
    except FileNotFoundError:
        raise TrainingError(
            f"{folder / CARD_FILE} does not exist: {folder} is not a kubeline model folder",
            hint="pass the folder the train step wrote",
        ) from None
    estimator = skops.io.load(folder / MODEL_FILE, trusted=trusted_types(folder, card))
    return SavedModel(estimator, card)
