"""The committed per-ticker training spec: one iteration per ticker's config, on the platform."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kubeline.pipelines.training_per_ticker import MAX_PARALLEL_TICKERS

from kubeline import __version__
from kubeline.runner import compile_pipelines, compiled_dir
from kubeline.runner.events import PIPELINE_STEPS


def _load(path: Path) -> dict:
    pipeline, platform = yaml.safe_load_all(path.read_text())
    return {**pipeline, "_platform": platform}


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("compiled")
    fresh = {p.stem: p for p in compile_pipelines(out)}
    committed = compiled_dir() / "training_per_ticker.yaml"
    assert committed.exists(), "pipelines/compiled/training_per_ticker.yaml is missing"
    assert committed.read_text() == fresh["training_per_ticker"].read_text(), "stale spec"
    return {name: _load(path) for name, path in fresh.items()}


def _task_names(spec: dict) -> set[str]:
    dags = [spec["root"]["dag"], *(c["dag"] for c in spec["components"].values() if "dag" in c)]
    return {t["taskInfo"]["name"] for dag in dags for t in dag["tasks"].values()}


@pytest.mark.parametrize("pipeline", sorted(PIPELINE_STEPS))
def test_the_cli_lists_exactly_the_steps_each_training_spec_runs(specs, pipeline: str) -> None:
    # kfp.local logs a task by this name; a step the table does not list would never show.
    names = {n for n in _task_names(specs[pipeline]) if not n.startswith("for-loop-")}
    assert names == set(PIPELINE_STEPS[pipeline])


def test_every_tickers_lifecycle_runs_inside_the_fan_out_over_ticker_configs(specs) -> None:
    spec = specs["training_per_ticker"]
    assert spec["pipelineInfo"]["name"] == "kubeline-training-per-ticker"
    tasks = spec["root"]["dag"]["tasks"]
    (loop,) = [t for t in tasks.values() if "parameterIterator" in t]
    items = loop["parameterIterator"]["items"]["inputParameter"]
    assert loop["inputs"]["parameters"][items]["taskOutputParameter"]["producerTask"] == (
        "ticker-configs"
    )
    assert loop["iteratorPolicy"]["parallelismLimit"] == MAX_PARALLEL_TICKERS
    body = spec["components"][loop["componentRef"]["name"]]["dag"]["tasks"]
    assert set(body) == {"validate", "features", "train-all", "evaluate", "register"}
    item = loop["parameterIterator"]["itemInput"]
    for name, task in body.items():
        # Each step of an iteration reads that ticker's config, none the user's whole one.
        config = task["inputs"]["parameters"]["config"]
        assert config == {"componentInputParameter": item}, name
    # The raw data is ingested once, outside the loop, for every ticker.
    raw = body["validate"]["inputs"]["artifacts"]["raw"]["componentInputArtifact"]
    assert loop["inputs"]["artifacts"][raw]["taskOutputArtifact"]["producerTask"] == "ingest"
    assert body["evaluate"]["cachingOptions"] == {} and body["register"]["cachingOptions"] == {}
    outputs = spec["root"]["outputDefinitions"]["parameters"]
    assert set(outputs) == {"model_names", "model_versions", "aliases", "reasons"}
    assert {o["parameterType"] for o in outputs.values()} == {"LIST"}


def test_every_task_runs_the_one_image_with_the_clusters_settings(specs) -> None:
    spec = specs["training_per_ticker"]
    executors = spec["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in executors.values()} == {
        f"kubeline-pipeline:{__version__}"
    }
    platform = spec["_platform"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(platform) == set(executors)
    for config in platform.values():
        (config_map,) = config["configMapAsEnv"]
        assert config_map["configMapName"] == "kubeline-settings"
        (secret,) = config["secretAsEnv"]
        assert secret["secretName"] == "kubeline-s3"
    for name, executor in executors.items():
        assert "require_cluster_settings()" in executor["container"]["command"][-1], name
