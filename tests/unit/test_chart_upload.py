"""The upload hook Job (kfp.uploadPipelines): `kubeline upload` in the pipeline image after each
install and upgrade, restricted like every pod, refused without the KFP API's URL."""

from __future__ import annotations

import json
from typing import Any

import helm_python
import pytest
from test_chart import CHART, _validate_all, pod_specs, restricted_violations

from kubeline import chart
from kubeline.errors import ConfigError
from kubeline.runner import compiled_dir
from kubeline.settings import Settings

HOST = "http://ml-pipeline.kubeflow.svc.cluster.local:8888"
ON = {"kfp": {"uploadPipelines": True, "host": HOST}}


def upload_job(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (job,) = [d for d in docs if d["kind"] == "Job" and d["metadata"]["name"] == "kubeline-upload"]
    return job


def test_the_upload_job_is_off_by_default() -> None:
    assert [d for d in chart.render() if "upload" in d["metadata"]["name"]] == []


def test_it_runs_kubeline_upload_in_the_pipeline_image_after_install_and_upgrade() -> None:
    docs = chart.render(ON)
    job = upload_job(docs)
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "post-install,post-upgrade"
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["kubeline", "upload"] and "args" not in container
    assert container["image"] == "kubeline-pipeline:0.1.0"
    env = {e["name"]: e["value"] for e in container["env"]}
    token = "/var/run/secrets/kubeflow/pipelines/token"
    assert env == {"KUBELINE_KFP_HOST": HOST, "HOME": "/tmp", "KF_PIPELINES_SA_TOKEN_PATH": token}
    # Settings parse what the chart writes, as the pod's would.
    Settings(**{k.removeprefix("KUBELINE_").lower(): v for k, v in env.items() if "KUBELINE" in k})


def test_it_calls_kfp_as_its_own_service_account_with_a_token_and_a_role_for_that() -> None:
    from kfp import client as kfp_client

    docs = chart.render(chart.merge(ON, {"kfp": {"namespace": "team-a"}}))
    spec = upload_job(docs)["spec"]["template"]["spec"]
    (account,) = [
        d for d in docs if d["kind"] == "ServiceAccount" and "upload" in d["metadata"]["name"]
    ]
    assert spec["serviceAccountName"] == account["metadata"]["name"] == "kubeline-upload"
    assert account["automountServiceAccountToken"] is False  # no API server token, only KFP's
    (token,) = [v for v in spec["volumes"] if "projected" in v]
    (source,) = token["projected"]["sources"]
    assert source["serviceAccountToken"]["audience"] == "pipelines.kubeflow.org"
    (container,) = spec["containers"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == token["name"])
    path = f"{mount['mountPath']}/{source['serviceAccountToken']['path']}"
    assert path == kfp_client.KF_PIPELINES_SA_TOKEN_PATH
    assert {"name": kfp_client.KF_PIPELINES_SA_TOKEN_ENV, "value": path} in container["env"]
    rbac = [
        d
        for d in docs
        if d["kind"] in ("Role", "RoleBinding") and "upload" in d["metadata"]["name"]
    ]
    role, binding = sorted(rbac, key=lambda d: d["kind"])
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "team-a"
    assert role["rules"] == [
        {"apiGroups": ["pipelines.kubeflow.org"], "resources": ["pipelines"],
         "verbs": ["create", "get", "list"]}
    ]  # fmt: skip
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "kubeline-upload", "namespace": "kubeline"}
    ]
    # With the recurring run: KFP's "jobs", found by name and replaced, and its experiment.
    scheduled = chart.merge(ON, {"kfp": {"recurringRun": {"enabled": True}}})
    (role,) = [
        d
        for d in chart.render(scheduled)
        if d["kind"] == "Role" and "upload" in d["metadata"]["name"]
    ]
    assert [(r["resources"], r["verbs"]) for r in role["rules"]] == [
        (["pipelines"], ["create", "get", "list"]),
        (["jobs"], ["create", "delete", "get", "list"]),
        (["experiments"], ["create", "get", "list"]),
    ]


