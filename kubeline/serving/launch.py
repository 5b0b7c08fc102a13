"""``kubeline serve``: check the registry first, then hand the process to ``bentoml serve``.

The check (the registry answers, the alias or version exists) fails in one sentence before
BentoML starts workers that would each fail with a traceback. The process is then replaced by
``bentoml serve`` (exec, not a child): the PID a supervisor or test holds is the server's, and
SIGTERM reaches it directly.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kubeline.settings import Settings

SERVICE = "kubeline.serving.service:Kubeline"


def command(settings: Settings) -> tuple[list[str], dict[str, str]]:
    """The ``bentoml serve`` argv and environment for these settings."""
    bentoml = str(Path(sys.executable).parent / "bentoml")
    argv = [
        bentoml,
        "serve",
        SERVICE,
        "--host",
        settings.serve_host,
        "--port",
        str(settings.serve_port),
    ]
    env = dict(os.environ)
    for name in ("model_name", "serve_workers", "serve_version", "serve_host", "serve_port"):
        value = getattr(settings, name)
        key = f"KUBELINE_{name.upper()}"
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    env.update(
        BENTOML_DO_NOT_TRACK="true",  # no usage reports, ever
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",  # progress bars in a server's log
        MLFLOW_DISABLE_TELEMETRY="true",
    )
    return argv, env


def preflight(settings: Settings) -> tuple[str, str]:
    """The (name, version) the service will serve; a RegistryError now if there is none."""
    from kubeline.serving.loaded import resolve_version

    name, version, _, _ = resolve_version(
        settings, version=settings.serve_version, alias=settings.serve_alias
    )
    return name, version


def exec_serve(settings: Settings) -> None:
    argv, env = command(settings)
    os.execve(argv[0], argv, env)
