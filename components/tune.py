from kfp.dsl import Dataset, Input, Output
from kubeline.components.image import kubeline_component


@kubeline_component
def tune(table: Input[Dataset], config: str, candidate: int, scores: Output[Dataset]):
    """Cross-validate one candidate's parameter grid on walk-forward folds of the training window.

    Args:
        table: The feature table from features.
        config: The run config as YAML text, not a path ("" = the defaults): split,
            candidates, grids.
        candidate: Which candidate of the config's models list (an index from candidates).

    Returns:
        scores: Every grid combination's mean and spread of each metric over the folds (JSON),
            for train to rank.
    """
    from kubeline.pod import require_cluster_settings
    from kubeline.steps import train as step

    require_cluster_settings()
    result = step.tune(table=table.path, config=config, candidate=candidate, out=scores.path)
    scores.metadata.update(result.metadata())
