"""`kubeline monitor` on a real registered champion (embedded store): market data and the
inference log a real `kubeline serve` process wrote."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from test_executors import NAME, register_run, train_and_evaluate

from kubeline import features as feature_engine
from kubeline import registry
from kubeline.data.generate import generate, write_dataset
from kubeline.data.ingest import ingest
from kubeline.settings import get_settings

pytestmark = pytest.mark.integration

# The demo data's size and seed: with 20 tickers the regimes each ticker switches between
# average out over a year; with 6, one turbulent spell moves volatility_20 past the threshold.
TICKERS, YEARS, SEED = 20, 5, 7


@dataclass(frozen=True)
class Champion:
    features: list[str]
    holdout_start: str
    clean: Path  # the training data's own layout: its holdout dates are the clean window
    shifted: Path  # the same bars with the regime change planted from the holdout's start


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Champion]:
    from kubeline.serving.loaded import load_served

    root = tmp_path_factory.mktemp("monitor")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KUBELINE_STATE_DIR", str(root / "state"))
        mp.setenv("KUBELINE_MODEL_NAME", NAME)
        mp.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        get_settings.cache_clear()
        bars = generate(tickers=TICKERS, years=YEARS, seed=SEED)
        run = train_and_evaluate(root / "a", data=bars)
        # Whatever the gate made of it (the gate is not what is tested): judged here.
        version = register_run(run).model_version
        registry.promote(registry.connect(get_settings()), NAME, version, "monitor test")
        card = load_served(get_settings()).card
        start = date.fromisoformat(card.holdout_start[:10])
        write_dataset(bars, root / "clean", "yahoo")
        shifted = generate(tickers=TICKERS, years=YEARS, seed=SEED, drift_from=start)
        write_dataset(shifted, root / "shifted", "yahoo")
        yield Champion(card.feature_names, card.holdout_start, root / "clean", root / "shifted")
    get_settings.cache_clear()


@pytest.fixture
def env(champion: Champion, monkeypatch: pytest.MonkeyPatch) -> Champion:
    state = champion.clean.parent / "state"
    monkeypatch.setenv("KUBELINE_STATE_DIR", str(state))
    monkeypatch.setenv("KUBELINE_MODEL_NAME", NAME)
    get_settings.cache_clear()
    return champion


def last_line(output: str) -> str:
    return output.strip().splitlines()[-1]


def test_the_holdout_dates_of_the_training_data_are_ok(env: Champion, cli, tmp_path) -> None:
    done = cli(
        "monitor", "--current", env.clean, "--since", env.holdout_start, "--out", tmp_path / "check"
    )
    assert done.exit_code == 0, done.output
    assert last_line(done.stdout) == "ok"
    summary = json.loads((tmp_path / "check" / "summary.json").read_text())
    assert summary["decision"] == "ok" and summary["drifted_features"] == []
    assert summary["truth_rows"] >= 200 and summary["rmse"] is not None
    assert summary["model_version"] == "1" and summary["reference_rows"] > 0
    assert (tmp_path / "check" / "report.html").stat().st_size > 10_000


def test_the_shifted_data_with_its_realized_targets_is_decay(env: Champion, cli, tmp_path) -> None:
    done = cli(
        "monitor",
        "--current",
        env.shifted,
        "--since",
        env.holdout_start,
        "--out",
        tmp_path / "check",
    )
    assert done.exit_code == 11, done.output
    assert last_line(done.stdout) == "decay"
    summary = json.loads((tmp_path / "check" / "summary.json").read_text())
    assert any("above the holdout's" in r for r in summary["decay_reasons"]), summary
    assert "volatility_20" in summary["drifted_features"]


def test_until_ends_a_market_data_window(env: Champion, cli, tmp_path) -> None:
    start = date.fromisoformat(env.holdout_start[:10])
    until = date(start.year + (start.month + 2) // 12, (start.month + 2) % 12 + 1, 1)
    done = cli("monitor", "--current", env.clean, "--since", env.holdout_start,
               "--until", str(until), "--json", "--out", tmp_path / "c")  # fmt: skip
    summary = json.loads(done.stdout[: done.stdout.rindex("}") + 1])
    assert summary["window_end"] < str(until) and summary["window_start"] >= env.holdout_start[:10]


def test_a_tiny_window_is_insufficient_data(env: Champion, cli, tmp_path) -> None:
    last = pl.read_csv(next(env.clean.glob("*.csv")))["Date"].max()
    done = cli("monitor", "--current", env.clean, "--since", str(last), "--out", tmp_path / "c")
    assert done.exit_code == 12, done.output
    assert last_line(done.stdout) == "insufficient-data"
    assert "at least 200 are needed" in done.stdout
    assert not (tmp_path / "c" / "report.html").exists()  # nothing compared, nothing shown


def test_the_inference_log_a_real_service_wrote_is_ok_then_drift(env: Champion, tmp_path) -> None:
    from kubeline.serving import demo
    from kubeline.steps.monitor import check

    batches = {}
    for name, folder in (("clean", env.clean), ("shifted", env.shifted)):
        frame = ingest(folder)  # as training reads it: one ticker per file
        table, _ = feature_engine.build_polars(frame, features=env.features)
        rows = table.filter(pl.col("date") >= date.fromisoformat(env.holdout_start[:10]))
        batches[name] = rows.drop_nulls(env.features).select(env.features).to_dicts()

    served = demo.serve_and_call(env.clean, tmp_path / "serve.log", batches)

    (clean, since, until), (shifted, later, _end) = served.windows
    assert (clean, shifted) == ("clean", "shifted") and until <= later
    ok = check(since=since, until=until, out=str(tmp_path / "ok"))
    assert ok.decision == "ok" and ok.rows == len(batches["clean"]), ok
    assert ok.source.startswith("inference log at ") and ok.truth_rows == 0
    assert "decay not judged" in ok.reason
    drift = check(since=later, out=str(tmp_path / "drift"))
    assert drift.decision == "drift" and drift.exit_code == 10
    assert drift.rows == len(batches["shifted"])
    assert set(drift.drifted_features) == set(env.features), drift.drift_scores
    # Every check is in MLflow, tagged with the version it judged.
    client = registry.connect(get_settings())
    experiment = client.get_experiment_by_name(f"{get_settings().experiment_name}-monitor")
    runs = client.search_runs([experiment.experiment_id], "tags.`kubeline.decision` = 'drift'")
    assert runs and runs[0].data.tags["kubeline.model_version"] == "1"
    assert runs[0].data.metrics["drifted_share"] == 1.0
    # The lineage of the version finds the days it served in the log the service wrote.
    from kubeline.lineage_chain import chain
    from kubeline.serving.inference_log import log_location, read_log

    days = chain(get_settings(), NAME, "1").served
    logged = read_log(log_location(get_settings()))
    assert sum(d.rows for d in days) == len(logged) >= len(batches["clean"]) * 2, days
    assert all("predict" in d.endpoints for d in days), days


def test_the_compiled_monitoring_pipeline_runs_with_kfp_local(env: Champion) -> None:
    from kubeline.runner import run_local

    result = run_local(
        {"current": str(env.shifted), "since": env.holdout_start},
        get_settings(),
        pipeline="monitoring",
        runner="subprocess",
    )
    assert [e.step for e in result.steps if e.status == "SUCCESS"] == ["monitor"]
    # A decay is the check's result, not the task's failure: the decision is an output.
    assert result.outputs["decision"] == "decay"
    report = Path(result.outputs["report"].path)
    assert report.stat().st_size > 100_000 and "Drift" in report.read_text()[:2_000_000]
    metrics = result.outputs["metrics"].metadata
    assert metrics["drifted_share"] == 1.0 and metrics["window_rmse"] > 0