def test_the_pipelines_and_the_namespace_are_passed_as_options_and_settings() -> None:
    values = chart.merge(
        ON, {"kfp": {"namespace": "team-a", "upload": {"pipelines": ["training"]}}}
    )
    (container,) = upload_job(chart.render(values))["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["--pipeline", "training"]
    assert {"name": "KUBELINE_KFP_NAMESPACE", "value": "team-a"} in container["env"]


def test_the_job_is_valid_restricted_and_lints_clean() -> None:
    docs = chart.render(ON)
    assert _validate_all(docs) == []
    violations = {n: v for n, s in pod_specs(docs) if (v := restricted_violations(s))}
    assert violations == {}
    spec = upload_job(docs)["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False
    (container,) = spec["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    report = helm_python.lint(str(CHART), ON, strict=True, namespace="kubeline")
    assert report["errors"] == [] and [m for m in report["messages"] if m["severity"] >= 2] == []


def test_the_job_without_the_kfp_host_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"kfp\.host: the upload Job"):
        chart.render({"kfp": {"uploadPipelines": True}})


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"kfp": {"host": "ml-pipeline:8888"}}, "/kfp/host"),
        ({"kfp": {"upload": {"pipelines": ["trainig"]}}}, "/kfp/upload/pipelines/0"),
        ({"kfp": {"upload": {"networkPolicy": {"to": []}}}}, "/kfp/upload/networkPolicy/to"),
        ({"kfp": {"uploadPipeline": True}}, "additional properties 'uploadPipeline' not allowed"),
    ],
)
def test_a_wrong_kfp_value_is_refused(values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ConfigError, match="refused these values") as refused:
        chart.render(values)
    assert complaint in str(refused.value)


def test_the_schema_offers_exactly_the_compiled_pipelines() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    upload = schema["properties"]["kfp"]["properties"]["upload"]["properties"]
    offered = upload["pipelines"]["items"]["enum"]
    assert sorted(offered) == sorted(p.stem for p in compiled_dir().glob("*.yaml"))


def test_notes_say_where_the_pipelines_go_and_where_a_failed_hook_logs() -> None:
    notes = chart.render_files(ON)["kubeline/templates/NOTES.txt"]
    assert f"go to KFP at {HOST}" in notes
    assert "kubectl -n kubeline logs job/kubeline-upload" in notes
    assert "go to KFP" not in chart.render_files()["kubeline/templates/NOTES.txt"]


RECURRING = {
    "kfp": {
        "recurringRun": {
            "enabled": True,
            "name": "nightly",
            "cron": "0 2 * * *",
            "parameters": {"data": "s3://market/raw", "model_name": "returns"},
        }
    }
}


def test_the_recurring_training_run_from_values_is_the_jobs_schedule_arguments() -> None:
    docs = chart.render(chart.merge(ON, RECURRING))
    (container,) = upload_job(docs)["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["kubeline", "upload"]
    assert container["args"] == [
        "--schedule",
        "nightly",
        "--cron",
        "0 2 * * *",
        "--param",
        "data=s3://market/raw",
        "--param",
        "model_name=returns",
    ]
    assert _validate_all(docs) == []


def test_a_recurring_run_with_six_cron_fields_or_a_nested_parameter_is_refused() -> None:
    for bad in ({"cron": "0 0 2 * * *"}, {"parameters": {"data": {"nested": 1}}}):
        with pytest.raises(ConfigError):
            chart.render(chart.merge(ON, {"kfp": {"recurringRun": bad}}))


def test_upload_refuses_half_a_schedule_before_asking_kfp(cli) -> None:
    for args in (["--schedule", "nightly"], ["--cron", "0 2 * * *"], ["--param", "data=x"]):
        done = cli("upload", *args)
        assert done.exit_code == 2, (args, done.output)  # a ConfigError: a usage error
        assert "go together" in done.output and "Traceback" not in done.output
