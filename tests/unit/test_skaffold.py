"""skaffold.yaml, checked against what it drives, since skaffold cannot run here (no cluster).

Each artifact is built by `kubeline images build` for its role, with skaffold's $IMAGE handed
over through the setting kubeline.images reads for that role; its dependencies are the files
that build reads; its name is the chart's image repository and the setting's default; the helm
release deploys helm/kubeline with every built image wired into values, and each profile's
values render with real Helm.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeline import chart, images
from kubeline.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
SKAFFOLD = ROOT / "skaffold.yaml"
# The chart's section holding each role's image.
CHART_SECTION = {"pipeline": "pipelines", "serving": "serving", "monitor": "monitor"}
PROFILES = ("kind", "cloud", "serving")


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SKAFFOLD.read_text())
    return loaded


def artifacts(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Role -> artifact, the role read from the `--role` its build command passes."""
    found = {}
    for artifact in config["build"]["artifacts"]:
        role = re.search(r"images build --role (\w+)", artifact["custom"]["buildCommand"])
        assert role, artifact["image"]
        found[role.group(1)] = artifact
    return found


def sanitized(image: str) -> str:
    """An artifact name as skaffold's templates spell it (/ - . : become _)."""
    return re.sub(r"[/\-.:]", "_", image)


def test_the_schema_is_skaffold_v4beta14(config: dict[str, Any]) -> None:
    assert config["apiVersion"] == "skaffold/v4beta14" and config["kind"] == "Config"


def test_every_role_is_built_once_by_kubeline_images(config: dict[str, Any]) -> None:
    built = artifacts(config)
    assert sorted(built) == sorted(images.ROLES)
    assert len(config["build"]["artifacts"]) == len(images.ROLES)
    for artifact in built.values():
        assert artifact["context"] == "."
        command = artifact["custom"]["buildCommand"]
        # Pushed only when skaffold asks (cloud), never otherwise.
        assert 'if [ "$PUSH_IMAGE" = true ]; then docker push "$IMAGE"; fi' in command


