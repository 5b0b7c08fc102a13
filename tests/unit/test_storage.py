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


def test_output_folder_replaces_its_own_output_and_keeps_nothing_stale(tmp_path: Path) -> None:
    from kubeline.storage import MANIFEST, output_folder

    out = tmp_path / "out"
    with output_folder(out) as tmp:
        (tmp / "a.csv").write_text("1")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b.csv").write_text("2")
    with output_folder(out) as tmp:
        (tmp / "c.csv").write_text("3")
    assert sorted(p.name for p in out.rglob("*")) == [MANIFEST, "c.csv"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_output_folder_refuses_a_folder_with_the_users_files_before_any_work(
    tmp_path: Path,
) -> None:
    from kubeline.storage import output_folder

    out = tmp_path / "out"
    with output_folder(out) as tmp:
        (tmp / "a.csv").write_text("1")
    (out / "mine.txt").write_text("keep")
    entered = False
    with (
        pytest.raises(
            StorageError, match=r"already holds files kubeline did not write \(mine.txt\)"
        ),
        output_folder(out),
    ):
        entered = True
    assert not entered
    assert sorted(p.name for p in out.iterdir()) == [".kubeline-output.json", "a.csv", "mine.txt"]


def test_output_folder_leaves_the_old_output_when_writing_fails(tmp_path: Path) -> None:
    from kubeline.storage import output_folder

    out = tmp_path / "out"
    with output_folder(out) as tmp:
        (tmp / "a.csv").write_text("old")
    with pytest.raises(RuntimeError), output_folder(out) as tmp:
        (tmp / "a.csv").write_text("half")
        raise RuntimeError("interrupted")
    assert (out / "a.csv").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_file_and_folder_targets_say_which_was_expected(tmp_path: Path) -> None:
    from kubeline.storage import check_file_target, check_folder_target

    plain = tmp_path / "plain"
    plain.write_text("x")
    with pytest.raises(StorageError, match="is a folder, where a file is expected"):
        check_file_target(tmp_path)
    with pytest.raises(StorageError, match="is a file, where a folder is expected"):
        check_folder_target(plain)
    for check in (check_file_target, check_folder_target):
        with pytest.raises(StorageError, match=f"{plain} is a file, not a folder"):
            check(plain / "deeper" / "x")
    assert check_file_target(tmp_path / "new" / "f.parquet") == tmp_path / "new" / "f.parquet"
