"""`kubeline run` refused before any step: the error alone, no table of waiting steps."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from kubeline.cli import app


def test_a_run_refused_before_any_step_prints_only_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)  # not shared: UID 10001 may not write it
    monkeypatch.setenv("KUBELINE_STATE_DIR", str(state))
    monkeypatch.setenv("KUBELINE_CONTAINER_USER", "10001:10001")
    data = tmp_path / "data"
    data.mkdir()
    (data / "AAA.csv").write_text("Date,Close\n2001-01-02,10\n")

    result = CliRunner().invoke(app, ["run", "--data", str(data), "--runner", "docker"])

    assert result.exit_code != 0
    assert "cannot write the state folder" in result.output
    assert "waiting" not in result.output
    assert not (state / "pipeline-root").exists()
