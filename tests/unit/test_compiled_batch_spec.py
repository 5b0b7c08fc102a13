"""The committed batch-scoring spec: current, one image, predict never cached, cluster config."""

from pathlib import Path

import pytest
import yaml

from kubeline import __version__
from kubeline.runner import compile_pipelines, compiled_dir


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("compiled")
    path = {p.stem: p for p in compile_pipelines(out)}["batch_scoring"]
    committed = compiled_dir() / "batch_scoring.yaml"
    assert committed.exists(), "pipelines/compiled/batch_scoring.yaml is missing: run compile"
    assert committed.read_text() == path.read_text(), "stale spec: run `kubeline compile`"
    pipeline, platform = yaml.safe_load_all(path.read_text())
    return {**pipeline, "_platform": platform}


def test_ingest_then_predict_in_the_one_image(spec: dict) -> None:
    assert spec["pipelineInfo"]["name"] == "kubeline-batch-scoring"
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {"ingest", "predict"}
    raw = tasks["predict"]["inputs"]["artifacts"]["raw"]["taskOutputArtifact"]
    assert raw == {"outputArtifactKey": "raw", "producerTask": "ingest"}
    executors = spec["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in executors.values()} == {
        f"kubeline-pipeline:{__version__}"
    }
    assert not any("pip install" in " ".join(e["container"]["command"]) for e in executors.values())


def test_predict_is_never_cached_and_ingest_is(spec: dict) -> None:
    # predict reads the champion alias now: a cached result would be an old champion's.
    tasks = spec["root"]["dag"]["tasks"]
    assert tasks["predict"]["cachingOptions"] == {}
    assert tasks["ingest"]["cachingOptions"] == {"enableCache": True}
    params = tasks["ingest"]["inputs"]["parameters"]
    assert params["data_version"]["componentInputParameter"] == "data_version"


def test_the_pipeline_takes_data_and_a_version_and_returns_the_predictions(spec: dict) -> None:
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert set(inputs) == {"data", "data_version", "model_name", "version"}
    assert inputs["version"]["defaultValue"] == ""
    (output,) = spec["root"]["outputDefinitions"]["artifacts"].items()
    assert (
        output[0] == "predictions" and output[1]["artifactType"]["schemaTitle"] == "system.Dataset"
    )
    for owner in (spec["root"], spec["components"]["comp-predict"]):
        for side in ("inputDefinitions", "outputDefinitions"):
            for kind in ("parameters", "artifacts"):
                for name, entry in owner.get(side, {}).get(kind, {}).items():
                    text = entry.get("description", "")
                    assert text.strip() and "\n" not in text, (side, name)


def test_tasks_read_the_cluster_settings_and_stop_without_a_tracking_uri(spec: dict) -> None:
    platform = spec["_platform"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(platform) == {"exec-ingest", "exec-predict"}
    for config in platform.values():
        assert config["configMapAsEnv"][0]["configMapName"] == "kubeline-settings"
        assert config["secretAsEnv"][0]["secretName"] == "kubeline-s3"
    for executor in spec["deploymentSpec"]["executors"].values():
        assert "require_cluster_settings()" in executor["container"]["command"][-1]


def test_the_spec_holds_no_endpoint_or_credential(spec: dict) -> None:
    text = yaml.safe_dump(spec)
    for needle in ("http://", "https://", "AWS_SECRET", "127.0.0.1", "sqlite:"):
        assert needle not in text


def test_the_compiled_folder_holds_both_pipelines() -> None:
    assert {p.name for p in Path(compiled_dir()).glob("*.yaml")} >= {
        "training.yaml",
        "batch_scoring.yaml",
    }
