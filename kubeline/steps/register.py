"""Register: log the run to MLflow, register a version, and promote it only if blessed.

The evaluate step decides the blessing (the gate, in its verdict). This step adds the infra
check: the version is loaded back from the registry with the loading code the server uses and
must predict on its input example the same numbers the pipeline's model does. The promotion
decision itself is ``kubeline.promotion.decide``; the version's ``kubeline.gate`` tag holds its
``GateState`` (pending from the moment it exists, so a crash halfway is visible).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubeline.steps.base import executor, registered_name, run_config

if TYPE_CHECKING:
    import pandas as pd

    from kubeline.evaluate.verdict import GateDecision
    from kubeline.model import ModelCard
    from kubeline.promotion import InfraCheck
    from kubeline.runconfig import RunConfig


@dataclass(frozen=True)
class Registered:
    """What the register step returns: the version, the alias it got ("" = none), and why."""

    model_name: str
    model_version: str
    alias: str
    gate: str
    reason: str
    mlflow_run_id: str


def infra_check(
    uri: str, example: pd.DataFrame, expected: Any, feature_names: list[str]
) -> InfraCheck:
    """Load ``uri`` as the server would and predict on ``example``; compare with ``expected``."""
    import numpy as np

    from kubeline import model, registry
    from kubeline.errors import KubelineError
    from kubeline.promotion import InfraCheck

    try:
        got = model.predict(registry.load_model(uri), example, feature_names)
    except KubelineError as exc:
        return InfraCheck(False, f"infra check failed: {exc.message}")
    except Exception as exc:  # any failure to load or predict is exactly what this check is for
        return InfraCheck(False, f"infra check failed: {type(exc).__name__}: {exc}")
    if not np.allclose(got, np.asarray(expected, dtype=float), rtol=1e-9):
        return InfraCheck(False, "infra check failed: the registered model predicts other numbers")
    return InfraCheck(True, f"infra check passed ({len(example)} example rows from {uri})")


def _params(config: RunConfig, card: ModelCard, gate: GateDecision) -> dict[str, str]:
    """Run parameters: the run config and the chosen candidate (MLflow keeps strings)."""
    out = {
        "target": config.target,
        "horizon": config.horizon,
        "features": ",".join(card.feature_names),
        "candidate": card.candidate,
        "selection_metric": card.selection_metric,
        "holdout_fraction": config.split.holdout_fraction,
        "n_splits": config.split.n_splits,
        "purge_gap": config.purge_gap,
        "gate_metric": config.gate.metric,
        "gate_baseline": gate.baseline,
        # The margin the gate used: --min-improvement overrides the config's.
        "gate_min_improvement": gate.min_improvement,
        "gate_min_directional_accuracy": config.gate.min_directional_accuracy,
        "gate_min_backtest_edge": config.gate.min_backtest_edge,
        "gate_max_p_value": config.gate.max_p_value,
        "backtest_cost_bps": config.backtest.cost_bps,
        "seed": config.seed,
        "tickers": ",".join(sorted(config.data.tickers or [])) or "all",
    }
    out.update({f"model.{k}": v for k, v in card.params.items()})
    return {k: str(v)[:6000] for k, v in out.items()}


def _label_end(snapshot: str, config: RunConfig, card: ModelCard) -> str:
    """The last date whose realized target the model trained on, counted in the snapshot's
    dates (``kubeline.promotion.label_end``)."""
    import polars as pl

    from kubeline.data.schema import DATE, TICKER, keep_tickers
    from kubeline.promotion import label_end

    frame = keep_tickers(pl.read_parquet(snapshot, columns=[TICKER, DATE]), config.data.tickers)
    dates = frame.get_column(DATE).cast(pl.Date).unique().dt.strftime("%Y-%m-%d").to_list()
    return label_end(dates, card.train_end, config.horizon)


def _dataset(snapshot: str, data: str, metadata: dict[str, Any], data_hash: str) -> Any:
    """The training data as an MLflow dataset, identified by its content hash (not re-read)."""
    import warnings

    import polars as pl
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.models import infer_signature

    class SnapshotDataset(MetaDataset):
        """A MetaDataset whose profile is the snapshot's summary (rows, tickers, dates)."""

        @property
        def profile(self) -> Any | None:
            keys = ("rows", "tickers", "first_date", "last_date")
            return {k: metadata[k] for k in keys if k in metadata}

    head = pl.read_parquet(snapshot, n_rows=100).to_pandas()
    # MLflow keeps 36 characters of digest; the full hash is in the run's tags.
    digest = data_hash.split(":")[-1][:36] if data_hash else None
    with warnings.catch_warnings():
        # A local path matches two equivalent local source types; MLflow warns, needlessly.
        warnings.simplefilter("ignore", UserWarning)
        source = resolve_dataset_source(data)
    name = Path(data.rstrip("/")).name or data
    return SnapshotDataset(source, name=name, digest=digest, schema=infer_signature(head).inputs)


