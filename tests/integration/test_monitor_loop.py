"""The loop back for real: a drifted champion's check recommends a retraining, `kubeline retrain
--approve` runs the training pipeline with the local runner and the new version carries the
check's id; with `retrain: auto` on a cluster, two checks of one window running at once start one
KFP run (kfp.Client against the contract server)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from kfp_contract import Contract
from test_executors import NAME
from test_monitor import Champion, champion, env, last_line  # noqa: F401  (fixtures)

from kubeline import registry
from kubeline.lineage import TRIGGERED_BY, tag
from kubeline.monitor import loop
from kubeline.runner.remote import committed_specs
from kubeline.settings import get_settings
from kubeline.steps.monitor import check, checks_location
from kubeline.storage import fingerprint

pytestmark = pytest.mark.integration

# One quick candidate: the loop is under test, not the model search.
CONFIG = """
models: [{name: ridge, params: {alpha: [1.0]}}]
split: {n_splits: 2}
monitor: {retrain: %s, consecutive: 1}
"""


def config_file(tmp_path: Path, mode: str) -> Path:
    path = tmp_path / f"{mode}.yaml"
    path.write_text(CONFIG % mode)
    return path


def test_two_auto_checks_of_one_window_start_one_kfp_run_tagged_with_the_winner(
    env: Champion,  # noqa: F811  (the fixture imported above)
    kfp: Contract,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KUBELINE_RETRAIN_DATA", str(env.shifted))
    monkeypatch.setenv("KUBELINE_MONITOR_LOCATION", str(tmp_path / "checks"))
    get_settings.cache_clear()
    # No cooldown: the second check must meet the window's claim, not the first one's start.
    config = (
        config_file(tmp_path, "auto")
        .read_text()
        .replace("consecutive: 1", "consecutive: 1, cooldown: 0h")
    )
    found: list[Any] = []

    def one_check() -> None:
        found.append(check(current=str(env.shifted), since=env.holdout_start, config=config))

    # First in this module: the manual test below may give the model a new champion.
    # Check ids are to the second: the second check starts a second later, while the first
    # is still comparing (each takes seconds), so both reach the window's claim.
    threads = [threading.Thread(target=one_check) for _ in range(2)]
    for thread in threads:
        thread.start()
        time.sleep(1.1)
    for thread in threads:
        thread.join()
    # The shifted bars have realized targets too: decay is judged before drift, both breach.
    assert [s.decision for s in found] == ["decay", "decay"], found
    records = loop.records(str(tmp_path / "checks"))
    statuses = sorted(r.status for r in records.values())
    assert statuses == [loop.Status.DUPLICATE, loop.Status.STARTED], records
    (started,) = [r for r in records.values() if r.status == loop.Status.STARTED]
    (run_id,) = kfp.runs
    assert started.run_id == run_id and started.run_url
    # The committed spec's version (what the chart's upload Job uploads), not a new compile.
    (version,) = kfp.versions.values()
    assert version["display_name"] == committed_specs(["training"])[0].version_name
    parameters = kfp.runs[run_id]["runtime_config"]["parameters"]
    assert parameters["triggered_by"] == started.check_id
    assert parameters["data"] == str(env.shifted)
    assert parameters["data_version"] == fingerprint(str(env.shifted))
    written = json.loads((tmp_path / "checks" / started.check_id / "summary.json").read_text())
    assert written["retrain"] == "started" and run_id in written["retrain_note"]


def test_a_manual_recommendation_trains_only_once_approved_and_tags_the_new_version(
    env: Champion,  # noqa: F811  (the fixture imported above)
    cli: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KUBELINE_RETRAIN_DATA", str(env.shifted))
    get_settings.cache_clear()
    client = registry.connect(get_settings())
    before = {v.version for v in client.search_model_versions(f"name='{NAME}'")}
    config = config_file(tmp_path, "manual")
    done = cli(
        "monitor", "--current", env.shifted, "--since", env.holdout_start, "--config", config
    )
    assert done.exit_code == 11 and last_line(done.stdout) == "decay", done.output
    (pending,) = loop.pending(checks_location(get_settings()))
    assert f"retrain: pending; approve with `kubeline retrain --approve {pending.check_id}`" in (
        done.stdout.replace("\n", " ")
    )
    # Recommended, not started: no new version until someone approves.
    assert {v.version for v in client.search_model_versions(f"name='{NAME}'")} == before
    listed = cli("retrain")
    assert listed.exit_code == 0 and pending.check_id in listed.flat, listed.output

    approved = cli("retrain", "--approve", pending.check_id)
    assert approved.exit_code == 0, approved.output
    record = loop.records(checks_location(get_settings()))[pending.check_id]
    assert record.status == loop.Status.STARTED and record.data == str(env.shifted)
    assert record.model_version not in before and record.model_version in approved.flat
    # The new run and version say which check started them; the gate still chose the alias.
    new = client.get_model_version(NAME, record.model_version)
    assert new.tags[tag(TRIGGERED_BY)] == pending.check_id
    assert client.get_run(record.mlflow_run_id).data.tags[tag(TRIGGERED_BY)] == pending.check_id
    # Whatever the gate made of it is what the registry holds.
    champion_now = registry.version_by_alias(client, NAME, registry.CHAMPION)
    assert (record.alias == registry.CHAMPION) == (champion_now.version == record.model_version)

    history = cli("monitor", "history")
    assert "started" in history.stdout and "pending" not in history.stdout, history.output
    again = cli("retrain", "--approve", pending.check_id)
    assert again.exit_code != 0 and "its retraining is started" in again.flat, again.output
    # One id leads to the rest: the check names the version it judged and the one it started.
    judged = cli("lineage", pending.check_id)
    assert judged.exit_code == 0, judged.output
    assert f"{pending.check_id}: decay" in judged.flat
    assert f"-> version {record.model_version}" in judged.flat
    made = cli("lineage", f"{NAME}:{record.model_version}")
    assert f"started by check: {pending.check_id}" in made.flat, made.output
    # Any of its ids leads to the same chain: the MLflow run, the pipeline run.
    assert cli("lineage", record.mlflow_run_id).flat == made.flat
    pipeline_run = new.tags[tag("pipeline_run_id")]
    assert cli("lineage", pipeline_run).flat == made.flat and pipeline_run in made.flat
    unknown = cli("retrain", "--approve", "20200101T000000Z-nope-v1")
    assert unknown.exit_code != 0 and "no check '20200101T000000Z-nope-v1'" in unknown.flat
