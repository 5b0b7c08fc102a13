"""`helm upgrade` on a live cluster breaks when what names state changes: a Deployment's or
StatefulSet's selector (immutable), a StatefulSet's claim templates (immutable, and their names
make the PVC names, so a rename orphans the data), a generated Secret's name (a new one would
mean new credentials for old data), a Service or the settings ConfigMap clients already use.

These identifiers are pinned in helm/kubeline-identity.json, from the chart's first release on.
Changing one is a breaking change: it needs a migration note in the README and a major chart
version, then the new snapshot (the failure prints it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kubeline import chart

SNAPSHOT = Path(__file__).resolve().parents[2] / "helm" / "kubeline-identity.json"
PROFILES = ("default", "kind", "production", "minimal")


def stable_identity(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """What must not change between two versions of the chart, per object."""
    found: dict[str, Any] = {}
    for doc in docs:
        kind, namespace, name = chart.identity(doc)
        key = f"{kind}/{namespace}/{name}"
        if kind in ("Deployment", "StatefulSet"):
            found[key] = {"selector": doc["spec"]["selector"]}
        if kind == "StatefulSet":
            claims = doc["spec"].get("volumeClaimTemplates", [])
            found[key] |= {
                "serviceName": doc["spec"]["serviceName"],
                "claimTemplates": [
                    {"name": c["metadata"]["name"], "accessModes": c["spec"]["accessModes"]}
                    for c in claims
                ],
                "pvcs": [f"{c['metadata']['name']}-{name}-0" for c in claims],
            }
        if kind == "Service":
            found[key] = {"selector": doc["spec"]["selector"], "ports": doc["spec"]["ports"]}
        if kind == "Secret":
            found[key] = {"keys": sorted(doc["data"])}
        if kind == "ConfigMap":
            found[key] = {"keys": sorted(doc["data"])}
    return found


def current() -> dict[str, Any]:
    return {
        profile: stable_identity(
            chart.render({} if profile == "default" else chart.profile_values(profile))
        )
        for profile in PROFILES
    }


def test_what_names_state_is_unchanged_since_the_pinned_release() -> None:
    now = current()
    pinned = json.loads(SNAPSHOT.read_text())
    assert now == pinned, "breaking for helm upgrade; if meant, the new snapshot:\n" + json.dumps(
        now, indent=1, sort_keys=True
    )


def test_a_renamed_claim_template_would_be_caught() -> None:
    pinned = json.loads(SNAPSHOT.read_text())["default"]
    renamed = chart.render({"fullnameOverride": "kubeline-v2"})
    assert stable_identity(renamed) != pinned


@pytest.mark.parametrize("profile", ["default", "kind"])
def test_the_snapshot_pins_the_volumes_and_generated_secrets(profile: str) -> None:
    pinned = json.loads(SNAPSHOT.read_text())[profile]
    assert pinned["StatefulSet/kubeline/kubeline-postgres"]["pvcs"] == ["data-kubeline-postgres-0"]
    assert pinned["StatefulSet/kubeline/kubeline-s3"]["pvcs"] == ["data-kubeline-s3-0"]
    assert pinned["Secret/kubeline/kubeline-s3"]["keys"] == ["access-key-id", "secret-access-key"]
    assert pinned["Secret/kubeline/kubeline-postgres"]["keys"] == ["password"]
