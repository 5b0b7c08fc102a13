"""Who may reach whom, computed from the rendered NetworkPolicies as a cluster enforces them.

A connection from pod A to port P of pod B is allowed when A's egress allows it (or no egress
policy selects A) and B's ingress allows it (or no ingress policy selects B). Besides the
release's pods, the graph holds the pods a cluster has around them: a KFP pipeline pod in the
pipelines namespace, an unselected pod there, a stranger in the release's namespace and one in
another, the ingress controller and the cluster DNS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from kubeline import chart

RELEASE_NS = chart.NAMESPACE


@dataclass(frozen=True)
class Pod:
    name: str
    namespace: str
    labels: dict[str, str] = field(hash=False)
    ports: dict[int, str] = field(default_factory=dict, hash=False)  # number -> name


def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A Kubernetes label selector; {} selects everything."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for rule in selector.get("matchExpressions", []):
        key, op, values = rule["key"], rule["operator"], rule.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def peer_matches(peer: dict[str, Any], policy_ns: str, pod: Pod) -> bool:
    if "ipBlock" in peer:  # addresses outside the cluster's pods
        return False
    namespace_labels = {"kubernetes.io/metadata.name": pod.namespace}
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], namespace_labels):
            return False
    elif pod.namespace != policy_ns:
        return False
    return selects(peer.get("podSelector"), pod.labels)


def port_matches(rule_ports: list[dict[str, Any]] | None, pod: Pod, port: int) -> bool:
    if not rule_ports:
        return True
    for p in rule_ports:
        if p.get("protocol", "TCP") != "TCP":
            continue
        if "port" not in p or p["port"] == port or p["port"] == pod.ports.get(port):
            return True
    return False


def allowed_side(
    policies: list[dict], pod: Pod, peer: Pod, port: int, port_owner: Pod, kind: str
) -> bool:
    """Whether ``kind`` (Ingress or Egress) policies of ``pod``'s namespace let the flow through."""
    selecting = [
        p
        for p in policies
        if p["metadata"]["namespace"] == pod.namespace
        and selects(p["spec"]["podSelector"], pod.labels)
        and kind in p["spec"].get("policyTypes", ["Ingress"])
    ]
    if not selecting:
        return True
    key, peers_key = ("ingress", "from") if kind == "Ingress" else ("egress", "to")
    for policy in selecting:
        for rule in policy["spec"].get(key, []):
            peers = rule.get(peers_key)
            if (not peers or any(peer_matches(x, pod.namespace, peer) for x in peers)) and (
                port_matches(rule.get("ports"), port_owner, port)
            ):
                return True
    return False


def release_pods(docs: list[dict[str, Any]]) -> list[Pod]:
    pods = []
    for doc in docs:
        kind = doc["kind"]
        if kind not in ("Deployment", "StatefulSet", "Job", "CronJob", "Pod"):
            continue
        if kind == "CronJob":
            template = doc["spec"]["jobTemplate"]["spec"]["template"]
        else:
            template = doc if kind == "Pod" else doc["spec"]["template"]
        spec = template["spec"]
        ports = {
            p["containerPort"]: p.get("name", "")
            for c in spec["containers"]
            for p in c.get("ports", [])
        }
        component = template["metadata"]["labels"]["app.kubernetes.io/component"]
        pods.append(
            Pod(component, doc["metadata"]["namespace"], template["metadata"]["labels"], ports)
        )
    return pods


