"""The loop back: what a breaching check does about retraining, and what an approval does.

After a check is written, ``act`` asks the guards (``kubeline.monitor.retrain``): enough
consecutive breaches of the same model and no retraining within the cooldown. Then it claims the
check's window, so that of two racing checks exactly one goes on, and either records a pending
recommendation (``retrain: manual``) or starts the training pipeline (``retrain: auto``). Each
outcome, held and duplicate included, is written beside the check as ``retrain.json``: the check's
record says what it did and why, and the cooldown is read from those records.

A retraining trains on the newest data at ``KUBELINE_RETRAIN_DATA``, else where the judged version
was trained from (its ``kubeline.data`` tag), with the run config the monitor ran with. It runs
through KFP when ``KUBELINE_KFP_HOST`` is set, else through the local runner, and passes the
check's id as the pipeline's ``triggered_by``: register tags the new MLflow run and version with
it. The new version still has to pass the training gate to become champion.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubeline.errors import ConfigError, KubelineError
from kubeline.monitor.retrain import BREACHES, claim, claim_window, may_retrain, window_key

if TYPE_CHECKING:
    from kubeline.monitor.summary import CheckSummary
    from kubeline.runconfig import MonitorConfig
    from kubeline.settings import Settings

RETRAIN_FILE = "retrain.json"


class Status:
    HELD = "held"  # a breach the guards did not act on (too few in a row, or the cooldown)
    DUPLICATE = "duplicate"  # another check claimed the same window first
    PENDING = "pending"  # manual: waiting for `kubeline retrain --approve`
    STARTED = "started"  # a training run was started (and, locally, has finished)
    FAILED = "failed"  # starting it failed; the window stays claimed


@dataclass
class RetrainRecord:
    """What one check did about retraining: ``retrain.json`` in the check's folder."""

    check_id: str
    model_name: str
    mode: str  # manual | auto
    status: str
    reason: str
    window: str
    recorded_at: str
    data: str | None = None
    approved_at: str | None = None
    started_at: str | None = None
    run_id: str | None = None  # the pipeline run: a KFP run id, or the local run's name
    run_url: str | None = None
    mlflow_run_id: str | None = None  # local runs finish: what they registered
    model_version: str | None = None
    alias: str | None = None
    config: str = ""  # the run config (YAML text) the monitor ran with: what an approval uses

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> RetrainRecord:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in json.loads(text).items() if k in known})

    def line(self) -> str:
        """One line for the monitor's output."""
        if self.status == Status.STARTED:
            where = self.run_url or self.run_id or ""
            made = (
                f"; registered version {self.model_version} as {self.alias or 'no alias'}"
                if self.model_version
                else ""
            )
            return f"retrain: started {where}{made}"
        if self.status == Status.PENDING:
            return f"retrain: pending; approve with `kubeline retrain --approve {self.check_id}`"
        return f"retrain: {self.status} ({self.reason})"


def _now() -> datetime:
    return datetime.now(UTC)


def records(location: str, settings: Settings | None = None) -> dict[str, RetrainRecord]:
    """Every check's retraining record under the checks' location, by check id."""
    from kubeline.monitor.history import read_each

    return {
        check_id: RetrainRecord.from_json(text)
        for check_id, (_, text) in read_each(location, RETRAIN_FILE, settings).items()
    }


def last_started(found: dict[str, RetrainRecord], model_name: str) -> datetime | None:
    """When a retraining of ``model_name`` last started, from the checks' records (one that
    failed to start holds nothing back)."""
    times = [
        datetime.fromisoformat(r.started_at)
        for r in found.values()
        if r.status == Status.STARTED and r.started_at and r.model_name == model_name
    ]
    return max(times, default=None)


