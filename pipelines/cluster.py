"""What a compiled spec names of the world it runs in: the image, a ConfigMap, a Secret.

Nothing about endpoints or credentials is compiled into the spec; only the image every task
runs in and the names of the ConfigMap (settings) and the Secret (S3 credentials). Both are
optional, and so is every key: a cluster on plain AWS S3 has no ``KUBELINE_S3_ENDPOINT_URL``,
one with workload identity no Secret, and an absent or empty key means "unset". What a missing
ConfigMap used to guard against, a task logging to a throwaway store in its own filesystem, is
guarded at run time instead (``kubeline.pod``): a task in a pod with no tracking URI
stops at once and names the ConfigMap. kfp.local ignores this platform config: local tasks
inherit the caller's environment.
"""

from __future__ import annotations

from dataclasses import dataclass

from kfp import kubernetes
from kfp.dsl import PipelineTask

from kubeline.settings import Settings

# Settings a task may need on a cluster; the ConfigMap's keys are these variable names.
SETTINGS_ENV = (
    "KUBELINE_MLFLOW_TRACKING_URI",
    "KUBELINE_EXPERIMENT_NAME",
    "KUBELINE_MODEL_NAME",
    "KUBELINE_S3_ENDPOINT_URL",
    "KUBELINE_S3_REGION",
    # Where the service's inference log and the monitor's checks live (the monitoring step).
    "KUBELINE_INFERENCE_LOG_LOCATION",
    "KUBELINE_MONITOR_LOCATION",
)
SECRET_KEYS = {
    "access-key-id": "KUBELINE_S3_ACCESS_KEY_ID",
    "secret-access-key": "KUBELINE_S3_SECRET_ACCESS_KEY",
}
# Set on every task so the run-time check names the ConfigMap this spec was compiled with.
CONFIG_MAP_ENV = "KUBELINE_CLUSTER_CONFIG_MAP"


@dataclass(frozen=True)
class Platform:
    """The compile-time names: the image every task runs in, the ConfigMap and the Secret."""

    image: str
    config_map: str
    s3_secret: str
    # The monitoring step's image: Evidently is in it, not in the pipeline image.
    monitor_image: str = Settings.model_fields["monitor_image"].default

    @classmethod
    def of(cls, settings: Settings) -> Platform:
        """The names these settings give (``KUBELINE_IMAGE``, ``KUBELINE_CLUSTER_*``)."""
        return cls(
            settings.image,
            settings.cluster_config_map,
            settings.cluster_s3_secret,
            settings.monitor_image,
        )

    @classmethod
    def defaults(cls) -> Platform:
        """The names with default settings, whatever this process's environment says."""
        fields = Settings.model_fields
        return cls(
            fields["image"].default,
            fields["cluster_config_map"].default,
            fields["cluster_s3_secret"].default,
            fields["monitor_image"].default,
        )


def on_platform(task: PipelineTask, platform: Platform, image: str | None = None) -> PipelineTask:
    """Run a task in the platform's image (or ``image``) with the settings ConfigMap and the S3
    Secret as env."""
    task.set_container_image(image or platform.image)
    task.set_env_variable(CONFIG_MAP_ENV, platform.config_map)
    kubernetes.use_config_map_as_env(
        task,
        config_map_name=platform.config_map,
        config_map_key_to_env={name: name for name in SETTINGS_ENV},
        optional=True,
    )
    kubernetes.use_secret_as_env(
        task, secret_name=platform.s3_secret, secret_key_to_env=SECRET_KEYS, optional=True
    )
    return task
