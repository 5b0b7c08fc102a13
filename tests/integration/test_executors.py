"""The train, evaluate and register executors on temp folders and a real sqlite MLflow store.

As TFX tests its Pusher: one test per outcome of the promotion (champion, challenger, rejected
by the infra check, the champion moved during the run, a champion that cannot be compared, a
stricter --min-improvement), each on real files. And the honest gate: on a pure random walk it
refuses, with a planted signal it promotes. ``models``, ``promote`` and ``rollback`` are then
driven in-process on the same store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
from typer.testing import CliRunner

from kubeline import features, registry
from kubeline.cli import app
from kubeline.data.generate import generate
from kubeline.errors import RegistryError
from kubeline.evaluate.verdict import Verdict
from kubeline.lineage import DATA_HASH, of_run, tag
from kubeline.registry import GateState, Tag
from kubeline.settings import Settings, get_settings
from kubeline.steps import evaluate, register, train

pytestmark = pytest.mark.integration

NAME = "exec-test"
FAST = """
features: [ret_1, ret_5, volatility_20]
models: [{name: ridge, params: {alpha: [1.0, 10.0]}}]
"""


def prices(seed: int, phi: float, tickers: int = 3, days: int = 600) -> pl.DataFrame:
    """Daily closes whose log returns are AR(1) with coefficient ``phi`` (0: a random walk)."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2015-01-01", periods=days)
    parts = []
    for i in range(tickers):
        shocks = rng.normal(0.0, 0.01, days)
        returns = np.empty(days)
        returns[0] = shocks[0]
        for t in range(1, days):
            returns[t] = phi * returns[t - 1] + shocks[t]
        close = 100.0 * np.exp(np.cumsum(returns))
        parts.append(
            pd.DataFrame(
                {"ticker": f"T{i}", "date": dates.date, "close": close, "adj_close": close}
            )
        )
    return pl.from_pandas(pd.concat(parts, ignore_index=True)).with_columns(
        pl.col("date").cast(pl.Date)
    )


@dataclass(frozen=True)
class Run:
    folder: Path
    config: str

    @property
    def model(self) -> str:
        return str(self.folder / "model")

    @property
    def evaluation(self) -> str:
        return str(self.folder / "evaluation")

    def verdict(self) -> Verdict:
        return Verdict.read(self.evaluation)


def train_and_evaluate(
    folder: Path,
    *,
    phi: float = 0.3,
    seed: int = 0,
    config: str = FAST,
    data: pl.DataFrame | None = None,
    **evaluate_args,
) -> Run:
    """The data (``prices(seed, phi)`` unless given), features, train and evaluate steps of
    one run, into ``folder``."""
    folder.mkdir(parents=True)
    snapshot = folder / "snapshot.parquet"
    (prices(seed, phi) if data is None else data).write_parquet(snapshot)
    from kubeline.runconfig import RunConfig

    cfg = RunConfig.from_yaml_text(config)
    table, _ = features.build_polars(
        pl.read_parquet(snapshot), features=cfg.features, target=cfg.target, horizon=cfg.horizon
    )
    table.write_parquet(folder / "table.parquet")
    train.run(table=str(folder / "table.parquet"), config=config, out=str(folder / "model"))
    evaluate.run(
        model=str(folder / "model"),
        table=str(folder / "table.parquet"),
        config=config,
        model_name=NAME,
        report=str(folder / "report.html"),
        summary=str(folder / "summary.md"),
        out=str(folder / "evaluation"),
        lineage=of_run("training", "job", f"run-{folder.name}", "abc123"),
        **evaluate_args,
    )
    return Run(folder, config)


def register_run(run: Run) -> register.Registered:
    return register.run(
        model=run.model,
        evaluation=run.evaluation,
        report=str(run.folder / "report.html"),
        snapshot=str(run.folder / "snapshot.parquet"),
        snapshot_metadata={DATA_HASH: "sha256:" + "0" * 64, "rows": 1800},
        data=str(run.folder / "snapshot.parquet"),
        config=run.config,
        model_name=NAME,
        lineage=of_run("training", "job", f"run-{run.folder.name}", "abc123"),
    )


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "state"
    monkeypatch.setenv("KUBELINE_STATE_DIR", str(folder))
    get_settings.cache_clear()
    return folder


def client():
    return registry.connect(Settings())


