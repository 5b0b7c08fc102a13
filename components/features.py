from kfp.dsl import Dataset, Input, Output
from kubeline.components.image import kubeline_component


@kubeline_component
def features(snapshot: Input[Dataset], config: str, table: Output[Dataset]):
    """Compute leakage-free features and the target for every ticker in one vectorized pass.

    In: ``snapshot``, the clean frame; ``config``, the YAML run config (target, features, tickers).
    Out: ``table``, Parquet with ticker, date, features, naive-baseline columns and the target.
    """
    from kubeline.lineage import DATA_HASH
    from kubeline.steps import features as step

    table.metadata.update(
        step.run(
            snapshot=snapshot.path,
            config=config,
            out=table.path,
            data_hash=snapshot.metadata.get(DATA_HASH, ""),
        )
    )
