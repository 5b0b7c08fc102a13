"""The Helm chart (``helm/kubeline``) rendered with real Helm, and the plain manifests made from it.

Helm comes from the ``helm-python-sdk`` wheel (Helm 4's SDK over a C library; there is no
``helm`` executable), a development dependency: this module imports it inside its functions.

``manifests/`` is for ``kubectl apply -k`` users and is only ever written from the chart, so the
chart stays the one source: ``base/`` is the chart with its defaults, ``overlays/kind/`` what the
chart's kind profile changes (whole objects as strategic-merge patches, objects it adds, objects
it drops). Neither holds a credential: both expect the S3 and PostgreSQL Secrets to exist
(``kubectl create secret``, see the README), and the ``helm test`` pod is left out.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from kubeline.errors import ConfigError

RELEASE = "kubeline"
NAMESPACE = "kubeline"
# What the plain manifests change against a Helm install: the credentials are Secrets made by
# hand (a generated one would be committed), and there is no `helm test` to run a test pod.
MANIFEST_VALUES: dict[str, Any] = {
    "s3": {"auth": {"existingSecret": "kubeline-s3"}},
    "postgres": {"auth": {"existingSecret": "kubeline-postgres"}},
    "tests": {"enabled": False},
}
PROFILE_OVERLAYS = ("kind",)
# Helm-only annotations: hooks mean nothing to kubectl (the bucket Job is a plain Job there).
_HELM_ONLY_ANNOTATIONS = ("helm.sh/hook", "helm.sh/hook-weight", "helm.sh/hook-delete-policy")


def chart_dir() -> Path:
    """The chart in this checkout (it is not part of the wheel)."""
    return Path(__file__).resolve().parents[1] / "helm" / "kubeline"


def _helm() -> Any:
    try:
        import helm_python
    except ImportError as exc:  # the dev extra holds it
        raise ConfigError(
            "rendering the chart needs the helm-python-sdk package, which is not installed",
            hint="install the dev extra (`make venv`) or `pip install helm-python-sdk`",
        ) from exc
    return helm_python


def _check_chart(chart: Path) -> Path:
    if not (chart / "Chart.yaml").is_file():
        raise ConfigError(
            f"no Helm chart at {chart} (no Chart.yaml there)",
            hint="run from a kubeline checkout, or pass --chart helm/kubeline",
        )
    return chart


def profile_values(name: str, chart: Path | None = None) -> dict[str, Any]:
    """The values of one CI profile, ``helm/kubeline/ci/<name>-values.yaml``."""
    path = _check_chart(chart or chart_dir()) / "ci" / f"{name}-values.yaml"
    if not path.is_file():
        raise ConfigError(
            f"no values profile {path}", hint="see helm/kubeline/ci/ for the profiles"
        )
    values = yaml.safe_load(path.read_text()) or {}
    if not isinstance(values, dict):
        raise ConfigError(f"values profile {path} is not a YAML mapping")
    return values


def merge(base: dict[str, Any], *overrides: dict[str, Any]) -> dict[str, Any]:
    """Values merged as Helm merges -f files: mappings key by key, everything else replaced."""
    merged = dict(base)
    for override in overrides:
        for key, value in override.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = merge(merged[key], value)
            else:
                merged[key] = value
    return merged


def merged_values(
    values: dict[str, Any] | None = None, chart: Path | None = None
) -> dict[str, Any]:
    """The values a release would use: the chart's defaults with ``values`` over them (as Helm)."""
    loaded = _helm().Chart.load(str(_check_chart(chart or chart_dir())))
    merged: dict[str, Any] = loaded.merge_values(values or {})
    return merged


def render_files(
    values: dict[str, Any] | None = None,
    *,
    chart: Path | None = None,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
) -> dict[str, str]:
    """Template path -> rendered text, as ``helm template`` renders them (NOTES.txt included).

    Values are checked against ``values.schema.json`` first: a misspelled key or a wrong type
    is refused with Helm's own message, as ``helm install`` would refuse it.
    """
    helm = _helm()
    path = _check_chart(chart or chart_dir())
    loaded = helm.Chart.load(str(path))
    try:
        loaded.validate_schema(values or {})
        rendered: dict[str, str] = loaded.render(
            values or {}, name=release, namespace=namespace, is_install=True
        )
    except helm.HelmError as exc:
        raise ConfigError(f"the chart {path} refused these values: {exc}") from exc
    return rendered


def documents(rendered: dict[str, str]) -> list[dict[str, Any]]:
    """The Kubernetes objects in rendered templates (NOTES.txt and empty documents left out)."""
    docs: list[dict[str, Any]] = []
    for name in sorted(rendered):
        if not name.endswith((".yaml", ".yml")):
            continue
        docs.extend(doc for doc in yaml.safe_load_all(rendered[name]) if doc)
    return docs


