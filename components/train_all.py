from kfp.dsl import Dataset, Input, Metrics, Model, Output
from kubeline.components.image import kubeline_component


@kubeline_component
def train_all(
    table: Input[Dataset], config: str, model: Output[Model], cv_metrics: Output[Metrics]
):
    """Tune every candidate on walk-forward folds and fit the best, all in this one task.

    Args:
        table: The feature table from features.
        config: The run config as YAML text, not a path ("" = the defaults): split,
            candidates, grids.

    Returns:
        model: The fitted scikit-learn pipeline (skops) with its card: feature list, holdout
            boundary, training-window target mean.
        cv_metrics: Each candidate's cross-validated score.
    """
    from kubeline.pod import require_cluster_settings
    from kubeline.steps import train as step

    require_cluster_settings()
    result = step.run(table=table.path, config=config, out=model.path)
    model.metadata.update(result.metadata)
    for name, value in result.metrics.items():
        cv_metrics.log_metric(name, value)
