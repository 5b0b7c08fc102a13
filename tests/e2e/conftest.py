"""The e2e fixtures: the pipeline image, built once per session (or reused), and how to run it.

Every test starts containers as a restricted pod would: read-only root, UID 10001, a tmpfs
``/tmp``, no network, data mounted read-only. Settings, read when this module is imported (the
autouse fixture clears ``KUBELINE_*`` per test):

- ``KUBELINE_E2E_IMAGE``: an image already built in this CI run; no build.
- ``KUBELINE_E2E_BASE``: the base image (a registry-less builder passes a local one).
- ``KUBELINE_E2E_WHEELHOUSE``: a wheelhouse filled on the host (else one is downloaded).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from kubeline.errors import PipelineError

PREBUILT = os.environ.get("KUBELINE_E2E_IMAGE")
BASE = os.environ.get("KUBELINE_E2E_BASE")
WHEELHOUSE = os.environ.get("KUBELINE_E2E_WHEELHOUSE")


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
def image(image_uid: str) -> Image:
    from kubeline.images import build_images, find_engine

    try:
        engine = find_engine()
    except PipelineError as exc:
        pytest.skip(f"e2e: no container engine reachable ({exc.message})")
    if PREBUILT:
        return Image(engine, PREBUILT, image_uid)
    built = build_images(
        engine=engine,
        base=BASE,
        tag=None,
        wheelhouse=Path(WHEELHOUSE) if WHEELHOUSE else None,
    )
    return Image(engine, built[0].reference, image_uid)


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
