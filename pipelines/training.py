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


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="Train, evaluate and register a next-bar model from daily OHLCV data; the new "
    "version becomes the champion only if it beats the naive baseline and the current champion.",
)
def training_pipeline(
    data: str,
    config: str = "",
    model_name: str = "",
    min_improvement: float = -1.0,
    git_revision: str = "",
) -> TrainingOutputs:
    """Run the whole training lifecycle.

    Args:
        data: Local path or s3:// prefix of the raw OHLCV files (any supported layout).
        config: A YAML run config (target, features, split, candidates, gate); "" = defaults.
        model_name: Registered model name; "" = the config's, else the KUBELINE_MODEL_NAME setting.
        min_improvement: Margin the model must beat the baseline and champion by; negative
            (the default) = the config's ``gate.min_improvement``. A number, not an optional,
            because kfp.local cannot default an unset optional parameter.
        git_revision: Source revision recorded as lineage; "" = the image's or checkout's.
    """
    # The data behind a path can change between runs, so ingest always reads it afresh; the
    # later steps key their cache on the snapshot's content hash and the config.
    ingested = ingest(data=data).set_caching_options(False)
    checked = validate(raw=ingested.outputs["raw"], config=config)
    table = features(snapshot=checked.outputs["snapshot"], config=config)
    trained = train(table=table.outputs["table"], config=config)
    trained.set_cpu_limit("2").set_memory_limit("4G")
    evaluated = evaluate(
        model=trained.outputs["model"],
        table=table.outputs["table"],
        config=config,
        model_name=model_name,
        pipeline_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
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
        pipeline_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
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
    )
