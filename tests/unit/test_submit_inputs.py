"""What `kubeline submit` and `schedule` decide before any request: the cron KFP gets, the inputs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml

from kubeline.cli import _duration
from kubeline.errors import ConfigError
from kubeline.runner import compiled_dir
from kubeline.runner.cron import to_kfp_cron
from kubeline.runner.remote import CompiledSpec, run_parameters


@pytest.mark.parametrize(
    ("written", "sent"),
    [
        ("0 * * * *", "0 0 * * * *"),  # hourly; as five fields KFP would run it every minute
        ("*/15 * * * *", "0 */15 * * * *"),
        ("30 6 * * 1-5", "0 30 6 * * 1-5"),
        ("0  6 1,15 * *", "0 0 6 1,15 * *"),  # runs of spaces are one separator
        ("0 0 6 * * MON-FRI", "0 0 6 * * MON-FRI"),  # six fields: KFP's own, as written
        ("0 0 1 jan,JUL sun-sat", "0 0 0 1 jan,JUL sun-sat"),  # names, either case
        ("@daily", "@daily"),
        ("@every 1h", "@every 1h"),
    ],
)
def test_five_cron_fields_get_seconds_in_front(written: str, sent: str) -> None:
    cron = to_kfp_cron(written)
    assert cron.kfp == sent
    assert cron.converted == (len(written.split()) == 5)


def test_the_conversion_is_said() -> None:
    note = to_kfp_cron("0 * * * *").note()
    assert "'0 * * * *'" in note and "'0 0 * * * *'" in note and "seconds first" in note
    assert "as written" in to_kfp_cron("@hourly").note()


@pytest.mark.parametrize(
    ("written", "said"),
    [
        ("0 6 * *", "has 4 fields"),
        ("0 0 6 * * * 2030", "has 7 fields"),
        ("", "has 0 fields"),
        ("0 6 * * mon;rm", "the day of week field 'mon;rm'"),
        ("@sometimes", "not a cron descriptor"),
        # Out of bounds: KFP would only refuse these when the schedule is created.
        ("61 * * * *", "the minute field '61': '61' is outside 0-59"),
        ("0 24 * * *", "the hour field '24'"),
        ("0 0 0 * *", "the day of month field '0'"),
        ("0 0 1 13 *", "the month field '13'"),
        ("0 0 * * 1-7", "the day of week field '1-7'"),
        ("70 0 6 * * *", "the second field '70'"),
        ("*/0 * * * *", "the step '0' is not a positive number"),
        ("5-1 * * * *", "runs backwards"),
        ("0 6 * * FUN", "'FUN' is not a number or a name"),
        ("0 6 1- * *", "'1-' is not a value or a range"),
    ],
)
def test_a_cron_that_is_not_one_is_refused_with_its_field(written: str, said: str) -> None:
    with pytest.raises(ConfigError, match=said):
        to_kfp_cron(written)


@pytest.fixture(scope="module")
def training() -> CompiledSpec:
    """The committed training spec's inputs, as `compile_spec` reads them."""
    spec = next(yaml.safe_load_all((compiled_dir() / "training.yaml").read_text()))
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    return CompiledSpec("training", "kubeline-training", compiled_dir(), "0" * 64, parameters)


def test_inputs_are_typed_as_the_spec_declares(training: CompiledSpec) -> None:
    given = {"data": "s3://b/raw", "min_improvement": "0.01", "model_name": "m"}
    assert run_parameters(training, given) == {
        "data": "s3://b/raw",
        "min_improvement": 0.01,
        "model_name": "m",
    }


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ({}, "needs data"),
        ({"data": "x", "modle_name": "m"}, "has no input 'modle_name'"),
        ({"data": "x", "min_improvement": "a lot"}, "takes a number, not 'a lot'"),
    ],
)
def test_inputs_the_spec_does_not_take_are_refused(
    training: CompiledSpec, given: dict[str, Any], said: str
) -> None:
    with pytest.raises(ConfigError, match=said):
        run_parameters(training, given)


def test_the_version_is_named_by_the_spec_hash(training: CompiledSpec) -> None:
    assert training.version_name == "sha256-000000000000"


@pytest.mark.parametrize(
    ("seconds", "shown"), [(None, "-"), (4.4, "4s"), (192, "3m12s"), (7500, "2h05m")]
)
def test_durations_are_short(seconds: float | None, shown: str) -> None:
    assert _duration(seconds) == shown


@pytest.mark.parametrize(
    "args",
    [
        ["submit", "--data", "s3://b/raw"],
        ["schedule", "--cron", "0 6 * * *", "--name", "n", "--data", "s3://b/raw"],
        ["runs"],
        ["schedule", "--name", "n", "--delete"],
    ],
)
def test_no_kfp_endpoint_is_one_sentence_naming_the_setting(
    cli: Callable[..., Any], args: list[str]
) -> None:
    done = cli(*args)
    assert done.exit_code == 2 and done.exception is None, done.output
    assert "KUBELINE_KFP_HOST is empty" in done.flat and "port-forward" in done.flat


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["schedule", "--name", "n"], "needs --cron (or --delete)"),
        (["submit", "--param", "data"], "--param 'data' is not KEY=VALUE"),
        (["submit", "--data", "x", "--param", "data=y"], "--data and --param data=... both"),
    ],
)
def test_options_that_cannot_work_are_refused(
    cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, args: list[str], said: str
) -> None:
    monkeypatch.setenv("KUBELINE_KFP_HOST", "http://127.0.0.1:9")  # never reached
    done = cli(*args)
    assert done.exit_code == 2 and said in done.flat, done.output
