import io
import os
import time
from pathlib import Path

import pytest

from kubeline.errors import PipelineError
from kubeline.runner import (
    StepEvent,
    _exclusive,
    _failure_reason,
    _prune,
    _share_with_container_user,
    _StepTee,
)


def test_step_tee_turns_kfp_lines_into_events_and_logs_plain_text() -> None:
    log = io.StringIO()
    events: list[StepEvent] = []
    tee = _StepTee(log, events.append)
    tee.write("04:07:47 - INFO - Executing task 'ingest'\n")
    tee.write(
        "noise\n04:07:48 - INFO - Task 'ingest' finished with status \x1b[92mSUCCESS\x1b[0m\n"
    )
    assert [(e.step, e.status) for e in events] == [("ingest", "running"), ("ingest", "SUCCESS")]
    assert "\x1b" not in log.getvalue()
    assert [(e.step, e.status) for e in tee.events] == [("ingest", "SUCCESS")]


def test_failure_reason_prefers_kubeline_error_lines() -> None:
    lines = [
        "Traceback (most recent call last):",
        "    kubeline error: validation failed: 1 problems in 1 files",
        "    kubeline error:   - a.csv, row 6, column 'close': price must be positive",
        "kubeline.errors.DataError: validation failed",
    ]
    assert _failure_reason(lines) == (
        "validation failed: 1 problems in 1 files\n- a.csv, row 6, column 'close': price must be positive"
    )
    assert _failure_reason(["x", "ValueError: boom"]) == "ValueError: boom"
    assert _failure_reason(["nothing useful"]) == "see the log"


def test_a_second_run_on_the_same_state_folder_is_refused(tmp_path: Path) -> None:
    refused = pytest.raises(PipelineError, match="another kubeline run")
    with _exclusive(tmp_path), refused, _exclusive(tmp_path):
        pass
    with _exclusive(tmp_path):  # released again
        pass


def test_prune_keeps_the_newest_runs(tmp_path: Path) -> None:
    for i in range(5):
        run = tmp_path / f"run-{i}"
        run.mkdir()
        os.utime(run, (time.time() - 100 + i, time.time() - 100 + i))
    _prune(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run-3", "run-4"]


def _folders(tmp_path: Path, mode: int) -> tuple[Path, list[Path]]:
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(mode)
    folders = [state / "pipeline-root", state / "workspace"]
    for folder in folders:
        folder.mkdir(mode=0o700)
    return state, folders


def test_a_state_folder_shared_with_everyone_is_shared_with_the_container_user(
    tmp_path: Path,
) -> None:
    state, folders = _folders(tmp_path, 0o777)
    _share_with_container_user("10001:10001", state, folders)
    assert {f.stat().st_mode & 0o777 for f in folders} == {0o777}


def test_a_state_folder_the_container_user_cannot_write_is_refused_before_any_task(
    tmp_path: Path,
) -> None:
    state, folders = _folders(tmp_path, 0o755)
    with pytest.raises(PipelineError, match="container user 10001 cannot write") as caught:
        _share_with_container_user("10001", state, folders)
    assert "chmod -R o+rwX" in str(caught.value)
    assert {f.stat().st_mode & 0o777 for f in folders} == {0o700}


def test_running_as_yourself_changes_nothing(tmp_path: Path) -> None:
    state, folders = _folders(tmp_path, 0o700)
    for user in (None, str(os.getuid()), f"{os.getuid()}:{os.getgid()}"):
        _share_with_container_user(user, state, folders)
    assert {f.stat().st_mode & 0o777 for f in folders} == {0o700}
