"""Submit, schedule and list pipeline runs on a KFP endpoint, with ``kfp.Client``.

The spec is compiled for the settings' platform (image, ConfigMap, Secret) and uploaded as a
pipeline version named by its content hash, so submitting the same spec twice reuses one
version. Traps of kfp 2.17 and its backend handled here: ``run_pipeline`` needs both the
pipeline and the version id; a recurring run cannot be updated, so one is found by name and
replaced; KFP's cron has six fields (``kubeline.runner.cron``); the client's start-up probe is
``kubeline.runner.kfp_api``'s business.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from kubeline.errors import ConfigError, KfpAuthError, KfpError, PipelineError
from kubeline.runner.cron import KfpCron
from kubeline.runner.kfp_api import Kfp, connect, equals_filter, require_host
from kubeline.settings import Settings

TERMINAL_STATES = ("SUCCEEDED", "FAILED", "SKIPPED", "CANCELED")


# -- the spec ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompiledSpec:
    """A compiled pipeline, the name KFP shows it under and the hash that names its version."""

    pipeline: str  # kubeline's name: "training"
    display_name: str  # the spec's pipelineInfo.name: "kubeline-training"
    path: Path
    sha256: str
    parameters: dict[str, dict[str, Any]]  # the root's inputDefinitions.parameters

    @property
    def version_name(self) -> str:
        return f"sha256-{self.sha256[:12]}"


def compile_spec(settings: Settings, pipeline: str, out_dir: Path) -> CompiledSpec:
    """Compile ``pipeline`` for the settings' platform into ``out_dir`` and read what KFP needs."""
    from kubeline.pipelines.cluster import Platform
    from kubeline.runner.compile import PIPELINES, compile_pipelines

    if pipeline not in PIPELINES:
        raise ConfigError(
            f"there is no pipeline named {pipeline!r}",
            hint=f"choose one of: {', '.join(PIPELINES)}",
        )
    path = next(p for p in compile_pipelines(out_dir, Platform.of(settings)) if p.stem == pipeline)
    return read_spec(pipeline, path)


def read_spec(pipeline: str, path: Path) -> CompiledSpec:
    """What KFP needs of the compiled spec at ``path``: its name, inputs and hash."""
    data = path.read_bytes()
    spec = next(yaml.safe_load_all(data))  # a kfp-kubernetes spec has a second document
    parameters = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    return CompiledSpec(
        pipeline,
        spec["pipelineInfo"]["name"],
        path,
        hashlib.sha256(data).hexdigest(),
        parameters,
    )


_CONVERT = {"NUMBER_DOUBLE": float, "NUMBER_INTEGER": int, "STRING": str}
_KIND_NAMES = {
    "NUMBER_DOUBLE": "a number",
    "NUMBER_INTEGER": "a whole number",
    "BOOLEAN": "true or false",
    "STRING": "text",
}


def run_parameters(spec: CompiledSpec, given: dict[str, Any]) -> dict[str, Any]:
    """``given`` checked against the spec's inputs (unknown or missing ones refused), typed.

    Values the user left out are left out: KFP fills each input's default, so a recurring run
    compares equal when the same options are given again.
    """
    unknown = sorted(set(given) - set(spec.parameters))
    if unknown:
        raise ConfigError(
            f"the {spec.pipeline} pipeline has no input {', '.join(map(repr, unknown))}",
            hint=f"its inputs are: {', '.join(sorted(spec.parameters))}",
        )
    missing = sorted(
        name
        for name, definition in spec.parameters.items()
        if not definition.get("isOptional") and name not in given
    )
    if missing:
        options = ", ".join(f"--param {m}=..." if m != "data" else "--data" for m in missing)
        raise ConfigError(
            f"the {spec.pipeline} pipeline needs {', '.join(missing)}; nothing was submitted",
            hint=f"pass {options}",
        )
    typed: dict[str, Any] = {}
    for name, value in given.items():
        kind = spec.parameters[name].get("parameterType", "STRING")
        try:
            typed[name] = _typed(kind, value)
        except ValueError:
            raise ConfigError(
                f"the input {name!r} of the {spec.pipeline} pipeline takes "
                f"{_KIND_NAMES.get(kind, kind)}, not {value!r}"
            ) from None
    return typed


def _typed(kind: str, value: Any) -> Any:
    if kind == "BOOLEAN":
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "false"):
            return str(value).lower() == "true"
        raise ValueError(value)
    convert = _CONVERT.get(kind)
    return convert(value) if convert else value


