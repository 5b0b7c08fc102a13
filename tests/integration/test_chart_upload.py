"""The chart's upload hook Job, run for real: its rendered command and environment against the
KFP contract server (``kfp_contract``), twice, as an install and then an upgrade run it.

What differs from a pod: the process runs from the venv on 127.0.0.1 and ``kfp.host`` is the
contract server's URL instead of the KFP Service's; HOME is a temporary folder (the pod's /tmp),
so kfp reads no developer's ``~/.config/kfp/context.json``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import VENV_BIN  # tests/conftest.py
from kfp_contract import ContractServer

from kubeline import chart
from kubeline.runner import compiled_dir

pytestmark = pytest.mark.integration


@pytest.fixture
def server() -> Iterator[ContractServer]:
    running = ContractServer().start()  # a standalone KFP: no credentials asked
    yield running
    running.stop()


def _job_container(host: str) -> dict[str, Any]:
    docs = chart.render({"kfp": {"uploadPipelines": True, "host": host}})
    job = next(d for d in docs if d["kind"] == "Job" and d["metadata"]["name"].endswith("upload"))
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return container


def test_the_rendered_job_uploads_each_spec_once_and_an_upgrade_sends_nothing(
    server: ContractServer, tmp_path: Path
) -> None:
    container = _job_container(server.url)
    env = {var["name"]: var["value"] for var in container["env"]}
    env |= {"HOME": str(tmp_path), "PATH": f"{VENV_BIN}:/usr/bin:/bin"}
    command = [str(VENV_BIN / container["command"][0]), *container["command"][1:]]
    command += container.get("args", [])
    names = sorted(p.stem for p in compiled_dir().glob("*.yaml"))

    install = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert install.returncode == 0, install.stdout + install.stderr
    lines = install.stdout.splitlines()
    assert len(lines) == len(names) and all(line.endswith(" created") for line in lines), lines
    kfp = server.contract
    pipelines, versions = dict(kfp.pipelines), dict(kfp.versions)
    assert len(pipelines) == len(versions) == len(names)

    mark = len(kfp.requests)
    upgrade = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    lines = upgrade.stdout.splitlines()
    assert len(lines) == len(names) and all("already there" in line for line in lines), lines
    sent = kfp.operations(mark)
    assert "upload_pipeline_version" not in sent and "pipeline_service_create_pipeline" not in sent
    assert kfp.pipelines == pipelines and kfp.versions == versions
    assert kfp.errors == []
