"""One id to the whole chain: pipeline run -> MLflow run -> data -> model version and its alias
history -> the days it served -> the checks that judged it -> the retrainings they started.

``resolve`` takes any id a person has at hand: a model version (``3``, or ``name:3``), an MLflow
run id, a KFP (or local) pipeline run id, or a monitoring check id. ``chain`` then reads each link
from where kubeline wrote it: the registry's tags, the inference log, the checks' folders and
their ``retrain.json``. Nothing here is stored twice; a link that was never written is shown as
missing, not guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kubeline.errors import ConfigError
from kubeline.lineage import DATA_HASH, TRIGGERED_BY, tag

if TYPE_CHECKING:
    from kubeline.monitor.loop import RetrainRecord
    from kubeline.monitor.summary import CheckSummary
    from kubeline.settings import Settings


@dataclass(frozen=True)
class ServedDay:
    """One UTC day of the inference log in which the version answered requests."""

    day: str
    rows: int
    first: str
    last: str
    endpoints: list[str]


@dataclass
class Chain:
    model_name: str
    version: str
    aliases: list[str]
    gate: str
    gate_reason: str
    mlflow_run_id: str | None
    pipeline_run_id: str | None
    git_revision: str | None
    data: str | None
    data_hash: str | None
    triggered_by: str | None  # the check whose drift/decay started the training run
    promoted_at: str | None
    rolled_back_at: str | None
    champion_history: list[str]  # the versions that were champion, oldest first
    served: list[ServedDay] = field(default_factory=list)
    checks: list[CheckSummary] = field(default_factory=list)
    retrains: dict[str, RetrainRecord] = field(default_factory=dict)  # by check id
    # Versions whose training runs a check of this version started, by check id.
    successors: dict[str, str] = field(default_factory=dict)


def resolve(settings: Settings, text: str) -> tuple[str, str]:
    """The (model name, version) an id names; a typed error listing what was tried."""
    from kubeline import registry
    from kubeline.monitor.history import list_checks
    from kubeline.steps.monitor import checks_location

    client = registry.connect(settings, create=False)
    name, sep, number = text.rpartition(":")
    if (sep and number.isdigit()) or text.isdigit():
        name = name if sep else settings.model_name
        number = number if sep else text
        if registry.version_by_number(client, name, number) is not None:
            return name, number
        if sep:
            raise ConfigError(
                f"model {name!r} has no version {number}", hint="`kubeline models` lists them"
            )
        # A bare number that is no version may be a pipeline run's id (kfp.local's are digits).
    for mv in registry.all_versions(client):
        tags = mv.tags or {}
        if text in (mv.run_id, tags.get(tag("pipeline_run_id"))):
            return mv.name, str(mv.version)
    for check in list_checks(checks_location(settings), settings):
        if check.check_id == text:
            return check.model_name, check.model_version
    raise ConfigError(
        f"{text!r} is no model version (of {settings.model_name!r} for a bare number), MLflow "
        "run, pipeline run or check kubeline knows",
        hint="give a version (3 or NAME:3), an MLflow run id, a pipeline run id (`kubeline "
        "runs`) or a check id (`kubeline monitor history`)",
    )


def chain(settings: Settings, name: str, version: str) -> Chain:
    """Every link kubeline recorded about version ``version`` of ``name``."""
    from kubeline import registry
    from kubeline.monitor import loop
    from kubeline.monitor.history import list_checks
    from kubeline.registry import Tag
    from kubeline.steps.monitor import checks_location

    client = registry.connect(settings, create=False)
    every = registry.versions(client, name)
    info = next(v for v in every if v.version == version)
    tags = info.tags
    location = checks_location(settings)
    checks = [
        c
        for c in list_checks(location, settings)
        if c.model_name == name and c.model_version == version
    ]
    records = loop.records(location, settings)
    retrains = {c.check_id: records[c.check_id] for c in checks if c.check_id in records}
    successors = {
        str(v.tags.get(tag(TRIGGERED_BY))): v.version
        for v in every
        if v.tags.get(tag(TRIGGERED_BY)) in retrains
    }
    return Chain(
        model_name=name,
        version=version,
        aliases=info.aliases,
        gate=info.gate,
        gate_reason=tags.get(Tag.GATE_REASON) or tags.get(Tag.PROMOTION_REASON, ""),
        mlflow_run_id=info.run_id,
        pipeline_run_id=tags.get(tag("pipeline_run_id")),
        git_revision=tags.get(tag("git_revision")),
        data=tags.get(Tag.DATA),
        data_hash=tags.get(tag(DATA_HASH)),
        triggered_by=tags.get(tag(TRIGGERED_BY)),
        promoted_at=tags.get(Tag.PROMOTED_AT),
        rolled_back_at=tags.get(Tag.ROLLED_BACK_AT),
        champion_history=registry.champion_history(client, name),
        served=served_days(settings, name, version),
        checks=checks,
        retrains=retrains,
        successors=successors,
    )


def served_days(settings: Settings, name: str, version: str) -> list[ServedDay]:
    """The days of the inference log in which ``version`` answered, oldest first."""
    from kubeline.serving.inference_log import log_location, read_log

    frame = read_log(log_location(settings), settings, model_name=name)
    if frame.empty:
        return []
    mine = frame[frame["model_version"].astype(str) == version]
    out = []
    for day, rows in mine.groupby(mine["timestamp"].dt.strftime("%Y-%m-%d"), sort=True):
        out.append(
            ServedDay(
                day=str(day),
                rows=len(rows),
                first=rows["timestamp"].min().strftime("%H:%M:%S"),
                last=rows["timestamp"].max().strftime("%H:%M:%S"),
                endpoints=sorted(set(rows["endpoint"].astype(str))),
            )
        )
    return out
