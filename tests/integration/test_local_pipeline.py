"""The compiled training pipeline, run with kfp.local on the embedded default (sqlite MLflow).

Each test drives the real CLI in a subprocess, the way a user does, with its own state folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from kubeline.data.generate import generate, write_dataset

pytestmark = pytest.mark.integration

KUBELINE = str(Path(sys.executable).parent / "kubeline")
REPO = Path(__file__).resolve().parents[2]


def cli(state: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("KUBELINE_", "MLFLOW_", "AWS_"))
    }
    env.update(
        KUBELINE_STATE_DIR=str(state), MLFLOW_DISABLE_TELEMETRY="true", COLUMNS="200", NO_COLOR="1"
    )
    done = subprocess.run(
        [KUBELINE, *args], env=env, capture_output=True, text=True, cwd=REPO, timeout=600
    )
    if check and done.returncode != 0:
        raise AssertionError(f"kubeline {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def client(state: Path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{state / 'mlflow.db'}"
    return MlflowClient(uri, uri)


@pytest.fixture(scope="module")
def market() -> pl.DataFrame:
    # Large enough that the planted signal is significant on 18 of 20 seeds (6 x 3: 12 of 20).
    return generate(tickers=12, years=4, seed=11)


def test_run_registers_champion_with_lineage_metrics_and_artifacts(
    tmp_path: Path, market: pl.DataFrame
) -> None:
    data = tmp_path / "yahoo"
    write_dataset(market, data, "yahoo")
    state = tmp_path / "state"
    out = cli(state, "run", "--data", str(data)).stdout
    assert "version 1 as champion" in out
    assert "holdout rmse" in out
    reports = list((state / "reports").glob("*.html"))
    assert len(reports) == 1 and "<html" in reports[0].read_text().lower()

    c = client(state)
    mv = c.get_model_version_by_alias("kubeline-returns", "champion")
    assert str(mv.version) == "1"
    for key in ("pipeline_name", "pipeline_run_id", "git_revision", "data_hash"):
        assert mv.tags.get(f"kubeline.{key}"), f"model version lacks lineage tag {key}"
    assert mv.tags["kubeline.data_hash"].startswith("sha256:")
    run = c.get_run(mv.run_id)
    assert run.data.tags["kubeline.pipeline_run_id"] == mv.tags["kubeline.pipeline_run_id"]
    for metric in ("holdout_rmse", "holdout_mae", "holdout_r2", "holdout_directional_accuracy"):
        assert metric in run.data.metrics
    assert "baseline_persistence_rmse" in run.data.metrics
    assert "backtest_strategy_sharpe" in run.data.metrics
    assert run.data.params["target"] == "next_return"
    inputs = run.inputs.dataset_inputs
    assert inputs and inputs[0].dataset.digest == mv.tags["kubeline.data_hash"][7:43]
    artifacts = {a.path for a in c.list_artifacts(run.info.run_id)}
    assert {"report.html", "plots", "evaluation.json", "run-config.yaml"} <= artifacts
    plots = [a.path for a in c.list_artifacts(run.info.run_id, "plots")]
    assert any(p.endswith(".png") for p in plots)

    import mlflow

    # Both URIs: an earlier test in this process may have pointed the registry elsewhere.
    mlflow.set_tracking_uri(f"sqlite:///{state / 'mlflow.db'}")
    mlflow.set_registry_uri(f"sqlite:///{state / 'mlflow.db'}")
    info = mlflow.models.get_model_info("models:/kubeline-returns/1")
    assert info.signature is not None and info.signature.inputs is not None

    # The same data again cannot strictly beat the champion: it stays challenger.
    out = cli(state, "run", "--data", str(data)).stdout
    assert "version 2 as challenger" in out
    assert str(c.get_model_version_by_alias("kubeline-returns", "champion").version) == "1"
    reason = c.get_model_version("kubeline-returns", "2").tags["kubeline.gate_reason"]
    assert "champion" in reason

    # Promotion by hand and rollback move the alias; history is kept.
    cli(state, "promote", "--version", "2")
    assert str(c.get_model_version_by_alias("kubeline-returns", "champion").version) == "2"
    cli(state, "rollback")
    assert str(c.get_model_version_by_alias("kubeline-returns", "champion").version) == "1"
    failed = cli(state, "rollback", check=False)
    assert failed.returncode != 0 and "no earlier champion" in failed.stderr
    listed = {v["version"]: v for v in json.loads(cli(state, "models", "--json").stdout)}
    assert listed["1"]["aliases"] == ["champion"] and listed["1"]["gate"] == "passed"
    assert listed["2"]["aliases"] == [] and listed["2"]["gate"] == "failed"
    assert "constant" in listed["1"]["scores"]

    # A model that answers another question is never compared with (nor replaces) the champion.
    other = tmp_path / "log-returns.yaml"
    other.write_text("target: next_log_return\n")
    out = cli(state, "run", "--data", str(data), "--config", str(other)).stdout
    assert "version 3 as challenger" in out
    assert "predicts target=next_return, not next_log_return" in " ".join(out.split())
    assert str(c.get_model_version_by_alias("kubeline-returns", "champion").version) == "1"
    assert c.get_model_version("kubeline-returns", "3").tags["kubeline.target"] == "next_log_return"


@pytest.mark.parametrize("layout", ["kaggle", "long"])
def test_run_reads_other_layouts(tmp_path: Path, market: pl.DataFrame, layout: str) -> None:
    data = tmp_path / layout
    write_dataset(market, data, layout)
    out = cli(tmp_path / "state", "run", "--data", str(data)).stdout
    assert "registered kubeline-returns version 1" in out


def test_run_works_with_only_date_ticker_and_close(tmp_path: Path, market: pl.DataFrame) -> None:
    path = tmp_path / "close-only.csv"
    market.select(
        pl.col("date").dt.strftime("%b %d %Y").alias("Timestamp"),
        pl.col("ticker").alias("Symbol"),
        pl.col("close").alias("Close"),
    ).write_csv(path)
    out = cli(tmp_path / "state", "run", "--data", str(path)).stdout
    assert "registered kubeline-returns version 1" in out


@pytest.mark.parametrize("config", sorted(p.name for p in (REPO / "configs").glob("*.yaml")))
def test_run_works_with_each_shipped_config(
    tmp_path: Path, market: pl.DataFrame, config: str
) -> None:
    from kubeline.runconfig import load_run_config

    cfg = load_run_config(REPO / "configs" / config)
    data = tmp_path / "yahoo"
    frame = market
    if cfg.data.tickers:
        # The per-stock examples name tickers; give the generated data those names.
        renamed = dict(zip(frame["ticker"].unique().sort(), cfg.data.tickers, strict=False))
        frame = frame.with_columns(pl.col("ticker").replace(renamed))
    write_dataset(frame, data, "yahoo")
    state = tmp_path / "state"
    out = cli(state, "run", "--data", str(data), "--config", str(REPO / "configs" / config)).stdout
    name = cfg.model_name or "kubeline-returns"
    if cfg.data.per_ticker:
        assert f"registered {len(cfg.data.tickers or [])} models, one per ticker" in out
        for ticker in cfg.data.tickers or []:
            assert f"{name}-{ticker.lower()} version 1" in out
    else:
        assert f"registered {name} version 1" in out


def test_a_per_ticker_config_registers_one_model_per_ticker_trained_on_its_ticker_alone(
    tmp_path: Path, market: pl.DataFrame
) -> None:
    data = tmp_path / "yahoo"
    write_dataset(market, data, "yahoo")
    tickers = sorted(market["ticker"].unique())[:3]
    config = tmp_path / "per-ticker.yaml"
    config.write_text(
        f"model_name: stocks\ndata: {{tickers: [{', '.join(tickers)}], per_ticker: true}}\n"
        "models: [{name: ridge, params: {alpha: [1.0, 10.0]}}]\n"
    )
    state = tmp_path / "state"
    done = cli(state, "run", "--data", str(data), "--config", str(config))
    out = done.stdout
    assert "registered 3 models, one per ticker" in out
    # Every step's line counts its tasks: one per ticker.
    assert "train-all" in out and "(3 tasks)" in out and "waiting" not in out
    mlflow = client(state)
    runs = set()
    for ticker in tickers:
        name = f"stocks-{ticker.lower()}"
        (version,) = mlflow.search_model_versions(f"name='{name}'")
        assert version.tags["kubeline.tickers"] == ticker, name
        assert version.tags["kubeline.pipeline_name"] == "kubeline-training-per-ticker"
        run = mlflow.get_run(version.run_id)
        assert run.data.params["tickers"] == ticker
        # Judged on that ticker's rows only: a twelfth of the universe's holdout.
        holdout = run.data.metrics["holdout_rows"]
        assert 0 < holdout < 0.2 * len(market) / 6, name
        runs.add(version.run_id)
        assert f"-{name}.html" in out
    assert len(runs) == 3
    assert {m.name for m in mlflow.search_registered_models()} == {
        f"stocks-{t.lower()}" for t in tickers
    }


def test_broken_data_stops_before_training_and_registers_nothing(
    tmp_path: Path, market: pl.DataFrame
) -> None:
    data = tmp_path / "yahoo"
    write_dataset(market, data, "yahoo")
    victim = sorted(data.glob("*.csv"))[0]
    lines = victim.read_text().splitlines()
    cells = lines[5].split(",")
    cells[4] = "-3.5"  # Close
    lines[5] = ",".join(cells)
    victim.write_text("\n".join(lines) + "\n")
    state = tmp_path / "state"
    done = cli(state, "run", "--data", str(data), check=False)
    assert done.returncode == 3  # as `kubeline validate` exits on the same data
    message = done.stderr + done.stdout
    assert "validate" in message
    assert victim.name in message and "row 6" in message and "close" in message.lower()
    assert "Traceback" not in done.stderr
    c = client(state)
    assert c.search_registered_models() == []


def test_the_wheel_ships_components_pipelines_and_specs(tmp_path: Path) -> None:
    import zipfile

    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("kubeline-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in (
        "kubeline/components/train.py",
        "kubeline/components/image.py",
        "kubeline/pipelines/training.py",
        "kubeline/pipelines/compiled/training.yaml",
        "kubeline/report/templates/report.html",
        "kubeline/steps/register.py",
        "kubeline/runner/local.py",
        "kubeline/pod.py",
    ):
        assert expected in names, expected
    assert not any(n.startswith(("tests/", "components/", "pipelines/")) for n in names)
