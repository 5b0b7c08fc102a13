from kfp.dsl import Dataset, Input, Markdown, Output
from kubeline.components.image import kubeline_component


@kubeline_component
def validate(raw: Input[Dataset], config: str, snapshot: Output[Dataset], report: Output[Markdown]):
    """Check the raw frame and write a clean, content-hashed snapshot, or fail the run.

    In: ``raw`` from ingest; ``config``, the YAML run config (its features set the minimum history).
    Out: ``snapshot``, the clean canonical frame (metadata: content hash, rows, tickers, dates);
    ``report``, every problem found, by file, row and column. Errors stop the pipeline here.
    """
    from kubeline.steps import validate as step

    snapshot.metadata.update(
        step.run(raw=raw.path, config=config, out=snapshot.path, report=report.path)
    )