# -- pipelines and experiments -----------------------------------------------------------------


@dataclass(frozen=True)
class Version:
    pipeline_id: str
    version_id: str
    name: str
    uploaded: bool  # False when a version of this very spec was there already


def ensure_version(kfp: Kfp, spec: CompiledSpec) -> Version:
    """The pipeline (created when missing) and its version for this spec (uploaded when missing).

    The pipeline is created empty rather than by upload: an upload would also add a version
    named after the pipeline, not after the spec's hash, and the same spec would be there twice.
    """
    import kfp_server_api

    client = kfp.client
    with kfp.call(f"finding the pipeline {spec.display_name!r}"):
        found = client.list_pipelines(
            filter=equals_filter("display_name", spec.display_name), namespace=kfp.namespace
        ).pipelines
    if found and len(found) > 1:
        raise KfpError(
            f"{len(found)} pipelines on {kfp.host} are named {spec.display_name!r}",
            hint="delete the extra ones in the KFP UI: kubeline finds its pipeline by name",
        )
    if found:
        pipeline_id = found[0].pipeline_id
    else:
        with kfp.call(f"creating the pipeline {spec.display_name!r}"):
            pipeline_id = client.pipelines.pipeline_service_create_pipeline(
                pipeline=kfp_server_api.V2beta1Pipeline(
                    display_name=spec.display_name,
                    description=f"kubeline's {spec.pipeline} pipeline",
                    namespace=kfp.namespace,
                )
            ).pipeline_id
    with kfp.call(f"finding the version {spec.version_name!r}"):
        versions = client.list_pipeline_versions(
            pipeline_id, filter=equals_filter("display_name", spec.version_name)
        ).pipeline_versions
    if versions:
        return Version(pipeline_id, versions[0].pipeline_version_id, spec.version_name, False)
    with kfp.call(f"uploading the version {spec.version_name!r}"):
        version = client.upload_pipeline_version(
            str(spec.path),
            pipeline_version_name=spec.version_name,
            pipeline_id=pipeline_id,
            description=f"compiled spec sha256:{spec.sha256}",
        )
    return Version(pipeline_id, version.pipeline_version_id, spec.version_name, True)


def _experiment_id(kfp: Kfp, name: str, create: bool) -> str | None:
    if create:
        with kfp.call(f"creating the experiment {name!r}"):
            return str(kfp.client.create_experiment(name, namespace=kfp.namespace).experiment_id)
    with kfp.call(f"finding the experiment {name!r}"):
        found = kfp.client.list_experiments(
            filter=equals_filter("display_name", name), namespace=kfp.namespace
        ).experiments
    return str(found[0].experiment_id) if found else None


def committed_specs(names: list[str] | None = None) -> list[CompiledSpec]:
    """The committed specs (``pipelines/compiled/``) named, or all of them; unknown names refused.

    Read as committed, not compiled again: the chart's upload Job runs in the pipeline image,
    whose wheel carries the specs ``kubeline compile --check`` keeps current.
    """
    from kubeline.runner.compile import compiled_dir

    folder = compiled_dir()
    there = {path.stem: path for path in sorted(folder.glob("*.yaml"))}
    unknown = [name for name in names or [] if name not in there]
    if unknown:
        raise ConfigError(
            f"there is no compiled pipeline named {', '.join(map(repr, unknown))} in {folder}",
            hint=f"choose from: {', '.join(there) or 'none (run `kubeline compile`)'}",
        )
    chosen = list(dict.fromkeys(names)) if names else list(there)
    if not chosen:
        raise ConfigError(
            f"there are no compiled pipelines in {folder}", hint="run `kubeline compile`"
        )
    return [read_spec(name, there[name]) for name in chosen]


def upload(
    settings: Settings, names: list[str] | None = None
) -> list[tuple[CompiledSpec, Version]]:
    """Each committed spec named (all by default) as a pipeline version named by its hash.

    Idempotent: a spec uploaded before is found by its version name and not sent again.
    """
    require_host(settings)
    specs = committed_specs(names)
    kfp = connect(settings)
    return [(spec, ensure_version(kfp, spec)) for spec in specs]


# -- runs --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FailedStep:
    name: str
    message: str


@dataclass
class RunInfo:
    """One run as kubeline reports it."""

    run_id: str
    name: str
    state: str
    created: str  # ISO 8601, UTC
    finished: str | None
    seconds: float | None
    pipeline_version: str
    url: str
    error: str = ""
    failed_steps: list[FailedStep] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    # KFP reports an unfinished run's finished_at as the epoch.
    return None if value.year < 1971 else value.astimezone(UTC).isoformat(timespec="seconds")


