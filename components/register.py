from typing import NamedTuple

from kfp.dsl import HTML, Artifact, Dataset, Input, Model
from kubeline.components.image import kubeline_component


@kubeline_component
def register(
    model: Input[Model],
    evaluation: Input[Artifact],
    report: Input[HTML],
    snapshot: Input[Dataset],
    data: str,
    config: str,
    model_name: str,
    pipeline_name: str,
    pipeline_job_name: str,
    pipeline_run_id: str,
    git_revision: str,
    triggered_by: str = "",
    # KFP's spelling of named outputs; the component's source is all a task has, so the type
    # cannot be a class defined beside it.
) -> NamedTuple(  # type: ignore[valid-type]
    "Registration", model_name=str, model_version=str, alias=str, reason=str, mlflow_run_id=str
):
    """Log the run to MLflow, register a model version, and promote it only if blessed.

    The new version becomes ``champion`` only if the evaluation passed the gate and the version,
    loaded back from the registry with the server's loading code, predicts on its input example
    (an infra check, as TFX's InfraValidator); otherwise it is ``challenger``, with the reason.
    Every run and version carries the lineage: pipeline name and run id, git revision, data hash.

    Args:
        model: The trained model from train.
        evaluation: The verdict folder from evaluate.
        report: The HTML report from evaluate, logged with the run.
        snapshot: The clean data snapshot from validate (its content hash is lineage).
        data: Where the raw data came from, recorded with the run.
        config: The run config as YAML text, not a path ("" = the defaults), logged with the
            run.
        model_name: Registered model name; "" = the config's, else the KUBELINE_MODEL_NAME
            setting.
        pipeline_name: The pipeline's name, recorded as lineage.
        pipeline_job_name: The KFP run's name, recorded as lineage.
        pipeline_run_id: The KFP run's id, recorded as lineage.
        git_revision: Source revision recorded as lineage; "" = the image's or checkout's.
        triggered_by: The monitoring check that started this run, recorded as lineage; "" =
            none (a run started by hand or by a schedule).

    Returns:
        model_name: The registered model's name.
        model_version: The new model version.
        alias: ``champion`` if the version was promoted, ``challenger`` if it works but did
            not pass the gate, empty if the infra check rejected it.
        reason: Why the version got its alias (the gate's verdict, or the infra check's).
        mlflow_run_id: The MLflow run holding the version's metrics, report and lineage.
    """
    from collections import namedtuple

    from kubeline.lineage import of_run
    from kubeline.pod import require_cluster_settings
    from kubeline.steps import register as step

    require_cluster_settings()
    out = step.run(
        model=model.path,
        evaluation=evaluation.path,
        report=report.path,
        snapshot=snapshot.path,
        snapshot_metadata=snapshot.metadata,
        data=data,
        config=config,
        model_name=model_name,
        lineage=of_run(
            pipeline_name,
            pipeline_job_name,
            pipeline_run_id,
            git_revision,
            triggered_by=triggered_by,
        ),
    )
    fields = ["model_name", "model_version", "alias", "reason", "mlflow_run_id"]
    return namedtuple("Registration", fields)(*(getattr(out, f) for f in fields))
