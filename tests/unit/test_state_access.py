"""A run refuses, before any step, a state folder its tasks could not write."""

import os
from pathlib import Path

import pytest

from kubeline.errors import PipelineError
from kubeline.state_access import TaskUser, prepare

OTHER = TaskUser(10001, 10001, in_container=True)


def _state(tmp_path: Path, mode: int) -> Path:
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(mode)
    return state


def test_folders_made_for_another_user_are_as_shared_as_the_state_folder(tmp_path: Path) -> None:
    state = _state(tmp_path, 0o777)
    folders = (state / "pipeline-root", state / "workspace")
    prepare(state, folders, (), OTHER)
    assert {f.stat().st_mode & 0o777 for f in folders} == {0o777}
    assert all(OTHER.can_write(f) for f in folders)


def test_a_state_folder_another_user_cannot_write_is_refused(tmp_path: Path) -> None:
    state = _state(tmp_path, 0o755)
    with pytest.raises(PipelineError, match="container user 10001 cannot write the state") as err:
        prepare(state, (state / "pipeline-root",), (), OTHER)
    assert "chmod -R o+rwX" in str(err.value)
    assert not (state / "pipeline-root").exists()


def test_a_store_file_left_read_only_by_another_run_is_refused(tmp_path: Path) -> None:
    state = _state(tmp_path, 0o777)
    db = state / "mlflow.db"
    db.write_bytes(b"")
    db.chmod(0o644)  # left by a run as the invoking user: 10001 may only read it
    with pytest.raises(PipelineError, match=f"cannot write {db}"):
        prepare(state, (), (db,), OTHER)
    db.chmod(0o666)
    prepare(state, (), (db,), OTHER)


def test_root_in_a_container_obeys_modes_like_anyone(tmp_path: Path) -> None:
    # Containers run with every capability dropped: no CAP_DAC_OVERRIDE for root.
    state = _state(tmp_path, 0o555)
    assert not TaskUser(0, 0, in_container=True).can_write(state)


def test_a_group_shared_state_folder_is_writable_by_a_member(tmp_path: Path) -> None:
    state = _state(tmp_path, 0o770)
    gid = state.stat().st_gid
    assert TaskUser(10001, gid, in_container=True).can_write(state)
    assert not TaskUser(10001, gid + 1, in_container=True).can_write(state)
    assert not TaskUser(10001, None, in_container=True).can_write(state)


def test_the_task_user_of_a_run() -> None:
    me = (os.getuid(), os.getgid())
    assert TaskUser.of_run("subprocess", "10001") == TaskUser(*me, in_container=False)
    assert TaskUser.of_run("docker", None) == TaskUser(*me, in_container=True)
    assert TaskUser.of_run("docker", "10001") == TaskUser(10001, None, in_container=True)
    assert TaskUser.of_run("docker", "10001:20002") == TaskUser(10001, 20002, in_container=True)


def test_running_as_yourself_keeps_your_folders_private(tmp_path: Path) -> None:
    state = _state(tmp_path, 0o700)
    folders = (state / "pipeline-root",)
    prepare(state, folders, (), TaskUser.of_run("subprocess", None))
    assert folders[0].stat().st_mode & 0o777 == 0o700


def test_a_store_made_before_the_run_is_shared_as_the_state_folder_is(tmp_path: Path) -> None:
    import stat

    from kubeline.state_access import share_like_state

    state = tmp_path / "state"
    state.mkdir()
    db = state / "mlflow.db"
    for folder_mode, file_mode in ((0o777, 0o666), (0o755, 0o644), (0o700, 0o600)):
        state.chmod(folder_mode)
        db.write_bytes(b"")
        db.chmod(0o600)
        share_like_state(db, state)
        assert stat.S_IMODE(db.stat().st_mode) == file_mode
