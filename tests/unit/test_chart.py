"""The Helm chart, proven without a cluster: real Helm renders and lints it, the Kubernetes schemas
check every object strictly, every pod meets Pod Security "restricted", the compiled pipeline's
ConfigMap and Secret keys are the chart's, and manifests/ is what the chart renders today.
"""

from __future__ import annotations

import base64
import math
import shutil
import subprocess
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml
from kubeline.pipelines.cluster import SECRET_KEYS, SETTINGS_ENV, Platform

from kubeline import chart
from kubeline.errors import ConfigError
from kubeline.serving.resources import cpu_limit
from kubeline.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "kubeline"
MANIFESTS = ROOT / "manifests"
PROFILES = ("default", "kind", "production", "minimal")
# The chart says kubeVersion >=1.25: the oldest and newest schemas the validator bundles, and one
# between (each version costs ~1 s over all profiles).
KUBE_VERSIONS = ("1.25.0", "1.31.0", "1.37.0")
WORKLOADS = {"Deployment", "StatefulSet", "Job", "CronJob", "DaemonSet", "Pod"}


def values_of(profile: str) -> dict[str, Any]:
    return {} if profile == "default" else chart.profile_values(profile)


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {profile: chart.render(values_of(profile)) for profile in PROFILES}


def pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(kind/name, pod spec) of every workload: hooks and the test pod included."""
    found = []
    for doc in docs:
        if doc["kind"] not in WORKLOADS:
            continue
        spec = doc["spec"]
        if doc["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        if doc["kind"] != "Pod":
            spec = spec["template"]["spec"]
        found.append((f"{doc['kind']}/{doc['metadata']['name']}", spec))
    return found


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        *spec.get("initContainers", []),
        *spec["containers"],
        *spec.get("ephemeralContainers", []),
    ]


# --- Helm: render and lint -------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_the_chart_lints_strictly_clean_with_each_profile(profile: str) -> None:
    report = helm_python.lint(str(CHART), values_of(profile), strict=True, namespace="kubeline")
    # Severity 1 is informational (Helm's "icon is recommended"); warnings fail under strict.
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], report


def test_each_profile_renders_the_kinds_it_is_for(rendered: dict[str, list[dict]]) -> None:
    def kinds(profile: str) -> set[str]:
        return {doc["kind"] for doc in rendered[profile]}

    core = {"ConfigMap", "NetworkPolicy"}
    assert kinds("default") == core | {
        "Secret",
        "Service",
        "StatefulSet",
        "Deployment",
        "Job",
        "Pod",
    }
    # production: the bucket Job creates the bucket in the external S3 too; the service is
    # autoscaled and scraped by the Prometheus Operator; the monitor checks it hourly under its
    # own ServiceAccount (no Role: retraining is off, see ci/production-values.yaml).
    assert kinds("production") == core | {
        "CronJob",
        "ServiceAccount",
        "Service",
        "Deployment",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "ServiceMonitor",
        "Ingress",
        "Job",
        "Pod",
    }
    # minimal: only the service (one replica, so no PodDisruptionBudget) and its settings.
    assert kinds("minimal") == core | {"Service", "Deployment"}
    # kind: the kfp-launcher ConfigMap, and the settings where KFP runs its pods.
    launcher = [d for d in rendered["kind"] if d["metadata"]["name"] == "kfp-launcher"]
    assert [d["metadata"]["namespace"] for d in launcher] == ["kubeflow"]


def test_notes_say_how_to_reach_mlflow_and_s3() -> None:
    notes = chart.render_files()["kubeline/templates/NOTES.txt"]
    assert "port-forward svc/kubeline-mlflow 5000" in notes
    assert "port-forward svc/kubeline-s3 8333" in notes
    assert "KUBELINE_CLUSTER_CONFIG_MAP=kubeline-settings" in notes


def test_the_monitor_without_a_registry_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"monitor\.enabled: the monitor needs a registry"):
        chart.render({"monitor": {"enabled": True}, "mlflow": {"enabled": False}})


def test_serving_without_a_registry_or_with_min_above_max_replicas_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"serving\.enabled: the service needs a registry"):
        chart.render({"serving": {"enabled": True}, "mlflow": {"enabled": False}})
    with pytest.raises(ConfigError, match=r"serving\.autoscaling\.minReplicas"):
        chart.render(
            {"serving": {"enabled": True, "autoscaling": {"enabled": True, "maxReplicas": 1}}}
        )


def test_mlflow_without_postgres_needs_the_external_database_secret() -> None:
    with pytest.raises(ConfigError, match=r"mlflow\.backendStore\.existingSecret"):
        chart.render({"postgres": {"enabled": False}})


# --- values.schema.json ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"mlflow": {"wrokers": 2}}, "additional properties 'wrokers' not allowed"),
        ({"mlfow": {"workers": 2}}, "additional properties 'mlfow' not allowed"),
        ({"mlflow": {"workers": "two"}}, "got string, want integer"),
        ({"s3": {"image": {"tag": "latest"}}}, "/s3/image/tag"),
        (
            {"postgres": {"containerSecurityContext": {"allowPrivilegeEscalation": True}}},
            "postgres",
        ),
        ({"s3": {"port": 70000}}, "/s3/port"),
        ({"mlflow": {"resources": {"requests": {"gpu": 1}}}}, "additional properties 'gpu'"),
        ({"serving": {"adminToken": {"token": "s3cret"}}}, "additional properties 'token'"),
        ({"serving": {"workers": -1}}, "/serving/workers"),
        ({"serving": {"inferenceLog": {"location": "/var/log"}}}, "/serving/inferenceLog"),
    ],
)
def test_a_misspelled_key_or_a_wrong_type_is_refused(values: dict, complaint: str) -> None:
    with pytest.raises(ConfigError, match="refused these values") as refused:
        chart.render(values)
    assert complaint in str(refused.value)
    report = helm_python.lint(str(CHART), values, strict=True)
    assert any(complaint in m["error"] for m in report["messages"] if m["severity"] == 3), report


def _objects_without_closed_properties(node: Any, path: str = "#") -> list[str]:
    if not isinstance(node, dict):
        return []
    open_ = []
    closed = node.get("additionalProperties") is False
    if node.get("type") == "object" and "properties" in node and not closed:
        open_.append(path)
    for key, child in node.items():
        if isinstance(child, dict):
            open_ += _objects_without_closed_properties(child, f"{path}/{key}")
        elif isinstance(child, list):
            for i, item in enumerate(child):
                open_ += _objects_without_closed_properties(item, f"{path}/{key}/{i}")
    return open_


def _leaf_paths(values: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if isinstance(values, dict) and values:
        return [p for k, v in values.items() for p in _leaf_paths(v, (*prefix, k))]
    return [prefix]


def _schema_at(schema: dict, root: dict, path: tuple[str, ...]) -> dict | None:
    node = schema
    for part in path:
        while "$ref" in node:
            node = root["$defs"][node["$ref"].rsplit("/", 1)[1]]
        props = node.get("properties", {})
        if part in props:
            node = props[part]
        elif isinstance(node.get("additionalProperties"), dict):  # a map: any key, typed values
            node = node["additionalProperties"]
        else:
            return None
    return node


def test_the_schema_covers_every_value_and_closes_every_object() -> None:
    schema = yaml.safe_load((CHART / "values.schema.json").read_text())
    assert _objects_without_closed_properties(schema) == []
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    uncovered = [p for p in _leaf_paths(values) if _schema_at(schema, schema, p) is None]
    assert uncovered == []


# --- Kubernetes schemas ----------------------------------------------------------------------


# Custom resources the chart may render: their schemas come with their operators, not with
# Kubernetes. Each is checked by a test of its own below instead.
CUSTOM_RESOURCES = {("monitoring.coreos.com/v1", "ServiceMonitor")}


def _validate_all(docs: list[dict[str, Any]]) -> list[str]:
    failures = []
    for version in KUBE_VERSIONS:
        for doc in docs:
            if (doc["apiVersion"], doc["kind"]) in CUSTOM_RESOURCES:
                continue
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except (
                kubernetes_validate.ValidationError,
                kubernetes_validate.SchemaNotFoundError,
            ) as exc:
                failures.append(f"{version} {doc['kind']}/{doc['metadata']['name']}: {exc!r:.300}")
    return failures


def test_every_rendered_object_is_valid_for_each_supported_kubernetes(
    rendered: dict[str, list[dict]],
) -> None:
    assert _validate_all([doc for docs in rendered.values() for doc in docs]) == []


def test_an_unknown_api_version_or_field_fails_validation() -> None:
    removed = {
        "apiVersion": "policy/v1beta1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "x"},
    }
    typo = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "dta": {}}
    assert len(_validate_all([removed, typo])) == 2 * len(KUBE_VERSIONS)


def _manifest_files() -> list[Path]:
    return sorted(MANIFESTS.rglob("*.yaml"))


def test_every_file_in_manifests_is_valid_for_each_supported_kubernetes() -> None:
    docs = []
    for path in _manifest_files():
        for doc in yaml.safe_load_all(path.read_text()):
            # kustomize's own files and deletion patches are not Kubernetes objects.
            if doc and doc.get("kind") != "Kustomization" and "$patch" not in doc:
                docs.append(doc)
    assert len(docs) > 20
    assert _validate_all(docs) == []


# --- manifests/ ------------------------------------------------------------------------------


def test_manifests_are_what_the_chart_renders_today() -> None:
    assert chart.stale_manifests(MANIFESTS) == [], (
        "run `kubeline chart render` and commit manifests/"
    )


def test_a_stale_manifests_folder_is_named(tmp_path: Path) -> None:
    copy = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, copy)
    (copy / "base" / "service-kubeline-mlflow.yaml").write_text("# edited by hand\n")
    (copy / "base" / "extra.yaml").write_text("# not from the chart\n")
    assert chart.stale_manifests(copy) == ["base/extra.yaml", "base/service-kubeline-mlflow.yaml"]


def _without_namespace_objects(docs: list[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    return {chart.identity(d): d for d in docs if d["kind"] != "Namespace"}


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with kustomize) not here")
@pytest.mark.parametrize("overlay", ["base", "overlays/kind"])
def test_kustomize_builds_exactly_what_the_chart_renders(overlay: str) -> None:
    built = subprocess.run(
        ["kubectl", "kustomize", str(MANIFESTS / overlay)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    docs = [d for d in yaml.safe_load_all(built) if d]
    assert any(d["kind"] == "Namespace" for d in docs)
    profile = None if overlay == "base" else overlay.rsplit("/", 1)[1]
    assert _without_namespace_objects(docs) == _without_namespace_objects(
        chart.manifest_docs(profile)
    )


def test_manifests_hold_no_credentials_and_no_helm_hooks() -> None:
    for path in _manifest_files():
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            assert doc.get("kind") != "Secret", path
            annotations = doc.get("metadata", {}).get("annotations", {})
            assert not any(key.startswith("helm.sh/hook") for key in annotations), path


# --- what the compiled pipeline reads --------------------------------------------------------


def _spec_references() -> tuple[set[str], set[str], set[str], set[str]]:
    """ConfigMap names, their keys, Secret names and their keys, as the compiled spec reads them."""
    maps, map_keys, secrets, secret_keys = set(), set(), set(), set()
    for spec in sorted((ROOT / "pipelines" / "compiled").glob("*.yaml")):
        for doc in yaml.safe_load_all(spec.read_text()):
            for executor in (
                (doc or {})
                .get("platforms", {})
                .get("kubernetes", {})
                .get("deploymentSpec", {})
                .get("executors", {})
                .values()
            ):
                for ref in executor.get("configMapAsEnv", []):
                    maps.add(ref["configMapName"])
                    map_keys |= {kv["configMapKey"] for kv in ref["keyToEnv"]}
                for ref in executor.get("secretAsEnv", []):
                    secrets.add(ref["secretName"])
                    secret_keys |= {kv["secretKey"] for kv in ref["keyToEnv"]}
    return maps, map_keys, secrets, secret_keys


def test_the_chart_writes_exactly_the_keys_the_compiled_spec_reads(
    rendered: dict[str, list[dict]],
) -> None:
    maps, map_keys, secrets, secret_keys = _spec_references()
    platform = Platform.defaults()
    assert maps == {platform.config_map} and secrets == {platform.s3_secret}
    assert map_keys == set(SETTINGS_ENV) and secret_keys == set(SECRET_KEYS)
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in rendered["default"]}
    assert set(by_name["ConfigMap", platform.config_map]["data"]) == map_keys
    assert set(by_name["Secret", platform.s3_secret]["data"]) == secret_keys


def test_the_settings_point_at_the_release_services(rendered: dict[str, list[dict]]) -> None:
    settings = next(
        d["data"] for d in rendered["default"] if d["metadata"]["name"] == "kubeline-settings"
    )
    assert settings["KUBELINE_MLFLOW_TRACKING_URI"] == (
        "http://kubeline-mlflow.kubeline.svc.cluster.local:5000"
    )
    assert (
        settings["KUBELINE_S3_ENDPOINT_URL"] == "http://kubeline-s3.kubeline.svc.cluster.local:8333"
    )


def test_generated_credentials_are_never_literal_in_values() -> None:
    first, second = (
        {d["metadata"]["name"]: d["data"] for d in chart.render() if d["kind"] == "Secret"}
        for _ in range(2)
    )
    assert set(first) == {"kubeline-s3", "kubeline-postgres"}
    # Offline, `lookup` finds no live Secret: each render generates afresh (on a cluster the
    # live value is read back), so nothing in values or templates fixes them.
    assert first["kubeline-s3"] != second["kubeline-s3"]
    assert first["kubeline-postgres"] != second["kubeline-postgres"]
    for secret in chart.render():
        if secret["kind"] == "Secret":
            assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


# --- Pod Security "restricted" (kubernetes.io/docs/concepts/security/pod-security-standards) --

RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}


def restricted_violations(spec: dict[str, Any]) -> list[str]:
    """What in one pod spec breaks Pod Security "restricted" (baseline included), field by field."""
    bad: list[str] = []
    pod = spec.get("securityContext", {})
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            bad.append(field)
    if pod.get("windowsOptions", {}).get("hostProcess"):
        bad.append("pod hostProcess")
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            bad.append(f"volume {volume['name']}: {kinds}")
    if pod.get("runAsUser") == 0:
        bad.append("pod runAsUser 0")
    for sysctl in pod.get("sysctls", []):
        if sysctl["name"] not in SAFE_SYSCTLS:
            bad.append(f"sysctl {sysctl['name']}")
    if pod.get("seLinuxOptions", {}).get("type", "") not in SELINUX_TYPES:
        bad.append("pod seLinux type")
    pod_seccomp = pod.get("seccompProfile", {}).get("type")
    if pod_seccomp == "Unconfined":
        bad.append("pod seccomp Unconfined")
    for c in containers(spec):
        ctx, name = c.get("securityContext", {}), c["name"]
        if ctx.get("privileged"):
            bad.append(f"{name}: privileged")
        if ctx.get("allowPrivilegeEscalation") is not False:
            bad.append(f"{name}: allowPrivilegeEscalation not false")
        if not (
            ctx.get("runAsNonRoot") is True
            or (pod.get("runAsNonRoot") is True and ctx.get("runAsNonRoot") is not False)
        ):
            bad.append(f"{name}: runAsNonRoot not true")
        if ctx.get("runAsUser") == 0:
            bad.append(f"{name}: runAsUser 0")
        seccomp = ctx.get("seccompProfile", {}).get("type") or pod_seccomp
        if seccomp not in ("RuntimeDefault", "Localhost"):
            bad.append(f"{name}: seccomp {seccomp}")
        caps = ctx.get("capabilities", {})
        if "ALL" not in caps.get("drop", []):
            bad.append(f"{name}: capabilities not dropping ALL")
        if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            bad.append(f"{name}: capabilities added {caps['add']}")
        if ctx.get("windowsOptions", {}).get("hostProcess"):
            bad.append(f"{name}: hostProcess")
        if ctx.get("procMount", "Default") != "Default":
            bad.append(f"{name}: procMount")
        if ctx.get("seLinuxOptions", {}).get("type", "") not in SELINUX_TYPES:
            bad.append(f"{name}: seLinux type")
        if any(p.get("hostPort") for p in c.get("ports", [])):
            bad.append(f"{name}: hostPort")
    return bad


def test_the_restricted_check_finds_what_a_default_pod_does_wrong() -> None:
    loose = {"containers": [{"name": "app", "ports": [{"hostPort": 80}]}], "hostNetwork": True}
    found = restricted_violations(loose)
    assert "hostNetwork" in found and "app: hostPort" in found
    assert "app: allowPrivilegeEscalation not false" in found and "app: seccomp None" in found


@pytest.mark.parametrize("profile", PROFILES)
def test_every_pod_meets_pod_security_restricted(
    rendered: dict[str, list[dict]], profile: str
) -> None:
    violations = {name: restricted_violations(spec) for name, spec in pod_specs(rendered[profile])}
    assert {name: v for name, v in violations.items() if v} == {}


@pytest.mark.parametrize("profile", PROFILES)
def test_every_container_is_hardened_and_sized(
    rendered: dict[str, list[dict]], profile: str
) -> None:
    for name, spec in pod_specs(rendered[profile]):
        assert spec["automountServiceAccountToken"] is False, name
        for c in containers(spec):
            where = f"{name}/{c['name']}"
            assert c["securityContext"]["readOnlyRootFilesystem"] is True, where
            assert set(c["resources"]) == {"requests", "limits"}, where
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]), where
            assert {"cpu", "memory"} <= set(c["resources"]["limits"]), where
            image = c["image"]
            assert "@sha256:" in image or (":" in image.rsplit("/", 1)[-1]), where
            assert not image.endswith(":latest"), where
            # A writable path for each process that writes (/tmp at least).
            mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
            assert "/tmp" in mounts, where
            if spec.get("restartPolicy") not in ("Never", "OnFailure"):  # long-running: probed
                assert "readinessProbe" in c or c in spec.get("initContainers", []), where
                assert "livenessProbe" in c or c in spec.get("initContainers", []), where


def test_production_pods_take_pull_secrets_scheduling_and_extra_labels(
    rendered: dict[str, list[dict]],
) -> None:
    for doc in rendered["production"]:
        assert doc["metadata"]["labels"]["team"] == "ml-platform", chart.identity(doc)
        assert doc["metadata"]["annotations"]["owner"] == "ml-platform@example.com"
    for name, spec in pod_specs(rendered["production"]):
        assert spec["imagePullSecrets"] == [{"name": "registry-credentials"}], name
        for c in containers(spec):
            assert "@sha256:" in c["image"], name
    mlflow = next(d for d in rendered["production"] if d["kind"] == "Deployment")
    pod = mlflow["spec"]["template"]
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["spec"]["tolerations"][0]["key"] == "dedicated"
    assert "podAntiAffinity" in pod["spec"]["affinity"]
    assert pod["metadata"]["labels"]["team"] == "ml-platform"
    assert pod["metadata"]["annotations"] == {"prometheus.io/scrape": "false"}


# The default install's requests, long-running pods only (hooks run for seconds): a kind node on
# a laptop (2 CPUs, 4 GiB) keeps room for KFP beside it.
REQUEST_BUDGET = {"cpu": 0.5, "memory_mib": 1536}


def _cpu(value: str) -> float:
    return float(value[:-1]) / 1000 if str(value).endswith("m") else float(value)


def _mib(value: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    for unit, factor in units.items():
        if str(value).endswith(unit):
            return float(value[: -len(unit)]) * factor
    return float(value) / 2**20


def _pod_requests(spec: dict[str, Any]) -> tuple[float, float]:
    """A pod's effective requests: its containers' sum, or its largest init container if more."""

    def of(cs: list[dict]) -> list[tuple[float, float]]:
        return [
            (_cpu(c["resources"]["requests"]["cpu"]), _mib(c["resources"]["requests"]["memory"]))
            for c in cs
        ]

    main, init = of(spec["containers"]), of(spec.get("initContainers", []))
    cpu = max(sum(c for c, _ in main), *(c for c, _ in init), 0)
    mem = max(sum(m for _, m in main), *(m for _, m in init), 0)
    return cpu, mem


def test_the_default_install_requests_fit_the_stated_budget(
    rendered: dict[str, list[dict]],
) -> None:
    total_cpu = total_mib = 0.0
    for doc in rendered["default"]:
        if doc["kind"] in ("Deployment", "StatefulSet"):
            cpu, mib = _pod_requests(doc["spec"]["template"]["spec"])
            total_cpu += cpu * doc["spec"]["replicas"]
            total_mib += mib * doc["spec"]["replicas"]
    assert (round(total_cpu, 3), total_mib) == (0.3, 1024.0)
    assert total_cpu <= REQUEST_BUDGET["cpu"] and total_mib <= REQUEST_BUDGET["memory_mib"]


# --- MLflow ----------------------------------------------------------------------------------


def mlflow_server_args(docs: list[dict[str, Any]]) -> dict[str, str]:
    deployment = next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("mlflow")
    )
    server = deployment["spec"]["template"]["spec"]["containers"][0]
    return dict(arg.removeprefix("--").partition("=")[::2] for arg in server["args"])


def test_mlflow_allows_every_dns_form_of_its_service(rendered: dict[str, list[dict]]) -> None:
    hosts = set(mlflow_server_args(rendered["default"])["allowed-hosts"].split(","))
    for name in (
        "kubeline-mlflow",
        "kubeline-mlflow.kubeline",
        "kubeline-mlflow.kubeline.svc",
        "kubeline-mlflow.kubeline.svc.cluster.local",
    ):
        assert {name, f"{name}:5000"} <= hosts
    production = set(mlflow_server_args(rendered["production"])["allowed-hosts"].split(","))
    assert "mlflow.ml.example.com" in production


def test_mlflow_migrates_first_and_keeps_the_database_password_off_its_command_line(
    rendered: dict[str, list[dict]],
) -> None:
    deployment = next(d for d in rendered["default"] if d["kind"] == "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    assert spec["initContainers"][0]["command"][:3] == ["mlflow", "db", "upgrade"]
    server = spec["containers"][0]
    args = mlflow_server_args(rendered["default"])
    assert args["artifacts-destination"] == "s3://kubeline/mlflow" and "serve-artifacts" in args
    assert "backend-store-uri" not in args
    env = {e["name"]: e for e in server["env"]}
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "kubeline-postgres"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert server[probe]["httpGet"]["path"] == "/health"


# --- kubeline chart render -------------------------------------------------------------------


def test_chart_render_writes_manifests_and_check_names_what_is_stale(
    cli: Any, tmp_path: Path
) -> None:
    out = tmp_path / "manifests"
    done = cli("chart", "render", "--out", out)
    assert done.exit_code == 0, done.output
    assert (out / "base" / "kustomization.yaml").is_file()
    assert (out / "overlays" / "kind" / "kustomization.yaml").is_file()
    assert cli("chart", "render", "--out", out, "--check").exit_code == 0
    (out / "base" / "deployment-kubeline-mlflow.yaml").write_text("# edited\n")
    stale = cli("chart", "render", "--out", out, "--check")
    assert stale.exit_code == 2 and "base/deployment-kubeline-mlflow.yaml" in stale.flat
    assert "kubeline chart render" in stale.flat


# --- kfp-launcher ----------------------------------------------------------------------------

# The fields KFP's launcher reads from `providers` (kubeflow/pipelines,
# backend/src/v2/config/env.go BucketProviders and s3.go S3ProviderDefault/S3SecretRef).
KFP_S3_DEFAULT_FIELDS = {
    "endpoint",
    "credentials",
    "region",
    "disableSSL",
    "forcePathStyle",
    "maxRetries",
}
KFP_SECRET_REF_FIELDS = {"secretName", "accessKeyKey", "secretKeyKey"}


@pytest.mark.parametrize("profile", ["kind", "production"])
def test_kfp_launcher_points_kfp_at_the_same_bucket_with_a_secret_it_can_read(
    rendered: dict[str, list[dict]], profile: str
) -> None:
    docs = rendered[profile]
    launcher = next(d for d in docs if d["metadata"]["name"] == "kfp-launcher")
    namespace = launcher["metadata"]["namespace"]
    providers = yaml.safe_load(launcher["data"]["providers"])
    assert set(providers) == {"s3"} and set(providers["s3"]) == {"default"}
    default = providers["s3"]["default"]
    assert set(default) <= KFP_S3_DEFAULT_FIELDS
    assert "://" not in default["endpoint"]  # KFP wants host[:port]; disableSSL says the scheme
    ref = default["credentials"]["secretRef"]
    assert default["credentials"]["fromEnv"] is False and set(ref) == KFP_SECRET_REF_FIELDS
    values = chart.merged_values(values_of(profile))
    bucket = values["s3"]["bucket"]
    assert launcher["data"]["defaultPipelineRoot"] == f"s3://{bucket}/pipelines"
    # The launcher reads the Secret in its own namespace: the chart writes it there, or it is
    # the user's existing one.
    secrets = {
        (d["metadata"]["namespace"], d["metadata"]["name"]) for d in docs if d["kind"] == "Secret"
    }
    if values["s3"]["auth"]["existingSecret"]:
        assert ref["secretName"] == values["s3"]["auth"]["existingSecret"]
    else:
        assert (namespace, ref["secretName"]) in secrets
    assert (ref["accessKeyKey"], ref["secretKeyKey"]) == tuple(SECRET_KEYS)


# --- serving ---------------------------------------------------------------------------------

SERVING_ON = {"serving": {"enabled": True}}
# A worker holds BentoML (~170 MB measured), the model and its share of the inference-log buffer.
MIB_PER_WORKER = 384


def by_kind(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def serving_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = by_kind(docs, "Deployment", "kubeline-serving")
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def test_serving_is_off_by_default_and_renders_nothing_then(
    rendered: dict[str, list[dict]],
) -> None:
    assert not any("serving" in d["metadata"]["name"] for d in rendered["default"])
    assert chart.merged_values()["serving"]["enabled"] is False


def test_serving_runs_the_settings_image_as_the_service_with_probes() -> None:
    docs = chart.render(SERVING_ON)
    c = serving_container(docs)
    assert c["image"] == Settings.model_fields["serving_image"].default
    assert c["command"] == ["kubeline", "serve"]
    probes = {
        p: c[p]["httpGet"]["path"] for p in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert probes == {
        "startupProbe": "/livez",
        "livenessProbe": "/livez",
        "readinessProbe": "/readyz",
    }
    assert c["ports"] == [{"name": "http", "containerPort": 3000}]
    pod = by_kind(docs, "Deployment", "kubeline-serving")["spec"]["template"]
    assert pod["spec"]["securityContext"]["runAsUser"] == 10001
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}} in pod["spec"]["volumes"]
    assert pod["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "3000",
        "prometheus.io/path": "/metrics",
    }
    service = by_kind(docs, "Service", "kubeline-serving")
    assert service["spec"]["ports"] == [{"name": "http", "port": 3000, "targetPort": "http"}]


def test_every_variable_the_service_is_given_is_a_kubeline_setting() -> None:
    values = {
        "serving": {"enabled": True, "version": "3", "workers": 2, "adminToken": {"enabled": True}}
    }
    c = serving_container(chart.render(values))
    names = {e["name"] for e in c["env"]}
    fields = {f"KUBELINE_{name.upper()}" for name in Settings.model_fields}
    assert names <= fields, names - fields
    assert c["envFrom"] == [{"configMapRef": {"name": Platform.defaults().config_map}}]
    secret_env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"] if "valueFrom" in e}
    for key, env in SECRET_KEYS.items():
        assert secret_env[env] == {"name": Platform.defaults().s3_secret, "key": key}
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["KUBELINE_SERVE_VERSION"] == "3" and env["KUBELINE_SERVE_WORKERS"] == "2"
    assert env["KUBELINE_INFERENCE_LOG_LOCATION"] == "s3://kubeline/inference-log"
    # Settings parse what the chart writes (a quoted number, "true"), as the pod's would.
    Settings(**{k.removeprefix("KUBELINE_").lower(): v for k, v in env.items() if v is not None})


def test_the_service_reads_the_settings_configmap_in_its_own_namespace(
    rendered: dict[str, list[dict]],
) -> None:
    for profile in ("kind", "production"):
        maps = {
            d["metadata"]["namespace"]
            for d in rendered[profile]
            if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "kubeline-settings"
        }
        assert maps == {"kubeflow", "kubeline"}, profile


def _workers(container: dict[str, Any], tmp_path: Path) -> int:
    """What the service starts: KUBELINE_SERVE_WORKERS, else one per CPU of the pod's limit."""
    env = {e["name"]: e.get("value") for e in container["env"]}
    if "KUBELINE_SERVE_WORKERS" in env:
        return int(env["KUBELINE_SERVE_WORKERS"])
    # The cgroup file the kubelet writes for this limit, read by the service's own parser.
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text(f"{int(_cpu(container['resources']['limits']['cpu']) * 100_000)} 100000\n")
    limit = cpu_limit(v2=cpu_max)
    assert limit is not None
    return max(1, math.ceil(limit))