def version_tags(version: str) -> dict[str, str]:
    return client().get_model_version(NAME, version).tags


def test_a_model_with_skill_becomes_champion(state: Path, tmp_path: Path) -> None:
    run = train_and_evaluate(tmp_path / "a")
    out = register_run(run)
    assert (out.model_version, out.alias, out.gate) == ("1", "champion", "passed")
    tags = version_tags("1")
    assert tags[Tag.GATE] == GateState.PASSED and tags[tag(DATA_HASH)].startswith("sha256:")
    # Where a retraining started by the monitor reads the newest data (kubeline.monitor.loop).
    assert tags[Tag.DATA] == str(run.folder / "snapshot.parquet")
    # One bar (horizon 1) after the last training row, and before the holdout (purged gap).
    next_bar = pd.Timestamp(tags[Tag.TRAIN_END]) + pd.offsets.BDay(1)
    assert tags[Tag.LABEL_END] == str(next_bar.date()) < run.verdict().holdout.start
    scores = json.loads(tags[Tag.SCORES])
    assert scores["metric"] == "rmse" and set(scores) >= {"model", "constant", "persistence"}
    mlflow_run = client().get_run(out.mlflow_run_id)
    # The KFP Metrics artifact and the MLflow run carry the same names and values.
    flat = run.verdict().flat_metrics()
    assert {k: mlflow_run.data.metrics[k] for k in flat} == pytest.approx(flat)
    assert "baseline_constant_rmse" in flat and "backtest_strategy_turnover" in flat
    assert "cv_rmse" in mlflow_run.data.metrics


def test_a_model_that_does_not_beat_the_champion_stays_challenger(
    state: Path, tmp_path: Path
) -> None:
    register_run(train_and_evaluate(tmp_path / "a"))
    again = train_and_evaluate(tmp_path / "b")  # the same data: no strict improvement
    out = register_run(again)
    assert (out.alias, out.gate) == ("challenger", "failed")
    assert again.verdict().gate.failed == ["champion"]
    assert "does not beat the champion" in version_tags("2")[Tag.GATE_REASON]
    assert str(registry.version_by_alias(client(), NAME, "champion").version) == "1"


def test_a_version_whose_registered_copy_predicts_other_numbers_is_rejected(
    state: Path, tmp_path: Path
) -> None:
    noisy = FAST.replace(
        "{name: ridge, params: {alpha: [1.0, 10.0]}}", "{estimator: noisy_estimator.NoisyRegressor}"
    )
    run = train_and_evaluate(tmp_path / "a", config=noisy, min_improvement=0.0)
    out = register_run(run)
    assert (out.alias, out.gate) == ("", "rejected")
    assert "infra check failed: the registered model predicts other numbers" in out.reason
    assert version_tags("1")[Tag.GATE] == GateState.REJECTED
    assert registry.version_by_alias(client(), NAME, "champion") is None
    # Nor can it be made champion by hand.
    with pytest.raises(RegistryError, match="rejected by the infra check"):
        registry.promote(client(), NAME, "1", "by hand")
    assert registry.version_by_alias(client(), NAME, "champion") is None


def test_a_champion_promoted_while_the_run_was_evaluating_is_not_replaced(
    state: Path, tmp_path: Path
) -> None:
    slow = train_and_evaluate(tmp_path / "slow")  # evaluated with no champion
    register_run(train_and_evaluate(tmp_path / "fast"))  # another run finishes first
    out = register_run(slow)
    assert (out.alias, out.gate) == ("challenger", "failed")
    assert "the champion changed during this run (version None when evaluated, now 1)" in (
        out.reason
    )
    assert str(registry.version_by_alias(client(), NAME, "champion").version) == "1"


def test_a_champion_answering_another_question_is_not_compared_nor_replaced(
    state: Path, tmp_path: Path
) -> None:
    register_run(train_and_evaluate(tmp_path / "a"))
    other = train_and_evaluate(tmp_path / "b", config=FAST + "target: next_log_return\n")
    out = register_run(other)
    assert (out.alias, out.gate) == ("challenger", "failed")
    champion = other.verdict().champion
    assert champion is not None and champion.metrics is None
    assert "predicts target=next_return, not next_log_return" in str(champion.note)


