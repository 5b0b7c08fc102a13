"""Charts and the self-contained HTML/Markdown report of a run."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kubeline.data.schema import DATE, DIRECTION_REF, NAIVE_LAST, NAIVE_MA, TARGET, TICKER
from kubeline.evaluate import Evaluation, decide_gate, evaluate, to_verdict
from kubeline.evaluate.verdict import Champion, Condition, GateDecision, Verdict
from kubeline.model import ModelCard
from kubeline.report.html import markdown_summary, render_report
from kubeline.report.plots import (
    equity_curves,
    predicted_vs_actual,
    residual_histogram,
    write_all,
)
from kubeline.runconfig import RunConfig
from kubeline.train import TrainResult

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class HalfModel:
    """Predicts half of column x; enough to exercise the report without training."""

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        return 0.5 * x["x"].to_numpy()


def holdout(n_dates: int = 30, tickers: tuple[str, ...] = ("AAA", "BBB", "CCC", "DDD", "EEE")):
    rng = np.random.default_rng(1)
    dates = pd.bdate_range("2024-01-01", periods=n_dates)
    parts = []
    for ticker in tickers:
        target = rng.normal(0, 0.01, n_dates)
        parts.append(
            pd.DataFrame(
                {
                    TICKER: ticker,
                    DATE: dates,
                    "x": target + rng.normal(0, 0.005, n_dates),
                    NAIVE_LAST: np.r_[0.0, target[:-1]],
                    NAIVE_MA: 0.0,
                    DIRECTION_REF: 0.0,
                    TARGET: target,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def run(target_kind: str = "return") -> tuple[Evaluation, TrainResult]:
    frame = holdout()
    evaluation = evaluate(HalfModel(), frame, ["x"], RunConfig(), target_kind=target_kind)
    cv = pd.DataFrame(
        {
            "candidate": ["ridge", "hist_gbm"],
            "params": ["alpha=1.0", "learning_rate=0.1"],
            **{f"mean_{m}": [0.01, 0.02] for m in ("rmse", "mae", "r2", "directional_accuracy")},
            "std_rmse": [0.001, 0.002],
            "fit_seconds": [0.1, 0.5],
            "rank": [1, 2],
            "selected": [True, False],
        }
    )
    dates = pd.to_datetime(frame[DATE])
    result = TrainResult(
        model=HalfModel(),  # type: ignore[arg-type]
        candidate="ridge",
        params={"alpha": 1.0},
        cv_results=cv,
        feature_names=["x"],
        target_kind=target_kind,
        selection_metric="rmse",
        n_train_rows=500,
        n_holdout_rows=len(frame),
        train_dates=(pd.Timestamp("2023-01-02"), pd.Timestamp("2023-12-28")),
        holdout_dates=(dates.min(), dates.max()),
        holdout=frame,
    )
    return evaluation, result


def verdict_of(
    evaluation: Evaluation,
    result: TrainResult,
    *,
    lineage: dict[str, str] | None = None,
    gate: GateDecision | None = None,
    champion: Champion | None = None,
) -> Verdict:
    config = RunConfig()
    return to_verdict(
        evaluation,
        gate or decide_gate(evaluation, config.gate),
        ModelCard.of(result, config),
        model_name="m",
        question={"target": "next_return"},
        champion=champion,
        lineage=lineage,
    )


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    evaluation, _ = run()
    assert evaluation.backtest is not None
    folder = tmp_path_factory.mktemp("plots")
    return {
        "predicted_vs_actual": predicted_vs_actual(evaluation.predictions, folder / "a.png"),
        "equity_curves": equity_curves(evaluation.backtest.curve, folder / "sub" / "b.png"),
        "residuals": residual_histogram(evaluation.predictions, folder / "c.png"),
    }


def test_each_plot_writes_a_png_and_returns_its_path(images: dict[str, Path]) -> None:
    assert [p.name for p in images.values()] == ["a.png", "b.png", "c.png"]
    for path in images.values():
        assert path.read_bytes().startswith(PNG_MAGIC)


def test_plots_do_not_touch_pyplot_global_state(images: dict[str, Path]) -> None:
    assert "matplotlib.pyplot" not in sys.modules


def test_write_all_skips_the_equity_curve_without_a_backtest(tmp_path: Path) -> None:
    evaluation, _ = run("level")
    assert set(write_all(evaluation, tmp_path)) == {"predicted_vs_actual", "residuals"}


def test_report_is_self_contained_html_with_embedded_images(images: dict[str, Path]) -> None:
    evaluation, result = run()
    html = render_report(verdict_of(evaluation, result), result, title="Returns", images=images)
    assert html.lstrip().startswith("<!DOCTYPE html>")
    assert html.count('src="data:image/png;base64,') == 3
    assert not re.search(r"(src|href)=\"(https?:)?//", html)
    assert "<script" not in html


def test_report_shows_metrics_against_every_baseline_and_the_cv_table(images: dict) -> None:
    evaluation, result = run()
    html = render_report(verdict_of(evaluation, result), result, title="Returns", images=images)
    assert "constant" in html and "persistence" in html and "moving average" in html
    assert f"{evaluation.metrics['rmse']:.4g}" in html
    for baseline in ("constant", "persistence", "moving_average"):
        assert f"{evaluation.baselines[baseline]['rmse']:.4g}" in html
    assert "learning_rate=0.1" in html and "alpha=1.0" in html
    assert "buy and hold" in html.lower()
    assert "turnover" in html and "5 bps per unit of position change" in html
    assert f"p = {evaluation.baseline_p_value:.3f} (one-sided Diebold-Mariano" in html


def test_report_escapes_lineage_and_shows_the_gate_decision(images: dict) -> None:
    evaluation, result = run()
    lineage = {"pipeline": "kubeline-train", "run_id": "<b>r1</b>", "git_revision": "abc123"}
    reason = "rmse 0.02 does not beat the champion (0.01)"
    gate = GateDecision(
        metric="rmse",
        baseline="constant",
        min_improvement=0.0,
        conditions=[Condition(name="champion", passed=False, reason=reason)],
    )
    verdict = verdict_of(evaluation, result, lineage=lineage, gate=gate)
    html = render_report(verdict, result, title="T & <x>", images=images)
    assert "&lt;b&gt;r1&lt;/b&gt;" in html and "<b>r1</b>" not in html
    assert "T &amp; &lt;x&gt;" in html
    assert "Gate failed" in html and "does not beat the champion" in html
    assert "abc123" in html


def test_report_explains_a_missing_backtest() -> None:
    evaluation, result = run("level")
    html = render_report(verdict_of(evaluation, result), result, title="Volume", images={})
    assert "the target is a level" in html


def test_markdown_summary_has_the_metrics_table_and_gate() -> None:
    evaluation, result = run()
    text = markdown_summary(verdict_of(evaluation, result), result, title="Run 7")
    assert text.startswith("# Run 7\n")
    assert "| RMSE |" in text
    assert "| metric | model | constant | persistence | moving average |" in text
    assert "**Gate: passed**" in text and "- no current champion to beat" in text
    assert "| cumulative return |" in text and "| turnover |" in text


def test_report_accepts_the_saved_model_card_and_shows_the_champion() -> None:
    evaluation, result = run()
    card = ModelCard.of(result, RunConfig())
    champion = Champion(version="3", uri="models:/m/3", metrics={"rmse": 0.5, "mae": 0.4})
    verdict = verdict_of(evaluation, result, champion=champion)
    html = render_report(verdict, card, title="t", images={})
    assert "champion v3" in html and "learning_rate=0.1" in html
    text = markdown_summary(verdict, card.model_dump())
    assert "| metric | model | constant | persistence | moving average | champion v3 |" in text
    assert "| RMSE |" in text and "| 0.5 |" in text
