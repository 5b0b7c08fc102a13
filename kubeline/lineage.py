"""Lineage: what ties a model version back to the pipeline run, source and data that made it."""

from __future__ import annotations

import subprocess
from pathlib import Path

# Every kubeline tag on an MLflow run or model version starts with this.
TAG_PREFIX = "kubeline."
# The content hash of the clean snapshot: one name in artifact metadata, lineage and tags.
DATA_HASH = "data_hash"
# The monitoring check whose drift/decay started the run (kubeline.monitor.loop).
TRIGGERED_BY = "triggered_by"
KEYS = ("pipeline_name", "pipeline_run_id", "git_revision", DATA_HASH)


def git_revision(start: Path | None = None) -> str:
    """The source revision: the setting (images set it), else kubeline's checkout's, else "".

    Looked up from the package's own folder, not the working directory, so running from
    another repository never records that repository's revision. A checkout with uncommitted
    changes to tracked files is marked ``-dirty``: a model is never attributed to a revision
    that did not produce it.
    """
    from kubeline.settings import get_settings

    configured = get_settings().git_revision
    if configured:
        return configured
    cwd = start or Path(__file__).resolve().parent

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    rev = git("rev-parse", "HEAD")
    if not rev:
        return ""
    return f"{rev}-dirty" if git("status", "--porcelain", "--untracked-files=no") else rev


def of_run(
    pipeline_name: str,
    pipeline_job_name: str,
    pipeline_run_id: str,
    git_revision: str,
    data_hash: str = "",
    triggered_by: str = "",
) -> dict[str, str]:
    """The lineage of one pipeline run, as components receive it from KFP's placeholders.

    ``triggered_by`` is the monitoring check that started the run, if one did.
    """
    return {
        "pipeline_name": pipeline_name,
        "pipeline_job_name": pipeline_job_name,
        "pipeline_run_id": pipeline_run_id,
        "git_revision": git_revision,
        DATA_HASH: data_hash,
        TRIGGERED_BY: triggered_by,
    }


def tag(key: str) -> str:
    """The MLflow tag key of a lineage (or other kubeline) field: ``kubeline.<key>``."""
    return f"{TAG_PREFIX}{key}"


def tags(lineage: dict[str, str]) -> dict[str, str]:
    """Lineage as MLflow tags (``kubeline.<key>``); empty values are left out."""
    return {tag(k): str(v) for k, v in lineage.items() if v not in (None, "")}
