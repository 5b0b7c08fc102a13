"""Compile the pipelines and run a compiled spec on one machine with ``kfp.local``.

Everything a local run keeps lives under the state folder (``KUBELINE_STATE_DIR``):
``pipeline-root/`` (task outputs of the last ``KUBELINE_KEEP_RUNS`` runs), ``workspace/``,
``logs/<run>.log`` (every task's output), ``reports/<run>.html`` and, with the embedded
default, ``mlflow.db`` and ``mlartifacts/`` (the registry: never pruned). One run at a time
holds the folder's lock.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from kubeline import state_access
from kubeline.errors import PipelineError
from kubeline.lineage import git_revision
from kubeline.settings import Settings

PIPELINES = {"training": "kubeline.pipelines.training:training_pipeline"}
STEP_ORDER = ("ingest", "validate", "features", "train", "evaluate", "register")

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_START = re.compile(r"Executing task '([^']+)'")
_END = re.compile(r"Task '([^']+)' finished with status (\w+)")


def compiled_dir() -> Path:
    from kubeline.pipelines import COMPILED_DIR

    return COMPILED_DIR


def compile_pipelines(out_dir: Path) -> list[Path]:
    """Compile every pipeline to ``out_dir/<name>.yaml``; returns the written paths."""
    import importlib

    from kfp import compiler

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, target in PIPELINES.items():
        module_name, _, attr = target.partition(":")
        func = getattr(importlib.import_module(module_name), attr)
        path = out_dir / f"{name}.yaml"
        compiler.Compiler().compile(func, str(path))
        written.append(path)
    return written


def compile_in_child(out_dir: Path, image: str | None = None) -> list[Path]:
    """Compile the pipelines in a child process with default settings (and ``image``, if given).

    The components read the image setting when first imported, so a spec for another image
    (or the committed defaults, whatever this process's KUBELINE_* say) needs a fresh process.
    """
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBELINE_")}
    env["KUBELINE_SETTINGS_FILE"] = ""  # no settings file: the defaults only
    if image:
        env["KUBELINE_IMAGE"] = image
    done = subprocess.run(
        [sys.executable, "-m", "kubeline", "compile", "--out", str(out_dir)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise PipelineError(f"compiling the pipelines failed:\n{done.stderr[-2000:]}")
    return sorted(out_dir.glob("*.yaml"))


def stale_specs(committed: Path) -> list[str]:
    """Names of committed specs that differ from what the code compiles to with default settings.

    A developer's KUBELINE_IMAGE must not make the committed (default) specs "stale".
    """
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        fresh = compile_in_child(Path(tmp))
        return [
            p.name
            for p in fresh
            if not (committed / p.name).exists()
            or (committed / p.name).read_bytes() != p.read_bytes()
        ]


@dataclass
class StepEvent:
    step: str
    status: str  # "running" | "SUCCESS" | "FAILURE"
    seconds: float = 0.0


@dataclass
class RunResult:
    run_name: str
    outputs: dict[str, Any]
    log_path: Path
    outputs_dir: Path | None
    seconds: float
    steps: list[StepEvent] = field(default_factory=list)
    report_path: Path | None = None

    def artifact(self, step: str, name: str) -> Path | None:
        """The local path of a task's output artifact in this run, if it exists."""
        if self.outputs_dir is None:
            return None
        found = sorted(self.outputs_dir.glob(f"{step}*/{name}"))
        return found[0] if found else None


class _StepTee(io.TextIOBase):
    """Copies kfp.local's output to the run log and turns task start/end lines into events."""

    def __init__(self, log: TextIO, on_event: Callable[[StepEvent], None] | None) -> None:
        self.log = log
        self.on_event = on_event
        self.events: list[StepEvent] = []
        self.last_lines: list[str] = []
        self._started: dict[str, float] = {}
        self._buffer = ""

    def write(self, text: str) -> int:
        self.log.write(_ANSI.sub("", text))
        self._buffer += text
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            self._line(_ANSI.sub("", line))
        return len(text)

    def flush(self) -> None:
        self.log.flush()

    def _line(self, line: str) -> None:
        self.last_lines = [*self.last_lines[-199:], line]
        if m := _START.search(line):
            self._started[m.group(1)] = time.monotonic()
            self._emit(StepEvent(m.group(1), "running"))
        elif m := _END.search(line):
            began = self._started.get(m.group(1), time.monotonic())
            self._emit(StepEvent(m.group(1), m.group(2), time.monotonic() - began))

    def _emit(self, event: StepEvent) -> None:
        if event.status != "running":
            self.events.append(event)
        if self.on_event:
            self.on_event(event)


def _spec_for_image(image: str, state: Path, pipeline: str) -> Path:
    """The pipeline compiled for a locally built image (kfp pulls short names: use localhost/)."""
    import docker

    if "/" not in image.split(":")[0]:
        image = f"localhost/{image}"
    try:
        docker.from_env().images.get(image)
    except Exception as exc:
        raise PipelineError(
            f"the image {image} is not in the local container engine ({exc})",
            hint="build it with `kubeline images build`, and set KUBELINE_IMAGE to its name",
        ) from None
    folder = state / "specs" / image.replace("/", "_").replace(":", "_")
    folder.mkdir(parents=True, exist_ok=True)
    compile_in_child(folder, image)
    return folder / f"{pipeline}.yaml"


def run_container(
    client: Any, image: str, command: list[str], volumes: dict[str, Any], **run_args: Any
) -> int:
    """Run one task container and return its real exit code.

    kfp.local 2.17 starts task containers with ``auto_remove=True`` and, when a container that
    failed fast is already gone at ``wait()``, assumes exit code 0: a crashed step reported as
    a success. Here the container is kept until its code is read, then removed.
    """
    print(f"Found image {image!r}\n")
    container = client.containers.run(
        image=image,
        command=command,
        detach=True,
        stdout=True,
        stderr=True,
        volumes=volumes,
        auto_remove=False,
        **run_args,
    )
    try:
        for line in container.logs(stream=True):
            print(line.decode(), end="")
        return int(container.wait()["StatusCode"])
    finally:
        container.remove(force=True)


def _use_exact_exit_codes() -> None:
    """Make kfp.local's DockerRunner launch containers with ``run_container`` (see there)."""
    from kfp.local import docker_task_handler

    # kfp looks the launcher up at call time; the image was checked before (no pulls here).
    docker_task_handler.run_docker_container = run_container


def _docker_runner(settings: Settings, state: Path, data: str) -> Any:
    """kfp.local's DockerRunner, locked down: read-only root, tmpfs /tmp, no capabilities.

    Host networking lets tasks reach servers on 127.0.0.1; the state folder (and a local input
    folder, read-only) are mounted at the same paths, so outputs, the embedded MLflow store and
    the data resolve inside the container exactly as outside. Tasks run as the invoking user so
    the files they leave belong to whoever ran kubeline, unless ``container_user`` names another
    (the image's own 10001, as on a cluster).
    """
    from docker.types import Mount
    from kfp import local

    from kubeline.storage import is_s3

    mounts = [Mount(target=str(state), source=str(state), type="bind")]
    if data and not is_s3(data):
        folder = Path(data) if Path(data).is_dir() else Path(data).parent
        mounts.append(Mount(target=str(folder), source=str(folder), type="bind", read_only=True))
    env = {k: v for k, v in os.environ.items() if k.startswith(("KUBELINE_", "MLFLOW_", "AWS_"))}
    env.update(_task_environment(settings))
    env.update(HOME="/tmp", MPLCONFIGDIR="/tmp/matplotlib")
    return local.DockerRunner(
        network_mode="host",
        environment=env,
        mounts=mounts,
        user=settings.container_user or f"{os.getuid()}:{os.getgid()}",
        read_only=True,
        tmpfs={"/tmp": "rw,size=1g"},
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
    )


@contextlib.contextmanager
def _exclusive(state: Path) -> Iterator[None]:
    """Hold the state folder's lock for a run: two runs would mix their outputs and registry."""
    import fcntl

    with (state / ".lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PipelineError(
                f"another kubeline run is using the state folder {state}",
                hint="wait for it, or give this run its own KUBELINE_STATE_DIR",
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _prune(root: Path, keep: int) -> None:
    """Remove task outputs of all but the newest ``keep`` runs (the registry keeps its copies)."""
    runs = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    for old in runs[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Export settings for the tasks (subprocess tasks inherit this process's environment)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _task_environment(settings: Settings) -> dict[str, str]:
    env = {
        "KUBELINE_STATE_DIR": str(settings.state_path),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "PYTHONUNBUFFERED": "1",
    }
    if settings.mlflow_tracking_uri is None:
        env["KUBELINE_MLFLOW_TRACKING_URI"] = settings.tracking_uri
    return env


def run_local(
    arguments: dict[str, Any],
    settings: Settings,
    *,
    pipeline: str = "training",
    runner: str | None = None,
    on_event: Callable[[StepEvent], None] | None = None,
) -> RunResult:
    """Run a compiled pipeline with kfp.local and return its outputs; raise on a failed task."""
    from kfp import components, local

    kind = runner or settings.runner
    state = settings.state_path
    root = state / "pipeline-root"
    workspace = state / "workspace"
    logs = state / "logs"
    db, artifacts = settings.embedded_store
    state_access.prepare(
        state,
        (root, workspace),
        (db, artifacts, *artifacts.glob("*")) if settings.mlflow_tracking_uri is None else (),
        state_access.TaskUser.of_run(kind, settings.container_user),
    )
    logs.mkdir(exist_ok=True)  # written by kubeline itself, not by the tasks
    run_name = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    log_path = logs / f"{pipeline}-{run_name}.log"

    if kind == "docker":
        spec = _spec_for_image(settings.image, state, pipeline)
        local_runner: Any = _docker_runner(settings, state, arguments.get("data", ""))
        _use_exact_exit_codes()
    elif kind == "subprocess":
        spec = compiled_dir() / f"{pipeline}.yaml"
        if not spec.exists():
            raise PipelineError(f"no compiled pipeline at {spec}", hint="run `kubeline compile`")
        local_runner = local.SubprocessRunner(use_venv=False)
    else:
        raise PipelineError(f"unknown runner {kind!r}", hint="use subprocess or docker")
    local.init(
        runner=local_runner,
        pipeline_root=str(root),
        workspace_root=str(workspace),
        raise_on_error=True,
    )
    component = components.load_component_from_file(str(spec))
    with _exclusive(state):
        result = _run_locked(
            component, arguments, settings, pipeline, run_name, root, log_path, on_event
        )
        _prune(root, settings.keep_runs)
    return result


def _run_locked(
    component: Any,
    arguments: dict[str, Any],
    settings: Settings,
    pipeline: str,
    run_name: str,
    root: Path,
    log_path: Path,
    on_event: Callable[[StepEvent], None] | None,
) -> RunResult:
    import warnings

    before = set(root.iterdir())
    started = time.monotonic()
    with log_path.open("w") as log:
        tee = _StepTee(log, on_event)
        try:
            with (
                _environment(_task_environment(settings)),
                contextlib.redirect_stdout(tee),
                warnings.catch_warnings(),
            ):
                # The component image is a kubeline image, not a "python" one: kfp warns, needlessly.
                warnings.simplefilter("ignore", RuntimeWarning)
                # CPU and memory requests are for the cluster; kfp.local says it ignores them.
                warnings.filterwarnings("ignore", "Task .* have no effect in the current local")
                task = component(**{k: v for k, v in arguments.items() if v is not None})
        except RuntimeError as exc:
            failed = [e.step for e in tee.events if e.status != "SUCCESS"]
            step = failed[0] if failed else "?"
            reason = _failure_reason(tee.last_lines)
            raise PipelineError(
                f"pipeline {pipeline!r} failed at step {step!r}: {reason}",
                hint=f"the full log is {log_path}",
                exit_code=_failure_exit_code(tee.last_lines),
            ) from exc
    new_dirs = sorted(set(root.iterdir()) - before)
    result = RunResult(
        run_name=run_name,
        outputs=dict(task.outputs),
        log_path=log_path,
        outputs_dir=new_dirs[-1] if new_dirs else None,
        seconds=time.monotonic() - started,
        steps=tee.events,
    )
    report = result.artifact("evaluate", "report")
    if report is not None:
        # KFP names the file after the output; keep a copy a browser opens as a page.
        result.report_path = root.parent / "reports" / f"{log_path.stem}.html"
        result.report_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(report, result.report_path)
    return result


def _failure_exit_code(lines: list[str]) -> int:
    """The exit code of the kubeline error a failed task printed (3 for bad data), else 1."""
    from kubeline.steps.base import EXIT_CODE_PREFIX

    for line in reversed(lines):
        code = line.partition(EXIT_CODE_PREFIX)[2].strip()
        if code.isdigit():
            return int(code)
    return 1


def _failure_reason(lines: list[str]) -> str:
    """The kubeline error a failed task printed (every line of it), else its last error line."""
    from kubeline.steps.base import ERROR_PREFIX

    found = [line.split(ERROR_PREFIX, 1)[1].strip() for line in lines if ERROR_PREFIX in line]
    if found:
        return "\n".join(found)
    for line in reversed(lines):
        text = line.strip()
        if re.match(r"^[\w.]+(Error|Exception)\b", text):
            return text
    return "see the log"


DEMO_TICKERS, DEMO_YEARS, DEMO_SEED = 20, 5.0, 7


def demo_data(settings: Settings) -> tuple[Path, bool]:
    """The demo data set in the state folder (20 tickers x 5 years), made on first use.

    Returns the folder and whether it was generated now.
    """
    from kubeline.data.generate import generate, write_dataset

    folder = settings.state_path / "data" / f"demo-{DEMO_TICKERS}x{DEMO_YEARS:g}y-seed{DEMO_SEED}"
    if folder.exists() and any(folder.iterdir()):
        return folder, False
    frame = generate(tickers=DEMO_TICKERS, years=DEMO_YEARS, seed=DEMO_SEED)
    write_dataset(frame, folder, "yahoo")
    return folder, True


def run_training(
    settings: Settings,
    *,
    data: str,
    config_text: str = "",
    model_name: str = "",
    min_improvement: float | None = None,
    runner: str | None = None,
    on_event: Callable[[StepEvent], None] | None = None,
) -> RunResult:
    """Run the training pipeline locally on ``data`` with the given run config text."""
    from kubeline.registry import check_reachable
    from kubeline.storage import fingerprint, is_s3

    # Before any step runs: a server that is down, or data that is not there, fails now.
    check_reachable(settings)
    location = data if is_s3(data) else str(Path(data).expanduser().resolve())
    return run_local(
        {
            "data": location,
            "data_version": fingerprint(location, settings),
            "config": config_text,
            "model_name": model_name,
            "min_improvement": min_improvement,
            "git_revision": git_revision(),
        },
        settings,
        runner=runner,
        on_event=on_event,
    )
