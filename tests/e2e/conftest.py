"""The e2e fixtures: the pipeline image, built once per session (or reused), and how to run it.

The image is built with the README's own command, ``kubeline images build``, and default
settings (no ``KUBELINE_IMAGE``): the name it tags is the one ``kubeline run --runner docker``
must find without being told.

Every test starts containers as a restricted pod would: read-only root, UID 10001, a tmpfs
``/tmp``, no network, data mounted read-only. Settings, read when this module is imported (the
autouse fixture clears ``KUBELINE_*`` per test):

- ``KUBELINE_E2E_IMAGE``: an image already built in this CI run; no build.
- ``KUBELINE_E2E_BASE``: the base image (a registry-less builder passes a local one).
- ``KUBELINE_E2E_WHEELHOUSE``: a wheelhouse filled on the host (else one is downloaded).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from kubeline.errors import PipelineError

PREBUILT = os.environ.get("KUBELINE_E2E_IMAGE")
BASE = os.environ.get("KUBELINE_E2E_BASE")
WHEELHOUSE = os.environ.get("KUBELINE_E2E_WHEELHOUSE")
KUBELINE = str(Path(sys.executable).parent / "kubeline")
README = Path(__file__).resolve().parents[2] / "README.md"


def readme_command(prefix: str) -> list[str]:
    """The README's ``Images`` command that starts with ``prefix``, as argv (comment dropped)."""
    images = README.read_text().split("## Images", 1)[1]
    for line in images.splitlines():
        if line.startswith(prefix):
            return shlex.split(line.split("#", 1)[0])
    raise AssertionError(f"README's Images section has no `{prefix}` command")


def default_environment() -> dict[str, str]:
    """This environment with no kubeline or MLflow settings and no terminal width: a new user's."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KUBELINE_", "MLFLOW_")) and k not in ("COLUMNS", "LINES")
    }


@dataclass(frozen=True)
class Image:
    engine: str
    reference: str
    user: str  # the image's own UID (tests/conftest.py: IMAGE_UID)

    def run(
        self, *args: str, mounts: Sequence[tuple[Path, str]] = ()
    ) -> subprocess.CompletedProcess[str]:
        """Run ``args`` in a fresh container as a restricted pod would: read-only, no network."""
        volumes = [f"--volume={src}:{dst}:ro" for src, dst in mounts]
        return subprocess.run(
            [
                self.engine,
                "run",
                "--rm",
                "--read-only",
                "--tmpfs",
                "/tmp",
                "--user",
                self.user,
                "--network",
                "none",
                *volumes,
                self.reference,
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory, image_uid: str) -> Image:
    from kubeline.images import find_engine, local_reference
    from kubeline.settings import Settings

    try:
        engine = find_engine()
    except PipelineError as exc:
        pytest.skip(f"e2e: no container engine reachable ({exc.message})")
    if PREBUILT:
        return Image(engine, PREBUILT, image_uid)
    command = readme_command("kubeline images build")
    assert command == ["kubeline", "images", "build"], command
    if BASE:  # the README's way where no registry is reachable
        command += ["--base", BASE]
    if WHEELHOUSE:
        command += ["--wheelhouse", WHEELHOUSE]
    done = NewUser().run(command, cwd=tmp_path_factory.mktemp("build"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    reference = local_reference(Settings.model_fields["image"].default)
    assert "run the pipeline in it: kubeline run --runner docker" in done.stdout, done.stdout
    return Image(engine, reference, image_uid)


def _readable_by_the_image_user(folder: Path) -> Path:
    """The container user is not the host's: let it read the mounted data, nothing more."""
    folder.chmod(0o755)
    for path in folder.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return folder


@pytest.fixture(scope="session")
def readable() -> Callable[[Path], Path]:
    """``readable(folder)``: make a folder to mount readable by the image's user; returns it."""
    return _readable_by_the_image_user


@dataclass(frozen=True)
class NewUser:
    """Runs kubeline as a new user would: the README's commands, no settings, no terminal."""

    def command(self, prefix: str) -> list[str]:
        return readme_command(prefix)

    def run(self, argv: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
        assert argv[0] == "kubeline", argv
        return subprocess.run(
            [KUBELINE, *argv[1:]],
            env=default_environment(),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )


@dataclass(frozen=True)
class RoleImage:
    engine: str
    reference: str


def build_role_image(role: str, work: Path, prebuilt: str | None = None) -> RoleImage:
    """A role's image, built with the README's ``kubeline images build --role ROLE`` (or
    ``prebuilt``); skips the test when no container engine answers."""
    from kubeline.images import find_engine, local_reference
    from kubeline.settings import Settings

    try:
        engine = find_engine()
    except PipelineError as exc:
        pytest.skip(f"e2e: no container engine reachable ({exc.message})")
    if prebuilt:
        return RoleImage(engine, prebuilt)
    command = NewUser().command(f"kubeline images build --role {role}")
    assert command == ["kubeline", "images", "build", "--role", role], command
    if BASE:
        command += ["--base", BASE]
    if WHEELHOUSE:
        command += ["--wheelhouse", WHEELHOUSE]
    done = NewUser().run(command, cwd=work)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"built kubeline-{role}:" in done.stdout, done.stdout
    return RoleImage(engine, local_reference(Settings.model_fields[f"{role}_image"].default))


@pytest.fixture(scope="session")
def role_image() -> Callable[[str, Path, str | None], RoleImage]:
    """``role_image(role, work_folder, prebuilt)``: ``build_role_image``."""
    return build_role_image


@pytest.fixture(scope="session")
def new_user() -> NewUser:
    return NewUser()
