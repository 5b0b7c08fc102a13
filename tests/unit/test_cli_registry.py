"""Registry commands on a folder with no registry yet: a sentence, no store made, no MLflow noise.

What they show on a real store (aliases, gate states, scores, after promote and rollback) is
tested in tests/integration/test_executors.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from kubeline.cli import app


@pytest.mark.parametrize(
    "command", [["models"], ["models", "--json"], ["rollback"], ["promote", "--version", "1"]]
)
def test_registry_commands_on_a_fresh_folder_say_there_is_no_registry_and_create_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    state = tmp_path / "state"
    monkeypatch.setenv("KUBELINE_STATE_DIR", str(state))
    done = CliRunner().invoke(app, command)
    assert done.exit_code != 0
    assert "there is no model registry yet" in done.output
    assert "mlflow.db does not exist" in " ".join(done.output.split())
    assert "Creating initial MLflow database tables" not in done.output
    assert "Traceback" not in done.output
    assert not state.exists()
