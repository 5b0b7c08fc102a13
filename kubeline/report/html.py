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
from typing import TYPE_CHECKING, Any

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from kubeline.evaluate.metrics import METRICS, better

if TYPE_CHECKING:
    from kubeline.evaluate import Evaluation, GateDecision
    from kubeline.train import TrainResult

_TEMPLATES = Path(__file__).parent / "templates"
_PERCENT_STATS = frozenset({"cumulative_return", "max_drawdown", "exposure"})
_METRIC_LABELS = {
    "rmse": "RMSE",
    "mae": "MAE",
    "r2": "R²",
    "directional_accuracy": "Directional accuracy",
}
_CV_COLUMNS = ["candidate", "params", *(f"mean_{m}" for m in METRICS), "std_rmse", "fit_seconds"]


def render_report(
    evaluation: Evaluation,
    train_result: TrainResult | Mapping[str, Any],
    *,
    title: str,
    lineage: Mapping[str, Any],
    images: Mapping[str, str | Path],
    gate: GateDecision | Mapping[str, Any] | None = None,
    champion: Mapping[str, Any] | None = None,
) -> str:
    """The report as one HTML string: metrics vs baselines, CV table, backtest, charts, lineage.

    ``train_result`` is a TrainResult or the mapping saved with the model (its ``summary()``
    plus ``cv_results`` as records); ``champion`` is ``{"version", "metrics"}`` of the current
    champion scored on the same holdout, shown as one more column.
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
        metric_rows=_metric_rows(evaluation, champion),
        columns=_columns(evaluation, champion),
        gate=_gate(gate),
        gate_metric=evaluation.gate_inputs.get("metric"),
        backtest=_backtest_rows(evaluation),
        backtest_note=evaluation.backtest_note,
        cv_columns=[c for c in _CV_COLUMNS if c in cv.columns],
        cv_rows=cv.to_dict("records"),
        lineage=[(str(k), "" if v is None else str(v)) for k, v in lineage.items()],
        images=[(name.replace("_", " "), _data_uri(path)) for name, path in images.items()],
        n_rows=evaluation.n_rows,
        n_dropped=evaluation.n_dropped_rows,
    )


def markdown_summary(
    evaluation: Evaluation,
    train_result: TrainResult | Mapping[str, Any],
    *,
    title: str = "kubeline training run",
    gate: GateDecision | Mapping[str, Any] | None = None,
    champion: Mapping[str, Any] | None = None,
) -> str:
    """A short Markdown digest (for a KFP Markdown artifact): model, metrics, backtest, gate."""
    s, _ = _run_facts(train_result)
    columns = _columns(evaluation, champion)
    lines = [
        f"# {title}",
        "",
        f"**{s['candidate']}** ({_params(s['params'])}) chosen by CV {s['selection_metric']}; "
        f"target kind `{s['target_kind']}`, {s['n_features']} features.",
        f"Train {s['train_start']} → {s['train_end']} ({s['n_train_rows']} rows); "
        f"holdout {s['holdout_start']} → {s['holdout_end']} ({evaluation.n_rows} rows).",
        "",
        "| metric | " + " | ".join(label for _, label in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for row in _metric_rows(evaluation, champion):
        cells = [_number(row[key]) for key, _ in columns]
        lines.append(f"| {row['label']} | " + " | ".join(cells) + " |")
    lines.append("")
    bt = _backtest_rows(evaluation)
    if bt:
        lines += ["| backtest | strategy | buy and hold |", "|---|---:|---:|"]
        lines += [f"| {r['label']} | {r['strategy']} | {r['buy_and_hold']} |" for r in bt]
    elif evaluation.backtest_note:
        lines.append(f"_{evaluation.backtest_note}_")
    decision = _gate(gate)
    if decision is not None:
        lines += ["", f"**Gate: {'passed' if decision['passed'] else 'failed'}**"]
        lines += [f"- {reason}" for reason in decision["reasons"]]
    return "\n".join(lines) + "\n"


def _run_facts(
    train_result: TrainResult | Mapping[str, Any],
) -> tuple[dict[str, Any], pd.DataFrame]:
    """The run summary and CV table, from a TrainResult or the metadata saved with a model."""
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


def _columns(evaluation: Evaluation, champion: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """(key, header) of each compared forecaster: the model, the baselines, the champion."""
    columns = [("model", "model")]
    columns += [(name, name.replace("_", " ")) for name in evaluation.baselines]
    if champion:
        version = champion.get("version")
        columns.append(("champion", f"champion v{version}" if version else "champion"))
    return columns


def _metric_rows(
    evaluation: Evaluation, champion: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    rows = []
    champion_metrics = (champion or {}).get("metrics") or {}
    for metric in METRICS:
        values = {"model": evaluation.metrics.get(metric, math.nan)}
        values |= {n: b.get(metric, math.nan) for n, b in evaluation.baselines.items()}
        if champion:
            values["champion"] = champion_metrics.get(metric, math.nan)
        finite = {k: v for k, v in values.items() if v is not None and math.isfinite(v)}
        pick = min if better(metric) == "lower" else max
        best = pick(finite, key=lambda k: finite[k]) if finite else None
        rows.append({"metric": metric, "label": _METRIC_LABELS[metric], "best": best, **values})
    return rows


def _backtest_rows(evaluation: Evaluation) -> list[dict[str, str]]:
    if evaluation.backtest is None:
        return []
    stats = evaluation.backtest.stats
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


def _gate(gate: GateDecision | Mapping[str, Any] | None) -> dict[str, Any] | None:
    if gate is None:
        return None
    data = gate if isinstance(gate, Mapping) else gate.to_dict()
    return {"passed": bool(data["passed"]), "reasons": [str(r) for r in data.get("reasons", [])]}


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