def act(
    summary: CheckSummary,
    cfg: MonitorConfig,
    settings: Settings,
    *,
    location: str,
    config_text: str,
) -> RetrainRecord | None:
    """Apply the run config's ``retrain`` to a check already written under ``location``.

    None when retraining is off or the check is no breach; otherwise the record written.
    """
    from kubeline.durations import duration
    from kubeline.monitor.history import list_checks

    if cfg.retrain == "off" or summary.decision not in BREACHES:
        return None
    now = _now()
    found = records(location, settings)
    verdict = may_retrain(
        list_checks(location, settings),
        consecutive=cfg.consecutive,
        cooldown=duration(cfg.cooldown),
        last_started=last_started(found, summary.model_name),
        now=now,
    )
    record = RetrainRecord(
        check_id=summary.check_id,
        model_name=summary.model_name,
        mode=cfg.retrain,
        status=Status.HELD,
        reason=verdict.reason,
        window=window_key(summary),
        recorded_at=now.isoformat(timespec="seconds"),
        config=config_text,
    )
    if verdict.act and not claim_window(location, summary, settings):
        first = next((r.check_id for r in found.values() if r.window == record.window), None)
        record.status = Status.DUPLICATE
        record.reason = f"the window was claimed by {first or 'another check'} first"
    elif verdict.act and cfg.retrain == "manual":
        record.status = Status.PENDING
        record.reason = f"{verdict.reason}; waiting for an approval"
    elif verdict.act:
        _start(record, summary, settings, config_text)
    write(location, record, settings, summary)
    return record


def approve(
    check_id: str, settings: Settings, *, location: str, config_text: str | None = None
) -> RetrainRecord:
    """Start the retraining a manual check recommended; refused for a check that recommended
    none, for one already approved, and for a second approval racing the first.

    It trains with ``config_text`` when given, else with the run config the check ran with.
    """
    from kubeline.monitor.history import find_check

    summary = find_check(location, check_id, settings)  # unknown ids are named here
    record = records(location, settings).get(check_id)
    if record is None:
        raise ConfigError(
            f"check {check_id} recommended no retraining: it was {summary.decision}"
            + ("" if summary.decision in BREACHES else ", not a breach")
            + ("" if summary.decision not in BREACHES else " with retrain: off"),
            hint="`kubeline retrain` lists the pending recommendations",
        )
    if record.status != Status.PENDING:
        done = f" at {record.approved_at}" if record.approved_at else ""
        raise ConfigError(
            f"check {check_id} has nothing to approve: its retraining is {record.status}{done}"
            f" ({record.reason})",
            hint="`kubeline retrain` lists the pending recommendations",
        )
    # The window's claim was taken when the check recommended; approving is claimed once more,
    # so two approvals at once start one run.
    if not claim(location, f"{record.window}-approved", {"check_id": check_id}, settings):
        raise ConfigError(f"check {check_id} is being approved by someone else")
    record.approved_at = _now().isoformat(timespec="seconds")
    if config_text is not None:
        record.config = config_text
    _start(record, summary, settings, record.config)
    write(location, record, settings, summary)
    return record


def pending(location: str, settings: Settings | None = None) -> list[RetrainRecord]:
    """The recommendations waiting for an approval, oldest first."""
    found = records(location, settings).values()
    return sorted((r for r in found if r.status == Status.PENDING), key=lambda r: r.check_id)


def write(
    location: str,
    record: RetrainRecord,
    settings: Settings | None,
    summary: CheckSummary | None = None,
) -> None:
    """The record beside its check; with ``summary``, the check's summary.json says it too (what
    ``monitor history`` shows), written after the record so it never says more than it."""
    from kubeline.monitor.summary import SUMMARY_FILE
    from kubeline.storage import output_location

    folder = f"{location.rstrip('/')}/{record.check_id}"
    with output_location(f"{folder}/{RETRAIN_FILE}", settings) as tmp:
        Path(tmp).write_text(record.to_json(), encoding="utf-8")
    if summary is not None:
        summary.retrain, summary.retrain_note = record.status, record.line()
        with output_location(f"{folder}/{SUMMARY_FILE}", settings) as tmp:
            Path(tmp).write_text(summary.to_json(), encoding="utf-8")


