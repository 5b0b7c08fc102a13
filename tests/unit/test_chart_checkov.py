"""checkov (kubernetes framework, offline) over every profile's rendered objects: zero failed checks.

A check a resource cannot meet is skipped by a ``checkov.io/skip<N>`` annotation on it, with its
reason (YAML comments do not survive rendering). checkov pins a boto3 the dev lock cannot hold,
so it runs from its own venv (``make venv`` makes ``.venv/tools/checkov``). One call scans all
profiles: checkov's start-up is most of its ~20 s.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeline import chart

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ("default", "kind", "production", "minimal")


def checkov() -> str:
    found = shutil.which("checkov", path=str(ROOT / ".venv" / "tools" / "checkov" / "bin"))
    found = found or shutil.which("checkov")
    if found is None:
        pytest.fail("checkov is not installed: `make venv` makes .venv/tools/checkov")
    return found


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("rendered")
    for profile in PROFILES:
        values = {} if profile == "default" else chart.profile_values(profile)
        (folder / f"{profile}.yaml").write_text(yaml.safe_dump_all(chart.render(values)))
    done = subprocess.run(
        [
            checkov(),
            "--directory",
            str(folder),
            "--framework",
            "kubernetes",
            "--skip-download",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": str(folder), "BC_SKIP_MAPPING": "TRUE"},
    )
    assert done.stdout.strip(), done.stderr[-2000:]
    report = json.loads(done.stdout)
    return report[0] if isinstance(report, list) else report


def test_checkov_finds_no_failed_check_in_any_profile(scan: dict[str, Any]) -> None:
    failed = [
        f"{f['check_id']} {f['resource']} ({Path(f['file_path']).name})"
        for f in scan["results"]["failed_checks"]
    ]
    assert failed == []
    summary = scan["summary"]
    assert summary["parsing_errors"] == 0
    # Every profile's objects were scanned, not an empty folder.
    assert summary["resource_count"] > 40 and summary["passed"] > 1000, summary


def test_every_skipped_check_says_why(scan: dict[str, Any]) -> None:
    skipped = scan["results"]["skipped_checks"]
    assert skipped, "no skips at all: the annotations are not read"
    for check in skipped:
        reason = (check.get("check_result") or {}).get("suppress_comment", "")
        assert len(reason) > 20, check["check_id"]
