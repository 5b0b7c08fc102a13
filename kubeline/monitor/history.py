"""The checks already made: every ``summary.json`` under the checks' location, oldest first.

A check's folder name is its id (``kubeline.monitor.summary.check_key``), so the listing needs no
index of its own: a reader that lists the location while a check is being written sees that check
whole or not at all (its summary is the last file written, atomically).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from kubeline.monitor.summary import SUMMARY_FILE, CheckSummary

if TYPE_CHECKING:
    from kubeline.settings import Settings


def list_checks(location: str, settings: Settings | None = None) -> list[CheckSummary]:
    """The checks under ``location`` (a folder or an s3:// prefix), oldest first.

    An absent location is no checks yet. A summary that does not parse is an error naming it:
    a history that silently skips a check would hide a breach from the retraining guard.
    """
    texts = read_each(location, SUMMARY_FILE, settings)
    checks = []
    for check_id, (where, text) in sorted(texts.items()):
        try:
            checks.append(CheckSummary.from_json(text, check_id))
        except (ValueError, TypeError) as exc:
            from kubeline.errors import StorageError

            raise StorageError(
                f"{where} is not a check summary: {exc}",
                hint="move that folder out of the checks' location, or delete it",
            ) from exc
    return sorted(checks, key=lambda c: (c.checked_at, c.check_id))


def find_check(location: str, check_id: str, settings: Settings | None = None) -> CheckSummary:
    """The one check with this id, or a typed error naming the ids there are."""
    checks = list_checks(location, settings)
    for found in checks:
        if found.check_id == check_id:
            return found
    from kubeline.errors import ConfigError

    latest = ", ".join(c.check_id for c in checks[-3:]) or "none yet"
    raise ConfigError(
        f"no check {check_id!r} under {location}",
        hint=f"the latest checks there: {latest} (see `kubeline monitor history`)",
    )


def read_each(
    location: str, filename: str, settings: Settings | None = None
) -> dict[str, tuple[str, str]]:
    """``filename`` of every check folder under ``location`` that has one, by check id: where
    it was read and its text."""
    from kubeline.storage import is_s3

    if is_s3(location):
        return _read_s3(location, filename, settings)
    root = Path(location)
    if not root.is_dir():
        return {}
    return {
        path.parent.name: (str(path), path.read_text(encoding="utf-8"))
        for path in root.glob(f"*/{filename}")
    }


def _read_s3(location: str, filename: str, settings: Settings | None) -> dict[str, tuple[str, str]]:
    from kubeline.storage import list_s3, s3_client, split_s3

    root = location.rstrip("/") + "/"
    wanted = [
        uri
        for uri in list_s3(root, settings)
        if uri.endswith(f"/{filename}") and uri[len(root) :].count("/") == 1
    ]
    client = s3_client(settings)
    out = {}
    for uri in wanted:
        bucket, key = split_s3(uri)
        try:
            body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as exc:  # botocore raises many unrelated types
            from kubeline.errors import StorageError

            raise StorageError(f"cannot read {uri}: {exc}") from exc
        out[uri[len(root) :].split("/", 1)[0]] = (uri, body.decode("utf-8"))
    return out