def _run_info(kfp: Kfp, run: Any, version_name: str) -> RunInfo:
    created, finished = _iso(run.created_at), _iso(run.finished_at)
    state = str(run.state or "RUNTIME_STATE_UNSPECIFIED")
    seconds = None
    if created and finished and state in TERMINAL_STATES:
        seconds = (
            datetime.fromisoformat(finished) - datetime.fromisoformat(created)
        ).total_seconds()
    error = run.error.message if run.error is not None and run.error.message else ""
    return RunInfo(
        run.run_id,
        run.display_name or "",
        state,
        created or "",
        finished,
        seconds,
        version_name,
        kfp.run_url(run.run_id),
        error,
        _failed_steps(run),
    )


def _failed_steps(run: Any) -> list[FailedStep]:
    """The failed tasks that ran something: the steps, not the DAGs that failed because of them."""
    details = run.run_details.task_details if run.run_details is not None else None
    failed = [t for t in details or [] if t.state == "FAILED"]
    leaves = [t for t in failed if not t.child_tasks] or failed
    return [
        FailedStep(t.display_name or t.task_id or "?", (t.error.message if t.error else "") or "")
        for t in leaves
    ]


@dataclass
class Submitted:
    run: RunInfo
    version: Version
    experiment: str
    kfp: Kfp