def test_a_champion_trained_on_the_holdouts_dates_is_not_compared(
    state: Path, tmp_path: Path
) -> None:
    register_run(train_and_evaluate(tmp_path / "a"))
    longer = FAST + "split: {holdout_fraction: 0.4}\n"  # the holdout starts inside v1's training
    out = register_run(train_and_evaluate(tmp_path / "b", config=longer))
    assert (out.alias, out.gate) == ("challenger", "failed")
    assert "was trained on targets realized up to" in out.reason
    assert "would flatter it" in out.reason


def test_min_improvement_from_the_run_overrides_the_config(state: Path, tmp_path: Path) -> None:
    run = train_and_evaluate(tmp_path / "a", min_improvement=0.5)
    out = register_run(run)
    assert (out.alias, out.gate) == ("challenger", "failed")
    assert run.verdict().gate.min_improvement == 0.5
    assert "required at least 50.0%" in out.reason


DEFAULT = ""  # the run config with every key at its default, the gate's max_p_value included


@pytest.mark.parametrize("seed", [3, 5])
def test_the_default_gate_refuses_a_lucky_model_of_a_pure_random_walk(
    state: Path, tmp_path: Path, seed: int
) -> None:
    # On these seeds the model beats every naive forecast by luck; only significance refuses.
    # Over seeds 0-19 the default gate promoted 2 such models (a 5% test lets 1 in 20 through).
    run = train_and_evaluate(tmp_path / "rw", phi=0.0, seed=seed, config=DEFAULT)
    verdict = run.verdict()
    assert verdict.gate.failed == ["significance"], verdict.gate.summary
    assert verdict.gate.baseline == "constant" and verdict.gate.p_value > 0.05
    assert verdict.metrics["rmse"] < min(b["rmse"] for b in verdict.baselines.values())
    out = register_run(run)
    assert (out.alias, out.gate) == ("challenger", "failed")
    assert "which is above the allowed 0.05" in out.reason


def test_the_default_gate_promotes_a_model_of_the_generators_planted_signal(
    state: Path, tmp_path: Path
) -> None:
    # The generator's documented signal (PLANTED_RETURN_AR), at the integration tests' size.
    data = generate(tickers=12, years=4, seed=11)
    run = train_and_evaluate(tmp_path / "signal", data=data, config=DEFAULT)
    verdict = run.verdict()
    assert verdict.gate.passed, verdict.gate.summary
    assert verdict.metrics["rmse"] < min(b["rmse"] for b in verdict.baselines.values())
    assert verdict.gate.p_value < 0.01
    assert register_run(run).alias == "champion"


def test_optional_gate_floors_say_which_condition_failed(state: Path, tmp_path: Path) -> None:
    strict = FAST + "gate: {min_directional_accuracy: 0.9, min_backtest_edge: 50.0}\n"
    verdict = train_and_evaluate(tmp_path / "a", config=strict).verdict()
    assert verdict.gate.failed == ["directional_accuracy", "backtest_edge"]
    assert "is below the required 90.0%" in verdict.gate.summary


def cli(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_models_shows_the_champion_gate_states_and_scores_after_promote_and_rollback(
    state: Path, tmp_path: Path
) -> None:
    register_run(train_and_evaluate(tmp_path / "a"))
    register_run(train_and_evaluate(tmp_path / "b"))  # challenger

    def listed() -> dict[str, dict]:
        done = cli("models", "--model", NAME, "--json")
        assert done.exit_code == 0, done.output
        return {v["version"]: v for v in json.loads(done.stdout)}

    before = listed()
    assert before["1"]["aliases"] == ["champion"] and before["1"]["gate"] == "passed"
    assert before["2"]["aliases"] == ["challenger"] and before["2"]["gate"] == "failed"
    assert set(before["1"]["scores"]) >= {"metric", "model", "constant", "moving_average"}

    assert "version 2 is now champion" in cli("promote", "--model", NAME, "--version", "2").stdout
    assert listed()["2"]["aliases"] == ["champion"] and listed()["1"]["aliases"] == []
    table = cli("models", "--model", NAME).stdout
    assert "champion" in table and "constant" in table and "rmse:" in table

    done = cli("rollback", "--model", NAME)
    assert "from version 2 to version 1" in done.stdout
    assert listed()["1"]["aliases"] == ["champion"] and listed()["2"]["aliases"] == []
