"""One Settings object: environment (KUBELINE_*), then an optional YAML file, then defaults.

Nothing else in kubeline reads the environment for configuration; endpoints, bucket names,
model names and credentials come from here (credentials only from the environment).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from kubeline import __version__

SETTINGS_FILE_ENV = "KUBELINE_SETTINGS_FILE"
DEFAULT_SETTINGS_FILE = "kubeline.yaml"


class Settings(BaseSettings):
    """Effective settings for one process."""

    # An empty variable is unset: a cluster's ConfigMap may hold a key with no value.
    model_config = SettingsConfigDict(env_prefix="KUBELINE_", extra="forbid", env_ignore_empty=True)

    state_dir: Path = Field(
        Path(".kubeline"),
        description="Folder holding the embedded MLflow store, local artifacts and run state.",
    )
    mlflow_tracking_uri: str | None = Field(
        None, description="MLflow tracking URI; default: a sqlite store in the state folder."
    )
    mlflow_artifact_location: str | None = Field(
        None,
        description="Artifact root for new experiments with the embedded store "
        "(default: state folder); a tracking server decides its own.",
    )
    experiment_name: str = Field("kubeline", description="MLflow experiment for pipeline runs.")
    model_name: str = Field(
        "kubeline-returns", description="Registered model name when the run config names none."
    )
    image: str = Field(
        f"kubeline-pipeline:{__version__}",
        description="The pipeline image: what `kubeline images build` tags, `kubeline compile` "
        "names in the spec and `kubeline run --runner docker` runs.",
    )
    cluster_config_map: str = Field(
        "kubeline-settings",
        description="ConfigMap whose KUBELINE_* keys every task reads on a cluster (compile time).",
    )
    cluster_s3_secret: str = Field(
        "kubeline-s3",
        description="Secret with access-key-id/secret-access-key for S3, on a cluster (compile time).",
    )
    runner: Literal["subprocess", "docker"] = Field(
        "subprocess",
        description="kfp.local runner for `kubeline run`: subprocess, or docker (tasks in the "
        "KUBELINE_IMAGE image, built by `kubeline images build`).",
    )
    container_user: str | None = Field(
        None,
        pattern=r"^[0-9]+(:[0-9]+)?$",
        description="uid[:gid] the docker runner's task containers run as; default: the invoking "
        "user, so the state folder's files stay theirs. 10001:10001 runs them as the image's "
        "own user, as a cluster does (the state folder must then be writable by it).",
    )
    keep_runs: int = Field(
        10, ge=1, description="Local runs whose task outputs stay in the state folder."
    )
    git_revision: str | None = Field(
        None, description="Source revision for lineage (set in images); default: the checkout's."
    )
    s3_endpoint_url: str | None = Field(
        None, description="S3-compatible endpoint (MinIO, SeaweedFS); default: AWS."
    )
    s3_region: str = Field("us-east-1", description="Region for S3 requests.")
    s3_access_key_id: SecretStr | None = Field(
        None, description="S3 access key; default: boto3's credential chain (AWS_* env vars)."
    )
    s3_secret_access_key: SecretStr | None = Field(None, description="S3 secret key.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = os.environ.get(SETTINGS_FILE_ENV, DEFAULT_SETTINGS_FILE)
        yaml_source = YamlConfigSettingsSource(settings_cls, yaml_file=path)
        return init_settings, env_settings, yaml_source

    @property
    def state_path(self) -> Path:
        return self.state_dir.expanduser().resolve()

    @property
    def embedded_store(self) -> tuple[Path, Path]:
        """The embedded MLflow store in the state folder: its database and artifact folder."""
        return self.state_path / "mlflow.db", self.state_path / "mlartifacts"

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.embedded_store[0]}"

    @property
    def artifact_location(self) -> str | None:
        """Where new experiments keep artifacts; None lets a tracking server decide."""
        if self.mlflow_artifact_location:
            return self.mlflow_artifact_location
        if self.mlflow_tracking_uri and self.mlflow_tracking_uri.startswith("http"):
            return None
        return self.embedded_store[1].as_uri()

    def masked(self) -> dict[str, Any]:
        """Effective settings as plain JSON-able values, secrets replaced by asterisks."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                out[name] = "********" if value.get_secret_value() else None
            elif isinstance(value, Path):
                out[name] = str(value)
            else:
                out[name] = value
        out["effective_tracking_uri"] = self.tracking_uri
        out["effective_artifact_location"] = self.artifact_location or "(tracking server's)"
        out["effective_state_dir"] = str(self.state_path)
        return out


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    from pydantic import ValidationError

    from kubeline.errors import ConfigError

    try:
        return Settings()
    except ValidationError as exc:
        bad = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(
            f"invalid settings: {bad}",
            hint=f"settings come from KUBELINE_* variables and {DEFAULT_SETTINGS_FILE} "
            f"(or the file named by {SETTINGS_FILE_ENV})",
        ) from None
