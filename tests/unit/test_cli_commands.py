"""`features`, `compile`, `config`, `--version` and `--help`, in-process, on real files."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from kubeline import __version__
from kubeline.data.generate import generate, write_dataset

CliRun = Callable[..., Any]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli") / "yahoo"
    write_dataset(generate(tickers=3, years=1.0, seed=4), folder, "yahoo")
    return folder


def test_features_writes_the_parquet_file_and_says_what_it_wrote(
    cli: CliRun, data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "features.parquet"
    done = cli("features", "--data", data, "--out", out, "--hash")
    assert done.exit_code == 0, done.output
    written = pl.read_parquet(out)
    assert f"wrote {written.height:,} rows" in done.flat and "for 3 tickers" in done.flat
    assert "content hash of the clean data: sha256:" in done.flat


def test_features_replaces_only_its_own_file(cli: CliRun, data: Path, tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep")
    out = tmp_path / "features.parquet"
    out.write_text("an old output")
    assert cli("features", "--data", data, "--out", out).exit_code == 0
    assert pl.read_parquet(out).height > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features.parquet", "mine.txt"]


def test_features_with_a_bad_feature_name_fails_before_reading_data(
    cli: CliRun, tmp_path: Path
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("features: [rsi_14, no_such_feature]\n")
    done = cli(
        "features", "--data", tmp_path / "absent", "--out", tmp_path / "f.pq", "--config", config
    )
    assert done.exit_code == 2, done.output
    assert "unknown feature(s) no_such_feature" in done.flat
    assert "absent" not in done.flat  # the config is refused first


def test_run_with_a_bad_feature_name_fails_before_any_step(
    cli: CliRun, data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    monkeypatch.setenv("KUBELINE_STATE_DIR", str(state))
    config = tmp_path / "bad.yaml"
    config.write_text("features: [no_such_feature]\n")
    done = cli("run", "--data", data, "--config", config)
    assert done.exit_code == 2, done.output
    assert "bad.yaml: features: unknown feature(s) no_such_feature; choose from" in done.flat
    assert "ingest" not in done.output and not state.exists()


def test_compile_writes_each_pipeline_into_the_folder(cli: CliRun, tmp_path: Path) -> None:
    out = tmp_path / "specs"
    out.mkdir()
    (out / "README.txt").write_text("not kubeline's")
    done = cli("compile", "--out", out)
    assert done.exit_code == 0, done.output
    assert f"wrote{out / 'training.yaml'}" in "".join(done.stdout.split())  # long paths wrap
    assert (out / "README.txt").read_text() == "not kubeline's"
    assert "pipelineInfo" in (out / "training.yaml").read_text()


def test_config_prints_every_setting_with_secrets_and_uri_passwords_masked(
    cli: CliRun, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KUBELINE_S3_SECRET_ACCESS_KEY", "s3cr3t-value")
    monkeypatch.setenv("KUBELINE_MLFLOW_TRACKING_URI", "https://bob:hunter2@mlflow.example:443")
    monkeypatch.setenv("KUBELINE_STATE_DIR", str(tmp_path))
    done = cli("config")
    assert done.exit_code == 0, done.output
    printed = json.loads(done.stdout)
    assert printed["s3_secret_access_key"] == "********"
    assert printed["effective_tracking_uri"] == "https://bob:********@mlflow.example:443"
    assert "hunter2" not in done.output and "s3cr3t-value" not in done.output
    assert printed["effective_state_dir"] == str(tmp_path.resolve())


def test_version_prints_the_package_version(cli: CliRun) -> None:
    done = cli("--version")
    assert done.exit_code == 0 and done.stdout.strip() == f"kubeline {__version__}"


def test_boolean_flags_show_no_type_in_help(cli: CliRun) -> None:
    for command in (["--help"], ["compile", "--help"], ["models", "--help"]):
        done = cli(*command)
        assert done.exit_code == 0 and "<bool>" not in done.output, done.output


def test_help_imports_nothing_heavy() -> None:
    heavy = ["mlflow", "sklearn", "kfp", "polars", "pandas", "pyarrow", "numpy", "boto3", "docker"]
    code = (
        "import sys\n"
        "from kubeline.cli import app\n"
        "try:\n"
        "    app(['--help'], prog_name='kubeline')\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print('loaded:', ','.join(m for m in {heavy!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = done.stdout.strip().splitlines()[-1]
    assert loaded == "loaded:", f"`kubeline --help` imported {loaded}"
