"""The monitor CronJob (monitor.enabled): `kubeline monitor` in the monitor image on a schedule,
restricted like every pod, reaching only the registry, S3 and DNS."""

from __future__ import annotations

from typing import Any

from test_chart import _validate_all, pod_specs, restricted_violations
from test_chart_network import OUTSIDERS, graph

from kubeline import chart
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


def test_the_cronjob_is_valid_and_restricted_in_every_profile_it_runs_in() -> None:
    for values in (ON, chart.merge(chart.profile_values("production"), ON)):
        docs = chart.render(values)
        assert _validate_all(docs) == []
        violations = {n: v for n, s in pod_specs(docs) if (v := restricted_violations(s))}
        assert violations == {}


def test_it_reaches_only_mlflow_s3_and_dns_and_nothing_reaches_it() -> None:
    edges = graph(ON)
    assert {dst for src, dst in edges if src == "monitor"} == {"mlflow", "s3", "dns"}
    assert {src for src, dst in edges if dst == "monitor"} <= {"dns"}
    assert not {("monitor", "postgres")} & edges
    # Outsiders gain nothing from its being on.
    assert {(src, dst) for src, dst in edges if src in OUTSIDERS} == {
        (src, dst) for src, dst in graph({}) if src in OUTSIDERS
    }
