"""MLflow tracking and model registry: experiments, lineage, loading, aliases, promotion.

Aliases replace stages (MLflow 3): ``champion`` is the version that serves, ``challenger`` the
newest version that did not pass the gate. Promotion history is kept as a stack in a registered
model tag, so ``rollback`` returns to the previous champion; no version is ever deleted.

The tag keys kubeline writes and the gate states a version can be in are defined here, once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from kubeline.errors import RegistryError
from kubeline.lineage import TAG_PREFIX, tag

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from kubeline.settings import Settings

CHAMPION = "champion"
CHALLENGER = "challenger"


class GateState(StrEnum):
    """Where a model version stands (its ``kubeline.gate`` tag).

    ``pending`` from the moment it exists (a crash halfway is visible), then ``passed``
    (champion), ``failed`` (challenger: it works but did not pass the gate) or ``rejected``
    (no alias: it failed the infra check and must not be served).
    """

    PENDING = "pending"
    PASSED = "passed"
    FAILED = "failed"
    REJECTED = "rejected"


class Tag:
    """Tag keys on registered models, model versions and runs."""

    CHAMPION_STACK = tag("champion_stack")  # registered model: the promotion history
    GATE = tag("gate")  # a GateState
    GATE_REASON = tag("gate_reason")
    PROMOTED_AT = tag("promoted_at")
    PROMOTION_REASON = tag("promotion_reason")
    ROLLED_BACK_AT = tag("rolled_back_at")
    RUN_ID = tag("run_id")
    MODEL_NAME = tag("model_name")
    MODEL_VERSION = tag("model_version")  # on the run
    ALIAS = tag("alias")  # on the run
    TRAIN_END = tag("train_end")  # the last date of a training row (its features' date)
    # The last date whose realized target the version trained on: ``horizon`` dates after
    # TRAIN_END. A later holdout may start after it without the version having seen its rows.
    LABEL_END = tag("label_end")
    FEATURES = tag("features")
    CANDIDATE = tag("candidate")
    SCORES = tag("scores")  # JSON: the gate metric of the model and of each naive forecast
    DATA = tag("data")  # the raw data's location it was trained from: where a retraining reads


STACK_TAG = Tag.CHAMPION_STACK


def check_reachable(settings: Settings, timeout: float = 5.0) -> None:
    """Fail at once, with the URI in the message, when a tracking server does not answer.

    MLflow's own client retries for minutes before giving up; a run should not train first
    and then hang in evaluate.
    """
    import urllib.error
    import urllib.request

    uri = settings.tracking_uri
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as response:
            if response.status == 200:
                return
            problem = f"HTTP {response.status}"
    except (urllib.error.URLError, OSError) as exc:
        problem = str(getattr(exc, "reason", exc))
    raise RegistryError(
        f"the MLflow tracking server at {uri} does not answer ({problem})",
        hint="start it, or unset KUBELINE_MLFLOW_TRACKING_URI to use the local store",
    )


def connect(settings: Settings, *, create: bool = True) -> MlflowClient:
    """Point the mlflow module at the configured tracking server or store and return a client.

    With ``create=False`` (read-only commands) a local store that does not exist yet is an
    error saying so, instead of an empty store made (with MLflow's migration lines) to be read.
    """
    import os

    if not create:
        _check_store_exists(settings)
    check_reachable(settings)
    # Bounded retries: a server that goes away mid-run fails the step in seconds, not minutes.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
    # MLflow reads its own variables when a server hands artifacts to the client to store.
    if settings.s3_endpoint_url:
        os.environ.setdefault("MLFLOW_S3_ENDPOINT_URL", settings.s3_endpoint_url)
    if settings.s3_access_key_id and settings.s3_secret_access_key:
        os.environ.setdefault("AWS_ACCESS_KEY_ID", settings.s3_access_key_id.get_secret_value())
        os.environ.setdefault(
            "AWS_SECRET_ACCESS_KEY", settings.s3_secret_access_key.get_secret_value()
        )
    import mlflow

    if settings.tracking_uri.startswith("sqlite:"):
        settings.state_path.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    return mlflow.MlflowClient(settings.tracking_uri, settings.tracking_uri)


def _check_store_exists(settings: Settings) -> None:
    uri = settings.tracking_uri
    if not uri.startswith("sqlite:"):
        return
    from sqlalchemy.engine import make_url

    database = make_url(uri).database
    if database and database != ":memory:":
        from pathlib import Path

        if not Path(database).exists():
            raise RegistryError(
                f"there is no model registry yet: {database} does not exist",
                hint="train a model first (`kubeline run --data PATH` or `kubeline demo`), "
                "or point KUBELINE_STATE_DIR / KUBELINE_MLFLOW_TRACKING_URI at an existing one",
            )


def prepare_store(settings: Settings) -> None:
    """Create the store's schema and the experiment before a run's tasks use them.

    A per-ticker run evaluates and registers several tickers at once: on a fresh embedded
    store each task would run MLflow's schema migrations at the same time (measured: one of
    three failed with alembic's "expected to match one row"), and each would create the
    experiment. Done once here, the tasks find both. MLflow's lines about creating tables are
    kept out of the user's terminal, as they were when a task made the store (its log has them).
    """
    import logging

    quiet = [logging.getLogger(name) for name in ("mlflow.store.db.utils", "alembic")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.WARNING)
    try:
        client = connect(settings)
        ensure_experiment(client, settings.experiment_name, settings.artifact_location)
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)


def ensure_experiment(client: MlflowClient, name: str, artifact_location: str | None) -> str:
    """The id of the named experiment, created (with its artifact root) if it does not exist."""
    try:
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            return str(exp.experiment_id)
        return str(client.create_experiment(name, artifact_location=artifact_location))
    except Exception as exc:
        raise _registry_error(f"cannot open experiment {name!r}", exc) from exc


def _registry_error(what: str, exc: Exception) -> RegistryError:
    return RegistryError(
        f"{what}: {exc}",
        hint="check KUBELINE_MLFLOW_TRACKING_URI and that the MLflow server is up "
        "(`kubeline config` shows the effective URI)",
    )


def load_model(model_uri: str) -> Any:
    """Load a registered model the way the server does (scikit-learn flavor, skops format).

    Predict with ``kubeline.model.predict``, which picks the model's input columns.
    """
    import mlflow.sklearn

    try:
        return mlflow.sklearn.load_model(model_uri)
    except Exception as exc:
        raise _registry_error(f"cannot load model {model_uri}", exc) from exc


def model_uri(name: str, version: str | int) -> str:
    return f"models:/{name}/{version}"


_MISSING = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}


def _missing(exc: Exception) -> bool:
    """Whether an MLflow error means "no such model, version or alias" (not an outage)."""
    return getattr(exc, "error_code", "") in _MISSING


def version_by_alias(client: MlflowClient, name: str, alias: str) -> Any | None:
    """The model version holding ``alias``, or None when the alias or model does not exist."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except Exception as exc:
        if _missing(exc):
            return None
        raise _registry_error(f"cannot read alias {alias!r} of {name!r}", exc) from exc


def version_by_number(client: MlflowClient, name: str, version: str | int) -> Any | None:
    """The model version numbered ``version``, or None when it or the model does not exist."""
    try:
        return client.get_model_version(name, str(version))
    except Exception as exc:
        if _missing(exc):
            return None
        raise _registry_error(f"cannot read version {version} of {name!r}", exc) from exc


def _registered_model(client: MlflowClient, name: str) -> Any:
    """The registered model (its tags and aliases); a missing one is an error saying so."""
    try:
        return client.get_registered_model(name)
    except Exception as exc:
        if _missing(exc):
            raise RegistryError(
                f"no registered model named {name!r}",
                hint="run the pipeline first (`kubeline run`), or pass --model NAME",
            ) from exc
        raise _registry_error(f"cannot read model {name!r}", exc) from exc


def _history(client: MlflowClient, name: str) -> tuple[list[str], str | None]:
    """The promotion history and the version the champion alias really points at.

    The alias is the truth; the history tag only records it. When something else (the MLflow
    UI, another tool) moved the alias, the history is brought up to date first.
    """
    model = _registered_model(client, name)
    stack = [v for v in (model.tags or {}).get(STACK_TAG, "").split(",") if v]
    current = version_by_alias(client, name, CHAMPION)
    champion = str(current.version) if current is not None else None
    if champion is not None and (not stack or stack[-1] != champion):
        stack.append(champion)
    return stack, champion


def champion_history(client: MlflowClient, name: str) -> list[str]:
    """The versions that were champion, oldest first, the current one last."""
    return _history(client, name)[0]


def all_versions(client: MlflowClient) -> list[Any]:
    """Every version of every registered model (MLflow's ModelVersion objects)."""
    try:
        return list(client.search_model_versions(""))
    except Exception as exc:
        raise _registry_error("cannot list the model versions", exc) from exc


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def promote(client: MlflowClient, name: str, version: str | int, reason: str) -> None:
    """Make ``version`` the champion, pushing it on the promotion history (no-op if it is)."""
    version = str(version)
    stack, champion = _history(client, name)
    try:
        found = client.get_model_version(name, version)
    except Exception as exc:
        if not _missing(exc):
            raise _registry_error(f"cannot read version {version} of {name!r}", exc) from exc
        raise RegistryError(
            f"model {name!r} has no version {version}",
            hint="`kubeline models` lists the versions",
        ) from exc
    if found.tags.get(Tag.GATE) == GateState.REJECTED:
        # The infra check found it does not load or predict consistently: never served.
        raise RegistryError(
            f"version {version} of {name!r} was rejected by the infra check and cannot be "
            f"champion: {found.tags.get(Tag.GATE_REASON, 'see its gate_reason tag')}",
            hint="`kubeline models` lists the versions and their gate states",
        )
    if champion == version:
        return
    client.set_registered_model_alias(name, CHAMPION, version)
    client.set_registered_model_tag(name, STACK_TAG, ",".join([*stack, version]))
    client.set_model_version_tag(name, version, Tag.PROMOTED_AT, _now())
    client.set_model_version_tag(name, version, Tag.PROMOTION_REASON, reason)
    challenger = version_by_alias(client, name, CHALLENGER)
    if challenger is not None and str(challenger.version) == version:
        client.delete_registered_model_alias(name, CHALLENGER)


def rollback(client: MlflowClient, name: str) -> tuple[str, str]:
    """Return the champion alias to the previous champion; returns (from_version, to_version)."""
    stack, champion = _history(client, name)
    if champion is None or len(stack) < 2:
        raise RegistryError(
            f"model {name!r} has no earlier champion to roll back to "
            f"(promotion history: {stack or 'empty'})",
            hint="promote a version by hand with `kubeline promote --version N`",
        )
    current, previous = stack[-1], stack[-2]
    client.set_registered_model_alias(name, CHAMPION, previous)
    client.set_registered_model_tag(name, STACK_TAG, ",".join(stack[:-1]))
    client.set_model_version_tag(name, current, Tag.ROLLED_BACK_AT, _now())
    return current, previous


def mark_challenger(client: MlflowClient, name: str, version: str | int, reason: str) -> None:
    """Give ``version`` the challenger alias and record why it was not promoted."""
    client.set_registered_model_alias(name, CHALLENGER, str(version))
    client.set_model_version_tag(name, str(version), Tag.GATE_REASON, reason)


@dataclass(frozen=True)
class VersionInfo:
    """One model version as ``kubeline models`` shows it."""

    version: str
    aliases: list[str]
    run_id: str | None
    created: str
    tags: dict[str, str]

    @property
    def gate(self) -> str:
        return self.tags.get(Tag.GATE, "")

    @property
    def scores(self) -> dict[str, Any]:
        """The gate metric and its value for the model and each naive forecast ({} if unknown)."""
        import json

        try:
            found = json.loads(self.tags.get(Tag.SCORES, "{}"))
        except json.JSONDecodeError:
            return {}
        return found if isinstance(found, dict) else {}

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "aliases": self.aliases,
            "gate": self.gate,
            "scores": self.scores,
            "run_id": self.run_id,
            "created": self.created,
            "tags": self.tags,
        }


def versions(client: MlflowClient, name: str) -> list[VersionInfo]:
    """Every version of a registered model, newest first, with its aliases and kubeline tags.

    Aliases come from the registered model: ``search_model_versions`` leaves them out on
    some stores (sqlite), where the champion would look like any other version.
    """
    model = _registered_model(client, name)
    aliases: dict[str, list[str]] = {}
    for alias, version in (model.aliases or {}).items():
        aliases.setdefault(str(version), []).append(alias)
    try:
        found = client.search_model_versions(f"name = '{name}'")
    except Exception as exc:
        raise _registry_error(f"cannot list versions of {name!r}", exc) from exc
    out = []
    for mv in sorted(found, key=lambda m: int(m.version), reverse=True):
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(mv.creation_timestamp / 1000))
        tags = {k: v for k, v in (mv.tags or {}).items() if k.startswith(TAG_PREFIX)}
        number = str(mv.version)
        out.append(VersionInfo(number, sorted(aliases.get(number, [])), mv.run_id, created, tags))
    return out
