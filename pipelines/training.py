"""The training pipeline: ingest -> validate -> features -> train -> evaluate -> register."""

from typing import NamedTuple

from kfp import dsl
from kubeline.components import evaluate, features, ingest, register, train, validate
from kubeline.pipelines.cluster import with_cluster_settings

PIPELINE_NAME = "kubeline-training"


class TrainingOutputs(NamedTuple):
    model_name: str
    model_version: str
    alias: str
    reason: str
    mlflow_run_id: str


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="Train, evaluate and register a next-bar model from daily OHLCV data; the new "
    "version becomes the champion only if it beats the naive baseline and the current champion.",
)
def training_pipeline(
    data: str,
    data_version: str = "",
    config: str = "",
    model_name: str = "",
    min_improvement: float = -1.0,
    git_revision: str = "",
) -> TrainingOutputs:
    """Run the whole training lifecycle.

    Args:
        data: Local path or s3:// prefix of the raw OHLCV files (any supported layout).
        data_version: What identifies the data behind ``data``: ingest (and so every step
            after it) is served from KFP's cache for the same location and version. Change it
            when the data changes; ``kubeline run`` sets it to a fingerprint of the files.
        config: A YAML run config (target, features, split, candidates, gate); "" = defaults.
        model_name: Registered model name; "" = the config's, else the KUBELINE_MODEL_NAME setting.
        min_improvement: Margin the model must beat the baseline and champion by; negative
            (the default) = the config's ``gate.min_improvement``. A number, not an optional,
            because kfp.local cannot default an unset optional parameter.
        git_revision: Source revision recorded as lineage; "" = the image's or checkout's.
    """
    # KFP keys a step's cache on its inputs, artifacts by identity: ingest is cached on the
    # location and data_version, and when it hits, every step after it can hit too.
    ingested = ingest(data=data, data_version=data_version)
    checked = validate(raw=ingested.outputs["raw"], config=config)
    table = features(snapshot=checked.outputs["snapshot"], config=config)
    trained = train(table=table.outputs["table"], config=config)
    trained.set_cpu_limit("2").set_memory_limit("4G")
    evaluated = evaluate(
        model=trained.outputs["model"],
        table=table.outputs["table"],
        config=config,
        model_name=model_name,
        pipeline_name=PIPELINE_NAME,
        pipeline_job_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
        pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        git_revision=git_revision,
        min_improvement=min_improvement,
    )
    # Registration writes to the registry and reads the current champion: never cached.
    evaluated.set_caching_options(False)
    registered = register(
        model=trained.outputs["model"],
        evaluation=evaluated.outputs["evaluation"],
        report=evaluated.outputs["report"],
        snapshot=checked.outputs["snapshot"],
        data=data,
        config=config,
        model_name=model_name,
        pipeline_name=PIPELINE_NAME,
        pipeline_job_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
        pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        git_revision=git_revision,
    ).set_caching_options(False)
    for task in (ingested, checked, table, trained, evaluated, registered):
        with_cluster_settings(task)
    return TrainingOutputs(
        registered.outputs["model_name"],
        registered.outputs["model_version"],
        registered.outputs["alias"],
        registered.outputs["reason"],
        registered.outputs["mlflow_run_id"],
    )
