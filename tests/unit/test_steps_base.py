import pytest

from kubeline.errors import DataError, Problem
from kubeline.steps.base import ERROR_PREFIX, executor, run_config


def test_executor_prints_kubeline_errors_as_plain_lines(capsys: pytest.CaptureFixture[str]) -> None:
    @executor
    def failing() -> None:
        raise DataError("validation failed", [Problem("a.csv", 3, "close", "not a number")])

    with pytest.raises(DataError):
        failing()
    out = capsys.readouterr().out
    assert f"{ERROR_PREFIX} validation failed" in out
    assert f"{ERROR_PREFIX}   - a.csv, row 3, column 'close': not a number" in out


def test_empty_config_text_means_defaults() -> None:
    assert run_config("") == run_config("   \n")
    assert run_config("target: next_volume\n").target == "next_volume"
