"""Run a compiled spec on this machine with ``kfp.local``: as subprocesses or in containers.

Everything a local run keeps lives under the state folder (``KUBELINE_STATE_DIR``):
``pipeline-root/`` (task outputs of the last ``KUBELINE_KEEP_RUNS`` runs), ``workspace/``,
``logs/<run>.log`` (every task's output), ``reports/<run>.html``, ``specs/`` (the pipeline
compiled for a local image) and, with the embedded default, ``mlflow.db`` and ``mlartifacts/``
(the registry: never pruned). One run at a time holds the folder's lock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeline import state_access
from kubeline.errors import PipelineError
from kubeline.lineage import git_revision
from kubeline.runner.events import StepEvent, StepTee, failure_exit_code, failure_reason
from kubeline.runner.kfp_logging import use_shared_task_logging
from kubeline.settings import Settings

OnEvent = Callable[[StepEvent], None]


@dataclass
class RunResult:
    run_name: str
    outputs: dict[str, Any]
    log_path: Path
    outputs_dir: Path | None
    seconds: float
    steps: list[StepEvent] = field(default_factory=list)
    report_path: Path | None = None
    reports: list[Path] = field(default_factory=list)  # per-ticker runs: one per model

    def artifact(self, step: str, name: str) -> Path | None:
        """The local path of a task's output artifact in this run, if it exists."""
        if self.outputs_dir is None:
            return None
        found = sorted(self.outputs_dir.glob(f"{step}*/{name}"))
        return found[0] if found else None


def _spec_for_image(settings: Settings, state: Path, pipeline: str) -> Path:
    """The pipeline compiled for the settings' image, which must be in the local engine."""
    import docker

    from kubeline.images import local_reference
    from kubeline.pipelines.cluster import Platform
    from kubeline.runner.compile import compile_pipelines

    image = local_reference(settings.image)
    try:
        docker.from_env().images.get(image)
    except Exception as exc:
        raise PipelineError(
            f"the image {image} is not in the local container engine ({exc})",
            hint=f"build it with `kubeline images build`, which tags {settings.image} "
            "(the KUBELINE_IMAGE setting) by default",
        ) from None
    folder = state / "specs" / image.replace("/", "_").replace(":", "_")
    platform = dataclasses.replace(Platform.of(settings), image=image)
    compile_pipelines(folder, platform)
    return folder / f"{pipeline}.yaml"


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
        # kfp starts a task as `python3 -m kfp.dsl.executor_main`, and `-m` puts the working
        # directory first on sys.path: run from a folder holding a `kubeline/` folder (a clone's
        # parent), a step would import that instead of the installed package.
        "PYTHONSAFEPATH": "1",
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
    on_event: OnEvent | None = None,
) -> RunResult:
    """Run a pipeline with kfp.local and return its outputs; raise on a failed task.

    The subprocess runner runs the committed spec; the docker runner one compiled for the
    ``KUBELINE_IMAGE`` image, which must be in the local engine.
    """
    kind = runner or settings.runner
    if kind not in ("subprocess", "docker"):
        raise PipelineError(f"unknown runner {kind!r}", hint="use subprocess or docker")
    # The state folder first: a run the tasks could not write fails before anything is built.
    _prepare_state(settings, kind)
    if kind == "docker":
        spec = _spec_for_image(settings, settings.state_path, pipeline)
    else:
        from kubeline.runner.compile import compiled_dir

        spec = compiled_dir() / f"{pipeline}.yaml"
        if not spec.exists():
            raise PipelineError(f"no compiled pipeline at {spec}", hint="run `kubeline compile`")
    return _execute(spec, arguments, settings, name=pipeline, runner=kind, on_event=on_event)


def run_spec(
    spec: Path,
    arguments: dict[str, Any],
    settings: Settings,
    *,
    name: str,
    runner: str,
    on_event: OnEvent | None = None,
) -> RunResult:
    """Run one compiled spec with kfp.local's ``runner`` (subprocess or docker) in the state folder."""
    _prepare_state(settings, runner)
    return _execute(spec, arguments, settings, name=name, runner=runner, on_event=on_event)


