from kfp.dsl import Dataset, Output
from kubeline.components.image import kubeline_component


@kubeline_component
def ingest(data: str, raw: Output[Dataset], data_version: str = ""):
    """Read raw daily OHLCV files into kubeline's canonical long frame.

    Args:
        data: Local path or s3://bucket/prefix of the raw files, in any supported layout: a
            folder of Yahoo-style CSVs, the Kaggle stock-market layout, or one long CSV or
            Parquet file with a ticker column.
        data_version: Not read: it is there so KFP's cache key changes when the data does.

    Returns:
        raw: Parquet with ticker, date, prices, volume and each row's source file and line.
    """
    from kubeline.pod import require_cluster_settings
    from kubeline.steps import ingest as step

    require_cluster_settings()
    raw.metadata.update(step.run(data=data, out=raw.path, data_version=data_version))
