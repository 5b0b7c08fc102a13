"""The pipeline image, in a real container as a cluster runs it: read-only root, UID 10001.

The ``image`` fixture (tests/e2e/conftest.py) builds the image once per session.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

    from conftest import Image  # tests/e2e/conftest.py

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def market_data(tmp_path_factory: pytest.TempPathFactory, readable: Callable[[Path], Path]) -> Path:
    from typer.testing import CliRunner

    from kubeline.cli import app

    out = tmp_path_factory.mktemp("market") / "data"
    result = CliRunner().invoke(
        app, ["data", "generate", "--out", str(out), "--tickers", "3", "--years", "1"]
    )
    assert result.exit_code == 0, result.output
    return readable(out)


def test_image_runs_as_uid_10001_on_a_read_only_root(image: Image) -> None:
    done = image.run(
        "sh",
        "-c",
        "id -u; touch /opt/kubeline/x 2>/dev/null && echo writable; touch /tmp/x && echo tmp-ok",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [image.user, "tmp-ok"]


def test_image_is_under_one_gigabyte(image: Image) -> None:
    done = subprocess.run(
        [image.engine, "image", "inspect", "--format", "{{.Size}}", image.reference],
        capture_output=True,
        text=True,
        check=True,
    )
    # The target, in the engine's own (SI) unit: what `docker images` shows.
    assert int(done.stdout) < 1_000_000_000


def test_image_carries_its_revision_and_oci_labels(image: Image) -> None:
    done = subprocess.run(
        [
            image.engine,
            "image",
            "inspect",
            "--format",
            '{{.Config.User}}|{{index .Config.Labels "org.opencontainers.image.version"}}|'
            '{{index .Config.Labels "org.opencontainers.image.revision"}}',
            image.reference,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    user, version, revision = done.stdout.strip().split("|")
    from kubeline import __version__

    assert user.split(":")[0] == image.user
    assert version == __version__
    env = image.run("python3", "-c", "import os; print(os.environ['KUBELINE_GIT_REVISION'])")
    assert env.stdout.strip() == revision


def test_component_imports_work_with_kfp_and_python3_on_path(image: Image) -> None:
    done = image.run(
        "python3",
        "-c",
        "import shutil, kubeline.steps.train, kfp.dsl.executor_main, mlflow, sklearn; "
        "print(shutil.which('python3'), shutil.which('kubeline'))",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["/opt/kubeline/bin/python3", "/opt/kubeline/bin/kubeline"]


def test_validate_accepts_generated_data_in_the_container(image: Image, market_data: Path) -> None:
    done = image.run("kubeline", "validate", "/data", mounts=[(market_data, "/data")])
    assert done.returncode == 0, done.stdout + done.stderr


def test_validate_rejects_broken_data_with_exit_3(
    image: Image, market_data: Path, tmp_path: Path, readable: Callable[[Path], Path]
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(market_data, broken)
    victim = sorted(broken.glob("*.csv"))[0]
    lines = victim.read_text().splitlines()
    fields = lines[3].split(",")
    fields[4] = "-1"  # Close on line 4: a non-positive price
    lines[3] = ",".join(fields)
    victim.write_text("\n".join(lines) + "\n")
    done = image.run("kubeline", "validate", "/data", mounts=[(readable(broken), "/data")])
    output = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 3, output
    assert f"{victim.name}, row 4" in output
    assert "Traceback" not in output


def test_a_build_whose_base_cannot_be_pulled_stops_at_once_naming_base(
    new_user, tmp_path: Path
) -> None:
    from kubeline.errors import PipelineError
    from kubeline.images import find_engine

    try:
        find_engine()
    except PipelineError as exc:
        pytest.skip(f"e2e: no container engine reachable ({exc.message})")
    base = "localhost:1/kubeline-no-such-base:0"  # no registry answers there
    done = new_user.run(["kubeline", "images", "build", "--base", base], cwd=tmp_path)
    output = " ".join((done.stdout + done.stderr).split())
    assert done.returncode != 0, output
    assert f"cannot pull the base image {base}" in output
    assert "--base" in output and "debootstrap" in output and "docker import" in output
    assert "Traceback" not in output
