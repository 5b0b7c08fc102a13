"""The monitor CronJob (monitor.enabled): `kubeline monitor` in the monitor image on a schedule,
restricted like every pod, reaching only the registry, S3 and DNS."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from test_chart import _validate_all, pod_specs, restricted_violations
from test_chart_network import OUTSIDERS, Pod, graph

from kubeline import chart
from kubeline.errors import ConfigError
from kubeline.runconfig import RunConfig
from kubeline.settings import Settings

ON = {"monitor": {"enabled": True}}


def cronjob(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == "CronJob"]
    return found


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    spec = cronjob(docs)["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (only,) = spec["containers"]
    return only


def test_the_monitor_is_off_by_default() -> None:
    assert [d for d in chart.render() if d["kind"] == "CronJob"] == []


def test_it_checks_the_last_window_once_per_schedule_never_twice_never_retried() -> None:
    docs = chart.render(chart.merge(ON, {"monitor": {"schedule": "0 */6 * * *", "windowHours": 6}}))
    spec = cronjob(docs)["spec"]
    assert spec["schedule"] == "0 */6 * * *" and spec["concurrencyPolicy"] == "Forbid"
    job = spec["jobTemplate"]["spec"]
    # The exit code is the decision: a drift (10) is a failed Job to look at, not to rerun.
    assert job["backoffLimit"] == 0 and job["template"]["spec"]["restartPolicy"] == "Never"
    found = container(docs)
    assert found["command"] == ["kubeline", "monitor"]
    assert found["args"] == ["--since", "6h"]
    assert (
        found["image"]
        == f"kubeline-monitor:{Settings.model_fields['monitor_image'].default.rpartition(':')[2]}"
    )
    assert found["envFrom"] == [{"configMapRef": {"name": "kubeline-settings"}}]
    secrets = {e["name"] for e in found["env"]}
    assert secrets == {"KUBELINE_S3_ACCESS_KEY_ID", "KUBELINE_S3_SECRET_ACCESS_KEY"}


def test_the_settings_tell_it_where_the_inference_log_and_the_checks_are() -> None:
    docs = chart.render(ON)
    (config_map,) = [
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "kubeline-settings"
    ]
    data = config_map["data"]
    assert data["KUBELINE_INFERENCE_LOG_LOCATION"] == "s3://kubeline/inference-log"
    assert data["KUBELINE_MONITOR_LOCATION"] == "s3://kubeline/monitor"
    Settings(**{k.removeprefix("KUBELINE_").lower(): v for k, v in data.items() if v})


def test_thresholds_from_values_are_a_run_config_file_it_reads() -> None:
    config = "monitor:\n  drift_threshold: 0.5\n  min_rows: 50\n"
    docs = chart.render(chart.merge(ON, {"monitor": {"config": config}}))
    found = container(docs)
    assert found["args"][-2:] == ["--config", "/etc/kubeline/run-config.yaml"]
    (mounted,) = [
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "kubeline-monitor"
    ]
    parsed = RunConfig.from_yaml_text(mounted["data"]["run-config.yaml"]).monitor
    assert (parsed.drift_threshold, parsed.min_rows) == (0.5, 50)
    assert {"name": "config", "mountPath": "/etc/kubeline", "readOnly": True} in found[
        "volumeMounts"
    ]


def _assert_valid_and_restricted(extra: dict) -> None:
    """Alone and on top of the production profile: strictly valid, every pod restricted."""
    for values in (extra, chart.merge(chart.profile_values("production"), extra)):
        docs = chart.render(values)
        assert _validate_all(docs) == []
        violations = {n: v for n, s in pod_specs(docs) if (v := restricted_violations(s))}
        assert violations == {}


def test_the_cronjob_is_valid_and_restricted_in_every_profile_it_runs_in() -> None:
    _assert_valid_and_restricted(ON)


def test_it_reaches_only_mlflow_s3_and_dns_and_nothing_reaches_it() -> None:
    edges = graph(ON)
    assert {dst for src, dst in edges if src == "monitor"} == {"mlflow", "s3", "dns"}
    assert {src for src, dst in edges if dst == "monitor"} <= {"dns"}
    assert not {("monitor", "postgres")} & edges
    # Outsiders gain nothing from its being on.
    assert {(src, dst) for src, dst in edges if src in OUTSIDERS} == {
        (src, dst) for src, dst in graph({}) if src in OUTSIDERS
    }


KFP_HOST = "http://ml-pipeline.kubeflow.svc.cluster.local:8888"
RETRAIN = chart.merge(ON, {"monitor": {"retrain": "auto"}, "kfp": {"host": KFP_HOST}})
TOKEN_DIR = "/var/run/secrets/kubeflow/pipelines"


def pod_spec(docs: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = cronjob(docs)["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return spec


def roles(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in ("Role", "RoleBinding", "ClusterRole")]


def test_by_default_it_has_its_own_service_account_without_a_token_and_no_role() -> None:
    docs = chart.render(ON)
    (account,) = [d for d in docs if d["kind"] == "ServiceAccount"]
    assert account["metadata"]["name"] == "kubeline-monitor"
    assert account["automountServiceAccountToken"] is False
    spec = pod_spec(docs)
    assert spec["serviceAccountName"] == "kubeline-monitor"
    assert spec["automountServiceAccountToken"] is False
    assert [v for v in spec["volumes"] if "projected" in v] == []
    assert all(
        not m["mountPath"].startswith("/var/run/secrets") for m in container(docs)["volumeMounts"]
    )
    assert roles(docs) == []


def test_retraining_gets_a_kfp_token_a_role_for_runs_and_the_kfp_settings() -> None:
    from kfp import client as kfp_client

    docs = chart.render(chart.merge(RETRAIN, {"kfp": {"namespace": "team-a"}}))
    spec = pod_spec(docs)
    (token,) = [v for v in spec["volumes"] if "projected" in v]
    (source,) = token["projected"]["sources"]
    assert source["serviceAccountToken"]["audience"] == "pipelines.kubeflow.org"
    mount = next(m for m in container(docs)["volumeMounts"] if m["name"] == token["name"])
    # Where kfp.Client's ServiceAccountTokenVolumeCredentials reads it.
    path = f"{mount['mountPath']}/{source['serviceAccountToken']['path']}"
    assert path == kfp_client.KF_PIPELINES_SA_TOKEN_PATH
    env = {e["name"]: e.get("value") for e in container(docs)["env"]}
    assert env[kfp_client.KF_PIPELINES_SA_TOKEN_ENV] == path
    role, binding = sorted(roles(docs), key=lambda d: d["kind"])
    assert role["kind"] == "Role" and role["metadata"]["namespace"] == "team-a"
    assert role["rules"] == [
        {"apiGroups": ["pipelines.kubeflow.org"], "resources": [kind], "verbs": verbs}
        for kind, verbs in (
            ("runs", ["create", "get", "list"]),
            ("pipelines", ["get", "list"]),  # the uploaded version is looked up, not uploaded
            ("experiments", ["create", "get", "list"]),
        )
    ]
    # What kubeline.monitor.loop submits with: the API, the profile, a writable HOME.
    assert env["KUBELINE_KFP_HOST"] == KFP_HOST and env["KUBELINE_KFP_NAMESPACE"] == "team-a"
    assert env["HOME"] == "/tmp" and "KUBELINE_RETRAIN_DATA" not in env
    docs = chart.render(chart.merge(RETRAIN, {"monitor": {"retrainData": "s3://market/raw"}}))
    assert {e["name"]: e.get("value") for e in container(docs)["env"]}[
        "KUBELINE_RETRAIN_DATA"
    ] == "s3://market/raw"
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "kubeline-monitor", "namespace": chart.NAMESPACE}
    ]


def test_retrain_is_written_into_the_run_config_it_reads() -> None:
    config = "monitor:\n  min_rows: 50\n"
    docs = chart.render(chart.merge(RETRAIN, {"monitor": {"config": config}}))
    (mounted,) = [
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "kubeline-monitor"
    ]
    parsed = yaml.safe_load(mounted["data"]["run-config.yaml"])
    assert parsed == {"monitor": {"min_rows": 50, "retrain": "auto"}}
    assert container(docs)["args"][-2:] == ["--config", "/etc/kubeline/run-config.yaml"]
    # "off" (the run config's default) leaves the thresholds as written.
    docs = chart.render(chart.merge(ON, {"monitor": {"config": config}}))
    (mounted,) = [
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "kubeline-monitor"
    ]
    assert mounted["data"]["run-config.yaml"] == config


def test_retraining_without_a_kfp_host_is_refused_naming_the_value() -> None:
    with pytest.raises(ConfigError, match=r"set kfp\.host"):
        chart.render(chart.merge(ON, {"monitor": {"retrain": "manual"}}))


def test_a_misspelled_retrain_mode_is_refused() -> None:
    with pytest.raises(ConfigError):
        chart.render(chart.merge(ON, {"monitor": {"retrain": "always"}}))


def test_only_retraining_reaches_the_kfp_api() -> None:
    api = Pod("kfp-api", "kubeflow", {"app": "ml-pipeline"}, {8888: "http"})
    assert ("monitor", "kfp-api") not in graph(ON, (api,))
    assert ("monitor", "kfp-api") not in graph(
        chart.merge(ON, {"monitor": {"retrain": "off"}}), (api,)
    )
    edges = graph(RETRAIN, (api,))
    assert {dst for src, dst in edges if src == "monitor"} == {"mlflow", "s3", "dns", "kfp-api"}


def test_notifications_come_from_values_and_the_webhook_from_a_secret() -> None:
    gateway = Pod("pushgateway", "monitoring", {"app": "pushgateway"}, {9091: "http"})
    values = chart.merge(
        ON,
        {
            "monitor": {
                "pushgatewayUrl": "http://pushgateway.monitoring:9091",
                "webhook": {"existingSecret": "alerts", "key": "slack"},
                "networkPolicy": {
                    "pushgateway": {
                        "to": [
                            {
                                "namespaceSelector": {
                                    "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}
                                },
                                "podSelector": {"matchLabels": {"app": "pushgateway"}},
                            }
                        ]
                    }
                },
            }
        },
    )
    docs = chart.render(values)
    env = {e["name"]: e for e in container(docs)["env"]}
    assert env["KUBELINE_PUSHGATEWAY_URL"]["value"] == "http://pushgateway.monitoring:9091"
    assert env["KUBELINE_MONITOR_WEBHOOK_URL"] == {
        "name": "KUBELINE_MONITOR_WEBHOOK_URL",
        "valueFrom": {"secretKeyRef": {"name": "alerts", "key": "slack"}},
    }
    assert ("monitor", "pushgateway") in graph(values, (gateway,))
    assert ("monitor", "pushgateway") not in graph(ON, (gateway,))
    assert _validate_all(docs) == []
    # A literal URL is no value: the schema has no place for one.
    with pytest.raises(ConfigError):
        chart.render(chart.merge(ON, {"monitor": {"webhook": {"url": "https://hooks/x"}}}))


def test_retraining_is_valid_and_restricted() -> None:
    _assert_valid_and_restricted(RETRAIN)


def test_every_kubeline_variable_the_monitor_is_given_is_a_setting() -> None:
    docs = chart.render(chart.profile_values("production"))
    names = {e["name"] for e in container(docs)["env"] if e["name"].startswith("KUBELINE_")}
    fields = {f"KUBELINE_{name.upper()}" for name in Settings.model_fields}
    assert names >= {"KUBELINE_PUSHGATEWAY_URL", "KUBELINE_MONITOR_WEBHOOK_URL"}
    assert names <= fields, names - fields
