"""How tasks get their settings on a cluster: a ConfigMap for settings, a Secret for credentials.

Nothing about endpoints or credentials is compiled into the spec; only the names of the
ConfigMap and Secret (settings ``KUBELINE_CLUSTER_CONFIG_MAP`` / ``KUBELINE_CLUSTER_S3_SECRET``).
The ConfigMap is required: without a tracking URI every pod would log to a throwaway store in
its own filesystem and the registry would silently never see a model, so a missing ConfigMap
must stop the pod instead. The Secret is optional (clusters may grant S3 through workload
identity). kfp.local ignores this platform config: local tasks inherit the caller's environment.
"""

from kfp import kubernetes
from kfp.dsl import PipelineTask

from kubeline.settings import get_settings

# Settings a task may need on a cluster; the ConfigMap's keys are these variable names.
SETTINGS_ENV = (
    "KUBELINE_MLFLOW_TRACKING_URI",
    "KUBELINE_EXPERIMENT_NAME",
    "KUBELINE_MODEL_NAME",
    "KUBELINE_S3_ENDPOINT_URL",
    "KUBELINE_S3_REGION",
)
SECRET_KEYS = {
    "access-key-id": "KUBELINE_S3_ACCESS_KEY_ID",
    "secret-access-key": "KUBELINE_S3_SECRET_ACCESS_KEY",
}


def with_cluster_settings(task: PipelineTask) -> PipelineTask:
    """Give a task the kubeline settings ConfigMap and the S3 Secret as environment variables."""
    settings = get_settings()
    kubernetes.use_config_map_as_env(
        task,
        config_map_name=settings.cluster_config_map,
        config_map_key_to_env={name: name for name in SETTINGS_ENV},
        optional=False,
    )
    kubernetes.use_secret_as_env(
        task, secret_name=settings.cluster_s3_secret, secret_key_to_env=SECRET_KEYS, optional=True
    )
    return task
