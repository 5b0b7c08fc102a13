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
    step obeys. In: the trained ``model``, the feature ``table``, the run ``config``, the
    registered ``model_name`` ("" = the configured one), ``min_improvement`` (negative = the
    config's gate). Out: holdout ``metrics`` (the same names as the MLflow run's); an HTML ``report`` with plots
    and backtest; a Markdown ``summary``; ``evaluation``, a folder with the verdict
    (evaluation.json), predictions, the input example and the PNG plots.
    """
    from kubeline.lineage import DATA_HASH, of_run
    from kubeline.steps import evaluate as step

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
