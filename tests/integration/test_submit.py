"""`kubeline submit`, `upload`, `schedule`, `runs` through kfp.Client against the contract server.

The server (``kfp_contract``) checks every request against KFP's own API models; no KFP
backend runs here. HOME is a temporary folder: kfp.Client reads ``~/.config/kfp/context.json``.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kfp_contract import Contract, ContractServer

from kubeline.runner import compiled_dir

pytestmark = pytest.mark.integration

CliRun = Callable[..., Any]
DATA = "s3://market/raw"
# What a re-schedule that changes nothing must not send.
WRITES = {
    "recurring_run_service_delete_recurring_run",
    "recurring_run_service_create_recurring_run",
    "upload_pipeline_version",
    "pipeline_service_create_pipeline",
}


def committed_version_name(pipeline: str = "training") -> str:
    """Default settings compile to the committed spec (`kubeline compile --check`): its hash."""
    digest = hashlib.sha256((compiled_dir() / f"{pipeline}.yaml").read_bytes()).hexdigest()
    return f"sha256-{digest[:12]}"


def test_submit_uploads_the_spec_once_and_a_resubmit_reuses_its_version(
    cli: CliRun, kfp: Contract, server: ContractServer
) -> None:
    first = cli("submit", "--data", DATA)
    assert first.exit_code == 0, first.output
    ops = kfp.operations()
    assert ops.count("pipeline_service_create_pipeline") == 1
    assert ops.count("upload_pipeline_version") == 1
    assert ops.count("run_service_create_run") == 1
    assert f"uploaded pipeline version {committed_version_name()}" in first.flat

    mark = len(kfp.requests)
    second = cli("submit", "--data", DATA)
    assert second.exit_code == 0, second.output
    again = kfp.operations(mark)
    assert (
        "upload_pipeline_version" not in again and "pipeline_service_create_pipeline" not in again
    )
    assert again.count("run_service_create_run") == 1
    assert f"reusing pipeline version {committed_version_name()}" in second.flat

    assert len(kfp.pipelines) == 1 and len(kfp.versions) == 1 and len(kfp.runs) == 2
    (version_id,) = kfp.versions
    for run in kfp.runs.values():
        assert run["pipeline_version_reference"]["pipeline_version_id"] == version_id
        assert run["runtime_config"]["parameters"] == {"data": DATA}
        assert f"run: {server.url}/#/runs/details/{run['run_id']}" in first.flat + second.flat


def test_upload_creates_each_committed_version_once_and_again_reports_it_there(
    cli: CliRun, kfp: Contract
) -> None:
    names = sorted(p.stem for p in compiled_dir().glob("*.yaml"))
    first = cli("upload")
    assert first.exit_code == 0, first.output
    ops = kfp.operations()
    assert ops.count("pipeline_service_create_pipeline") == len(names)
    assert ops.count("upload_pipeline_version") == len(names)
    for name in names:
        assert f"{name} (kubeline-" in first.flat
        assert f"version {committed_version_name(name)} created" in first.flat
    assert sorted(v["display_name"] for v in kfp.versions.values()) == sorted(
        committed_version_name(name) for name in names
    )

    pipelines, versions = dict(kfp.pipelines), dict(kfp.versions)
    mark = len(kfp.requests)
    second = cli("upload")
    assert second.exit_code == 0, second.output
    again = kfp.operations(mark)
    assert "upload_pipeline_version" not in again, again
    assert "pipeline_service_create_pipeline" not in again, again
    for name in names:
        assert f"version {committed_version_name(name)} already there" in second.flat
    assert kfp.pipelines == pipelines and kfp.versions == versions


def test_upload_of_one_pipeline_sends_only_it_and_submit_then_reuses_it(
    cli: CliRun, kfp: Contract
) -> None:
    done = cli("upload", "--pipeline", "training")
    assert done.exit_code == 0, done.output
    assert "batch_scoring" not in done.flat
    ((pipeline,), (version,)) = (kfp.pipelines.values(), kfp.versions.values())
    assert pipeline["display_name"] == "kubeline-training"
    assert version["display_name"] == committed_version_name()
    submitted = cli("submit", "--data", DATA)
    assert submitted.exit_code == 0, submitted.output
    assert f"reusing pipeline version {committed_version_name()}" in submitted.flat
    assert len(kfp.versions) == 1


def test_submit_passes_the_config_text_and_typed_inputs(
    cli: CliRun, kfp: Contract, tmp_path: Path
) -> None:
    config = Path(__file__).resolve().parents[2] / "configs" / "default.yaml"
    done = cli("submit", "--data", DATA, "--config", config, "--param", "min_improvement=0.01")
    assert done.exit_code == 0, done.output
    (run,) = kfp.runs.values()
    assert run["runtime_config"]["parameters"] == {
        "data": DATA,
        "config": config.read_text(),
        "min_improvement": 0.01,
    }


def test_a_per_ticker_config_is_submitted_to_the_per_ticker_pipeline_and_said_so(
    cli: CliRun, kfp: Contract
) -> None:
    config = Path(__file__).resolve().parents[2] / "configs" / "per-ticker.yaml"
    done = cli("submit", "--data", DATA, "--config", config)
    assert done.exit_code == 0, done.output
    assert "one model per ticker (data.per_ticker): running the training_per_ticker" in done.flat
    (pipeline,) = kfp.pipelines.values()
    assert pipeline["display_name"] == "kubeline-training-per-ticker"
    (run,) = kfp.runs.values()
    assert run["runtime_config"]["parameters"]["config"] == config.read_text()


def test_submit_wait_reports_a_succeeded_run(cli: CliRun, kfp: Contract) -> None:
    done = cli("submit", "--data", DATA, "--wait")
    assert done.exit_code == 0, done.output
    assert "succeeded" in done.flat
    assert kfp.operations().count("run_service_get_run") >= 2  # it polled until the end


def test_submit_wait_reports_a_failed_run_with_its_failing_step(
    cli: CliRun, kfp: Contract, server: ContractServer
) -> None:
    kfp.fail_next_run("train", "ValueError: 12 rows are too few for the split")
    done = cli("submit", "--data", DATA, "--wait")
    assert done.exit_code != 0 and done.exception is None, done.output
    assert "Traceback" not in done.output
    assert "failed: step 'train' failed: ValueError: 12 rows are too few" in done.flat
    (run_id,) = kfp.runs
    assert f"{server.url}/#/runs/details/{run_id}" in done.flat


def test_schedule_converts_five_fields_to_six_and_creates_the_recurring_run(
    cli: CliRun, kfp: Contract
) -> None:
    done = cli("schedule", "--cron", "0 * * * *", "--name", "hourly", "--data", DATA)
    assert done.exit_code == 0, done.output
    assert "'0 * * * *'" in done.flat and "'0 0 * * * *'" in done.flat
    assert "six fields, seconds first" in done.flat
    assert "recurring run hourly created" in done.flat
    (recurring,) = kfp.recurring.values()
    # Second 0 of minute 0 of every hour: hourly. '0 * * * *' as sent would run every minute.
    assert recurring["trigger"]["cron_schedule"]["cron"] == "0 0 * * * *"
    assert recurring["display_name"] == "hourly" and recurring["mode"] == "ENABLE"
    assert recurring["runtime_config"]["parameters"] == {"data": DATA}


def test_schedule_again_with_the_same_spec_cron_and_inputs_sends_nothing(
    cli: CliRun, kfp: Contract
) -> None:
    args = ("schedule", "--cron", "30 6 * * 1-5", "--name", "weekdays", "--data", DATA)
    assert cli(*args).exit_code == 0
    (before,) = kfp.recurring
    mark = len(kfp.requests)
    done = cli(*args)
    assert done.exit_code == 0, done.output
    assert "unchanged" in done.flat and "nothing was sent" in done.flat
    sent = kfp.operations(mark)
    assert not WRITES & set(sent), sent
    assert list(kfp.recurring) == [before]


def test_the_upload_job_run_twice_leaves_one_unchanged_recurring_run(
    cli: CliRun, kfp: Contract
) -> None:
    from kubeline import chart

    values = {
        "kfp": {
            "uploadPipelines": True,
            "host": "http://ml-pipeline.kubeflow:8888",
            "recurringRun": {
                "enabled": True,
                "name": "nightly",
                "cron": "0 2 * * *",
                "parameters": {"data": DATA},
            },
        }
    }
    (job,) = [
        d
        for d in chart.render(values)
        if d["kind"] == "Job" and d["metadata"]["name"] == "kubeline-upload"
    ]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["kubeline", "upload"]
    first = cli("upload", *container["args"])
    assert first.exit_code == 0, first.output
    (recurring_id,) = kfp.recurring
    before = json.dumps(kfp.recurring[recurring_id], sort_keys=True)
    assert kfp.recurring[recurring_id]["trigger"]["cron_schedule"]["cron"] == "0 0 2 * * *"
    mark = len(kfp.requests)
    second = cli("upload", *container["args"])
    assert second.exit_code == 0, second.output
    assert "unchanged" in second.flat
    sent = kfp.operations(mark)
    assert not WRITES & set(sent), sent
    assert list(kfp.recurring) == [recurring_id]
    assert json.dumps(kfp.recurring[recurring_id], sort_keys=True) == before


@pytest.mark.parametrize(
    "change",
    [("--cron", "0 7 * * 1-5"), ("--data", "s3://market/other"), ("--param", "model_name=m2")],
)
def test_schedule_with_a_change_replaces_the_recurring_run(
    cli: CliRun, kfp: Contract, change: tuple[str, str]
) -> None:
    base = {"--cron": "30 6 * * 1-5", "--data": DATA}
    assert cli("schedule", "--name", "weekdays", *_flat(base)).exit_code == 0
    (before,) = kfp.recurring
    mark = len(kfp.requests)
    changed = {**base, change[0]: change[1]} if change[0] != "--param" else base
    extra = list(change) if change[0] == "--param" else []
    done = cli("schedule", "--name", "weekdays", *_flat(changed), *extra)
    assert done.exit_code == 0, done.output
    assert "replaced" in done.flat
    sent = kfp.operations(mark)
    deleted = sent.index("recurring_run_service_delete_recurring_run")
    assert deleted < sent.index("recurring_run_service_create_recurring_run")
    (after,) = kfp.recurring
    assert after != before
    expected_cron = "0 " + changed["--cron"]
    assert kfp.recurring[after]["trigger"]["cron_schedule"]["cron"] == expected_cron


def _flat(options: dict[str, str]) -> list[str]:
    return [part for item in options.items() for part in item]


def test_schedule_delete_removes_it_and_says_when_there_is_none(cli: CliRun, kfp: Contract) -> None:
    assert cli("schedule", "--cron", "@daily", "--name", "daily", "--data", DATA).exit_code == 0
    done = cli("schedule", "--name", "daily", "--delete")
    assert done.exit_code == 0 and "deleted recurring run daily" in done.flat, done.output
    assert kfp.recurring == {}
    again = cli("schedule", "--name", "daily", "--delete")
    assert again.exit_code == 0 and "nothing to delete" in again.flat


def test_runs_lists_the_newest_runs_in_80_columns_and_as_json(cli: CliRun, kfp: Contract) -> None:
    assert cli("submit", "--data", DATA, "--wait").exit_code == 0
    kfp.fail_next_run("validate")
    assert cli("submit", "--data", DATA, "--wait").exit_code != 0
    assert cli("submit", "--data", DATA).exit_code == 0  # still pending

    table = cli("runs")
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, table.stdout
    assert "…" not in table.stdout
    for word in ("succeeded", "failed", "pending", committed_version_name()):
        assert word in table.stdout, table.stdout

    listed = json.loads(cli("runs", "--json").stdout)
    assert [r["state"] for r in listed] == ["PENDING", "FAILED", "SUCCEEDED"]  # newest first
    assert {r["pipeline_version"] for r in listed} == {committed_version_name()}
    assert listed[1]["failed_steps"][0]["name"] == "validate"
    assert listed[2]["seconds"] is not None and listed[0]["seconds"] is None
    assert len(json.loads(cli("runs", "--json", "--limit", "1").stdout)) == 1


def test_runs_before_anything_was_submitted_says_so(cli: CliRun, kfp: Contract) -> None:
    done = cli("runs")
    assert done.exit_code == 0 and "no runs in the KFP experiment kubeline yet" in done.flat


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    "args",
    [
        ["submit", "--data", DATA],
        ["schedule", "--cron", "0 6 * * *", "--name", "n", "--data", DATA],
        ["runs"],
    ],
)
def test_an_unreachable_endpoint_is_one_sentence_with_a_hint(
    cli: CliRun, kfp_home: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    host = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("KUBELINE_KFP_HOST", host)
    done = cli(*args)
    assert done.exit_code == 1 and done.exception is None, done.output
    assert "Traceback" not in done.output
    assert f"error: the KFP API at {host} does not answer" in done.flat
    assert "kubectl port-forward" in done.flat


def test_a_refused_token_is_named_as_such_and_never_printed(
    cli: CliRun, server: ContractServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBELINE_KFP_TOKEN", "not-the-token-123")
    done = cli("runs")
    assert done.exit_code == 1 and done.exception is None, done.output
    assert "refused the credentials" in done.flat and "HTTP 401" in done.flat
    assert "KUBELINE_KFP_TOKEN" in done.flat
    assert "not-the-token-123" not in done.output
    assert server.contract.operations() == ["healthz_service_get_healthz"]  # asked once, no retry
    server.contract.errors.clear()


def test_a_session_cookie_is_sent_to_a_kfp_behind_a_login_proxy(
    cli: CliRun, kfp_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cookie = f"authservice_session={secrets.token_hex(8)}"
    running = ContractServer(cookie=cookie).start()
    try:
        monkeypatch.setenv("KUBELINE_KFP_HOST", running.url)
        refused = cli("runs")
        assert refused.exit_code == 1 and "HTTP 403" in refused.flat, refused.output
        assert "KUBELINE_KFP_COOKIES" in refused.flat
        running.contract.errors.clear()
        monkeypatch.setenv("KUBELINE_KFP_COOKIES", cookie)
        done = cli("submit", "--data", DATA)
        assert done.exit_code == 0, done.output
        assert cookie.split("=")[1] not in done.output
        assert running.contract.errors == []
    finally:
        running.stop()


def test_a_namespace_goes_with_what_is_created(
    cli: CliRun, kfp: Contract, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBELINE_KFP_NAMESPACE", "team-a")
    assert cli("submit", "--data", DATA).exit_code == 0
    ((pipeline,), (experiment,)) = (kfp.pipelines.values(), kfp.experiments.values())
    assert pipeline["namespace"] == "team-a" and experiment["namespace"] == "team-a"


def test_a_host_that_is_not_kfp_is_named(
    cli: CliRun, server: ContractServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBELINE_KFP_HOST", server.url + "/not-kfp")
    done = cli("runs")
    assert done.exit_code == 1 and "has no KFP v2 API" in done.flat, done.output
    server.contract.errors.clear()


# -- the contract itself refuses what KFP's models refuse --------------------------------------


def _post(server: ContractServer, path: str, body: Any) -> tuple[int, str]:
    request = urllib.request.Request(
        server.url + path,
        data=json.dumps(body).encode(),
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {server.contract.token}",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ({"display_name": "r", "pipeline_versoin_reference": {}}, "has no field"),
        ({"display_name": 7}, "expected a string"),
        ({"display_name": "r", "state": "DONE"}, "is not one of"),
        ({"display_name": "r", "runtime_config": {"parameters": []}}, "expected an object"),
        ({"experiment_id": "x"}, "display_name is required"),
        ({"display_name": "r", "pipeline_version_reference": {"pipeline_id": "p"}}, "needs"),
    ],
)
def test_the_contract_refuses_a_run_kfp_would_refuse(
    server: ContractServer, body: dict[str, Any], said: str
) -> None:
    status, answer = _post(server, "/apis/v2beta1/runs", body)
    assert status == 400 and said in json.loads(answer)["message"], answer
    server.contract.errors.clear()


def test_the_contract_refuses_an_upload_that_is_not_a_pipeline_spec(
    server: ContractServer, tmp_path: Path
) -> None:
    import kfp_server_api

    config = kfp_server_api.Configuration(host=server.url)
    config.api_key["authorization"] = server.contract.token
    config.api_key_prefix["authorization"] = "Bearer"
    bad = tmp_path / "bad.yaml"
    bad.write_text("pipelineInfo: {name: x}\nroot: {dag: {}}\nnotAField: 1\n")
    with kfp_server_api.ApiClient(config) as api:
        uploads = kfp_server_api.PipelineUploadServiceApi(api)
        with pytest.raises(kfp_server_api.ApiException) as refused:
            uploads.upload_pipeline(str(bad), name="bad")
    assert refused.value.status == 400 and "not a KFP pipeline spec" in str(refused.value.body)
    server.contract.errors.clear()


@pytest.mark.parametrize(
    ("path", "status", "said"),
    [
        ("/apis/v2beta1/runs?page_sise=5", 400, "takes no query parameter ['page_sise']"),
        ('/apis/v2beta1/pipelines?filter={"predicates":[{"kee":"x"}]}', 400, "has no field 'kee'"),
        ("/apis/v2beta1/runs/r1:archive", 501, "does not implement run_service_archive_run"),
        ("/apis/v2beta1/runz", 404, "no GET /apis/v2beta1/runz in the KFP v2beta1 API"),
    ],
)
def test_the_contract_refuses_queries_and_routes_outside_the_api(
    server: ContractServer, path: str, status: int, said: str
) -> None:
    from urllib.parse import quote

    method = "POST" if path.endswith(":archive") else "GET"
    request = urllib.request.Request(
        server.url + quote(path, safe="/?=:&"),
        method=method,
        headers={"Authorization": f"Bearer {server.contract.token}"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == status
    assert said in json.loads(refused.value.read())["message"]
    server.contract.errors.clear()


def test_a_pods_projected_service_account_token_is_sent_by_the_probe_and_the_client(
    cli: CliRun, server: ContractServer, kfp: Contract, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # As in the chart's upload Job and retraining CronJob: no KUBELINE_KFP_TOKEN, only the
    # kubelet's token file for audience pipelines.kubeflow.org, which kfp.Client reads itself.
    token_file = tmp_path / "token"
    token_file.write_text(server.contract.token + "\n")
    monkeypatch.delenv("KUBELINE_KFP_TOKEN")
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(token_file))
    done = cli("upload")
    assert done.exit_code == 0, done.output
    assert "healthz_service_get_healthz" in kfp.operations()
    assert "upload_pipeline_version" in kfp.operations()
    token_file.write_text("a-rotated-out-token")  # read at each call, never cached
    refused = cli("upload")
    assert refused.exit_code == 1 and "HTTP 401" in refused.flat, refused.output
    kfp.errors.clear()
