"""Lineage: what ties a model version back to the pipeline run, source and data that made it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

KEYS = ("pipeline_name", "pipeline_run_id", "git_revision", "data_hash")


def git_revision(start: Path | None = None) -> str:
    """The source revision: the image's (``KUBELINE_GIT_REVISION``), else the checkout's, else "".

    A checkout with uncommitted changes to tracked files is marked ``-dirty``, so a model is never
    attributed to a revision that did not produce it.
    """
    if os.environ.get("KUBELINE_GIT_REVISION"):
        return os.environ["KUBELINE_GIT_REVISION"]
    cwd = start or Path.cwd()

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


def tags(lineage: dict[str, str]) -> dict[str, str]:
    """Lineage as MLflow tags (``kubeline.<key>``); empty values are left out."""
    return {f"kubeline.{k}": str(v) for k, v in lineage.items() if v not in (None, "")}
