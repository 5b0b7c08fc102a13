from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output
from kubeline.components.image import kubeline_component


@kubeline_component
def evaluate(
    model: Input[Model],
    table: Input[Dataset],
    config: str,
    model_name: str,
    pipeline_name: str,
    pipeline_job_name: str,
    pipeline_run_id: str,
    git_revision: str,
    metrics: Output[Metrics],
    report: Output[HTML],
    summary: Output[Markdown],
    evaluation: Output[Artifact],
    min_improvement: float = -1.0,
):
    """Score the model on the holdout against naive baselines and the current champion.

    Like TFX's Evaluator, this step decides the blessing: the gate verdict that the register
    step obeys.

    Args:
        model: The trained model from train.
        table: The feature table the model was trained on (its holdout rows are scored).
        config: The run config as YAML text, not a path ("" = the defaults): target, split,
            gate.
        model_name: Registered model whose champion the model is compared with; "" = the
            config's, else the KUBELINE_MODEL_NAME setting.
        pipeline_name: The pipeline's name, recorded as lineage.
        pipeline_job_name: The KFP run's name, recorded as lineage.
        pipeline_run_id: The KFP run's id, recorded as lineage.
        git_revision: Source revision recorded as lineage; "" = the image's or checkout's.
        min_improvement: Margin the model must beat the baseline and champion by; negative =
            the config's gate.

    Returns:
        metrics: Holdout metrics of the model and of every naive baseline (the same names as
            the MLflow run's).
        report: An HTML report with plots and the backtest.
        summary: The verdict in Markdown.
        evaluation: A folder with evaluation.json (the verdict), predictions, the input
            example and the PNG plots.
    """
    from kubeline.lineage import DATA_HASH, of_run
    from kubeline.pod import require_cluster_settings
    from kubeline.steps import evaluate as step

    require_cluster_settings()
    result = step.run(
        model=model.path,
        table=table.path,
        config=config,
        model_name=model_name,
        min_improvement=min_improvement,
        lineage=of_run(
            pipeline_name,
            pipeline_job_name,
            pipeline_run_id,
            git_revision,
            data_hash=table.metadata.get(DATA_HASH, ""),
        ),
        report=report.path,
        summary=summary.path,
        out=evaluation.path,
    )
    evaluation.metadata.update(result.metadata)
    for name, value in result.metrics.items():
        metrics.log_metric(name, value)
