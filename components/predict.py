from kfp.dsl import Dataset, Input, Output
from kubeline.components.image import kubeline_component


@kubeline_component
def predict(
    raw: Input[Dataset], predictions: Output[Dataset], model_name: str = "", version: str = ""
):
    """Score every bar of a data set with a registered model version (batch scoring).

    The version is loaded as the service loads it; the data is validated and its features
    computed by training's code under the version's own feature list. Bars whose features need
    more history than they have are counted in the metadata (incomplete_rows), not scored.

    Args:
        raw: The canonical frame from ingest.
        model_name: Registered model name; "" = the KUBELINE_MODEL_NAME setting.
        version: Model version to score with; "" = the one behind the champion alias now.

    Returns:
        predictions: Parquet with ticker, date, prediction, model_name, model_version; the
            metadata holds the lineage: model name and version, its MLflow run and training
            pipeline run, the scored data's hash and source, rows scored and not scored.
    """
    from kubeline.pod import require_cluster_settings
    from kubeline.steps import predict as step

    require_cluster_settings()
    scored = step.run(raw=raw.path, out=predictions.path, model_name=model_name, version=version)
    predictions.metadata.update({**scored.metadata(), "source": raw.metadata.get("source", "")})
