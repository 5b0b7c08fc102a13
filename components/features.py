from kfp.dsl import Dataset, Input, Output
from kubeline.components.image import kubeline_component


@kubeline_component
def features(snapshot: Input[Dataset], config: str, table: Output[Dataset]):
    """Compute leakage-free features and the target for every ticker in one vectorized pass.

    Args:
        snapshot: The clean frame from validate.
        config: The run config as YAML text, not a path ("" = the defaults): target, features,
            tickers.

    Returns:
        table: Parquet with ticker, date, features, naive-baseline columns and the target.
    """
    from kubeline.lineage import DATA_HASH
    from kubeline.pod import require_cluster_settings
    from kubeline.steps import features as step

    require_cluster_settings()
    table.metadata.update(
        step.run(
            snapshot=snapshot.path,
            config=config,
            out=table.path,
            data_hash=snapshot.metadata.get(DATA_HASH, ""),
        )
    )
