"""The loop back's two guards: when a breach may start a retraining, and only once per window.

``may_retrain`` is the policy (N consecutive breaching checks of the same model, then a cooldown
after the last start); ``claim_window`` makes "once per window" hold when two checks race: the
window's key is created exclusively before anything is started, so exactly one claimant wins.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from kubeline.monitor.summary import CheckSummary

if TYPE_CHECKING:
    from kubeline.settings import Settings

BREACHES = ("drift", "decay")
CLAIMS_FOLDER = "claims"  # beside the check folders; it holds no summary.json, so no check


@dataclass(frozen=True)
class Verdict:
    act: bool
    reason: str


def may_retrain(
    history: list[CheckSummary],
    *,
    consecutive: int,
    cooldown: timedelta,
    last_started: datetime | None,
    now: datetime,
) -> Verdict:
    """Whether the newest check in ``history`` (oldest first, it included) may start a
    retraining: it and the ``consecutive - 1`` checks of the same model before it breached (an
    ok or insufficient-data check in between resets the count; other models' checks do not
    count), and no retraining started within ``cooldown`` of ``now``."""
    if not history:
        return Verdict(False, "no check to act on")
    newest = history[-1]
    if newest.decision not in BREACHES:
        return Verdict(False, f"the check is {newest.decision}, not a breach")
    same = [c for c in history if c.model_name == newest.model_name]
    run = 0
    for check in reversed(same):
        if check.decision not in BREACHES:
            break
        run += 1
    if run < consecutive:
        return Verdict(False, f"{run} consecutive breaching checks of {consecutive} needed")
    if last_started is not None and now - last_started < cooldown:
        return Verdict(
            False, f"a retraining started at {last_started.isoformat()}, within the cooldown"
        )
    return Verdict(True, f"{run} consecutive breaching checks")


def window_key(check: CheckSummary) -> str:
    """The same window of the same model version from the same source is one key, whichever
    check judged it."""
    parts = [
        check.model_name,
        check.model_version,
        check.window_start,
        check.window_end,
        check.source,
    ]
    text = json.dumps(parts)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def claim_window(location: str, check: CheckSummary, settings: Settings | None = None) -> bool:
    """Create this window's claim exclusively under ``location``; True for the one caller that
    created it, False for every other. Nothing else may be started before this returns True."""
    key = window_key(check)
    return claim(location, key, {"check_id": check.check_id, "window": key}, settings)


def claim(location: str, name: str, body: dict[str, str], settings: Settings | None = None) -> bool:
    """Create ``claims/<name>.json`` under ``location`` exclusively; True for the one caller
    that created it.

    Local: ``O_CREAT | O_EXCL`` (atomic in one filesystem). S3: a conditional put
    (``IfNoneMatch='*'``), which the store refuses with 412 when the key exists.
    """
    from kubeline.storage import is_s3

    data = json.dumps(body).encode("utf-8")
    if is_s3(location):
        return _claim_s3(f"{location.rstrip('/')}/{CLAIMS_FOLDER}/{name}.json", data, settings)
    folder = Path(location) / CLAIMS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(folder / f"{name}.json", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    return True


def _claim_s3(uri: str, body: bytes, settings: Settings | None) -> bool:
    from botocore.exceptions import ClientError

    from kubeline.errors import StorageError
    from kubeline.storage import s3_client, split_s3

    bucket, key = split_s3(uri)
    try:
        s3_client(settings).put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*")
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status in (409, 412):  # 412: the key exists; 409: a concurrent conditional put
            return False
        raise StorageError(f"cannot claim {uri}: {exc}") from exc
    return True