@pytest.mark.parametrize("profile", ["default+serving", "production", "minimal"])
def test_the_memory_limit_holds_every_worker_the_cpu_limit_starts(
    profile: str, tmp_path: Path
) -> None:
    values = SERVING_ON if profile == "default+serving" else values_of(profile)
    c = serving_container(chart.render(values))
    workers = _workers(c, tmp_path)
    assert workers >= 1
    assert _mib(c["resources"]["limits"]["memory"]) / workers >= MIB_PER_WORKER, (profile, workers)


def test_a_rollout_and_a_drain_never_take_the_service_below_its_budget() -> None:
    docs = chart.render(SERVING_ON)
    deployment = by_kind(docs, "Deployment", "kubeline-serving")
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pdb = by_kind(docs, "PodDisruptionBudget", "kubeline-serving")
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
    assert pdb["spec"]["maxUnavailable"] < deployment["spec"]["replicas"]


def test_the_autoscaler_owns_the_replica_count_when_on(rendered: dict[str, list[dict]]) -> None:
    docs = rendered["production"]
    deployment = by_kind(docs, "Deployment", "kubeline-serving")
    hpa = by_kind(docs, "HorizontalPodAutoscaler", "kubeline-serving")
    assert "replicas" not in deployment["spec"]  # else every upgrade resets the HPA's count
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "kubeline-serving",
    }
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    pdb = by_kind(docs, "PodDisruptionBudget", "kubeline-serving")
    assert pdb["spec"]["maxUnavailable"] < hpa["spec"]["minReplicas"]


