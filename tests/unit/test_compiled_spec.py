"""The committed pipeline spec is what the code compiles to, and has the promised properties."""

from pathlib import Path

import pytest
import yaml

from kubeline import __version__
from kubeline.runner import compile_pipelines, compiled_dir, stale_specs


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("compiled")
    (path,) = compile_pipelines(out)
    committed = compiled_dir() / path.name
    assert committed.exists(), "pipelines/compiled/training.yaml is missing: run `kubeline compile`"
    assert committed.read_text() == path.read_text(), "stale spec: run `kubeline compile`"
    pipeline, platform = yaml.safe_load_all(path.read_text())
    return {**pipeline, "_platform": platform}


def test_every_component_runs_the_one_configured_image(spec: dict) -> None:
    executors = spec["deploymentSpec"]["executors"]
    assert len(executors) == 6
    images = {e["container"]["image"] for e in executors.values()}
    assert images == {f"kubeline-pipeline:{__version__}"}
    assert not any(":latest" in i for i in images)


def test_no_component_installs_packages_at_run_time(spec: dict) -> None:
    for executor in spec["deploymentSpec"]["executors"].values():
        command = " ".join(executor["container"]["command"])
        assert "pip install" not in command


def test_evaluate_and_register_are_never_cached(spec: dict) -> None:
    # Both read the registry's current champion: a cached verdict could bless a stale one.
    tasks = spec["root"]["dag"]["tasks"]
    assert tasks["evaluate"]["cachingOptions"] == {}
    assert tasks["register"]["cachingOptions"] == {}
    for step in ("ingest", "validate", "features", "train"):
        assert tasks[step]["cachingOptions"] == {"enableCache": True}


def test_ingest_cache_key_includes_the_data_version(spec: dict) -> None:
    params = spec["root"]["dag"]["tasks"]["ingest"]["inputs"]["parameters"]
    assert params["data_version"]["componentInputParameter"] == "data_version"


def test_register_receives_the_pipeline_run_id(spec: dict) -> None:
    params = spec["root"]["dag"]["tasks"]["register"]["inputs"]["parameters"]
    assert params["pipeline_run_id"]["runtimeValue"]["constant"] == "{{$.pipeline_job_uuid}}"
    assert params["pipeline_name"]["runtimeValue"]["constant"] == "kubeline-training"


def test_pipeline_takes_data_config_and_thresholds(spec: dict) -> None:
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert {
        "data",
        "data_version",
        "config",
        "model_name",
        "min_improvement",
        "git_revision",
    } <= set(inputs)
    assert inputs["min_improvement"]["defaultValue"] == -1.0


def test_stale_check_ignores_the_callers_image_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBELINE_IMAGE", "someone-elses-image:dev")
    assert stale_specs(compiled_dir()) == []


def test_stale_check_notices_a_changed_spec(tmp_path: Path) -> None:
    (tmp_path / "training.yaml").write_text("# edited by hand\n")
    assert stale_specs(tmp_path) == ["training.yaml"]


def test_tasks_read_settings_and_s3_secret_from_the_cluster(spec: dict) -> None:
    executors = spec["_platform"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert len(executors) == 6
    for config in executors.values():
        (secret,) = config["secretAsEnv"]
        assert secret["secretName"] == "kubeline-s3" and secret["optional"] is True
        envs = {k["envVar"] for k in secret["keyToEnv"]}
        assert envs == {"KUBELINE_S3_ACCESS_KEY_ID", "KUBELINE_S3_SECRET_ACCESS_KEY"}
        (config_map,) = config["configMapAsEnv"]
        # Required: without it every pod would log to a throwaway store in its own filesystem.
        assert config_map.get("optional", False) is False
        keys = {k["envVar"] for k in config_map["keyToEnv"]}
        assert "KUBELINE_MLFLOW_TRACKING_URI" in keys


def test_spec_holds_no_endpoint_or_credential(spec: dict) -> None:
    text = yaml.safe_dump(spec)
    for needle in ("http://", "https://", "AWS_SECRET", "127.0.0.1", "sqlite:"):
        assert needle not in text
