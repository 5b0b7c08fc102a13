from kfp.dsl import Dataset, Input, Metrics, Model, Output
from kubeline.components.image import kubeline_component


@kubeline_component
def train(table: Input[Dataset], config: str, model: Output[Model], cv_metrics: Output[Metrics]):
    """Tune every candidate on walk-forward folds of the training window and fit the best.

    In: ``table``, the features; ``config``, the YAML run config (split, candidates, grids).
    Out: ``model``, the fitted scikit-learn pipeline (skops) with its card: feature list, holdout
    boundary, training-window target mean; ``cv_metrics``, each candidate's cross-validated score.
    """
    from kubeline.steps import train as step

    result = step.run(table=table.path, config=config, out=model.path)
    model.metadata.update(result.metadata)
    for name, value in result.metrics.items():
        cv_metrics.log_metric(name, value)
