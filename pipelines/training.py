"""The training pipeline: ingest -> validate -> features -> tune (per candidate) -> train ->
evaluate -> register.

The candidates of the run config are tuned in parallel: ``candidates`` lists them, a
``ParallelFor`` runs one ``tune`` task per candidate (on a cluster each is its own pod; the
local runner runs them as concurrent processes or containers), and ``train`` collects their
scores, picks the best and fits it.

Built for a ``Platform`` (image, ConfigMap, Secret) when compiled, not when imported: what the
spec names comes from the settings of whoever compiles it, read then, so one process can compile
the committed default spec and one for a locally built image.
"""

from typing import Any, NamedTuple

from kfp import dsl
from kfp.dsl.graph_component import GraphComponent
from kfp.dsl.pipeline_task import PipelineTask
from kubeline.components import (
    candidates,
    evaluate,
    features,
    ingest,
    register,
    train,
    tune,
    validate,
)
from kubeline.components.docs import one_line_entries, returns_of
from kubeline.pipelines.cluster import Platform, on_platform

PIPELINE_NAME = "kubeline-training"
# At most this many tune tasks at once: each fits with one native thread (kubeline.train), so
# this is the fan-out's CPU, and it keeps a long models list from filling a small cluster.
MAX_PARALLEL_TUNES = 8


class TrainingOutputs(NamedTuple):
    model_name: str
    model_version: str
    alias: str
    reason: str
    mlflow_run_id: str


def training_pipeline(platform: Platform) -> GraphComponent:
    """The training pipeline, every task on ``platform``."""

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Train, evaluate and register a next-bar model from daily OHLCV data; the "
        "new version becomes the champion only if it beats the naive baseline and the current "
        "champion.",
    )
    @one_line_entries
    @returns_of(register)  # the pipeline's outputs are register's
    def training(
        data: str,
        data_version: str = "",
        config: str = "",
        model_name: str = "",
        min_improvement: float = -1.0,
        git_revision: str = "",
        triggered_by: str = "",
    ) -> TrainingOutputs:
        """Run the whole training lifecycle.

        Args:
            data: Local path or s3:// prefix of the raw OHLCV files (any supported layout).
            data_version: What identifies the data behind ``data``: ingest (and so every step
                after it) is served from KFP's cache for the same location and version. Change it
                when the data changes; ``kubeline run`` sets it to a fingerprint of the files.
            config: The run config as YAML text, not a path: the contents of a file like
                configs/default.yaml (target, features, split, candidates, gate); "" = the
                built-in defaults.
            model_name: Registered model name; "" = the config's, else the KUBELINE_MODEL_NAME
                setting.
            min_improvement: Margin the model must beat the baseline and champion by; negative
                (the default) = the config's ``gate.min_improvement``. A number, not an optional,
                because kfp.local cannot default an unset optional parameter.
            git_revision: Source revision recorded as lineage; "" = the image's or checkout's.
            triggered_by: The monitoring check that started this run (``kubeline monitor``
                with ``retrain: auto``, or ``kubeline retrain --approve``); register tags the
                MLflow run and the version with it. "" = none.
        """
        # KFP keys a step's cache on its inputs, artifacts by identity: ingest is cached on the
        # location and data_version, and when it hits, every step after it can hit too.
        ingested = ingest(data=data, data_version=data_version)
        checked = validate(raw=ingested.outputs["raw"], config=config)
        table = features(snapshot=checked.outputs["snapshot"], config=config)
        # The config is a run-time parameter, so the fan-out's width comes from a task. It needs
        # only the config: it runs beside ingest, and a config error stops the run at once.
        listed = candidates(config=config)
        with dsl.ParallelFor(listed.output, parallelism=MAX_PARALLEL_TUNES) as candidate:
            tuned = tune(table=table.outputs["table"], config=config, candidate=candidate)
            tuned.set_cpu_limit("1").set_memory_limit("4G")
            on_platform(tuned, platform)
        trained = train(
            table=table.outputs["table"],
            config=config,
            scores=dsl.Collected(tuned.outputs["scores"]),
        )
        trained.set_cpu_limit("1").set_memory_limit("4G")
        evaluated, registered = evaluate_and_register(
            model=trained.outputs["model"],
            table=table.outputs["table"],
            snapshot=checked.outputs["snapshot"],
            data=data,
            config=config,
            model_name=model_name,
            min_improvement=min_improvement,
            git_revision=git_revision,
            triggered_by=triggered_by,
            pipeline_name=PIPELINE_NAME,
        )
        for task in (ingested, checked, table, listed, trained, evaluated, registered):
            on_platform(task, platform)
        return TrainingOutputs(
            registered.outputs["model_name"],
            registered.outputs["model_version"],
            registered.outputs["alias"],
            registered.outputs["reason"],
            registered.outputs["mlflow_run_id"],
        )

    return training


def evaluate_and_register(
    *,
    model: Any,
    table: Any,
    snapshot: Any,
    data: Any,
    config: Any,
    model_name: Any,
    min_improvement: Any,
    git_revision: Any,
    triggered_by: Any,
    pipeline_name: str,
) -> tuple[PipelineTask, PipelineTask]:
    """The gate and the registry after a model is trained: evaluate, then register (both
    uncached). Shared by the training pipelines; the arguments are pipeline channels."""
    # What evaluate and register record as the run's lineage.
    lineage = {
        "pipeline_name": pipeline_name,
        "pipeline_job_name": dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
        "pipeline_run_id": dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        "git_revision": git_revision,
    }
    evaluated = evaluate(
        model=model,
        table=table,
        config=config,
        model_name=model_name,
        min_improvement=min_improvement,
        **lineage,
    )
    # Registration writes to the registry and reads the current champion: never cached.
    evaluated.set_caching_options(False)
    registered = register(
        model=model,
        evaluation=evaluated.outputs["evaluation"],
        report=evaluated.outputs["report"],
        snapshot=snapshot,
        data=data,
        config=config,
        model_name=model_name,
        triggered_by=triggered_by,
        **lineage,
    ).set_caching_options(False)
    return evaluated, registered
