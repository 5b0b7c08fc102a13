"""kfp.local's container launcher, fixed to report each task container's real exit code.

kfp.local (2.17.0 here) starts task containers with ``auto_remove=True``; when one that failed
fast is already gone at ``wait()``, it assumes exit code 0, and a crashed step is reported as a
success: kubeflow/pipelines#13332 (fixes proposed upstream in #13381, #13402 and #13907, none
released yet). Until kfp reads the exit code before removing the container, ``kubeline run
--runner docker`` launches task containers with ``run_container`` instead.

The guard reads the installed launcher rather than comparing version numbers: the upstream fix
is exactly dropping ``auto_remove=True`` from it, no release carries it yet, so there is no
version to compare with, and a backport would not change the major version. Once the installed
kfp no longer auto-removes, ``use_exact_exit_codes`` does nothing and this module can go.
"""

from __future__ import annotations

import inspect
from typing import Any


def kfp_loses_exit_codes() -> bool:
    """Whether the installed kfp.local removes a task container before reading its exit code."""
    from kfp.local import docker_task_handler

    launcher = docker_task_handler.run_docker_container
    if launcher is run_container:
        return False
    try:
        source = inspect.getsource(launcher)
    except (OSError, TypeError):  # no source shipped: assume the behaviour of 2.17
        return True
    return "auto_remove=True" in "".join(source.split())


def use_exact_exit_codes() -> bool:
    """Make kfp.local's DockerRunner launch containers with ``run_container`` while it must.

    Returns whether the fix is in use.
    """
    from kfp.local import docker_task_handler

    if not kfp_loses_exit_codes():
        return docker_task_handler.run_docker_container is run_container
    # kfp looks the launcher up at call time; the image was checked before (no pulls here).
    docker_task_handler.run_docker_container = run_container
    return True


def run_container(
    client: Any, image: str, command: list[str], volumes: dict[str, Any], **run_args: Any
) -> int:
    """Run one task container and return its real exit code: kept until it is read, then removed.

    Prints what kfp.local's own launcher prints (the image, then the container's output).
    """
    print(f"Found image {image!r}\n")
    container = client.containers.run(
        image=image,
        command=command,
        detach=True,
        stdout=True,
        stderr=True,
        volumes=volumes,
        auto_remove=False,
        **run_args,
    )
    try:
        for line in container.logs(stream=True):
            print(line.decode(), end="")
        return int(container.wait()["StatusCode"])
    finally:
        container.remove(force=True)
