"""Register: log the run to MLflow, register a version, and promote it only if blessed.

The evaluate step decides the blessing (the gate). This step adds the infra check: the version
is loaded back from the registry with the loading code the server uses and must predict on its
input example the same numbers the pipeline's model does. Only then does it become champion.

A version's ``kubeline.gate`` tag says where it stands: ``pending`` from the moment it exists
(so a crash halfway is visible), then ``passed`` (champion), ``failed`` (challenger: it works
but did not beat the baseline or champion) or ``rejected`` (no alias: it failed the infra
check and must not be served).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from kubeline.steps.base import executor, registered_name, run_config

EXAMPLE_FILE = "example.parquet"


def infra_check(uri: str, example: Any, expected: Any) -> tuple[bool, str]:
    """Load ``uri`` as the server would and predict on ``example``; compare with ``expected``."""
    import numpy as np

    from kubeline import registry
    from kubeline.errors import KubelineError

    try:
        got = registry.predict(registry.load_model(uri), example)
    except KubelineError as exc:
        return False, f"infra check failed: {exc.message}"
    except Exception as exc:  # any failure to load or predict is exactly what this check is for
        return False, f"infra check failed: {type(exc).__name__}: {exc}"
    if not np.allclose(np.asarray(got, dtype=float), np.asarray(expected, dtype=float), rtol=1e-9):
        return False, "infra check failed: the registered model predicts other numbers"
    return True, f"infra check passed ({len(example)} example rows from {uri})"


def _params(config: Any, meta: dict[str, Any], gate_baseline: str) -> dict[str, str]:
    """Run parameters: the run config and the chosen candidate (MLflow keeps strings)."""
    out = {
        "target": config.target,
        "horizon": config.horizon,
        "features": ",".join(meta["feature_names"]),
        "candidate": meta["candidate"],
        "selection_metric": meta["selection_metric"],
        "holdout_fraction": config.split.holdout_fraction,
        "n_splits": config.split.n_splits,
        "purge_gap": config.purge_gap,
        "gate_metric": config.gate.metric,
        "gate_baseline": gate_baseline,
        "seed": config.seed,
        "tickers": ",".join(config.data.tickers or []) or "all",
    }
    out.update({f"model.{k}": v for k, v in meta["params"].items()})
    return {k: str(v)[:6000] for k, v in out.items()}


def _metrics(evaluation: dict[str, Any], meta: dict[str, Any]) -> dict[str, float]:
    """Flat metric names: holdout_*, baseline_<kind>_*, champion_*, backtest_*, cv_*."""
    out: dict[str, float] = {}

    def put(prefix: str, values: dict[str, Any] | None) -> None:
        for k, v in (values or {}).items():
            if isinstance(v, int | float) and v == v:  # drop NaN: MLflow stores it, UIs choke
                out[f"{prefix}{k}"] = float(v)

    put("holdout_", evaluation["metrics"])
    for kind, values in evaluation["baselines"].items():
        put(f"baseline_{kind}_", values)
    # A champion that could not be compared has a version but no metrics.
    put("champion_", (evaluation.get("champion") or {}).get("metrics"))
    backtest = evaluation.get("backtest") or {}
    for side, values in (backtest.get("stats") or {}).items():
        put(f"backtest_{side}_", values)
    for row in meta.get("cv_results", []):
        if row.get("selected"):
            put(
                "cv_", {k.removeprefix("mean_"): v for k, v in row.items() if k.startswith("mean_")}
            )
    return out


def _dataset(snapshot: str, data: str, metadata: dict[str, Any]) -> Any:
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
    content_hash = str(metadata.get("content_hash", ""))
    # MLflow keeps 36 characters of digest; the full hash is in the run's tags.
    digest = content_hash.split(":")[-1][:36] if content_hash else None
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
) -> dict[str, str]:
    """Log, register, infra-check and promote; returns name, version, alias and the reason."""
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature

    from kubeline import lineage as lineage_mod
    from kubeline import registry
    from kubeline.settings import get_settings
    from kubeline.steps.evaluate import question
    from kubeline.steps.train import load_model, trusted_types

    settings = get_settings()
    cfg = run_config(config)
    name = registered_name(cfg, model_name)
    fitted, meta = load_model(model)
    folder = Path(evaluation)
    verdict = json.loads((folder / "evaluation.json").read_text())
    example = pd.read_parquet(folder / EXAMPLE_FILE)
    expected = registry.predict(fitted, example)
    content_hash = str(snapshot_metadata.get("content_hash", ""))
    lin = {
        **lineage,
        "git_revision": lineage.get("git_revision") or lineage_mod.git_revision() or "unknown",
        "data_hash": content_hash,
    }
    tags = {**lineage_mod.tags(lin), "kubeline.model_name": name}
    # What the version answers and what it saw: the next run's evaluate compares only like
    # with like, and never on rows this version trained on.
    described = {
        **{f"kubeline.{k}": v for k, v in question(cfg).items()},
        "kubeline.train_end": meta["train_end"],
        "kubeline.features": ",".join(meta["feature_names"]),
        "kubeline.candidate": meta["candidate"],
    }

    client = registry.connect(settings)
    experiment = registry.ensure_experiment(
        client, settings.experiment_name, settings.artifact_location
    )
    run_name = f"{name}-{(lin.get('pipeline_run_id') or 'local')[:8]}"
    with mlflow.start_run(experiment_id=experiment, run_name=run_name, tags=tags) as active:
        mlflow.log_params(_params(cfg, meta, verdict["gate"]["baseline"]))
        mlflow.log_metrics(_metrics(verdict, meta))
        mlflow.log_input(_dataset(snapshot, data, snapshot_metadata), context="training")
        info = mlflow.sklearn.log_model(
            fitted,
            name="model",
            signature=infer_signature(example, expected),
            input_example=example,
            # Pinned from the installed versions: skips MLflow's seconds-long inference.
            pip_requirements=mlflow.sklearn.get_default_pip_requirements(include_skops=True),
            skops_trusted_types=trusted_types(Path(model), meta),
        )
        with tempfile.TemporaryDirectory() as tmp:
            # KFP names the file after the output ("report"); browsers want the extension.
            page = Path(tmp) / "report.html"
            shutil.copyfile(report, page)
            mlflow.log_artifact(str(page))
        if (folder / "plots").is_dir():
            mlflow.log_artifacts(str(folder / "plots"), artifact_path="plots")
        mlflow.log_dict(verdict, "evaluation.json")
        mlflow.log_dict(meta, "model.json")
        mlflow.log_text(cfg.to_yaml(), "run-config.yaml")
        run_id = active.info.run_id

    version = mlflow.register_model(
        info.model_uri, name, tags={**tags, **described, "kubeline.gate": "pending"}
    )
    number = str(version.version)
    client.set_model_version_tag(name, number, "kubeline.run_id", run_id)
    infra_ok, infra_reason = infra_check(registry.model_uri(name, number), example, expected)
    gate = verdict["gate"]
    reason = f"{gate['reason']}; {infra_reason}"
    expected_champion = (verdict.get("champion") or {}).get("version")
    now = registry.version_by_alias(client, name, registry.CHAMPION)
    now_champion = str(now.version) if now is not None else None
    if not infra_ok:
        state, alias = "rejected", ""
        client.set_model_version_tag(name, number, "kubeline.gate_reason", reason)
    elif gate["passed"] and now_champion != expected_champion:
        # Another run promoted a version after this one was evaluated: compare again first.
        state, alias = "failed", registry.CHALLENGER
        reason = (
            f"the champion changed during this run (version {expected_champion} when "
            f"evaluated, now {now_champion}); run again to compare against it; {reason}"
        )
        registry.mark_challenger(client, name, number, reason)
    elif gate["passed"]:
        state, alias = "passed", registry.CHAMPION
        registry.promote(client, name, number, reason)
    else:
        state, alias = "failed", registry.CHALLENGER
        registry.mark_challenger(client, name, number, reason)
    client.set_model_version_tag(name, number, "kubeline.gate", state)
    with mlflow.start_run(run_id=run_id):
        mlflow.set_tags({"kubeline.alias": alias or "none", "kubeline.model_version": number})
        mlflow.log_text(reason, "decision.txt")
    return {
        "model_name": name,
        "model_version": number,
        "alias": alias,
        "reason": reason,
        "mlflow_run_id": run_id,
    }
