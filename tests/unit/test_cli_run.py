"""`kubeline run` refused before any step: the error alone, no table of waiting steps."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def test_a_run_refused_before_any_step_prints_only_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Any], image_uid: str
) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)  # not shared: the image's user may not write it
    monkeypatch.setenv("KUBELINE_STATE_DIR", str(state))
    monkeypatch.setenv("KUBELINE_CONTAINER_USER", f"{image_uid}:{image_uid}")
    data = tmp_path / "data"
    data.mkdir()
    (data / "AAA.csv").write_text("Date,Close\n2001-01-02,10\n")

    result = cli("run", "--data", data, "--runner", "docker")

    assert result.exit_code != 0
    assert "cannot write the state folder" in result.output
    assert "waiting" not in result.output
    assert not (state / "pipeline-root").exists()


def test_step_progress_reaches_the_terminal_not_the_run_log(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # While a run goes on, sys.stdout is the run log's tee (kfp.local prints there): the table
    # must draw on the screen, not into the log, and kfp's lines must stay in the log (the
    # step events are read from them), not be printed above the table.
    import contextlib
    import io

    from kubeline import cli, runner
    from kubeline.runner import StepEvent

    log = io.StringIO()

    def fake_run_training(settings: object, **kwargs: object) -> str:
        on_event = kwargs["on_event"]
        assert callable(on_event)
        with contextlib.redirect_stdout(log):
            on_event(StepEvent("ingest", "running"))
            on_event(StepEvent("ingest", "SUCCESS", 0.5))
            print("Executing task 'validate'")
        return "result"

    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich draws live frames as on a terminal
    monkeypatch.setattr(runner, "run_training", fake_run_training)
    assert cli._run_pipeline("data", "", "", None) == "result"
    assert log.getvalue() == "Executing task 'validate'\n"
    screen = capsys.readouterr().out
    assert "ingest" in screen and "Executing" not in screen


def test_the_closing_lines_stay_whole_when_stdout_is_not_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A deep state folder makes the MLflow UI command far longer than rich's 80 columns.
    from kubeline import cli
    from kubeline.runner import RunResult

    state = tmp_path / ("a-long-folder-name-" * 4) / "state"
    monkeypatch.setenv("KUBELINE_STATE_DIR", str(state))
    monkeypatch.delenv("COLUMNS", raising=False)
    outputs = {"model_name": "m", "model_version": "1", "alias": "champion", "reason": "ok"}
    result = RunResult("r", outputs, state / "logs" / "r.log", outputs_dir=None, seconds=1.0)
    cli._print_outcome(result)
    (ui,) = [line for line in capsys.readouterr().out.splitlines() if "MLflow UI:" in line]
    assert f"ui --backend-store-uri sqlite:///{state.resolve()}/mlflow.db" in ui
