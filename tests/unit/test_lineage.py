import subprocess
from pathlib import Path

import pytest

from kubeline.lineage import git_revision, tags
from kubeline.settings import get_settings


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_git_revision_marks_dirty_checkouts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBELINE_GIT_REVISION", raising=False)
    _git(tmp_path, "init", "-q")
    (tmp_path / "f").write_text("1")
    _git(tmp_path, "add", "f")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "c")
    clean = git_revision(tmp_path)
    assert len(clean) == 40
    (tmp_path / "f").write_text("2")
    assert git_revision(tmp_path) == f"{clean}-dirty"


def test_git_revision_prefers_the_image_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBELINE_GIT_REVISION", "abc123")
    get_settings.cache_clear()
    assert git_revision() == "abc123"


def test_git_revision_outside_a_checkout_is_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBELINE_GIT_REVISION", raising=False)
    assert git_revision(tmp_path) == ""


def test_lineage_tags_drop_empty_values() -> None:
    assert tags({"pipeline_run_id": "r1", "git_revision": ""}) == {"kubeline.pipeline_run_id": "r1"}


def test_git_revision_looks_in_kubelines_own_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Run from inside another repository, the revision is still kubeline's (or none).
    _git(tmp_path, "init", "-q")
    (tmp_path / "f").write_text("1")
    _git(tmp_path, "add", "f")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "c")
    other = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.strip()
    monkeypatch.chdir(tmp_path)
    assert not git_revision().startswith(other)