def submit(
    settings: Settings, pipeline: str, given: dict[str, Any], *, committed: bool = False
) -> Submitted:
    """Compile, upload the version if new, and start one run in the settings' experiment.

    ``committed``: run the committed spec instead of compiling one, as the chart's upload Job
    uploads it; a monitor in a cluster then starts the very version the Job put there.
    """
    require_host(settings)  # before the compile: a missing endpoint is said at once
    with tempfile.TemporaryDirectory() as tmp:
        spec = (
            committed_specs([pipeline])[0]
            if committed
            else compile_spec(settings, pipeline, Path(tmp))
        )
        params = run_parameters(spec, given)
        kfp = connect(settings)
        version = ensure_version(kfp, spec)
    experiment_id = _experiment_id(kfp, settings.kfp_experiment, create=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    with kfp.call(f"starting a run of {spec.display_name!r}"):
        run = kfp.client.run_pipeline(
            experiment_id=experiment_id,
            job_name=f"{spec.display_name} {stamp}",
            params=params,
            pipeline_id=version.pipeline_id,
            version_id=version.version_id,
        )
    return Submitted(_run_info(kfp, run, version.name), version, settings.kfp_experiment, kfp)


def wait(
    kfp: Kfp, run_id: str, timeout: float, poll_seconds: float, version_name: str = ""
) -> RunInfo:
    """Poll the run until it ends; a run that did not succeed raises PipelineError naming the step.

    Not ``Client.wait_for_run_completion``: it does not count CANCELED as an end and would
    poll a cancelled run until the timeout.
    """
    deadline = time.monotonic() + timeout
    while True:
        with kfp.call(f"reading the run {run_id}"):
            run = kfp.client.get_run(run_id)
        if str(run.state) in TERMINAL_STATES:
            break
        if time.monotonic() > deadline:
            raise KfpError(
                f"the run {run_id} is still {run.state} after {timeout:g} s",
                hint=f"it goes on on the cluster; follow it at {kfp.run_url(run_id)}",
            )
        time.sleep(poll_seconds)
    info = _run_info(kfp, run, version_name)
    if info.state != "SUCCEEDED":
        steps = "; ".join(
            f"step {s.name!r} failed" + (f": {s.message}" if s.message else "")
            for s in info.failed_steps
        )
        raise PipelineError(
            f"the run {info.name!r} {info.state.lower()}"
            + (f": {steps}" if steps else (f": {info.error}" if info.error else "")),
            hint="the step's logs are in the KFP UI, at the run's link above",
        )
    return info


def recent_runs(settings: Settings, limit: int) -> tuple[str, list[RunInfo]]:
    """The experiment's ``limit`` newest runs (none when nothing was submitted there yet)."""
    kfp = connect(settings)
    experiment_id = _experiment_id(kfp, settings.kfp_experiment, create=False)
    if experiment_id is None:
        return settings.kfp_experiment, []
    with kfp.call(f"listing the runs of {settings.kfp_experiment!r}"):
        runs = kfp.client.list_runs(
            experiment_id=experiment_id, page_size=limit, sort_by="created_at desc"
        ).runs
    names: dict[tuple[str, str], str] = {}
    found = []
    for run in runs or []:
        found.append(_run_info(kfp, run, _version_name(kfp, run, names)))
    return settings.kfp_experiment, found


def _version_name(kfp: Kfp, run: Any, cache: dict[tuple[str, str], str]) -> str:
    reference = run.pipeline_version_reference
    if reference is None or not reference.pipeline_version_id:
        return ""
    key = (reference.pipeline_id or "", reference.pipeline_version_id)
    if key not in cache:
        try:
            with kfp.call("reading a pipeline version"):
                cache[key] = kfp.client.get_pipeline_version(*key).display_name or key[1]
        except KfpAuthError:
            raise
        except KfpError:  # a version deleted since: its id says which
            cache[key] = key[1]
    return cache[key]


# -- recurring runs ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Scheduled:
    """What ``schedule`` did: created, replaced, unchanged, deleted or absent (nothing to delete)."""

    action: str
    name: str
    cron: KfpCron | None
    recurring_run_id: str | None
    version: str = ""


def _recurring_by_name(kfp: Kfp, name: str) -> list[Any]:
    with kfp.call(f"finding the recurring run {name!r}"):
        found = kfp.client.list_recurring_runs(
            filter=equals_filter("display_name", name), namespace=kfp.namespace
        ).recurring_runs
    return list(found or [])


def _same(
    existing: Any,
    experiment_id: str | None,
    version: Version,
    cron: KfpCron,
    params: dict[str, Any],
) -> bool:
    """Whether the recurring run already does what was asked.

    Same experiment, version, cron and inputs, and enabled: one disabled by hand in the UI is
    replaced, so that it runs again.
    """
    reference = existing.pipeline_version_reference
    trigger = existing.trigger
    return bool(
        experiment_id is not None
        and existing.experiment_id == experiment_id
        and reference is not None
        and reference.pipeline_id == version.pipeline_id
        and reference.pipeline_version_id == version.version_id
        and trigger is not None
        and trigger.cron_schedule is not None
        and trigger.cron_schedule.cron == cron.kfp
        and ((existing.runtime_config.parameters if existing.runtime_config else None) or {})
        == params
        and existing.mode == "ENABLE"
    )


def schedule(
    settings: Settings, pipeline: str, name: str, cron: KfpCron, given: dict[str, Any]
) -> Scheduled:
    """Create the recurring run ``name``, or replace it when its spec, cron or inputs changed.

    KFP has no update of a recurring run: the one of that name is deleted and created again;
    when nothing changed nothing is sent, so running this twice changes nothing.
    """
    require_host(settings)
    with tempfile.TemporaryDirectory() as tmp:
        spec = compile_spec(settings, pipeline, Path(tmp))
        params = run_parameters(spec, given)
        kfp = connect(settings)
        version = ensure_version(kfp, spec)
    existing = _recurring_by_name(kfp, name)
    experiment_id = _experiment_id(kfp, settings.kfp_experiment, create=False)
    if len(existing) == 1 and _same(existing[0], experiment_id, version, cron, params):
        return Scheduled("unchanged", name, cron, existing[0].recurring_run_id, version.name)
    for old in existing:
        with kfp.call(f"deleting the recurring run {name!r}"):
            kfp.client.delete_recurring_run(old.recurring_run_id)
    if experiment_id is None:
        experiment_id = _experiment_id(kfp, settings.kfp_experiment, create=True)
    with kfp.call(f"creating the recurring run {name!r}"):
        created = kfp.client.create_recurring_run(
            experiment_id=experiment_id,
            job_name=name,
            description=f"kubeline {pipeline}, cron {cron.written!r}",
            cron_expression=cron.kfp,
            max_concurrency=1,
            no_catchup=True,  # a paused schedule resumes with one run, not one per missed slot
            params=params,
            pipeline_id=version.pipeline_id,
            version_id=version.version_id,
        )
    action = "replaced" if existing else "created"
    return Scheduled(action, name, cron, created.recurring_run_id, version.name)


def unschedule(settings: Settings, name: str) -> Scheduled:
    """Delete the recurring run ``name`` (every one of that name); ``absent`` when there is none."""
    kfp = connect(settings)
    existing = _recurring_by_name(kfp, name)
    for old in existing:
        with kfp.call(f"deleting the recurring run {name!r}"):
            kfp.client.delete_recurring_run(old.recurring_run_id)
    ids = ", ".join(r.recurring_run_id for r in existing) or None
    return Scheduled("deleted" if existing else "absent", name, None, ids)
