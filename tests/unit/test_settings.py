import json
import subprocess
import sys
from pathlib import Path

import pytest

from kubeline.errors import ConfigError
from kubeline.settings import Settings, get_settings


def test_settings_read_env_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KUBELINE_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("KUBELINE_MODEL_NAME", "my-model")
    s = Settings()
    assert s.state_path == tmp_path.resolve()
    assert s.model_name == "my-model"
    assert s.tracking_uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert s.artifact_location == (tmp_path.resolve() / "mlartifacts").as_uri()


def test_settings_yaml_file_is_below_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "k.yaml"
    path.write_text("model_name: from-file\nexperiment_name: exp-file\n")
    monkeypatch.setenv("KUBELINE_SETTINGS_FILE", str(path))
    monkeypatch.setenv("KUBELINE_MODEL_NAME", "from-env")
    s = Settings()
    assert s.model_name == "from-env"
    assert s.experiment_name == "exp-file"


def test_tracking_server_decides_artifact_location(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBELINE_MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert Settings().artifact_location is None


def test_masked_hides_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBELINE_S3_SECRET_ACCESS_KEY", "very-secret-value")
    masked = Settings().masked()
    assert masked["s3_secret_access_key"] == "********"
    assert "very-secret-value" not in json.dumps(masked)
    assert {"effective_tracking_uri", "model_name", "effective_artifact_location"} <= set(masked)


def settings_file_error(monkeypatch: pytest.MonkeyPatch, folder: Path, text: str) -> ConfigError:
    """The error loading a settings file holding ``text`` gives (it must give one)."""
    path = folder / "kubeline.yaml"
    path.write_text(text)
    monkeypatch.setenv("KUBELINE_SETTINGS_FILE", str(path))
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigError) as caught:
            get_settings()
    finally:
        get_settings.cache_clear()
    return caught.value


def test_unknown_yaml_key_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert "modle_name" in str(settings_file_error(monkeypatch, tmp_path, "modle_name: typo\n"))


def test_container_user_must_be_a_numeric_uid(monkeypatch: pytest.MonkeyPatch) -> None:
    # A name would be resolved inside the image, where the host's users do not exist.
    monkeypatch.setenv("KUBELINE_CONTAINER_USER", "kubeline")
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigError, match="container_user"):
            get_settings()
        monkeypatch.setenv("KUBELINE_CONTAINER_USER", "10001:10001")
        get_settings.cache_clear()
        assert get_settings().container_user == "10001:10001"
    finally:
        get_settings.cache_clear()


def test_config_command_prints_json_with_masked_secret(tmp_path: Path) -> None:
    env = {"KUBELINE_S3_ACCESS_KEY_ID": "AKIA-not-shown", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "kubeline", "config"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    ).stdout
    printed = json.loads(out)
    assert printed["s3_access_key_id"] == "********"
    assert "AKIA-not-shown" not in out
    assert printed["effective_tracking_uri"].startswith("sqlite:///")


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:5000",
        "https://mlflow.example.com",
        "sqlite:////abs/mlflow.db",
        "postgresql+psycopg2://user:pw@db:5432/mlflow",
        "file:///tmp/mlruns",
    ],
)
def test_tracking_uris_of_known_schemes_are_accepted(
    monkeypatch: pytest.MonkeyPatch, uri: str
) -> None:
    monkeypatch.setenv("KUBELINE_MLFLOW_TRACKING_URI", uri)
    assert Settings().tracking_uri == uri


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("ftp://host/x", "the unknown scheme 'ftp'"),
        ("mlflow.db", "no scheme"),
        ("http://", "names no host"),
        ("http://host:port", "is not a valid URL"),
    ],
)
def test_a_bad_tracking_uri_is_a_config_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, uri: str, expected: str
) -> None:
    monkeypatch.setenv("KUBELINE_MLFLOW_TRACKING_URI", uri)
    with pytest.raises(ConfigError, match="KUBELINE_MLFLOW_TRACKING_URI") as caught:
        get_settings()
    assert expected in str(caught.value)


def test_an_empty_settings_file_variable_reads_no_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "kubeline.yaml").write_text("model_name: from-cwd\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KUBELINE_SETTINGS_FILE", "")
    assert Settings().model_name == "kubeline-returns"
    monkeypatch.delenv("KUBELINE_SETTINGS_FILE")
    assert Settings().model_name == "from-cwd"  # kubeline.yaml here is read when present


def test_a_missing_settings_file_is_an_error_not_the_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KUBELINE_SETTINGS_FILE", str(tmp_path / "typo.yaml"))
    with pytest.raises(ConfigError, match=r"typo\.yaml, which does not exist"):
        get_settings()


def test_a_secret_value_is_never_shown_in_a_settings_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "k.yaml"
    path.write_text("s3_secret_access_key: [not, a, string]\n")  # the value would be shown
    monkeypatch.setenv("KUBELINE_SETTINGS_FILE", str(path))
    with pytest.raises(ConfigError, match="s3_secret_access_key") as caught:
        get_settings()
    assert "'not'" not in str(caught.value) and "a, string" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("http://bob:hunter2@host:5000/x", "http://bob:********@host:5000/x"),
        (
            "see postgresql+psycopg2://u:p%40ss@db/mlflow now",
            "see postgresql+psycopg2://u:********@db/mlflow now",
        ),
        ("http://host:5000/no-user", "http://host:5000/no-user"),
        ("s3://bucket/key:with:colons@x", "s3://bucket/key:with:colons@x"),
    ],
)
def test_mask_credentials_hides_only_uri_passwords(text: str, shown: str) -> None:
    from kubeline.errors import RegistryError, mask_credentials

    assert mask_credentials(text) == shown
    assert str(RegistryError(text, hint=text)) == f"{shown}\n  hint: {shown}"


def test_an_unknown_key_in_the_settings_file_is_named_without_its_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A misspelt secret must not be printed: the key is named, the value never.
    error = settings_file_error(monkeypatch, tmp_path, "s3_secret_key: hunter2-SECRET\n")
    assert "s3_secret_key" in str(error) and "hunter2" not in str(error)


def test_credentials_in_the_settings_file_are_refused_without_showing_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    error = settings_file_error(monkeypatch, tmp_path, "s3_secret_access_key: topsecret\n")
    assert error.hint is not None and "KUBELINE_S3_SECRET_ACCESS_KEY" in error.hint
    assert "topsecret" not in str(error) + error.hint


def test_a_relative_settings_file_is_the_same_file_for_a_child_started_elsewhere(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "k.yaml").write_text("model_name: from-relative-file\n")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KUBELINE_SETTINGS_FILE", "conf/k.yaml")
    assert Settings().model_name == "from-relative-file"
    # A step subprocess inherits the environment but not the working folder.
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "from kubeline.settings import Settings; print(Settings().model_name)",
        ],
        cwd=tmp_path / "elsewhere",
        capture_output=True,
        text=True,
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "from-relative-file"
