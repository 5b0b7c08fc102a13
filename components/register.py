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
) -> NamedTuple(
    "Registration", model_name=str, model_version=str, alias=str, reason=str, mlflow_run_id=str
):
    """Log the run to MLflow, register a model version, and promote it only if blessed.

    The new version becomes ``champion`` only if the evaluation passed the gate and the version,
    loaded back from the registry with the server's loading code, predicts on its input example
    (an infra check, as TFX's InfraValidator); otherwise it is ``challenger``, with the reason.
    Every run and version carries the lineage: pipeline name and run id, git revision, data hash.
    """
    from collections import namedtuple

    from kubeline.lineage import of_run
    from kubeline.steps import register as step

    out = step.run(
        model=model.path,
        evaluation=evaluation.path,
        report=report.path,
        snapshot=snapshot.path,
        snapshot_metadata=snapshot.metadata,
        data=data,
        config=config,
        model_name=model_name,
        lineage=of_run(pipeline_name, pipeline_job_name, pipeline_run_id, git_revision),
    )
    fields = ["model_name", "model_version", "alias", "reason", "mlflow_run_id"]
    return namedtuple("Registration", fields)(*(getattr(out, f) for f in fields))
