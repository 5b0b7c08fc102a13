"""The committed pipeline spec is what the code compiles to, and has the promised properties."""

from pathlib import Path

import pytest
import yaml
from kubeline.pipelines.training import MAX_PARALLEL_TUNES

from kubeline import __version__
from kubeline.runner import compile_pipelines, compiled_dir, stale_specs


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("compiled")
    path = {p.stem: p for p in compile_pipelines(out)}["training"]
    committed = compiled_dir() / path.name
    assert committed.exists(), "pipelines/compiled/training.yaml is missing: run `kubeline compile`"
    assert committed.read_text() == path.read_text(), "stale spec: run `kubeline compile`"
    pipeline, platform = yaml.safe_load_all(path.read_text())
    return {**pipeline, "_platform": platform}


def test_every_component_runs_the_one_configured_image(spec: dict) -> None:
    executors = spec["deploymentSpec"]["executors"]
    assert len(executors) == 8  # six steps, the fan-out's candidates list and its tune task
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


def test_the_candidates_are_tuned_in_a_parallel_for_that_train_collects(spec: dict) -> None:
    tasks = spec["root"]["dag"]["tasks"]
    (loop,) = [t for t in tasks.values() if "parameterIterator" in t]
    items = loop["parameterIterator"]["items"]["inputParameter"]
    assert loop["inputs"]["parameters"][items]["taskOutputParameter"] == {
        "outputParameterKey": "Output",
        "producerTask": "candidates",
    }
    assert loop["iteratorPolicy"]["parallelismLimit"] == MAX_PARALLEL_TUNES
    body = spec["components"][loop["componentRef"]["name"]]["dag"]
    assert set(body["tasks"]) == {"tune"}
    tune = body["tasks"]["tune"]
    assert (
        tune["inputs"]["parameters"]["candidate"]["componentInputParameter"]
        == (loop["parameterIterator"]["itemInput"])
    )
    assert tune["cachingOptions"] == {"enableCache": True}  # a re-run re-tunes nothing
    # train's scores are every iteration's, collected (an artifact list out of the loop).
    scores = tasks["train"]["inputs"]["artifacts"]["scores"]["taskOutputArtifact"]
    assert scores["producerTask"] == loop["taskInfo"]["name"]
    selector = body["outputs"]
    assert selector["artifacts"][scores["outputArtifactKey"]]["artifactSelectors"] == [
        {"outputArtifactKey": "scores", "producerSubtask": "tune"}
    ]
    train_inputs = spec["components"]["comp-train"]["inputDefinitions"]["artifacts"]
    assert train_inputs["scores"]["isArtifactList"] is True
    # The tasks that fit get a CPU each: every fit runs one native thread (kubeline.train).
    executors = spec["deploymentSpec"]["executors"]
    for name in ("exec-tune", "exec-train"):
        assert executors[name]["container"]["resources"]["cpuLimit"] == 1.0, name


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
    names = ["training.yaml", "training_per_ticker.yaml", "batch_scoring.yaml", "monitoring.yaml"]
    for name in names:
        (tmp_path / name).write_text("# edited by hand\n")
    assert stale_specs(tmp_path) == names
    (tmp_path / "batch_scoring.yaml").unlink()  # a missing spec is stale too
    assert stale_specs(tmp_path) == names