def render(values: dict[str, Any] | None = None, **kwargs: Any) -> list[dict[str, Any]]:
    """The Kubernetes objects the chart renders with ``values`` (see ``render_files``)."""
    return documents(render_files(values, **kwargs))


def identity(doc: dict[str, Any]) -> tuple[str, str, str]:
    """(kind, namespace, name): what names one object in a cluster."""
    meta = doc.get("metadata", {})
    return doc["kind"], meta.get("namespace", ""), meta["name"]


def _file_name(doc: dict[str, Any]) -> str:
    kind, namespace, name = identity(doc)
    where = "" if namespace in ("", NAMESPACE) else f".{namespace}"
    return f"{kind.lower()}-{name}{where}.yaml"


def _plain(doc: dict[str, Any]) -> dict[str, Any]:
    """An object as kubectl users get it: without Helm's hook annotations."""
    annotations = doc.get("metadata", {}).get("annotations")
    if annotations:
        for key in _HELM_ONLY_ANNOTATIONS:
            annotations.pop(key, None)
        if not annotations:
            del doc["metadata"]["annotations"]
    return doc


def _dump(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=100)


def _namespace() -> dict[str, Any]:
    # Helm installs into a namespace made with --create-namespace; kubectl users get it here,
    # with Pod Security "restricted" enforced, which every pod of the chart meets.
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": NAMESPACE,
            "labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/warn": "restricted",
            },
        },
    }


def manifest_docs(profile: str | None = None, chart: Path | None = None) -> list[dict[str, Any]]:
    """The objects of the plain manifests: the chart with defaults, or with a ``profile``."""
    values = profile_values(profile, chart) if profile else {}
    return [_plain(doc) for doc in render(merge(values, MANIFEST_VALUES), chart=chart)]


HEADER = (
    "# Generated by `kubeline chart render` from helm/kubeline: edit the chart, not this file.\n"
)


def _write(folder: Path, name: str, text: str) -> None:
    (folder / name).write_text(HEADER + text)


def _write_base(folder: Path, docs: Iterable[dict[str, Any]]) -> None:
    folder.mkdir(parents=True)
    names = ["namespace-kubeline.yaml"]
    _write(folder, names[0], _dump(_namespace()))
    for doc in docs:
        name = _file_name(doc)
        _write(folder, name, _dump(doc))
        names.append(name)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": sorted(names),
    }
    _write(folder, "kustomization.yaml", _dump(kustomization))


def _write_overlay(folder: Path, base: list[dict[str, Any]], docs: list[dict[str, Any]]) -> None:
    """The overlay that turns ``base`` into ``docs``: patches, added and deleted objects."""
    folder.mkdir(parents=True)
    in_base = {identity(doc): doc for doc in base}
    in_profile = {identity(doc): doc for doc in docs}
    resources, patches = ["../../base"], []
    for key, doc in in_profile.items():
        name = _file_name(doc)
        if key not in in_base:
            resources.append(name)
            _write(folder, name, _dump(doc))
        elif doc != in_base[key]:
            patches.append({"path": f"patch-{name}"})
            _write(folder, f"patch-{name}", _dump(doc))
    for key, doc in in_base.items():
        if key not in in_profile:
            kind, namespace, name = key
            gone = {
                "apiVersion": doc["apiVersion"],
                "kind": kind,
                "metadata": {"name": name, "namespace": namespace},
                "$patch": "delete",
            }
            patches.append({"path": f"delete-{_file_name(doc)}"})
            _write(folder, f"delete-{_file_name(doc)}", _dump(gone))
    kustomization: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["../../base", *sorted(resources[1:])],
    }
    if patches:
        kustomization["patches"] = sorted(patches, key=lambda p: p["path"])
    _write(folder, "kustomization.yaml", _dump(kustomization))


def write_manifests(out: Path, chart: Path | None = None) -> list[Path]:
    """Render ``manifests/`` (base and one overlay per profile) into ``out``, replacing it whole."""
    from kubeline.storage import output_folder

    base = manifest_docs(chart=chart)
    overlays = {profile: manifest_docs(profile, chart) for profile in PROFILE_OVERLAYS}
    with output_folder(out, "the manifests folder") as tmp:
        _write_base(tmp / "base", base)
        for profile, docs in overlays.items():
            _write_overlay(tmp / "overlays" / profile, base, docs)
    return sorted(p for p in out.rglob("*.yaml"))


def stale_manifests(committed: Path, chart: Path | None = None) -> list[str]:
    """Files of ``committed`` that differ from what the chart renders today (or are missing/extra)."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "manifests"
        write_manifests(fresh, chart)
        new = {p.relative_to(fresh).as_posix(): p.read_bytes() for p in fresh.rglob("*.yaml")}
    old = (
        {p.relative_to(committed).as_posix(): p.read_bytes() for p in committed.rglob("*.yaml")}
        if committed.is_dir()
        else {}
    )
    return sorted(name for name in new.keys() | old.keys() if new.get(name) != old.get(name))