def _prepare_state(settings: Settings, runner: str) -> None:
    """The state folder's run folders, checked writable by the tasks' user before any step."""
    state = settings.state_path
    db, artifacts = settings.embedded_store
    state_access.prepare(
        state,
        (state / "pipeline-root", state / "workspace"),
        (db, artifacts, *artifacts.glob("*")) if settings.mlflow_tracking_uri is None else (),
        state_access.TaskUser.of_run(runner, settings.container_user),
    )
    (state / "logs").mkdir(exist_ok=True)  # written by kubeline itself, not by the tasks


def _execute(
    spec: Path,
    arguments: dict[str, Any],
    settings: Settings,
    *,
    name: str,
    runner: str,
    on_event: OnEvent | None,
) -> RunResult:
    from kfp import components, local

    state = settings.state_path
    root = state / "pipeline-root"
    workspace = state / "workspace"
    logs = state / "logs"
    run_name = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    log_path = logs / f"{name}-{run_name}.log"

    if runner == "docker":
        from kubeline.runner.docker_launcher import use_exact_exit_codes

        local_runner: Any = _docker_runner(settings, state, arguments.get("data", ""))
        use_exact_exit_codes()
    else:
        local_runner = local.SubprocessRunner(use_venv=False)
    use_shared_task_logging()  # the tune fan-out's tasks log concurrently
    local.init(
        runner=local_runner,
        pipeline_root=str(root),
        workspace_root=str(workspace),
        raise_on_error=True,
    )
    component = components.load_component_from_file(str(spec))
    with _exclusive(state):
        result = _run_locked(
            component, arguments, settings, name, run_name, root, log_path, on_event
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
    on_event: OnEvent | None,
) -> RunResult:
    import warnings

    before = set(root.iterdir())
    started = time.monotonic()
    with log_path.open("w") as log:
        tee = StepTee(log, on_event)
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
            raise PipelineError(
                f"pipeline {pipeline!r} failed at step {tee.failed_step()!r}: "
                f"{failure_reason(tee.reason_lines)}",
                hint=f"the full log is {log_path}",
                exit_code=failure_exit_code(tee.reason_lines),
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
    names = result.outputs.get("model_names")
    if result.outputs_dir is not None and isinstance(names, list):
        # kfp.local's iteration folders, in iteration order: the order of the collected names.
        found = sorted(
            result.outputs_dir.glob("for-loop-*-iteration-*/evaluate/report"),
            key=lambda path: int(path.parent.parent.name.rsplit("-", 1)[1]),
        )
        for name, found_report in zip(names, found, strict=False):
            copy = root.parent / "reports" / f"{log_path.stem}-{name}.html"
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(found_report, copy)
            result.reports.append(copy)
    return result


def run_training(
    settings: Settings,
    *,
    data: str,
    config_text: str = "",
    model_name: str = "",
    min_improvement: float | None = None,
    runner: str | None = None,
    on_event: OnEvent | None = None,
    triggered_by: str = "",
) -> RunResult:
    """Run the training pipeline locally on ``data`` with the given run config text.

    ``triggered_by``: the monitoring check that started it (kubeline.monitor.loop), if any.
    """
    from kubeline.registry import prepare_store
    from kubeline.storage import fingerprint, is_s3

    # Before any step runs: a server that is down, or data that is not there, fails now.
    db, _ = settings.embedded_store
    fresh = settings.mlflow_tracking_uri is None and not db.exists()
    prepare_store(settings)
    if fresh and db.exists():
        state_access.share_like_state(db, settings.state_path)
    location = data if is_s3(data) else str(Path(data).expanduser().resolve())
    return run_local(
        {
            "data": location,
            "data_version": fingerprint(location, settings),
            "config": config_text,
            "model_name": model_name,
            "min_improvement": min_improvement,
            "git_revision": git_revision(),
            "triggered_by": triggered_by,
        },
        settings,
        pipeline=training_pipeline_for(config_text),
        runner=runner,
        on_event=on_event,
    )


def training_pipeline_for(config_text: str) -> str:
    """The training pipeline a run config asks for: one model, or one per ticker."""
    from kubeline.steps.base import run_config

    return "training_per_ticker" if run_config(config_text).data.per_ticker else "training"