def world(
    values: dict[str, Any], docs: list[dict[str, Any]], extra: tuple[Pod, ...] = ()
) -> list[Pod]:
    pipelines = chart.merged_values(values)["pipelines"]
    pipelines_ns = pipelines["namespace"] or RELEASE_NS
    selector = pipelines["podSelector"]
    pipeline_labels = {"app": "kfp-task", **selector.get("matchLabels", {})}
    pods = [
        *release_pods(docs),
        Pod("pipeline", pipelines_ns, pipeline_labels),
        Pod("stranger-here", RELEASE_NS, {"app": "stranger"}),
        Pod("stranger-elsewhere", "default", {"app": "stranger"}),
        Pod("ingress-controller", "ingress-nginx", {"app": "ingress-nginx"}),
        Pod("app-client", "apps", {"app": "client"}),
        Pod("prometheus", "monitoring", {"app": "prometheus"}),
        Pod("dns", "kube-system", {"k8s-app": "kube-dns"}, {53: "dns"}),
        *extra,
    ]
    if selector:
        pods.append(Pod("unselected-in-pipelines-ns", pipelines_ns, {"app": "other"}))
    return pods


def graph(values: dict[str, Any], extra: tuple[Pod, ...] = ()) -> set[tuple[str, str]]:
    """Every (from, to) pair where some port of ``to`` is reachable from ``from``."""
    docs = chart.render(values)
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    pods = world(values, docs, extra)
    edges = set()
    for src in pods:
        for dst in pods:
            if src == dst:
                continue
            for port in dst.ports:
                if allowed_side(policies, src, dst, port, dst, "Egress") and allowed_side(
                    policies, dst, src, port, dst, "Ingress"
                ):
                    edges.add((src.name, dst.name))
    return edges


OUTSIDERS = {
    "pipeline",
    "unselected-in-pipelines-ns",
    "stranger-here",
    "stranger-elsewhere",
    "ingress-controller",
    "app-client",
    "prometheus",
}


def to_dns(*names: str) -> set[tuple[str, str]]:
    return {(name, "dns") for name in names}


def test_default_install_allows_only_the_flows_the_stack_needs() -> None:
    expected = {
        ("mlflow", "postgres"),
        ("mlflow", "s3"),
        ("bucket", "s3"),
        ("test", "mlflow"),
        ("pipeline", "mlflow"),
        ("pipeline", "s3"),
        # Outsiders are not the release's to restrict: their egress to DNS is their own.
        *to_dns("mlflow", "postgres", "s3", "bucket", "test", *OUTSIDERS),
    }
    assert graph({}) == expected


def test_nothing_but_mlflow_reaches_postgres() -> None:
    for values in ({}, chart.profile_values("kind")):
        assert {src for src, dst in graph(values) if dst == "postgres"} == {"mlflow"}


def test_pipelines_in_the_kfp_namespace_reach_mlflow_and_s3_and_nothing_else() -> None:
    edges = graph(chart.profile_values("kind"))
    assert {dst for src, dst in edges if src == "pipeline"} == {"mlflow", "s3", "dns"}
    assert ("stranger-here", "mlflow") not in edges and ("stranger-here", "s3") not in edges


def test_production_lets_in_the_ingress_controller_and_only_selected_pipeline_pods() -> None:
    edges = graph(chart.profile_values("production"))
    into_mlflow = {src for src, dst in edges if dst == "mlflow"}
    assert into_mlflow == {"pipeline", "ingress-controller", "test", "serving", "monitor"}
    assert ("unselected-in-pipelines-ns", "mlflow") not in edges


def test_the_service_reaches_mlflow_and_s3_never_postgres_and_any_client_reaches_it() -> None:
    edges = graph({"serving": {"enabled": True}})
    assert {dst for src, dst in edges if src == "serving"} == {"mlflow", "s3", "dns"}
    assert ("serving", "postgres") not in edges
    # Its clients are any pod (the cluster DNS's too); the release's own servers never call it.
    into_serving = {src for src, dst in edges if dst == "serving"}
    assert into_serving == {"test", "dns", *OUTSIDERS}
    # Everything else is as without the service, plus its own flows.
    without = graph({})
    assert edges - without == {
        ("serving", "mlflow"),
        ("serving", "s3"),
        ("serving", "dns"),
        *{(src, "serving") for src in into_serving},
    }


