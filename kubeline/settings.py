"""One Settings object: environment (KUBELINE_*), then an optional YAML file, then defaults.

Nothing else in kubeline reads the environment for configuration; endpoints, bucket names,
model names and credentials come from here (credentials only from the environment).

Settings are checked when loaded, so a bad value stops the command that reads it with one
sentence naming the variable and the value, not a traceback from deep inside a step:
``KUBELINE_SETTINGS_FILE`` must name a file that exists and holds a YAML mapping; URIs must
have a scheme kubeline can use; the state folder must not be a file.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from kubeline import __version__
from kubeline.errors import ConfigError, mask_credentials

SETTINGS_FILE_ENV = "KUBELINE_SETTINGS_FILE"
DEFAULT_SETTINGS_FILE = "kubeline.yaml"
ENV_PREFIX = "KUBELINE_"
K8S_NAME = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"  # a Kubernetes object name (RFC 1123)
# An empty KUBELINE_* variable means unset (env_ignore_empty); a blank name is an error.
NOT_BLANK = r"\S"
# What MLflow's client can reach: a server, or a database/file store on this machine.
TRACKING_SCHEMES = ("http", "https", "sqlite", "postgresql", "mysql", "mssql", "file")
ARTIFACT_SCHEMES = ("s3", "file", "gs", "wasbs", "hdfs", "http", "https", "mlflow-artifacts")
# Setting -> (schemes it takes, whether a plain local path is fine, what to write instead).
URI_RULES: dict[str, tuple[tuple[str, ...], bool, str]] = {
    "mlflow_tracking_uri": (
        TRACKING_SCHEMES,
        False,
        f"use one of {', '.join(TRACKING_SCHEMES)} "
        "(e.g. http://127.0.0.1:5000 or sqlite:////abs/path/mlflow.db)",
    ),
    "mlflow_artifact_location": (
        ARTIFACT_SCHEMES,
        True,
        f"use a local folder or one of {', '.join(ARTIFACT_SCHEMES)}",
    ),
    "inference_log_location": (
        ("s3", "file"),
        True,
        "use a local folder or s3://BUCKET/prefix",
    ),
    "monitor_location": (
        ("s3", "file"),
        True,
        "use a local folder or s3://BUCKET/prefix",
    ),
    "retrain_data": (
        ("s3", "file"),
        True,
        "use a local folder or s3://BUCKET/prefix",
    ),
    "s3_endpoint_url": (
        ("http", "https"),
        False,
        "use an http(s) URL (e.g. http://127.0.0.1:9000), or leave it unset for AWS S3",
    ),
    "pushgateway_url": (
        ("http", "https"),
        False,
        "use the Pushgateway's http(s) URL (e.g. http://pushgateway:9091), or leave it unset",
    ),
    "kfp_host": (
        ("http", "https"),
        False,
        "use the KFP API's http(s) URL (e.g. http://127.0.0.1:8888 through a port-forward)",
    ),
    "kfp_ui_host": (
        ("http", "https"),
        False,
        "use the KFP UI's http(s) URL (e.g. http://127.0.0.1:8080), or leave it unset",
    ),
}


class Settings(BaseSettings):
    """Effective settings for one process."""

    # An empty variable is unset: a cluster's ConfigMap may hold a key with no value.
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", env_ignore_empty=True)

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
    experiment_name: str = Field(
        "kubeline", pattern=NOT_BLANK, description="MLflow experiment for pipeline runs."
    )
    model_name: str = Field(
        "kubeline-returns",
        pattern=NOT_BLANK,
        description="Registered model name when the run config names none.",
    )
    image: str = Field(
        f"kubeline-pipeline:{__version__}",
        pattern=r"^[^\s]+$",
        description="The pipeline image: what `kubeline images build` tags, `kubeline compile` "
        "names in the spec and `kubeline run --runner docker` runs.",
    )
    serving_image: str = Field(
        f"kubeline-serving:{__version__}",
        pattern=r"^[^\s]+$",
        description="The serving image: what `kubeline images build --role serving` tags.",
    )
    monitor_image: str = Field(
        f"kubeline-monitor:{__version__}",
        pattern=r"^[^\s]+$",
        description="The monitor image: what `kubeline images build --role monitor` tags.",
    )
    cluster_config_map: str = Field(
        "kubeline-settings",
        pattern=K8S_NAME,
        description="ConfigMap whose KUBELINE_* keys every task reads on a cluster (compile time).",
    )
    cluster_s3_secret: str = Field(
        "kubeline-s3",
        pattern=K8S_NAME,
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
    s3_region: str = Field("us-east-1", pattern=NOT_BLANK, description="Region for S3 requests.")
    s3_access_key_id: SecretStr | None = Field(
        None, description="S3 access key; default: boto3's credential chain (AWS_* env vars)."
    )
    s3_secret_access_key: SecretStr | None = Field(None, description="S3 secret key.")
    # KFP on a cluster: `kubeline submit`, `schedule` and `runs`.
    kfp_host: str | None = Field(
        None, description="KFP API endpoint for `kubeline submit`/`schedule`/`runs`."
    )
    kfp_ui_host: str | None = Field(
        None, description="KFP UI base URL for printed run links; default: KUBELINE_KFP_HOST."
    )
    kfp_namespace: str | None = Field(
        None,
        pattern=K8S_NAME,
        description="Kubernetes namespace (multi-user KFP profile); default: none (single-user).",
    )
    kfp_experiment: str = Field(
        "kubeline", pattern=NOT_BLANK, description="KFP experiment that runs are filed under."
    )
    kfp_token: SecretStr | None = Field(
        None, description="Bearer token for the KFP API (e.g. a ServiceAccount token)."
    )
    kfp_cookies: SecretStr | None = Field(
        None,
        description="Cookie header for a KFP behind a login proxy (e.g. authservice_session=...).",
    )
    kfp_poll_seconds: float = Field(
        5.0, gt=0, description="How often `kubeline submit --wait` asks KFP for the run's state."
    )
    # The inference log (kubeline.serving.inference_log): what the service predicted.
    inference_log_enabled: bool = Field(
        True, description="Record every served prediction in the inference log."
    )
    inference_log_location: str | None = Field(
        None,
        description="Where the inference log's Parquet files go: a local folder or "
        "s3://bucket/prefix; default: inference-log under the artifact location, else under "
        "the state folder.",
    )
    # The monitor (kubeline.steps.monitor): where each check's report and summary go.
    monitor_location: str | None = Field(
        None,
        description="Where monitoring checks are written (a dated folder each): a local folder "
        "or s3://bucket/prefix; default: monitor under an s3:// artifact location, else under "
        "the state folder.",
    )
    # Where a check's numbers and news go: a CronJob cannot be scraped, so it pushes them.
    pushgateway_url: str | None = Field(
        None,
        description="Prometheus Pushgateway each check's metrics are pushed to (job "
        "kubeline-monitor, grouped by model); default: none.",
    )
    # The loop back (kubeline.monitor.loop): what a retraining started by a check trains on.
    retrain_data: str | None = Field(
        None,
        description="Raw data a retraining started by `kubeline monitor` (retrain: auto) or "
        "`kubeline retrain --approve` trains on: a local folder or s3://bucket/prefix; default: "
        "where the judged version was trained from.",
    )
    monitor_textfile: Path | None = Field(
        None,
        description="File each check's metrics are written to (node-exporter textfile "
        "collector format) when no Pushgateway is set; default: none.",
    )
    monitor_webhook_url: SecretStr | None = Field(
        None,
        description="Webhook (Slack-compatible) told of a drift or decay check; secret: a "
        "Slack URL carries its token.",
    )
    inference_log_batch_rows: int = Field(
        1000, ge=1, description="Rows that make the inference log write a file."
    )
    inference_log_flush_seconds: float = Field(
        10.0, gt=0, description="Seconds a row may wait before the inference log writes it."
    )
    inference_log_max_buffered_rows: int = Field(
        100_000,
        ge=1,
        description="Rows the inference log holds while its store is unreachable; rows beyond "
        "are dropped and counted.",
    )

    # Serving (`kubeline serve`, the BentoML service).
    serve_host: str = Field(
        "127.0.0.1",
        pattern=r"^[^\s]+$",
        description="Address the service listens on (0.0.0.0 in a container).",
    )
    serve_port: int = Field(3000, ge=1, le=65535, description="Port the service listens on.")
    serve_workers: int | None = Field(
        None, ge=1, description="Service worker processes; default: the container's CPU limit."
    )
    serve_version: str | None = Field(
        None,
        pattern=r"^[0-9]+$",
        description="Serve this registered version instead of the alias (no alias polling).",
    )
    serve_alias: str = Field(
        "champion", pattern=NOT_BLANK, description="Registry alias the service serves and polls."
    )
    serve_reload_interval: float = Field(
        30.0,
        ge=0,
        description="Seconds between checks of the served alias in the registry; 0: never poll.",
    )
    serve_admin_token: SecretStr | None = Field(
        None, description="Bearer token for POST /admin/reload; unset: the endpoint is off."
    )
    serve_max_rows: int = Field(
        10_000, ge=1, description="Most rows (or bars) one request may carry."
    )
    serve_max_body_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, description="Largest request body the service reads, in bytes."
    )
    serve_access_log: bool = Field(
        False, description="Log one line per request (off: the log costs ~1/3 of the RPS)."
    )

    @field_validator("state_dir")
    @classmethod
    def _state_dir_is_a_folder(cls, value: Path) -> Path:
        # A file there (the state folder itself, or one of its parents) would fail every
        # command that writes state; the output policy's own check says which.
        _folder_can_be_made(value, "the state folder")
        return value

    @field_validator("monitor_textfile")
    @classmethod
    def _textfile_can_be_written(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        if value.is_dir():
            raise ValueError("is a folder; name the .prom file to write")
        if value.suffix != ".prom":  # node-exporter's textfile collector reads only these
            raise ValueError("does not end in .prom; name a file like kubeline.prom")
        _folder_can_be_made(value.parent, "the textfile's folder")
        return value

    @field_validator("monitor_webhook_url")
    @classmethod
    def _webhook_is_http(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if _scheme(value.get_secret_value()) not in ("http", "https"):
            # The value is a secret: never echoed, so the message says what is wrong alone.
            raise ValueError("is not an http(s) URL; use the webhook's https://... URL")
        return value

    @field_validator(*URI_RULES)
    @classmethod
    def _uri_has_a_known_scheme(cls, value: str | None, info: ValidationInfo) -> str | None:
        if not value:
            return None
        schemes, path_ok, usage = URI_RULES[str(info.field_name)]
        scheme = _scheme(value)
        if (scheme or not path_ok) and scheme.split("+", 1)[0] not in schemes:
            found = f"the unknown scheme {scheme!r}" if scheme else "no scheme"
            raise ValueError(f"has {found}; {usage}")  # the value is shown beside the name
        if scheme in ("http", "https"):
            _require_host(value)
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = settings_file()
        if path is None:
            return init_settings, env_settings
        yaml_source = _YamlWithoutSecrets(settings_cls, yaml_file=path)
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

    @property
    def shown_tracking_uri(self) -> str:
        """The tracking URI as it may be printed or logged: any password masked."""
        return mask_credentials(self.tracking_uri)

    def masked(self) -> dict[str, Any]:
        """Effective settings as plain JSON-able values, secrets replaced by asterisks.

        Secret fields are masked whole; any other text is masked where it holds a URI's
        password (``http://user:********@host``).
        """
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                out[name] = "********" if value.get_secret_value() else None
            elif isinstance(value, Path):
                out[name] = str(value)
            elif isinstance(value, str):
                out[name] = mask_credentials(value)
            else:
                out[name] = value
        out["effective_tracking_uri"] = self.shown_tracking_uri
        location = self.artifact_location
        out["effective_artifact_location"] = (
            mask_credentials(location) if location else "(tracking server's)"
        )
        out["effective_state_dir"] = str(self.state_path)
        return out


def _scheme(uri: str) -> str:
    return uri.partition("://")[0].lower() if "://" in uri else ""


def _require_host(uri: str) -> None:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018  # raises ValueError for a port that is not a number
    except ValueError as exc:
        raise ValueError(f"is not a valid URL ({exc})") from None
    if not parts.hostname:
        raise ValueError("names no host")


def settings_file() -> Path | None:
    """The YAML settings file to read, or None when there is none to read.

    ``KUBELINE_SETTINGS_FILE`` must name a file that exists: a typo there would otherwise
    silently fall back to the defaults. Set to the empty string it means "no file" (a child
    process that must see only the defaults). ``kubeline.yaml`` in the working folder is optional.
    A relative ``KUBELINE_SETTINGS_FILE`` is made absolute here, in the environment too, so
    child processes started in another folder read the same file.
    """
    import yaml

    named = os.environ.get(SETTINGS_FILE_ENV)
    if named == "":
        return None
    path = Path(named or DEFAULT_SETTINGS_FILE).expanduser()
    hint = f"unset {SETTINGS_FILE_ENV} to use only KUBELINE_* variables and the defaults"
    if not path.exists():
        if named:
            raise ConfigError(f"{SETTINGS_FILE_ENV} names {path}, which does not exist", hint=hint)
        return None
    if not path.is_file():
        raise ConfigError(f"the settings file {path} is a folder, not a YAML file", hint=hint)
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(
            f"the settings file {path} is not valid YAML{where}: {problem}",
            hint="fix the file: one `key: value` per line, as in `kubeline config`",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the settings file {path}: {exc}") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(
            f"the settings file {path} holds a {type(loaded).__name__}, not a mapping of settings",
            hint="write one `key: value` per line, as in `kubeline config`",
        )
    if named and named != str(path.resolve()):
        # Step subprocesses inherit the variable, not this process's folder: hand them the
        # file this process read, wherever they start.
        path = path.resolve()
        os.environ[SETTINGS_FILE_ENV] = str(path)
    return path


class _YamlWithoutSecrets(YamlConfigSettingsSource):
    """The settings file, which may hold anything but credentials (a file gets copied around)."""

    def __call__(self) -> dict[str, Any]:
        data = super().__call__()
        found = sorted(k for k in data if k in _secret_fields())
        if found:
            variables = ", ".join(f"{ENV_PREFIX}{k.upper()}" for k in found)
            raise ConfigError(
                f"the settings file {settings_file_name()} holds credentials ({', '.join(found)}); "
                "they are read only from the environment",
                hint=f"remove them from the file and set {variables} (on a cluster: the "
                "Kubernetes Secret)",
            )
        return data


def _secret_fields() -> set[str]:
    """Settings that are credentials: never shown, never read from the settings file."""
    return {n for n, f in Settings.model_fields.items() if f.annotation == SecretStr | None}


def _folder_can_be_made(path: Path, what: str) -> None:
    """A ValueError (pydantic's) saying why ``path`` cannot be a folder, per the output policy."""
    from kubeline.errors import StorageError
    from kubeline.storage import check_folder_target

    try:
        check_folder_target(path, what)
    except StorageError as exc:
        raise ValueError(exc.message) from None


def settings_error(exc: ValidationError) -> ConfigError:
    """Invalid settings as one message naming each setting, its variable and what is wrong."""
    secret = _secret_fields()
    bad = []
    for error in exc.errors():
        name = ".".join(str(p) for p in error["loc"]) or "(root)"
        variable = f"{ENV_PREFIX}{name.upper()}" if name in Settings.model_fields else name
        message = str(error["msg"]).removeprefix("Value error, ")
        # An unknown key may be a misspelt secret: its value is never shown either.
        hidden = name in secret or error["type"] == "extra_forbidden" or "input" not in error
        shown = "" if hidden else f" = {error['input']!r}"
        if error["type"] == "extra_forbidden":
            message = "is not a setting (see `kubeline config` for the names)"
            variable = name
        label = f"{name} ({variable})" if variable != name else name
        bad.append(f"{label}{mask_credentials(shown)}: {message}")
    source = settings_file_name()
    return ConfigError(
        f"invalid settings: {'; '.join(bad)}",
        hint=f"settings come from {ENV_PREFIX}* variables and {source}",
    )


def settings_file_name() -> str:
    named = os.environ.get(SETTINGS_FILE_ENV)
    return named or f"{DEFAULT_SETTINGS_FILE} (or the file named by {SETTINGS_FILE_ENV})"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once and checked (ConfigError when invalid)."""
    try:
        return Settings()
    except ValidationError as exc:
        raise settings_error(exc) from None