@pytest.mark.parametrize("role", images.ROLES)
def test_the_build_names_the_image_through_the_setting_kubeline_images_reads(
    config: dict[str, Any], role: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    command = artifacts(config)[role]["custom"]["buildCommand"]
    given = re.search(rf'\b({ENV_PREFIX}\w+)="\$IMAGE"', command)
    assert given, command
    # What skaffold's $IMAGE looks like with --default-repo: a registry with a port, a tag.
    monkeypatch.setenv(given.group(1), "registry.example.com:5000/ml/kubeline-x:abc123-dirty")
    assert images.role_image(role) == ("registry.example.com:5000/ml/kubeline-x", "abc123-dirty")


@pytest.mark.parametrize("role", images.ROLES)
def test_the_image_name_is_the_settings_default_and_the_chart_repository(
    config: dict[str, Any], role: str
) -> None:
    command = artifacts(config)[role]["custom"]["buildCommand"]
    setting = re.search(rf'\b{ENV_PREFIX}(\w+)="\$IMAGE"', command)
    assert setting
    default = Settings.model_fields[setting.group(1).lower()].default
    name = artifacts(config)[role]["image"]
    assert default.rpartition(":")[0] == name
    values = chart.merged_values()[CHART_SECTION[role]]["image"]
    assert values["repository"] == name
    assert default.rpartition(":")[2] == values["tag"]


@pytest.mark.parametrize("role", images.ROLES)
def test_the_dependencies_are_what_the_build_reads(config: dict[str, Any], role: str) -> None:
    paths = set(artifacts(config)[role]["custom"]["dependencies"]["paths"])
    root = images.source_root()
    # The Containerfile and lock kubeline.images checks for the role (its _lock), the dev lock
    # its build tools come from, and the sources of the kubeline wheel.
    expected = {
        f"images/{role}/Containerfile",
        f"requirements/{role}.txt",
        "requirements/dev.txt",
        *(p.relative_to(root).as_posix() for p in images.wheel_sources(root)),
    }
    assert paths == expected
    for path in paths:
        assert (ROOT / path).exists(), path


def test_the_release_deploys_the_chart_with_every_built_image(config: dict[str, Any]) -> None:
    (release,) = config["deploy"]["helm"]["releases"]
    assert release["chartPath"] == "helm/kubeline"
    assert (ROOT / release["chartPath"] / "Chart.yaml").is_file()
    assert release["createNamespace"] is True
    templates = release["setValueTemplates"]
    expected = {}
    for role, artifact in artifacts(config).items():
        name, section = sanitized(artifact["image"]), CHART_SECTION[role]
        expected[f"{section}.image.repository"] = f"{{{{.IMAGE_REPO_{name}}}}}"
        expected[f"{section}.image.tag"] = f"{{{{.IMAGE_TAG_{name}}}}}"
    assert templates == expected
    # Off as in the chart: a fresh release has no champion to serve.
    assert release["setValues"] == {"serving.enabled": False}
    assert chart.merged_values()["serving"]["enabled"] is False


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def apply_patches(config: dict[str, Any], patches: list[dict[str, Any]]) -> dict[str, Any]:
    """RFC 6902 `add` and `replace`, the two ops the profiles use; `replace` needs the member."""
    patched = copy.deepcopy(config)
    for patch in patches:
        *parents, last = (_unescape(t) for t in patch["path"].lstrip("/").split("/"))
        node: Any = patched
        for token in parents:
            node = node[int(token)] if isinstance(node, list) else node[token]
        assert patch["op"] in ("add", "replace"), patch
        if patch["op"] == "replace":
            assert last in node, patch["path"]
        node[last] = copy.deepcopy(patch["value"])
    return patched


def as_values(flat: dict[str, Any]) -> dict[str, Any]:
    """Helm's --set keys (a.b.c) as nested values."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, last = key.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return nested


def deployed_values(config: dict[str, Any], built: dict[str, dict[str, str]]) -> dict[str, Any]:
    """The values the release gets: its values files, then --set, as helm applies them."""
    (release,) = config["deploy"]["helm"]["releases"]
    values: dict[str, Any] = {}
    for path in release.get("valuesFiles", []):
        values = chart.merge(values, yaml.safe_load((ROOT / path).read_text()))
    fields = {"IMAGE_REPO": "repo", "IMAGE_TAG": "tag", "IMAGE_DIGEST": "digest"}

    def fill(template: str) -> str:
        def one(match: re.Match[str]) -> str:
            field, name = match.group(1), match.group(2)
            return built[name][fields[field]]

        return re.sub(r"\{\{\.(IMAGE_REPO|IMAGE_TAG|IMAGE_DIGEST)_(\w+)\}\}", one, template)

    sets = {k: fill(v) for k, v in release.get("setValueTemplates", {}).items()}
    return chart.merge(values, as_values(sets), as_values(release.get("setValues", {})))


def profile(config: dict[str, Any], *names: str) -> dict[str, Any]:
    by_name = {p["name"]: p for p in config["profiles"]}
    for name in names:
        config = apply_patches(config, by_name[name].get("patches", []))
    return config


@pytest.mark.parametrize(
    "names", [(), ("kind",), ("cloud",), ("kind", "serving"), ("cloud", "serving")]
)
def test_each_profile_deploys_the_images_skaffold_built(
    config: dict[str, Any], names: tuple[str, ...]
) -> None:
    assert {p["name"] for p in config["profiles"]} == set(PROFILES)
    repo = "registry.example.com/kubeline" if "cloud" in names else ""
    built = {
        sanitized(a["image"]): {
            "repo": f"{repo}/{a['image']}" if repo else a["image"],
            "tag": "v0.1.0-3-gabcdef0-dirty",
            "digest": "sha256:" + f"{i:x}" * 64,
        }
        for i, a in enumerate(config["build"]["artifacts"], start=1)
    }
    values = deployed_values(profile(config, *names), built)
    docs = chart.render(values)  # the chart's schema accepts what skaffold sets
    used = {
        c["image"]: c["imagePullPolicy"]
        for d in docs
        if d["kind"] in ("Deployment", "Job", "Pod")
        for c in (d["spec"] if d["kind"] == "Pod" else d["spec"]["template"]["spec"])["containers"]
    }
    by_image = {a["image"]: built[sanitized(a["image"])] for a in config["build"]["artifacts"]}
    pinned = "cloud" in names
    expect = {
        name: f"{b['repo']}@{b['digest']}" if pinned else f"{b['repo']}:{b['tag']}"
        for name, b in by_image.items()
    }
    assert expect["kubeline-pipeline"] in used  # the bucket Job
    assert (expect["kubeline-serving"] in used) == ("serving" in names)
    if "kind" in names:  # loaded into kind, never pulled
        assert used[expect["kubeline-pipeline"]] == "Never"
    if "serving" in names and "kind" in names:
        assert used[expect["kubeline-serving"]] == "Never"
    if pinned:
        assert used[expect["kubeline-pipeline"]] == "IfNotPresent"


def test_the_kind_profile_is_chosen_by_a_kind_context_and_never_pushes(
    config: dict[str, Any],
) -> None:
    kind = next(p for p in config["profiles"] if p["name"] == "kind")
    (activation,) = kind["activation"]
    assert re.fullmatch(activation["kubeContext"], "kind-kubeline")
    assert not re.fullmatch(activation["kubeContext"], "gke_project_zone_cluster")
    assert profile(config, "kind")["build"]["local"]["push"] is False
    assert profile(config, "cloud")["build"]["local"]["push"] is True


def test_the_tag_is_never_latest(config: dict[str, Any]) -> None:
    # skaffold's sha256 tagger tags `latest`; the chart's schema refuses it.
    assert set(config["build"]["tagPolicy"]) == {"gitCommit"}