def test_tasks_read_settings_and_s3_secret_from_the_cluster_both_optional(spec: dict) -> None:
    executors = spec["_platform"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert len(executors) == 8
    for config in executors.values():
        (secret,) = config["secretAsEnv"]
        assert secret["secretName"] == "kubeline-s3" and secret["optional"] is True
        envs = {k["envVar"] for k in secret["keyToEnv"]}
        assert envs == {"KUBELINE_S3_ACCESS_KEY_ID", "KUBELINE_S3_SECRET_ACCESS_KEY"}
        (config_map,) = config["configMapAsEnv"]
        # Optional: a ConfigMap without a key (plain AWS S3 has no endpoint) must not stop the
        # pod; a missing tracking URI is stopped at run time instead (kubeline/pod.py).
        assert config_map["configMapName"] == "kubeline-settings"
        assert config_map["optional"] is True
        keys = {k["envVar"] for k in config_map["keyToEnv"]}
        assert "KUBELINE_MLFLOW_TRACKING_URI" in keys


def test_every_key_the_tasks_read_is_a_settings_field(spec: dict) -> None:
    from kubeline.settings import Settings

    fields = {f"KUBELINE_{name.upper()}" for name in Settings.model_fields}
    executors = spec["_platform"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for config in executors.values():
        (config_map,) = config["configMapAsEnv"]
        (secret,) = config["secretAsEnv"]
        read = {k["envVar"] for k in config_map["keyToEnv"] + secret["keyToEnv"]}
        assert read <= fields, read - fields
        assert {k["configMapKey"] for k in config_map["keyToEnv"]} <= fields
    for executor in spec["deploymentSpec"]["executors"].values():
        assert {e["name"] for e in executor["container"]["env"]} <= fields


def test_every_task_stops_at_once_in_a_pod_without_a_tracking_uri(spec: dict) -> None:
    for name, executor in spec["deploymentSpec"]["executors"].items():
        code = executor["container"]["command"][-1]
        assert "require_cluster_settings()" in code, name
        env = {e["name"]: e["value"] for e in executor["container"]["env"]}
        # so the check names the ConfigMap this spec reads, whatever the pod's defaults
        assert env["KUBELINE_CLUSTER_CONFIG_MAP"] == "kubeline-settings"


def test_a_pod_without_a_tracking_uri_is_stopped_naming_the_config_map(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kubeline.errors import ConfigError
    from kubeline.pod import require_cluster_settings
    from kubeline.settings import get_settings

    require_cluster_settings()  # not in a pod: nothing to check
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBELINE_CLUSTER_CONFIG_MAP", "team-settings")
    get_settings.cache_clear()
    with pytest.raises(ConfigError) as err:
        require_cluster_settings()
    assert "KUBELINE_MLFLOW_TRACKING_URI is not set" in str(err.value)
    assert "'team-settings'" in str(err.value)
    monkeypatch.setenv("KUBELINE_MLFLOW_TRACKING_URI", "http://mlflow.ml:5000")
    get_settings.cache_clear()
    require_cluster_settings()


def _described(definitions: dict) -> dict[str, bool]:
    return {
        name: bool(entry.get("description", "").strip())
        for kind in ("parameters", "artifacts")
        for name, entry in definitions.get(kind, {}).items()
    }


def test_every_input_and_output_has_a_one_line_description(spec: dict) -> None:
    # The KFP UI shows these: from the `Args:` and `Returns:` sections of the docstrings.
    # A ParallelFor's body is a DAG the compiler writes (comp-for-loop-N): its inputs are the
    # values passed into the loop (pipelinechannel--...), with no docstring to describe them.
    owners = {
        "pipeline": spec["root"],
        **{k: v for k, v in spec["components"].items() if not k.startswith("comp-for-loop-")},
    }
    seen = 0
    for owner, component in owners.items():
        for side in ("inputDefinitions", "outputDefinitions"):
            definitions = component.get(side, {})
            described = _described(definitions)
            seen += len(described)
            assert all(described.values()), (owner, side, described)
            for kind in ("parameters", "artifacts"):
                for name, entry in definitions.get(kind, {}).items():
                    assert "\n" not in entry["description"], (owner, name)
    assert seen > 50


def test_the_pipeline_says_its_config_is_yaml_text_not_a_path(spec: dict) -> None:
    description = spec["root"]["inputDefinitions"]["parameters"]["config"]["description"]
    assert "YAML text, not a path" in description


def test_a_spec_for_another_image_is_compiled_in_this_process(tmp_path: Path) -> None:
    import dataclasses

    from kubeline.pipelines.cluster import Platform

    platform = dataclasses.replace(
        Platform.defaults(),
        image="localhost/kubeline-pipeline:x",
        monitor_image="localhost/kubeline-monitor:y",
    )
    for path in compile_pipelines(tmp_path, platform):
        pipeline, _ = yaml.safe_load_all(path.read_text())
        executors = pipeline["deploymentSpec"]["executors"].values()
        # The monitoring step runs in the monitor image (Evidently); every other in the pipeline's.
        image = platform.monitor_image if path.stem == "monitoring" else platform.image
        assert {e["container"]["image"] for e in executors} == {image}, path.name
    assert stale_specs(compiled_dir()) == []  # the committed default is untouched


def test_spec_holds_no_endpoint_or_credential(spec: dict) -> None:
    text = yaml.safe_dump(spec)
    for needle in ("http://", "https://", "AWS_SECRET", "127.0.0.1", "sqlite:"):
        assert needle not in text


def test_an_empty_config_map_key_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    from kubeline.settings import get_settings

    for name in ("KUBELINE_MLFLOW_TRACKING_URI", "KUBELINE_S3_ENDPOINT_URL", "KUBELINE_S3_REGION"):
        monkeypatch.setenv(name, "")
    get_settings.cache_clear()
    settings = get_settings()
    assert settings.mlflow_tracking_uri is None and settings.s3_endpoint_url is None
    assert settings.s3_region == "us-east-1"