def test_production_lets_only_the_named_namespaces_call_the_service() -> None:
    edges = graph(chart.profile_values("production"))
    assert {src for src, dst in edges if dst == "serving"} == {"app-client", "prometheus", "test"}
    # No S3 or database in the release: the registry, and the external CIDRs (not pods).
    assert {dst for src, dst in edges if src == "serving"} == {"mlflow", "dns"}


def test_the_minimal_profile_serves_anyone_and_reaches_only_dns_among_pods() -> None:
    edges = graph(chart.profile_values("minimal"))
    assert {dst for src, dst in edges if src == "serving"} == {"dns"}
    assert {src for src, dst in edges if dst == "serving"} == {"dns", *OUTSIDERS}


def test_without_the_default_deny_strangers_would_get_in() -> None:
    # The graph is computed, not assumed: dropping the policies opens every door.
    edges = graph({"networkPolicy": {"enabled": False}})
    assert ("stranger-elsewhere", "postgres") in edges and ("pipeline", "postgres") in edges


@pytest.mark.parametrize("profile", ["kind", "production"])
def test_each_allowed_flow_names_a_port_the_pod_listens_on(profile: str) -> None:
    values = chart.profile_values(profile)
    docs = chart.render(values)
    listening = {p.name: set(p.ports) for p in release_pods(docs)}
    for policy in (d for d in docs if d["kind"] == "NetworkPolicy"):
        component = policy["spec"]["podSelector"]["matchLabels"].get("app.kubernetes.io/component")
        for rule in policy["spec"].get("ingress", []):
            for port in rule.get("ports", []):
                assert port["port"] in listening[component], (policy["metadata"]["name"], port)


def test_the_service_reaches_external_cidrs_only_on_https() -> None:
    # production's external database listens in the same range (5432): MLflow may reach it, the
    # service may not.
    docs = chart.render(chart.profile_values("production"))
    policies = {d["metadata"]["name"]: d for d in docs if d["kind"] == "NetworkPolicy"}

    def cidr_ports(name: str) -> set[int]:
        return {
            p["port"]
            for rule in policies[name]["spec"]["egress"]
            if any("ipBlock" in peer for peer in rule["to"])
            for p in rule["ports"]
        }

    assert cidr_ports("kubeline-serving") == {443}
    assert cidr_ports("kubeline-mlflow") == {443, 5432}


# A standalone KFP's API server (its HTTP port, and its gRPC one), and another pod beside it.
KFP_PODS = (
    Pod("kfp-api", "kubeflow", {"app": "ml-pipeline"}, {8888: "http"}),
    Pod("kfp-api-grpc", "kubeflow", {"app": "ml-pipeline", "port": "grpc"}, {8887: "grpc"}),
    Pod("kfp-ui", "kubeflow", {"app": "ml-pipeline-ui"}, {3000: "http"}),
)


def test_the_upload_job_reaches_the_kfp_api_and_dns_and_nothing_else() -> None:
    edges = graph(chart.profile_values("kind"), KFP_PODS)
    assert {dst for src, dst in edges if src == "upload"} == {"kfp-api", "dns"}
    # It listens on nothing; the flows of every other pod are as without it.
    without = graph(chart.merge(chart.profile_values("kind"), {"kfp": {"uploadPipelines": False}}))
    assert {
        e for e in edges if "upload" not in e and not {"kfp-api", "kfp-api-grpc", "kfp-ui"} & set(e)
    } == without


def test_the_upload_job_follows_the_kfp_api_it_is_told_of() -> None:
    elsewhere = {
        "kfp": {
            "uploadPipelines": True,
            "host": "http://ml-pipeline.pipelines:8888",
            "upload": {
                "networkPolicy": {
                    "to": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": "pipelines"}
                            }
                        }
                    ],
                    "port": 8888,
                }
            },
        }
    }
    moved = Pod("kfp-api-moved", "pipelines", {"app": "ml-pipeline"}, {8888: "http"})
    edges = graph(elsewhere, (*KFP_PODS, moved))
    assert {dst for src, dst in edges if src == "upload"} == {"kfp-api-moved", "dns"}
