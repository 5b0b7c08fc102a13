from kubeline.components.image import kubeline_component


@kubeline_component
def candidates(config: str) -> list[int]:
    """List the run config's candidates: the items the training pipeline tunes in parallel.

    Args:
        config: The run config as YAML text, not a path ("" = the defaults): its models list.

    Returns:
        Output: One index per candidate of the models list, in order.
    """
    from kubeline.pod import require_cluster_settings
    from kubeline.steps import train as step

    require_cluster_settings()
    return step.candidates(config=config)
