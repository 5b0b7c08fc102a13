from kfp.dsl import Dataset, Output
from kubeline.components.image import kubeline_component


@kubeline_component
def ingest(data: str, raw: Output[Dataset], data_version: str = ""):
    """Read raw daily OHLCV files into kubeline's canonical long frame.

    In: ``data``, a local path or ``s3://bucket/prefix`` in any supported layout (a folder of
    Yahoo-style CSVs, the Kaggle stock-market layout, or one long CSV/Parquet file).
    ``data_version`` is not read: it is there so KFP's cache key changes with the data.
    Out: ``raw``, Parquet with ticker, date, prices, volume and each row's source file and line.
    """
    from kubeline.steps import ingest as step

    raw.metadata.update(step.run(data=data, out=raw.path, data_version=data_version))
