"""A self-contained HTML report and a Markdown summary of one training run.

The HTML page embeds its charts as base64 PNG and its CSS inline, so it can be opened from a
KFP HTML artifact, an MLflow artifact or an e-mail without any other file.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from kubeline.evaluate.metrics import METRICS, better

if TYPE_CHECKING:
    from kubeline.evaluate.verdict import Verdict
    from kubeline.model import ModelCard
    from kubeline.train import TrainResult

_TEMPLATES = Path(__file__).parent / "templates"
_PERCENT_STATS = frozenset({"cumulative_return", "max_drawdown", "exposure", "turnover"})
_METRIC_LABELS = {
    "rmse": "RMSE",
    "mae": "MAE",
    "r2": "R²",
    "directional_accuracy": "Directional accuracy",
}
_CV_COLUMNS = ["candidate", "params", *(f"mean_{m}" for m in METRICS), "std_rmse", "fit_seconds"]
RunFacts = Union["ModelCard", "TrainResult", Mapping[str, Any]]


def render_report(
    verdict: Verdict,
    train_result: RunFacts,
    *,
    title: str,
    images: Mapping[str, str | Path],
) -> str:
    """The report as one HTML string: metrics vs baselines, CV table, backtest, charts, lineage.

    ``train_result`` is the model's card (or a TrainResult, or a mapping of its fields with
    ``cv_results`` as records). The champion scored on the same holdout is one more column.
    """
    summary, cv = _run_facts(train_result)
    env = Environment(
        loader=FileSystemLoader(_TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _number
    env.filters["pct"] = _percent
    template = env.get_template("report.html")
    return template.render(
        title=title,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        summary=summary,
        metric_rows=_metric_rows(verdict),
        columns=_columns(verdict),
        has_champion=verdict.champion is not None,
        gate={
            "passed": verdict.gate.passed,
            "reasons": verdict.gate.reasons,
            "evidence": _evidence(verdict),
        },
        gate_metric=verdict.gate.metric,
        backtest=_backtest_rows(verdict),
        backtest_note=_backtest_note(verdict),
        cv_columns=[c for c in _CV_COLUMNS if c in cv.columns],
        cv_rows=cv.to_dict("records"),
        lineage=list(verdict.lineage.items()),
        images=[(name.replace("_", " "), _data_uri(path)) for name, path in images.items()],
        n_rows=verdict.holdout.rows,
        n_dropped=verdict.holdout.dropped_rows,
    )


def markdown_summary(
    verdict: Verdict,
    train_result: RunFacts,
    *,
    title: str = "kubeline training run",
) -> str:
    """A short Markdown digest (for a KFP Markdown artifact): model, metrics, backtest, gate."""
    s, _ = _run_facts(train_result)
    columns = _columns(verdict)
    lines = [
        f"# {title}",
        "",
        f"**{s['candidate']}** ({_params(s['params'])}) chosen by CV {s['selection_metric']}; "
        f"target kind `{s['target_kind']}`, {s['n_features']} features.",
        f"Train {s['train_start']} → {s['train_end']} ({s['n_train_rows']} rows); "
        f"holdout {s['holdout_start']} → {s['holdout_end']} ({verdict.holdout.rows} rows).",
        "",
        "| metric | " + " | ".join(label for _, label in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for row in _metric_rows(verdict):
        cells = [_number(row[key]) for key, _ in columns]
        lines.append(f"| {row['label']} | " + " | ".join(cells) + " |")
    lines.append("")
    bt = _backtest_rows(verdict)
    if bt:
        lines += ["| backtest | strategy | buy and hold |", "|---|---:|---:|"]
        lines += [f"| {r['label']} | {r['strategy']} | {r['buy_and_hold']} |" for r in bt]
        lines.append(f"_{_backtest_note(verdict)}_")
    elif verdict.backtest_note:
        lines.append(f"_{verdict.backtest_note}_")
    lines += ["", f"**Gate: {'passed' if verdict.gate.passed else 'failed'}**"]
    lines += [f"- {reason}" for reason in verdict.gate.reasons]
    evidence = _evidence(verdict)
    if evidence:
        lines += ["", f"_{evidence}_"]
    return "\n".join(lines) + "\n"


def _run_facts(train_result: RunFacts) -> tuple[dict[str, Any], pd.DataFrame]:
    """The run summary and CV table, from a TrainResult or the metadata saved with a model."""
    from kubeline.model import ModelCard

    if isinstance(train_result, ModelCard):
        train_result = train_result.model_dump()
    if isinstance(train_result, Mapping):
        summary = {k: v for k, v in train_result.items() if k != "cv_results"}
        cv = pd.DataFrame(list(train_result.get("cv_results") or []))
    else:
        summary, cv = train_result.summary(), train_result.cv_results
    defaults: dict[str, Any] = {
        "candidate": "?",
        "params": {},
        "selection_metric": "?",
        "target_kind": "?",
        "feature_names": [],
        "n_train_rows": math.nan,
        "train_start": "?",
        "train_end": "?",
        "holdout_start": "?",
        "holdout_end": "?",
    }
    summary = defaults | summary
    summary.setdefault("n_features", len(summary["feature_names"]))
    if "selected" not in cv.columns:
        cv = cv.assign(selected=False)
    return summary, cv


def _columns(verdict: Verdict) -> list[tuple[str, str]]:
    """(key, header) of each compared forecaster: the model, the baselines, the champion."""
    columns = [("model", "model")]
    columns += [(name, name.replace("_", " ")) for name in verdict.baselines]
    if verdict.champion is not None:
        columns.append(("champion", f"champion v{verdict.champion.version}"))
    return columns


def _metric_rows(verdict: Verdict) -> list[dict[str, Any]]:
    rows = []
    champion = verdict.champion
    champion_metrics = (champion.metrics if champion else None) or {}
    for metric in METRICS:
        values = {"model": verdict.metrics.get(metric, math.nan)}
        values |= {n: b.get(metric, math.nan) for n, b in verdict.baselines.items()}
        if champion is not None:
            values["champion"] = champion_metrics.get(metric, math.nan)
        finite = {k: v for k, v in values.items() if v is not None and math.isfinite(v)}
        pick = min if better(metric) == "lower" else max
        best = pick(finite, key=lambda k: finite[k]) if finite else None
        rows.append({"metric": metric, "label": _METRIC_LABELS[metric], "best": best, **values})
    return rows


def _backtest_rows(verdict: Verdict) -> list[dict[str, str]]:
    if verdict.backtest is None:
        return []
    stats = verdict.backtest.stats
    fmt = {name: (_percent if name in _PERCENT_STATS else _number) for name in stats["strategy"]}
    return [
        {
            "label": name.replace("_", " "),
            "strategy": fmt[name](stats["strategy"][name]),
            "buy_and_hold": fmt[name](stats["buy_and_hold"].get(name, math.nan)),
        }
        for name in stats["strategy"]
        if name != "n_periods"
    ]


def _evidence(verdict: Verdict) -> str | None:
    """How likely the gain over the baseline is luck, said whether or not the gate requires it."""
    p = verdict.gate.p_value
    if math.isnan(p):
        return None
    return (
        f"Chance of a gain this large over the {verdict.gate.baseline.replace('_', ' ')} "
        f"baseline with no skill: p = {p:.3f} (one-sided Diebold-Mariano test on per-date "
        "losses; the gate requires p at most the run config's gate.max_p_value)."
    )


def _backtest_note(verdict: Verdict) -> str | None:
    if verdict.backtest is None:
        return verdict.backtest_note
    return (
        f"Both sides pay {verdict.backtest.cost_bps:g} bps per unit of position change; "
        "turnover is the share of the book traded per period."
    )


def _data_uri(path: str | Path) -> str:
    encoded = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"data:image/png;base64,{encoded}"


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if math.isnan(value):
        return "–"
    if isinstance(value, int) or (abs(value) >= 1000 and float(value).is_integer()):
        return f"{int(value):,}"
    return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.1f}"


def _percent(value: Any) -> str:
    if not isinstance(value, int | float) or math.isnan(value):
        return "–"
    return f"{value:.1%}"


def _params(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "default parameters"
