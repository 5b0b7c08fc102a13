"""What a pipeline task checks first when it runs in a Kubernetes pod (called by every component)."""

from __future__ import annotations

import os


def require_cluster_settings() -> None:
    """Stop a task in a pod that has no tracking URI, naming the ConfigMap that should give it.

    The settings ConfigMap and each of its keys are optional (``kubeline.pipelines.cluster``),
    so a pod starts without them; without a tracking URI it would log to a store in its own
    filesystem that vanishes with the pod, and the registry would never see the model.
    ``KUBERNETES_SERVICE_HOST`` is set in every pod; kfp.local tasks do not have it.
    """
    if not in_pod():
        return
    from kubeline.errors import ConfigError
    from kubeline.settings import get_settings

    settings = get_settings()
    if settings.mlflow_tracking_uri:
        return
    raise ConfigError(
        "this task runs in a Kubernetes pod and KUBELINE_MLFLOW_TRACKING_URI is not set: "
        f"the ConfigMap {settings.cluster_config_map!r} is missing or has no such key",
        hint=f"create the ConfigMap {settings.cluster_config_map!r} in the run's namespace with "
        "KUBELINE_MLFLOW_TRACKING_URI (the MLflow server's URL)",
    )


def in_pod() -> bool:
    """Whether this process runs in a Kubernetes pod (kfp.local tasks do not)."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