def test_the_service_monitor_scrapes_the_service_port_by_name(
    rendered: dict[str, list[dict]],
) -> None:
    docs = rendered["production"]
    monitor = by_kind(docs, "ServiceMonitor", "kubeline-serving")
    service = by_kind(docs, "Service", "kubeline-serving")
    labels = service["metadata"]["labels"]
    assert all(labels[k] == v for k, v in monitor["spec"]["selector"]["matchLabels"].items())
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["kubeline"]}
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == [
        p["name"] for p in service["spec"]["ports"]
    ]
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    # Scraped by the operator: no annotations asking an annotation-based Prometheus too.
    pod = by_kind(docs, "Deployment", "kubeline-serving")["spec"]["template"]
    assert "prometheus.io/scrape" not in pod["metadata"].get("annotations", {})


def _token_ref(docs: list[dict[str, Any]]) -> dict[str, Any] | None:
    env = {e["name"]: e for e in serving_container(docs)["env"]}
    ref = env.get("KUBELINE_SERVE_ADMIN_TOKEN")
    return None if ref is None else ref["valueFrom"]["secretKeyRef"]


def test_the_admin_token_is_generated_or_an_existing_secret_never_a_value() -> None:
    assert _token_ref(chart.render(SERVING_ON)) is None  # no token: /admin/reload is off
    generated = {"serving": {"enabled": True, "adminToken": {"enabled": True}}}
    first, second = (chart.render(generated) for _ in range(2))
    assert _token_ref(first) == {"name": "kubeline-serving-admin", "key": "token"}
    tokens = [
        by_kind(d, "Secret", "kubeline-serving-admin")["data"]["token"] for d in (first, second)
    ]
    assert tokens[0] != tokens[1] and len(base64.b64decode(tokens[0])) == 40
    existing = {
        "serving": {"enabled": True, "adminToken": {"enabled": True, "existingSecret": "t"}}
    }
    docs = chart.render(existing)
    assert _token_ref(docs) == {"name": "t", "key": "token"}
    assert not any(d["kind"] == "Secret" and "serving" in d["metadata"]["name"] for d in docs)


