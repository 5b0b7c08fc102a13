"""Whether the tasks of a local run can write what they write in the state folder.

Task containers run with every capability dropped, so even root in them obeys file modes, and
``KUBELINE_CONTAINER_USER`` may make them a user other than whoever runs kubeline. Files one user
left (the embedded ``mlflow.db`` after a run as 10001, say) can then be read-only to the next.
A run checks before any step starts, so no step fails half-way on a bare PermissionError or
SQLite's "attempt to write a readonly database".
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kubeline.errors import PipelineError


@dataclass(frozen=True)
class TaskUser:
    """Who a run's tasks are, as the kernel sees them."""

    uid: int
    gid: int | None
    in_container: bool

    @classmethod
    def of_run(cls, runner: str, container_user: str | None) -> TaskUser:
        if runner != "docker":
            return cls(os.getuid(), os.getgid(), in_container=False)
        if container_user is None:
            return cls(os.getuid(), os.getgid(), in_container=True)
        uid, _, gid = container_user.partition(":")
        return cls(int(uid), int(gid) if gid else None, in_container=True)

    @property
    def is_invoking_user(self) -> bool:
        return self.uid == os.getuid()

    def can_write(self, path: Path) -> bool:
        if not self.in_container:
            return os.access(path, os.W_OK)  # this very process: root may write anything
        info = path.stat()
        return bool(
            (info.st_uid == self.uid and info.st_mode & stat.S_IWUSR)
            or (self.gid is not None and info.st_gid == self.gid and info.st_mode & stat.S_IWGRP)
            or info.st_mode & stat.S_IWOTH
        )


def prepare(state: Path, folders: Sequence[Path], written: Iterable[Path], user: TaskUser) -> None:
    """Create ``folders`` in ``state`` writable by ``user``; refuse if it could not write them,
    the state folder, or the existing paths in ``written``."""
    state.mkdir(parents=True, exist_ok=True)
    if user.is_invoking_user:
        hint = (
            f"files there belong to another user (left by a run with KUBELINE_CONTAINER_USER?): "
            f"take them back (`chown -R {user.uid} {state}`, as root) or use another "
            "KUBELINE_STATE_DIR"
        )
    else:
        hint = (
            f"share the state folder with UID {user.uid} (`chmod -R o+rwX {state}`), or unset "
            "KUBELINE_CONTAINER_USER to run the steps as yourself"
        )
    who = "you" if user.is_invoking_user else f"the container user {user.uid}"
    if not user.can_write(state):
        raise PipelineError(f"{who} cannot write the state folder {state}", hint=hint)
    mode = stat.S_IMODE(state.stat().st_mode)
    for folder in folders:
        if not folder.exists():
            folder.mkdir()
            folder.chmod(mode)  # as widely shared as the state folder, whatever the umask
    for path in (*folders, *written):
        if path.exists() and not user.can_write(path):
            raise PipelineError(f"{who} cannot write {path}", hint=hint)


def share_like_state(path: Path, state: Path) -> None:
    """Give a file this process just created in ``state`` the state folder's sharing.

    The embedded ``mlflow.db`` is made before a run (``kubeline.registry.prepare_store``); the
    umask would leave it writable by this user alone, and the docker runner's tasks may be
    another user that the state folder is shared with.
    """
    folder_mode = stat.S_IMODE(state.stat().st_mode)
    path.chmod((folder_mode & 0o666) | stat.S_IRUSR | stat.S_IWUSR)
