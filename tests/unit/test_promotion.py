"""The promotion decision, one test per outcome, on typed verdicts (no MLflow involved)."""

from __future__ import annotations

import pytest

from kubeline.evaluate import compare
from kubeline.evaluate.verdict import Champion, Condition, GateDecision, Holdout, Verdict
from kubeline.promotion import (
    InfraCheck,
    champion_mismatch,
    decide,
    label_end,
    question,
    with_margin,
)
from kubeline.registry import CHALLENGER, CHAMPION, GateState, Tag
from kubeline.runconfig import RunConfig

INFRA_OK = InfraCheck(True, "infra check passed (5 example rows from models:/m/2)")


def verdict(*conditions: tuple[str, bool, str], champion: str | None = None) -> Verdict:
    return Verdict(
        model_name="m",
        question={"target": "next_return", "horizon": "1", "tickers": "all"},
        candidate="ridge",
        params={"alpha": 1.0},
        target="next_return",
        metrics={"rmse": 0.0099},
        baselines={"constant": {"rmse": 0.01}, "persistence": {"rmse": 0.014}},
        champion=None if champion is None else Champion(version=champion, uri="models:/m/1"),
        backtest=None,
        backtest_note="no backtest: disabled",
        gate=GateDecision(
            metric="rmse",
            baseline="constant",
            min_improvement=0.0,
            conditions=[Condition(name=n, passed=p, reason=r) for n, p, r in conditions],
        ),
        holdout=Holdout(start="2024-01-02", end="2024-06-28", rows=300),
        lineage={},
    )


BEATS = ("baseline", True, "rmse 0.0099 beats the constant baseline (0.01)")
NO_CHAMPION = ("champion", True, "no current champion to beat")


def test_a_passing_verdict_with_a_working_version_becomes_champion() -> None:
    decision = decide(verdict(BEATS, NO_CHAMPION), INFRA_OK, champion_now=None)
    assert (decision.alias, decision.state) == (CHAMPION, GateState.PASSED)
    assert decision.reason.startswith("passed: rmse 0.0099 beats the constant baseline")
    assert decision.reason.endswith("infra check passed (5 example rows from models:/m/2)")


def test_a_failing_verdict_leaves_the_version_challenger() -> None:
    loses = ("baseline", False, "rmse 0.011 does not beat the constant baseline (0.01)")
    decision = decide(verdict(loses, NO_CHAMPION), INFRA_OK, champion_now=None)
    assert (decision.alias, decision.state) == (CHALLENGER, GateState.FAILED)
    assert decision.reason.startswith("not promoted: rmse 0.011 does not beat")


def test_a_version_that_fails_the_infra_check_gets_no_alias_even_if_it_passed() -> None:
    infra = InfraCheck(False, "infra check failed: the registered model predicts other numbers")
    decision = decide(verdict(BEATS, NO_CHAMPION), infra, champion_now=None)
    assert (decision.alias, decision.state) == ("", GateState.REJECTED)
    assert "predicts other numbers" in decision.reason


def test_a_champion_that_moved_during_the_run_keeps_the_passing_version_challenger() -> None:
    beats_one = ("champion", True, "rmse 0.0099 beats the champion (0.0101)")
    passed = verdict(BEATS, beats_one, champion="1")
    decision = decide(passed, INFRA_OK, champion_now="3")
    assert (decision.alias, decision.state) == (CHALLENGER, GateState.FAILED)
    assert "the champion changed during this run (version 1 when evaluated, now 3)" in (
        decision.reason
    )
    # No champion at evaluation, one by registration: also stale.
    assert decide(verdict(BEATS, NO_CHAMPION), INFRA_OK, "1").state == GateState.FAILED
    # The same champion as at evaluation: promoted.
    assert decide(passed, INFRA_OK, "1").alias == CHAMPION


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (
            {"kubeline.target": "next_log_return"},
            "predicts target=next_log_return, not next_return",
        ),
        ({"kubeline.horizon": "5"}, "predicts horizon=5, not 1"),
        ({"kubeline.tickers": "AAPL"}, "predicts tickers=AAPL, not all"),
        (
            {Tag.TRAIN_END: "2024-03-01", Tag.LABEL_END: "2024-03-04"},
            "was trained on targets realized up to 2024-03-04, inside this",
        ),
    ],
)
def test_a_champion_answering_another_question_or_trained_on_the_holdout_is_not_compared(
    tags: dict[str, str], expected: str
) -> None:
    note = champion_mismatch("1", tags, RunConfig(), holdout_start="2024-01-02")
    assert note is not None and expected in note and note.startswith("champion version 1 ")


