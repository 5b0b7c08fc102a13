from kfp.dsl import Dataset, Input, Markdown, Output
from kubeline.components.image import kubeline_component


@kubeline_component
def validate(raw: Input[Dataset], config: str, snapshot: Output[Dataset], report: Output[Markdown]):
    """Check the raw frame and write a clean, content-hashed snapshot, or fail the run.

    Args:
        raw: The canonical frame from ingest.
        config: The run config as YAML text, not a path ("" = the defaults); its features set
            the minimum history a ticker needs.

    Returns:
        snapshot: The clean canonical frame (metadata: content hash, rows, tickers, dates).
        report: Every problem found, by file, row and column. Errors stop the pipeline here.
    """
    from kubeline.pod import require_cluster_settings
    from kubeline.steps import validate as step

    require_cluster_settings()
    snapshot.metadata.update(
        step.run(raw=raw.path, config=config, out=snapshot.path, report=report.path)
    )
