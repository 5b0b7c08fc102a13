"""The runner against real kfp.local runs: step events, failure reasons, the working directory."""

import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest
from kfp import compiler, dsl

from kubeline.errors import PipelineError
from kubeline.runner import StepEvent, run_spec
from kubeline.runner.events import failure_reason
from kubeline.runner.local import _exclusive, _prune
from kubeline.settings import get_settings


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def hello(word: str) -> str:
    import kubeline

    print(f"kubeline from {kubeline.__file__}")
    return word


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def broken(word: str) -> str:
    from kubeline.errors import DataError
    from kubeline.steps.base import executor

    @executor
    def step() -> str:
        raise DataError(f"{word}.csv, row 4, column 'close': price must be positive")

    return step()


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def items(n: int) -> list:
    return list(range(n))


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def nap(i: int) -> int:
    import time

    time.sleep(0.5)  # so the three overlap
    return i


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def total(values: list) -> int:
    return int(sum(values))  # collected numbers arrive as floats (JSON)


@dsl.pipeline(name="fan-out")
def fan_out(n: int = 3) -> int:
    listed = items(n=n)
    with dsl.ParallelFor(listed.output, parallelism=3) as i:
        napped = nap(i=i)
    return total(values=dsl.Collected(napped.output)).output


@dsl.pipeline(name="one-step")
def one_step(word: str = "x") -> str:
    return hello(word=word).output


@dsl.pipeline(name="one-failing-step")
def one_failing_step(word: str = "x") -> str:
    return broken(word=word).output


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("specs")
    found = {}
    for name, pipeline in (("ok", one_step), ("failing", one_failing_step), ("fan", fan_out)):
        found[name] = out / f"{name}.yaml"
        compiler.Compiler().compile(pipeline, str(found[name]))
    return found


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding a `kubeline/` folder that is not the package (a clone's parent)."""
    cwd = tmp_path / "cwd"
    (cwd / "kubeline").mkdir(parents=True)
    (cwd / "kubeline" / "__init__.py").write_text(
        "raise ImportError('the kubeline folder in the working directory was imported')\n"
    )
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("KUBELINE_STATE_DIR", str(tmp_path / "state"))
    get_settings.cache_clear()
    return cwd


def test_a_real_kfp_local_run_gives_one_event_per_step_start_and_end(
    specs: dict[str, Path], elsewhere: Path
) -> None:
    events: list[StepEvent] = []
    result = run_spec(
        specs["ok"], {"word": "hi"}, get_settings(), name="one-step", runner="subprocess",
        on_event=events.append,
    )  # fmt: skip
    assert [(e.step, e.status) for e in events] == [("hello", "running"), ("hello", "SUCCESS")]
    assert [(e.step, e.status) for e in result.steps] == [("hello", "SUCCESS")]
    assert result.steps[0].seconds > 0
    assert result.outputs == {"Output": "hi"}
    log = result.log_path.read_text()
    assert "\x1b[" not in log  # kfp colors its status; the log is plain text
    # The step imported the installed package, not the `kubeline/` folder it was started next to.
    import kubeline

    assert f"kubeline from {kubeline.__file__}" in log
    assert str(elsewhere) not in log


def test_every_task_of_a_real_fan_out_is_seen_to_start_and_end(
    specs: dict[str, Path], elsewhere: Path
) -> None:
    # kfp.local's own task logging drops a concurrent task's end line (kubeline/runner/
    # kfp_logging.py): the CLI's tune line would say "running" after the run. It restores the
    # root logger's level between tasks: WARNING, as in a plain process (pytest lowers it).
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.WARNING)
    events: list[StepEvent] = []
    try:
        result = run_spec(
            specs["fan"], {"n": 3}, get_settings(), name="fan-out", runner="subprocess",
            on_event=events.append,
        )  # fmt: skip
    finally:
        root.setLevel(level)
    assert result.outputs == {"Output": 3}
    naps = [e.status for e in events if e.step == "nap"]
    assert naps.count("running") == 3 and naps.count("SUCCESS") == 3
    assert [e.step for e in result.steps] == ["items", "nap", "nap", "nap", "total"]
    assert result.log_path.read_text().count("Task 'nap' finished with status SUCCESS") == 3


def test_a_real_failing_step_is_named_with_the_error_it_printed(
    specs: dict[str, Path], elsewhere: Path
) -> None:
    events: list[StepEvent] = []
    with pytest.raises(PipelineError) as err:
        run_spec(
            specs["failing"], {"word": "AAA"}, get_settings(), name="one-failing-step",
            runner="subprocess", on_event=events.append,
        )  # fmt: skip
    assert str(err.value).startswith(
        "pipeline 'one-failing-step' failed at step 'broken': "
        "AAA.csv, row 4, column 'close': price must be positive"
    )
    assert [(e.step, e.status) for e in events] == [("broken", "running"), ("broken", "FAILURE")]


def test_failure_reason_falls_back_to_the_last_exception_line() -> None:
    assert failure_reason(["x", "ValueError: boom", "  "]) == "ValueError: boom"
    assert failure_reason(["nothing useful"]) == "see the log"


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


def test_the_container_launcher_fix_is_on_while_kfp_removes_containers_before_reading_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kfp.local import docker_task_handler

    from kubeline.runner import docker_launcher

    monkeypatch.setattr(
        docker_task_handler, "run_docker_container", docker_task_handler.run_docker_container
    )
    # kfp 2.17.0 (kubeflow/pipelines#13332). When this fails, the installed kfp reads exit codes
    # itself: delete kubeline/runner/docker_launcher.py and this test.
    assert docker_launcher.kfp_loses_exit_codes()
    assert docker_launcher.use_exact_exit_codes()
    assert docker_task_handler.run_docker_container is docker_launcher.run_container


def fixed_upstream(client: Any, image: str, command: list[str], volumes: dict, **args: Any) -> int:
    """kfp's launcher as the upstream fix makes it: the container is kept until it is read."""
    container = client.containers.run(image=image, command=command, detach=True, **args)
    try:
        return int(container.wait()["StatusCode"])
    finally:
        container.remove(force=True)


def test_the_container_launcher_fix_switches_itself_off_once_kfp_reads_exit_codes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kfp.local import docker_task_handler

    from kubeline.runner import docker_launcher

    monkeypatch.setattr(docker_task_handler, "run_docker_container", fixed_upstream)
    assert not docker_launcher.kfp_loses_exit_codes()
    assert not docker_launcher.use_exact_exit_codes()
    assert docker_task_handler.run_docker_container is fixed_upstream


def test_a_failed_tasks_error_is_found_however_much_its_siblings_logged_after() -> None:
    import io

    from kubeline.runner.events import StepTee, failure_exit_code

    tee = StepTee(io.StringIO(), None)
    tee.write("kubeline error: the run config asks for tickers ['NOPE'] that the data lacks\n")
    tee.write("kubeline exit code: 3\n")
    for i in range(500):  # a fan-out's other tickers kept going
        tee.write(f"evaluate: line {i}\n")
    reason = failure_reason(tee.reason_lines)
    assert reason == "the run config asks for tickers ['NOPE'] that the data lacks"
    assert failure_exit_code(tee.reason_lines) == 3
