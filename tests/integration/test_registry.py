"""Promotion, rollback and aliases on a real MLflow store (sqlite, in a temporary folder)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeline import registry
from kubeline.errors import RegistryError
from kubeline.settings import Settings

pytestmark = pytest.mark.integration
NAME = "test-model"


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import mlflow
    import numpy as np
    from sklearn.linear_model import Ridge

    monkeypatch.setenv("KUBELINE_STATE_DIR", str(tmp_path))
    settings = Settings()
    c = registry.connect(settings)
    experiment = registry.ensure_experiment(c, "t", settings.artifact_location)
    model = Ridge().fit(np.arange(10.0).reshape(-1, 1), np.arange(10.0))
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.sklearn.log_model(
            model,
            name="m",
            pip_requirements=["scikit-learn"],
            skops_trusted_types=[],
        )
    for _ in range(3):
        mlflow.register_model(info.model_uri, NAME)
    return c


def champion(c) -> str:
    return str(registry.version_by_alias(c, NAME, registry.CHAMPION).version)


def test_rollback_returns_to_the_previous_champion(client) -> None:
    registry.promote(client, NAME, 1, "first")
    registry.promote(client, NAME, 3, "third")
    assert champion(client) == "3"
    assert registry.rollback(client, NAME) == ("3", "1")
    assert champion(client) == "1"
    with pytest.raises(RegistryError, match="no earlier champion"):
        registry.rollback(client, NAME)
    # History is never deleted: the rolled-back version is still there, marked.
    tags = client.get_model_version(NAME, "3").tags
    assert "kubeline.rolled_back_at" in tags and "kubeline.promoted_at" in tags


def test_promote_follows_the_real_alias_when_something_else_moved_it(client) -> None:
    registry.promote(client, NAME, 1, "first")
    client.set_registered_model_alias(NAME, registry.CHAMPION, "2")  # e.g. the MLflow UI
    registry.promote(client, NAME, 1, "back to one")
    assert champion(client) == "1"
    assert registry.rollback(client, NAME) == ("1", "2")
    assert champion(client) == "2"


def test_promoting_the_champion_again_changes_nothing(client) -> None:
    registry.promote(client, NAME, 2, "x")
    registry.promote(client, NAME, 2, "x again")
    with pytest.raises(RegistryError, match="no earlier champion"):
        registry.rollback(client, NAME)


def test_promote_refuses_a_missing_version(client) -> None:
    with pytest.raises(RegistryError, match="has no version 9"):
        registry.promote(client, NAME, 9, "x")


def test_promotion_clears_the_challenger_alias_of_that_version(client) -> None:
    registry.mark_challenger(client, NAME, 2, "did not beat the baseline")
    registry.promote(client, NAME, 2, "by hand")
    assert registry.version_by_alias(client, NAME, registry.CHALLENGER) is None
    assert client.get_model_version(NAME, "2").tags["kubeline.gate_reason"]


def test_rollback_of_an_unknown_model_says_so(client) -> None:
    with pytest.raises(RegistryError, match="no registered model named 'other'"):
        registry.rollback(client, "other")
