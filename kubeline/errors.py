"""One exception hierarchy: every error says what was wrong, where, and what to do.

The CLI prints these without a traceback and exits non-zero; anything else is a bug.
"""

from __future__ import annotations

import errno
import re
from dataclasses import dataclass

# ``scheme://user:password@host``: the password part, wherever a URI is printed or logged.
_URI_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]*):(?P<secret>[^\s/@]+)@")
MASK = "********"


class KubelineError(Exception):
    """Base of every error kubeline raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        # Masked here, so no printer (the CLI, a step's log, the KFP UI) shows a URI's password.
        text = self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"
        return mask_credentials(text)


class ConfigError(KubelineError):
    """A settings value or run-config key is missing, unknown or of the wrong type."""

    exit_code = 2


class StorageError(KubelineError):
    """A local path or s3:// location cannot be read or written."""


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with input data, located as precisely as the data allows."""

    file: str
    row: int | None  # 1-based line number in the file (header is line 1); None for whole-file
    column: str | None
    message: str
    severity: str = "error"  # "error" rejects the input; "warning" was repaired and reported

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f", row {self.row}"
        if self.column:
            where += f", column {self.column!r}"
        return f"{where}: {self.message}"


class DataError(KubelineError):
    """Input data cannot be used; carries every problem found, not only the first."""

    exit_code = 3

    def __init__(
        self, message: str, problems: list[Problem] | None = None, *, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.problems = list(problems or [])

    def __str__(self) -> str:
        lines = [self.message]
        shown = self.problems[:50]
        lines += [f"  - {p}" for p in shown]
        if len(self.problems) > len(shown):
            lines.append(f"  ... and {len(self.problems) - len(shown)} more problems")
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return mask_credentials("\n".join(lines))


class TrainingError(KubelineError):
    """Training could not produce a model (e.g. too little data for the split)."""


class RegistryError(KubelineError):
    """The MLflow tracking server or model registry refused or failed an operation."""


class ModelNotFoundError(RegistryError):
    """The registered model, version or alias asked for does not exist."""


class RequestError(KubelineError):
    """A request to the service is malformed; ``detail`` locates each problem (field, row)."""

    def __init__(
        self, message: str, detail: list[dict[str, object]] | None = None, *, status: int = 400
    ) -> None:
        super().__init__(message)
        self.detail = list(detail or [])
        self.status = status


class PipelineError(KubelineError):
    """A pipeline run failed, or could not be compiled or started.

    ``exit_code`` is the failed step's own (3 for bad data), so ``kubeline run`` and
    ``kubeline validate`` exit alike on the same input.
    """

    def __init__(self, message: str, *, hint: str | None = None, exit_code: int = 1) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = exit_code


class KfpError(KubelineError):
    """A KFP endpoint cannot be reached, refused the request, or has no such pipeline or run."""


class KfpAuthError(KfpError):
    """The KFP endpoint refused the credentials (HTTP 401/403)."""


def mask_credentials(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@host`` replaced by asterisks."""
    return _URI_PASSWORD.sub(lambda m: f"{m['head']}:{MASK}@", text)


def os_error_message(exc: OSError) -> KubelineError:
    """An OS error as a StorageError naming the path and what to do, not a traceback."""
    path = str(exc.filename) if exc.filename is not None else "a path"
    other = f" -> {exc.filename2}" if exc.filename2 is not None else ""
    reason = (exc.strerror or str(exc)).lower()
    hints = {
        errno.ENOTDIR: "a part of the path is a file where a folder is expected: choose another path",
        errno.EISDIR: "the path is a folder where a file is expected: name a file",
        errno.EEXIST: "something is already at that path: remove it or choose another path",
        errno.EACCES: "choose a path you may write, or change its permissions",
        errno.EPERM: "choose a path you may write, or change its permissions",
        errno.EROFS: "the file system is read-only: choose a writable path",
        errno.ENOSPC: "free some disk space and try again",
        errno.ENOENT: "check the path",
    }
    hint = hints.get(exc.errno or 0, "check the path and its permissions")
    return StorageError(f"{path}{other}: {reason}", hint=hint)
