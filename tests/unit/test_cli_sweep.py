"""Every command, fed bad paths, bad settings and bad URIs: one sentence, non-zero, no traceback.

Tests run as root, for whom permissions do not stop a write; "unwritable" is a path under a
file, which no user can create.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from kubeline.settings import Settings

# Every command, with arguments that would otherwise be accepted (paths filled in per test).
COMMANDS: dict[str, list[str]] = {
    "validate": ["validate", "{data}"],
    "features": ["features", "--data", "{data}", "--out", "{tmp}/f.parquet"],
    "compile": ["compile", "--out", "{tmp}/specs"],
    "predict": ["predict", "--data", "{data}", "--out", "{tmp}/p.parquet"],
    "run": ["run", "--data", "{data}"],
    "demo": ["demo"],
    "promote": ["promote", "--version", "1"],
    "rollback": ["rollback"],
    "models": ["models"],
    "config": ["config"],
    "data generate": ["data", "generate", "--out", "{tmp}/gen", "--tickers", "2"],
    "images build": ["images", "build"],
    "submit": ["submit", "--data", "s3://bucket/raw"],
    "schedule": ["schedule", "--cron", "0 6 * * 1-5", "--name", "nightly", "--data", "s3://b/raw"],
    "runs": ["runs"],
    "upload": ["upload"],
    "chart render": ["chart", "render", "--out", "{tmp}/manifests"],
    "serve": ["serve"],
    "monitor": ["monitor", "--current", "{data}"],
}

# One invalid value per setting that can be invalid; {file} is an existing plain file.
BAD_SETTINGS: dict[str, list[str]] = {
    "KUBELINE_STATE_DIR": ["{file}", "{file}/state"],
    "KUBELINE_MLFLOW_TRACKING_URI": ["ftp://host/x", "http://", "mlflow.db", "http://h:port"],
    "KUBELINE_MLFLOW_ARTIFACT_LOCATION": ["foo://bucket/x"],
    "KUBELINE_EXPERIMENT_NAME": ["  "],
    "KUBELINE_MODEL_NAME": ["  "],
    "KUBELINE_IMAGE": ["has a space"],
    "KUBELINE_SERVING_IMAGE": ["has a space"],
    "KUBELINE_MONITOR_IMAGE": ["has a space"],
    "KUBELINE_CLUSTER_CONFIG_MAP": ["Not_A_Name"],
    "KUBELINE_CLUSTER_S3_SECRET": ["-bad-"],
    "KUBELINE_RUNNER": ["kubernetes"],
    "KUBELINE_INFERENCE_LOG_ENABLED": ["maybe"],
    "KUBELINE_INFERENCE_LOG_LOCATION": ["ftp://host/log"],
    "KUBELINE_MONITOR_LOCATION": ["ftp://host/checks"],
    "KUBELINE_RETRAIN_DATA": ["ftp://host/raw"],
    "KUBELINE_PUSHGATEWAY_URL": ["pushgateway:9091", "ftp://gw", "http://"],
    "KUBELINE_MONITOR_TEXTFILE": ["{file}/kubeline.prom", "{tmp}", "{tmp}/kubeline.txt"],
    "KUBELINE_MONITOR_WEBHOOK_URL": ["hooks.slack.com/services/T/B/x"],
    "KUBELINE_INFERENCE_LOG_BATCH_ROWS": ["0", "many"],
    "KUBELINE_INFERENCE_LOG_FLUSH_SECONDS": ["0"],
    "KUBELINE_INFERENCE_LOG_MAX_BUFFERED_ROWS": ["-1"],
    "KUBELINE_CONTAINER_USER": ["root"],
    "KUBELINE_KEEP_RUNS": ["0", "many"],
    "KUBELINE_S3_ENDPOINT_URL": ["localhost:9000", "http://"],
    "KUBELINE_S3_REGION": ["  "],
    "KUBELINE_KFP_HOST": ["127.0.0.1:8888", "ftp://kfp", "http://"],
    "KUBELINE_KFP_UI_HOST": ["kfp-ui", "http://"],
    "KUBELINE_KFP_NAMESPACE": ["Team_A"],
    "KUBELINE_KFP_EXPERIMENT": ["  "],
    "KUBELINE_KFP_POLL_SECONDS": ["0", "often"],
    "KUBELINE_SERVE_HOST": ["has space"],
    "KUBELINE_SERVE_PORT": ["0", "http"],
    "KUBELINE_SERVE_WORKERS": ["0", "all"],
    "KUBELINE_SERVE_VERSION": ["latest"],
    "KUBELINE_SERVE_ALIAS": ["  "],
    "KUBELINE_SERVE_RELOAD_INTERVAL": ["-1", "often"],
    "KUBELINE_SERVE_MAX_ROWS": ["0"],
    "KUBELINE_SERVE_MAX_BODY_BYTES": ["10"],
    "KUBELINE_SERVE_ACCESS_LOG": ["maybe"],
}
# Free text or credentials: no value is invalid.
ANY_VALUE = {
    "git_revision",
    "s3_access_key_id",
    "s3_secret_access_key",
    "kfp_token",
    "kfp_cookies",
    "serve_admin_token",
}


def assert_one_clean_error(done: object, *named: str, code: int | None = None) -> None:
    exit_code, output, flat = done.exit_code, done.output, done.flat  # type: ignore[attr-defined]
    assert exit_code != 0, output
    if code is not None:
        assert exit_code == code, output
    assert "Traceback" not in output and done.exception is None, output  # type: ignore[attr-defined]
    assert flat.startswith("error: ") or " error: " in flat, output
    for value in named:
        assert value in flat, f"{value!r} not named in: {output}"


@pytest.fixture
def paths(tmp_path: Path) -> dict[str, str]:
    data = tmp_path / "data"
    data.mkdir()
    (data / "AAA.csv").write_text("Date,Close\n2001-01-02,10\n")
    plain = tmp_path / "plain.txt"
    plain.write_text("a file\n")
    return {"data": str(data), "tmp": str(tmp_path), "file": str(plain)}


def fill(args: list[str], paths: dict[str, str]) -> list[str]:
    return [a.format(**paths) for a in args]


def test_every_setting_that_can_be_invalid_is_swept() -> None:
    swept = {name.removeprefix("KUBELINE_").lower() for name in BAD_SETTINGS}
    assert swept | ANY_VALUE == set(Settings.model_fields)


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize(
    ("variable", "value"), [(k, v) for k, values in BAD_SETTINGS.items() for v in values]
)
def test_a_bad_setting_stops_every_command_with_its_name(
    cli: Callable[..., object],
    monkeypatch: pytest.MonkeyPatch,
    paths: dict[str, str],
    command: str,
    variable: str,
    value: str,
) -> None:
    monkeypatch.setenv(variable, value.format(**paths))
    done = cli(*fill(COMMANDS[command], paths))
    assert_one_clean_error(done, variable, code=2)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "does not exist"),
        ("folder", "is a folder"),
        ("model_name: [unclosed\n", "is not valid YAML at line"),
        ("- a\n- list\n", "not a mapping"),
        ("modle_name: typo\n", "modle_name: is not a setting"),
        ("keep_runs: -1\n", "keep_runs (KUBELINE_KEEP_RUNS) = -1"),
    ],
)
@pytest.mark.parametrize("command", ["validate", "config", "data generate"])
def test_a_bad_settings_file_stops_the_command(
    cli: Callable[..., object],
    monkeypatch: pytest.MonkeyPatch,
    paths: dict[str, str],
    tmp_path: Path,
    content: str | None,
    expected: str,
    command: str,
) -> None:
    path = tmp_path / "kubeline.yaml"
    if content == "folder":
        path.mkdir()
    elif content is not None:
        path.write_text(content)
    monkeypatch.setenv("KUBELINE_SETTINGS_FILE", str(path))
    assert_one_clean_error(cli(*fill(COMMANDS[command], paths)), expected, code=2)


BAD_PATHS = {
    "validate: missing data": (["validate", "{tmp}/missing"], "{tmp}/missing"),
    "validate: config missing": (
        ["validate", "{data}", "--config", "{tmp}/none.yaml"],
        "{tmp}/none.yaml",
    ),
    "validate: config is a folder": (["validate", "{data}", "--config", "{tmp}"], "{tmp}"),
    "features: missing data": (
        ["features", "--data", "{tmp}/missing", "--out", "{tmp}/f.parquet"],
        "{tmp}/missing",
    ),
    "features: out is a folder": (
        ["features", "--data", "{data}", "--out", "{tmp}"],
        "is a folder, where a file is expected",
    ),
    "features: out under a file": (
        ["features", "--data", "{data}", "--out", "{file}/f.parquet"],
        "{file} is a file, not a folder",
    ),
    "predict: missing data": (
        ["predict", "--data", "{tmp}/missing", "--out", "{tmp}/p.parquet"],
        "{tmp}/missing",
    ),
    "predict: out is a folder": (
        ["predict", "--data", "{data}", "--out", "{tmp}"],
        "is a folder, where a file is expected",
    ),
    "predict: out inside the data": (
        ["predict", "--data", "{data}", "--out", "{data}/p.csv"],
        "would replace or sit inside the input data",
    ),
    "predict: out under a file": (
        ["predict", "--data", "{data}", "--out", "{file}/p.parquet"],
        "{file} is a file, not a folder",
    ),
    "compile: out is a file": (["compile", "--out", "{file}"], "{file} is a file"),
    "compile: out under a file": (
        ["compile", "--out", "{file}/specs"],
        "{file} is a file, not a folder",
    ),
    "run: missing data": (["run", "--data", "{tmp}/missing"], "{tmp}/missing"),
    "run: no data": (["run"], "kubeline run needs --data"),
    "run: config is a folder": (["run", "--data", "{data}", "--config", "{tmp}"], "{tmp}"),
    "data generate: out is a file": (["data", "generate", "--out", "{file}"], "{file} is a file"),
    "data generate: out under a file": (
        ["data", "generate", "--out", "{file}/gen"],
        "{file} is a file, not a folder",
    ),
    "data generate: out holds the user's files": (
        ["data", "generate", "--out", "{data}"],
        "already holds files kubeline did not write (AAA.csv)",
    ),
    "data generate: negative seed": (
        ["data", "generate", "--out", "{tmp}/g", "--seed", "-1"],
        "-1",
    ),
    "data generate: a non-stationary signal": (
        ["data", "generate", "--out", "{tmp}/g", "--return-ar", "1"],
        "strictly between -1 and 1",
    ),
    "images build: wheelhouse is a file": (
        ["images", "build", "--wheelhouse", "{file}"],
        "",
    ),
    "chart render: out is a file": (["chart", "render", "--out", "{file}"], "{file}"),
    "chart render: out holds the user's files": (
        ["chart", "render", "--out", "{data}"],
        "already holds files kubeline did not write (AAA.csv)",
    ),
    "chart render: no chart there": (["chart", "render", "--chart", "{tmp}"], "no Helm chart"),
}


@pytest.mark.parametrize("case", sorted(BAD_PATHS))
def test_a_bad_path_is_one_sentence_naming_it(
    cli: Callable[..., object], paths: dict[str, str], case: str
) -> None:
    args, named = BAD_PATHS[case]
    before = sorted(p.name for p in Path(paths["data"]).iterdir())
    done = cli(*fill(args, paths))
    if case == "data generate: negative seed":  # typer's own usage error, not a traceback
        assert done.exit_code == 2 and "Traceback" not in done.output  # type: ignore[attr-defined]
        assert "--seed" in done.flat  # type: ignore[attr-defined]
        return
    assert_one_clean_error(done, *([named.format(**paths)] if named else []))
    assert sorted(p.name for p in Path(paths["data"]).iterdir()) == before  # nothing deleted


BAD_URIS = {
    "no bucket": "s3:///raw",
    "a whole bucket": "s3://bucket",
}


@pytest.mark.parametrize("uri", sorted(BAD_URIS.values()))
@pytest.mark.parametrize("command", ["validate", "features", "run"])
def test_a_bad_data_uri_is_one_sentence_naming_it(
    cli: Callable[..., object], paths: dict[str, str], uri: str, command: str
) -> None:
    args = [a if a != "{data}" else uri for a in COMMANDS[command]]
    assert_one_clean_error(cli(*fill(args, paths)), uri)


@pytest.mark.parametrize("command", ["config", "models", "promote", "rollback", "serve"])
def test_a_password_in_the_tracking_uri_is_never_printed(
    cli: Callable[..., object], monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("KUBELINE_MLFLOW_TRACKING_URI", f"http://alice:pa55word@127.0.0.1:{port}")
    done = cli(*COMMANDS[command])
    assert "pa55word" not in done.output  # type: ignore[attr-defined]
    assert "alice:********@127.0.0.1" in done.output  # type: ignore[attr-defined]
    if command != "config":
        assert_one_clean_error(done, "does not answer")
