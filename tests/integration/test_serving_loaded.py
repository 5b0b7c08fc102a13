"""load_served on a real sqlite MLflow store: the champion, a pinned version, and what is absent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_executors import NAME, register_run, train_and_evaluate

from kubeline import model, registry
from kubeline.errors import ModelNotFoundError
from kubeline.lineage import DATA_HASH, tag
from kubeline.serving.loaded import load_served
from kubeline.settings import Settings, get_settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One store for the module: version 1 champion, version 2 challenger (same data)."""
    root = tmp_path_factory.mktemp("served")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KUBELINE_STATE_DIR", str(root / "state"))
        mp.setenv("KUBELINE_SETTINGS_FILE", "")
        get_settings.cache_clear()
        first = train_and_evaluate(root / "a")
        assert register_run(first).alias == "champion"
        assert register_run(train_and_evaluate(root / "b")).alias == "challenger"
        get_settings.cache_clear()
    (root / "model-a").symlink_to(first.model)
    return root


def settings(store: Path) -> Settings:
    return Settings(state_dir=store / "state", model_name=NAME)


def test_the_champion_loads_with_its_card_lineage_and_a_working_example(store: Path) -> None:
    served = load_served(settings(store))
    assert (served.name, served.version, served.alias) == (NAME, "1", "champion")
    assert served.feature_names == ["ret_1", "ret_5", "volatility_20"]
    assert served.pipeline_run_id == "run-a" and served.git_revision == "abc123"
    assert served.data_hash == "sha256:" + "0" * 64
    mv = registry.connect(settings(store)).get_model_version(NAME, "1")
    assert served.mlflow_run_id == mv.run_id and mv.tags[tag(DATA_HASH)] == served.data_hash
    assert served.training_window["end"] == served.card.train_end
    # The example is a /predict body; predicting it equals the pipeline's own model file.
    body = served.metadata()["example"]
    assert len(body["rows"]) == 5 and set(body["rows"][0]) == set(served.feature_names)
    local = model.load(store / "model-a")
    expected = local.predict(served.example_frame())
    np.testing.assert_allclose(served.predict(served.example_frame()), expected, rtol=1e-12)
    # It predicts through the positional copy: the name check's cost is off the request path.
    assert served.positional is not None


def test_a_pinned_version_loads_without_an_alias(store: Path) -> None:
    served = load_served(settings(store), version=2)
    assert (served.version, served.alias, served.pipeline_run_id) == ("2", None, "run-b")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"version": 9}, f"model {NAME!r} has no version 9"),
        ({"alias": "nobody"}, "has no version with the alias 'nobody'"),
        ({"name": "absent-model"}, "'absent-model' has no version with the alias 'champion'"),
    ],
)
def test_an_absent_version_alias_or_model_is_a_typed_error(
    store: Path, kwargs: dict, message: str
) -> None:
    with pytest.raises(ModelNotFoundError, match=message):
        load_served(settings(store), **kwargs)