@executor
def run(
    *,
    model: str,
    evaluation: str,
    report: str,
    snapshot: str,
    snapshot_metadata: dict[str, Any],
    data: str,
    config: str,
    model_name: str,
    lineage: dict[str, str],
) -> Registered:
    """Log, register, infra-check and promote; returns name, version, alias and the reason."""
    import mlflow
    import pandas as pd
    import polars as pl

    from kubeline import lineage as lineage_mod
    from kubeline import model as model_file
    from kubeline import promotion, registry
    from kubeline.evaluate.verdict import EVALUATION_FILE, EXAMPLE_FILE, PLOTS_DIR, Verdict
    from kubeline.model import CARD_FILE
    from kubeline.monitor.reference import REFERENCE_ARTIFACT, training_reference
    from kubeline.registry import GateState, Tag
    from kubeline.settings import get_settings

    settings = get_settings()
    cfg = run_config(config)
    name = registered_name(cfg, model_name)
    saved = model_file.load(model)
    card = saved.card
    folder = Path(evaluation)
    verdict = Verdict.read(folder)
    example = pd.read_parquet(folder / EXAMPLE_FILE)
    expected = saved.predict(example)
    data_hash = str(
        lineage.get(lineage_mod.DATA_HASH) or snapshot_metadata.get(lineage_mod.DATA_HASH, "")
    )
    lin = {
        **lineage,
        "git_revision": lineage.get("git_revision") or lineage_mod.git_revision() or "unknown",
        lineage_mod.DATA_HASH: data_hash,
    }
    tags = {**lineage_mod.tags(lin), Tag.MODEL_NAME: name}
    # What the version answers and what it saw: the next run's evaluate compares only like
    # with like, and never on rows this version trained on.
    described = {
        **promotion.question_tags(cfg),
        Tag.TRAIN_END: card.train_end,
        Tag.LABEL_END: _label_end(snapshot, cfg, card),
        Tag.FEATURES: ",".join(card.feature_names),
        Tag.CANDIDATE: card.candidate,
        Tag.SCORES: json.dumps({"metric": verdict.gate.metric, **verdict.scores()}),
        Tag.DATA: data,
    }

    client = registry.connect(settings)
    experiment = registry.ensure_experiment(
        client, settings.experiment_name, settings.artifact_location
    )
    run_name = f"{name}-{(lin.get('pipeline_run_id') or 'local')[:8]}"
    with mlflow.start_run(experiment_id=experiment, run_name=run_name, tags=tags) as active:
        mlflow.log_params(_params(cfg, card, verdict.gate))
        mlflow.log_metrics({**verdict.flat_metrics(), **card.cv_metrics()})
        mlflow.log_input(_dataset(snapshot, data, snapshot_metadata, data_hash), context="training")
        info = mlflow.sklearn.log_model(
            saved.estimator,
            name="model",
            signature=model_file.signature(example, expected),
            input_example=example,
            # Pinned from the installed versions: skips MLflow's seconds-long inference.
            pip_requirements=mlflow.sklearn.get_default_pip_requirements(include_skops=True),
            skops_trusted_types=model_file.trusted_types(model, card),
        )
        with tempfile.TemporaryDirectory() as tmp:
            # KFP names the file after the output ("report"); browsers want the extension.
            page = Path(tmp) / "report.html"
            shutil.copyfile(report, page)
            mlflow.log_artifact(str(page))
            # What `kubeline monitor` compares live data with: this version's training rows.
            reference = Path(tmp) / Path(REFERENCE_ARTIFACT).name
            training_reference(pl.read_parquet(snapshot), cfg, saved).to_parquet(reference)
            mlflow.log_artifact(str(reference), artifact_path=str(Path(REFERENCE_ARTIFACT).parent))
        if (folder / PLOTS_DIR).is_dir():
            mlflow.log_artifacts(str(folder / PLOTS_DIR), artifact_path=PLOTS_DIR)
        mlflow.log_text(verdict.model_dump_json(indent=2), EVALUATION_FILE)
        mlflow.log_text(card.model_dump_json(indent=2), CARD_FILE)
        mlflow.log_text(cfg.to_yaml(), "run-config.yaml")
        run_id = active.info.run_id

    version = mlflow.register_model(
        info.model_uri, name, tags={**tags, **described, Tag.GATE: GateState.PENDING}
    )
    number = str(version.version)
    client.set_model_version_tag(name, number, Tag.RUN_ID, run_id)
    infra = infra_check(registry.model_uri(name, number), example, expected, card.feature_names)
    now = registry.version_by_alias(client, name, registry.CHAMPION)
    decision = promotion.decide(verdict, infra, str(now.version) if now is not None else None)
    if decision.alias == registry.CHAMPION:
        registry.promote(client, name, number, decision.reason)
    elif decision.alias == registry.CHALLENGER:
        registry.mark_challenger(client, name, number, decision.reason)
    else:
        client.set_model_version_tag(name, number, Tag.GATE_REASON, decision.reason)
    client.set_model_version_tag(name, number, Tag.GATE, decision.state)
    with mlflow.start_run(run_id=run_id):
        mlflow.set_tags({Tag.ALIAS: decision.alias or "none", Tag.MODEL_VERSION: number})
        mlflow.log_text(decision.reason, "decision.txt")
    return Registered(
        model_name=name,
        model_version=number,
        alias=decision.alias,
        gate=str(decision.state),
        reason=decision.reason,
        mlflow_run_id=run_id,
    )