def test_a_comparable_champion_has_no_mismatch() -> None:
    tags = {
        "kubeline.target": "next_return",
        "kubeline.horizon": "1",
        Tag.TRAIN_END: "2023-12-28",
        Tag.LABEL_END: "2023-12-29",
    }
    assert champion_mismatch("1", tags, RunConfig(), holdout_start="2024-01-02") is None
    assert champion_mismatch("1", {}, RunConfig(), holdout_start="2024-01-02") is None


def test_a_champion_whose_last_target_falls_inside_the_holdout_is_not_compared() -> None:
    # Its last training row is before the holdout, but that row's target was realized on the
    # holdout's first date: the champion has seen a price the holdout scores it on.
    tags = {Tag.TRAIN_END: "2023-12-29", Tag.LABEL_END: "2024-01-02"}
    note = champion_mismatch("4", tags, RunConfig(), holdout_start="2024-01-02")
    assert note is not None and "realized up to 2024-01-02, inside this holdout" in note
    # One date earlier, and it may be compared.
    tags[Tag.LABEL_END] = "2023-12-29"
    assert champion_mismatch("4", tags, RunConfig(), holdout_start="2024-01-02") is None


def test_a_champion_registered_without_a_label_end_is_judged_by_an_estimate_it_names() -> None:
    tags = {Tag.TRAIN_END: "2023-12-29"}  # a Friday; the holdout starts the next Tuesday
    assert champion_mismatch("2", tags, RunConfig(), holdout_start="2024-01-02") is None
    two_days = RunConfig.from_yaml_text("horizon: 2")  # two weekdays on: the holdout's start
    note = champion_mismatch("2", tags, two_days, holdout_start="2024-01-02")
    assert note is not None and "realized up to 2024-01-02 (estimated: training rows up to " in note
    assert "2023-12-29 plus 2 weekdays), inside this holdout" in note


def test_the_label_end_counts_horizon_bars_in_the_datas_own_dates() -> None:
    dates = ["2023-12-27", "2023-12-28", "2023-12-29", "2024-01-02", "2024-01-03"]
    assert label_end(dates, "2023-12-28", 1) == "2023-12-29"
    assert label_end(reversed(dates), "2023-12-28", 2) == "2024-01-02"  # the holiday is no bar
    assert label_end(dates, "2023-12-28", 10) == "2024-01-03"  # the data ends first
    assert label_end(dates, "2024-01-03", 1) == "2024-01-03"


def test_min_improvement_override_replaces_the_configs_margin_only_when_given() -> None:
    config = RunConfig.from_yaml_text("gate: {min_improvement: 0.01}")
    assert with_margin(config, None).gate.min_improvement == 0.01
    assert with_margin(config, -1.0).gate.min_improvement == 0.01  # the component's "unset"
    stricter = with_margin(config, 0.05)
    assert stricter.gate.min_improvement == 0.05 and stricter.gate.metric == config.gate.metric
    # 3% lower rmse passes the config's 1% and fails the override's 5%.
    model, baseline = {"rmse": 0.97}, {"rmse": 1.0}
    assert compare(model, baseline, "rmse", config.gate.min_improvement)[0]
    assert not compare(model, baseline, "rmse", stricter.gate.min_improvement)[0]


def test_the_question_names_target_horizon_and_tickers() -> None:
    config = RunConfig.from_yaml_text("horizon: 5\ndata: {tickers: [AAA, BBB]}")
    assert question(config) == {"target": "next_return", "horizon": "5", "tickers": "AAA,BBB"}
    # The same tickers in another order ask the same question.
    reordered = RunConfig.from_yaml_text("horizon: 5\ndata: {tickers: [BBB, AAA]}")
    assert question(reordered) == question(config)
