from pathlib import Path

import pytest

from kubeline.errors import StorageError
from kubeline.storage import atomic_path, fetch, is_s3, split_s3


def test_atomic_path_replaces_target_on_success(tmp_path: Path) -> None:
    target = tmp_path / "out" / "file.txt"
    with atomic_path(target) as tmp:
        tmp.write_text("new")
        assert not target.exists()
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["file.txt"]


def test_atomic_path_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "file.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]


def test_atomic_path_handles_folders(tmp_path: Path) -> None:
    target = tmp_path / "model"
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "a").write_text("1")
    assert (target / "a").read_text() == "1"


def test_split_s3_names_bucket_and_key() -> None:
    assert split_s3("s3://bucket/a/b.csv") == ("bucket", "a/b.csv")
    assert is_s3("s3://b") and not is_s3("/tmp/x")
    with pytest.raises(StorageError, match="no bucket"):
        split_s3("s3:///key")


def test_fetch_missing_local_path_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no such file"):
        fetch(tmp_path / "missing", tmp_path)
