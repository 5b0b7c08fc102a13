import io
import os
import time
from pathlib import Path

import pytest

from kubeline.errors import PipelineError
from kubeline.runner import StepEvent, _exclusive, _failure_reason, _prune, _StepTee


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
