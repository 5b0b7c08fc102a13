"""The served model: a registered version loaded from the registry with its card and lineage.

BentoML-free on purpose: the service, batch scoring and tests all load a version through
``load_served``, which goes through the same loader as register's infra check
(``kubeline.registry.load_model``) and predicts through ``kubeline.model.predict``. A version is
only handed out after it predicted its own input example to finite numbers, so a version that
loads but cannot predict never replaces one that serves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from kubeline.errors import ModelNotFoundError, RegistryError

if TYPE_CHECKING:
    import pandas as pd

    from kubeline.model import ModelCard
    from kubeline.settings import Settings


@dataclass(frozen=True)
class ServedModel:
    """One registered version, ready to predict, with what ``GET /model`` says about it."""

    estimator: Any
    card: ModelCard
    name: str
    version: str
    alias: str | None  # the alias it was loaded by; None when pinned by version
    mlflow_run_id: str | None
    pipeline_run_id: str | None
    git_revision: str | None
    data_hash: str | None
    input_example: list[dict[str, float]]  # rows of features: a /predict body as is
    loaded_at: str = field(default_factory=lambda: _now())
    # The MLflow signature's input schema: /invocations parses bodies with it, as MLflow does.
    input_schema: Any = None
    # The estimator's positional copy (kubeline.model.positional_copy), None when it has none.
    positional: Any = field(default=None, repr=False)

    @property
    def feature_names(self) -> list[str]:
        return list(self.card.feature_names)

    @property
    def training_window(self) -> dict[str, str]:
        return {"start": self.card.train_start, "end": self.card.train_end}

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """One prediction per row of a frame holding (at least) the model's features."""
        from kubeline import model

        return model.predict(self.estimator, frame, self.card.feature_names, self.positional)

    def example_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.input_example, columns=self.feature_names)

    def metadata(self) -> dict[str, Any]:
        """What ``GET /model`` answers: identity, lineage, inputs and a working example body."""
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "mlflow_run_id": self.mlflow_run_id,
            "pipeline_run_id": self.pipeline_run_id,
            "git_revision": self.git_revision,
            "data_hash": self.data_hash,
            "feature_names": self.feature_names,
            "target": self.card.target,
            "horizon": self.card.horizon,
            "candidate": self.card.candidate,
            "training_window": self.training_window,
            "loaded_at": self.loaded_at,
            "example": {"rows": self.input_example},
        }


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def resolve_version(
    settings: Settings,
    *,
    name: str | None = None,
    version: str | int | None = None,
    alias: str = "champion",
) -> tuple[str, str, str | None, Any]:
    """The (name, version, alias, MLflow model version) to serve; a typed error if absent.

    Cheap (one registry call): the service polls it to see whether the alias moved.
    """
    from kubeline import registry

    name = name or settings.model_name
    client = registry.connect(settings, create=False)
    if version is not None:
        found = registry.version_by_number(client, name, version)
        if found is None:
            raise ModelNotFoundError(
                f"model {name!r} has no version {version}",
                hint="`kubeline models` lists the versions",
            )
        return name, str(found.version), None, found
    found = registry.version_by_alias(client, name, alias)
    if found is None:
        raise ModelNotFoundError(
            f"model {name!r} has no version with the alias {alias!r}",
            hint="train and promote a model first (`kubeline run`, `kubeline promote`), "
            "or pin one with --version",
        )
    return name, str(found.version), alias, found


def load_served(
    settings: Settings,
    *,
    name: str | None = None,
    version: str | int | None = None,
    alias: str = "champion",
) -> ServedModel:
    """Load the version behind ``alias`` (or the pinned ``version``) and check it predicts.

    Raises ModelNotFoundError when the model, version or alias does not exist, RegistryError
    when the registry cannot be read or the version cannot be loaded or fails on its example.
    """
    import mlflow
    from mlflow.models import Model

    from kubeline import registry
    from kubeline.lineage import DATA_HASH, tag
    from kubeline.model import CARD_FILE, ModelCard, positional_copy
    from kubeline.registry import Tag

    name, number, alias_used, found = resolve_version(
        settings, name=name, version=version, alias=alias
    )
    uri = registry.model_uri(name, number)
    tags = dict(found.tags or {})
    run_id = found.run_id or tags.get(Tag.RUN_ID)
    if not run_id:
        raise RegistryError(
            f"version {number} of {name!r} has no MLflow run: it was not registered by kubeline",
            hint="serve a version registered by `kubeline run`",
        )
    estimator = registry.load_model(uri)
    try:
        card = ModelCard.model_validate_json(
            mlflow.artifacts.load_text(f"runs:/{run_id}/{CARD_FILE}")
        )
        mlmodel = Model.load(uri)
        example = mlmodel.load_input_example(uri)
        schema = mlmodel.get_input_schema()
    except Exception as exc:
        raise RegistryError(
            f"cannot read the card ({CARD_FILE}) or input example of {uri}: {exc}",
            hint="check that the MLflow server and its artifact store are up",
        ) from exc
    if example is None:
        raise RegistryError(f"{uri} has no input example; it was not registered by kubeline")
    served = ServedModel(
        estimator=estimator,
        card=card,
        name=name,
        version=number,
        alias=alias_used,
        mlflow_run_id=run_id,
        pipeline_run_id=tags.get(tag("pipeline_run_id")),
        git_revision=tags.get(tag("git_revision")),
        data_hash=tags.get(tag(DATA_HASH)),
        input_example=_records(example, card.feature_names),
        input_schema=schema,
    )
    check(served)
    return replace(served, positional=positional_copy(estimator, served.example_frame()))


def _records(example: Any, names: list[str]) -> list[dict[str, float]]:
    import pandas as pd

    frame = pd.DataFrame(example)
    return [{n: float(row[n]) for n in names} for row in frame[names].to_dict(orient="records")]


def check(served: ServedModel) -> None:
    """Refuse a version that does not predict finite numbers on its own input example."""
    where = f"version {served.version} of {served.name!r}"
    try:
        got = served.predict(served.example_frame())
    except Exception as exc:  # any failure to predict is what this check is for
        raise RegistryError(
            f"{where} fails on its own input example: {type(exc).__name__}: {exc}",
            hint="promote another version (`kubeline promote --version N`)",
        ) from exc
    if len(got) != len(served.input_example) or not np.all(np.isfinite(got)):
        raise RegistryError(
            f"{where} predicts non-finite numbers on its own input example",
            hint="promote another version (`kubeline promote --version N`)",
        )