def test_helm_test_asks_the_service_for_readyz_by_its_dns_name() -> None:
    pod = by_kind(chart.render(SERVING_ON), "Pod", "kubeline-test-serving")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    container = pod["spec"]["containers"][0]
    assert "/readyz" in container["args"][0]
    assert container["args"][1] == "http://kubeline-serving.kubeline.svc.cluster.local:3000"
    assert container["image"] == serving_container(chart.render(SERVING_ON))["image"]


def test_notes_say_how_to_call_the_model_through_a_port_forward() -> None:
    notes = chart.render_files(SERVING_ON)["kubeline/templates/NOTES.txt"]
    assert "port-forward svc/kubeline-serving 3000" in notes
    assert "http://localhost:3000/predict" in notes and "/readyz" in notes
    assert notes.count("helm test kubeline") == 1


def test_serving_with_every_option_on_is_valid_restricted_and_lints_clean() -> None:
    values = {
        "serving": {
            "enabled": True,
            "adminToken": {"enabled": True},
            "autoscaling": {"enabled": True},
            "metrics": {"serviceMonitor": {"enabled": True}},
            "networkPolicy": {"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]},
        }
    }
    docs = chart.render(values)
    kinds = {d["kind"] for d in docs if "serving" in d["metadata"]["name"]}
    assert kinds == {
        "Service",
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ServiceMonitor",
        "Secret",
        "NetworkPolicy",
        "Pod",
    }
    assert _validate_all(docs) == []
    assert {n: v for n, s in pod_specs(docs) if (v := restricted_violations(s))} == {}
    report = helm_python.lint(str(CHART), values, strict=True, namespace="kubeline")
    assert report["errors"] == [] and [m for m in report["messages"] if m["severity"] >= 2] == []