def training_data(summary: CheckSummary, settings: Settings) -> str:
    """Where a retraining reads its data: the setting, else the judged version's source."""
    if settings.retrain_data:
        return settings.retrain_data.removeprefix("file://")
    from kubeline import registry
    from kubeline.registry import Tag

    version = registry.connect(settings, create=False).get_model_version(
        summary.model_name, summary.model_version
    )
    source = (version.tags or {}).get(Tag.DATA)
    if not source:
        raise ConfigError(
            f"version {summary.model_version} of {summary.model_name!r} does not say which data "
            "it was trained from, so a retraining cannot find the newest data",
            hint="set KUBELINE_RETRAIN_DATA to the raw data's folder or s3:// prefix",
        )
    return source


def _start(
    record: RetrainRecord, summary: CheckSummary, settings: Settings, config_text: str
) -> None:
    """Start the training pipeline for ``record``; the record says what happened either way."""
    from kubeline.pod import in_pod

    record.started_at = _now().isoformat(timespec="seconds")
    try:
        if in_pod() and not settings.kfp_host:
            # A CronJob's or a KFP step's pod is no place to train the whole pipeline.
            raise ConfigError(
                "a check in a Kubernetes pod starts the retraining through KFP, and "
                "KUBELINE_KFP_HOST is not set",
                hint="set kfp.host in the chart (or KUBELINE_KFP_HOST in the pod)",
            )
        record.data = training_data(summary, settings)
        config_text = model_config_text(config_text, summary.model_name, settings)
        if settings.kfp_host:
            _submit(record, summary, settings, config_text)
        else:
            _run_here(record, summary, settings, config_text)
    except Exception as exc:  # the window is claimed: whatever failed, the record must say so
        record.status = Status.FAILED
        what = str(exc) if isinstance(exc, KubelineError) else f"{type(exc).__name__}: {exc}"
        record.reason = f"the training pipeline failed to start or run: {what}"
        return
    record.status = Status.STARTED
    record.reason = f"started for check {summary.check_id} ({summary.decision}) on {record.data}"


def model_config_text(config_text: str, model_name: str, settings: Settings) -> str:
    """The run config that trains ``model_name`` alone.

    A per-ticker config (``data.per_ticker``) trains one model per ticker; a check judges one
    of them, and retraining it means that ticker's config (``kubeline.per_ticker``), run by the
    training pipeline under the model's own name, not every ticker's again.
    """
    from kubeline.per_ticker import ticker_configs
    from kubeline.steps.base import run_config

    config = run_config(config_text)
    if not config.data.per_ticker:
        return config_text
    base = config.model_name or settings.model_name
    for _, ticker_config in ticker_configs(config, base):
        if ticker_config.model_name == model_name:
            return ticker_config.to_yaml()
    raise ConfigError(
        f"the run config trains one model per ticker ({base}-<ticker>), and none of its "
        f"tickers' models is {model_name}",
        hint="monitor that model with the run config it was trained with",
    )


def _inputs(record: RetrainRecord, summary: CheckSummary, config_text: str) -> dict[str, Any]:
    return {
        "data": record.data,
        "config": config_text,
        "model_name": summary.model_name,
        "triggered_by": summary.check_id,
    }


def _submit(
    record: RetrainRecord, summary: CheckSummary, settings: Settings, config_text: str
) -> None:
    from kubeline.runner.remote import submit
    from kubeline.storage import fingerprint

    assert record.data is not None
    given = _inputs(record, summary, config_text)
    # KFP caches ingest on the location and data_version: the newest data needs a new version.
    given["data_version"] = fingerprint(record.data, settings)
    # The committed spec: the version the chart's upload Job put there, not a new one.
    done = submit(settings, "training", given, committed=True)
    record.run_id, record.run_url = done.run.run_id, done.run.url


def _run_here(
    record: RetrainRecord, summary: CheckSummary, settings: Settings, config_text: str
) -> None:
    from kubeline.runner import run_training

    assert record.data is not None
    result = run_training(
        settings,
        data=record.data,
        config_text=config_text,
        model_name=summary.model_name,
        triggered_by=summary.check_id,
    )
    out = result.outputs
    record.run_id = result.run_name
    record.mlflow_run_id = out.get("mlflow_run_id") or None
    record.model_version = out.get("model_version") or None
    record.alias = out.get("alias") or None
