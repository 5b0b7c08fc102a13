"""Evaluate: the model on the holdout vs naive baselines and the current champion -> the gate.

As TFX's Evaluator blesses a model, this step writes the verdict the register step obeys. The
champion is scored on this run's holdout rows, so every comparison is like for like.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubeline.steps.base import executor, registered_name, run_config, write_text

if TYPE_CHECKING:
    import pandas as pd

    from kubeline.runconfig import RunConfig

EVALUATION_FILE = "evaluation.json"
PREDICTIONS_FILE = "predictions.parquet"
EXAMPLE_ROWS = 5


def holdout_rows(table: pd.DataFrame, meta: dict[str, Any], config: RunConfig) -> pd.DataFrame:
    """The rows train held out: the holdout date range, every feature and the target known."""
    import pandas as pd

    from kubeline.train import usable_rows

    rows, _ = usable_rows(table, config, meta["feature_names"])
    dates = pd.to_datetime(rows["date"])
    keep = (dates >= pd.Timestamp(meta["holdout_start"])) & (
        dates <= pd.Timestamp(meta["holdout_end"])
    )
    return rows.loc[keep].reset_index(drop=True)


def champion_metrics(name: str, holdout: pd.DataFrame) -> tuple[dict[str, Any] | None, str | None]:
    """The current champion's metrics on ``holdout``; (None, why) when there is none to score."""
    from kubeline import registry
    from kubeline.errors import KubelineError
    from kubeline.evaluate import score_model
    from kubeline.settings import get_settings

    client = registry.connect(get_settings())
    current = registry.version_by_alias(client, name, registry.CHAMPION)
    if current is None:
        return None, None
    uri = registry.model_uri(name, current.version)
    try:
        model = registry.load_model(uri)
        metrics = score_model(model, holdout)
    except KubelineError as exc:
        return None, f"champion version {current.version} cannot be scored here: {exc.message}"
    return {"version": str(current.version), "uri": uri, "metrics": metrics}, None


def _with_margin(config: RunConfig, min_improvement: float | None) -> RunConfig:
    """The config with the pipeline's margin, if one was given (None or negative = none)."""
    if min_improvement is None or min_improvement < 0:
        return config
    gate = config.gate.model_copy(update={"min_improvement": float(min_improvement)})
    return config.model_copy(update={"gate": gate})


@executor
def run(
    *,
    model: str,
    table: str,
    config: str,
    model_name: str,
    report: str,
    summary: str,
    out: str,
    min_improvement: float | None = None,
    lineage: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Score, compare, decide; write evaluation.json, predictions, plots and the reports."""
    import pandas as pd

    from kubeline.evaluate import decide_gate, evaluate
    from kubeline.report import html, plots
    from kubeline.steps.train import load_model
    from kubeline.storage import atomic_path

    cfg = _with_margin(run_config(config), min_improvement)
    name = registered_name(cfg, model_name)
    fitted, meta = load_model(model)
    holdout = holdout_rows(pd.read_parquet(table), meta, cfg)
    evaluation = evaluate(
        fitted, holdout, meta["feature_names"], cfg, target_kind=meta["target_kind"]
    )
    champion, champion_note = champion_metrics(name, holdout)
    gate = decide_gate(evaluation, champion["metrics"] if champion else None)
    reasons = list(gate.reasons)
    passed = gate.passed
    if champion_note:
        # A champion we cannot score is not a champion we may silently replace.
        passed = False
        reasons.append(f"{champion_note}; promote by hand with `kubeline promote`")
    verdict = {
        "model_name": name,
        "metrics": evaluation.metrics,
        "baselines": evaluation.baselines,
        "champion": champion,
        "backtest": None if evaluation.backtest is None else {"stats": evaluation.backtest.stats},
        "backtest_note": evaluation.backtest_note,
        "gate": {
            "passed": passed,
            "metric": cfg.gate.metric,
            "baseline": evaluation.gate_inputs["baseline"],
            "min_improvement": cfg.gate.min_improvement,
            "reasons": reasons,
            "reason": ("passed: " if passed else "not promoted: ") + "; ".join(reasons),
        },
        "holdout": {
            "start": meta["holdout_start"],
            "end": meta["holdout_end"],
            "rows": evaluation.n_rows,
        },
        "candidate": meta["candidate"],
        "params": meta["params"],
        "target": meta["target"],
    }
    lineage = dict(lineage or {})
    with atomic_path(out) as folder:
        (folder / "plots").mkdir(parents=True)
        images = plots.write_all(evaluation, folder / "plots")
        evaluation.predictions.to_parquet(folder / PREDICTIONS_FILE, index=False)
        holdout[meta["feature_names"]].head(EXAMPLE_ROWS).to_parquet(
            folder / "example.parquet", index=False
        )
        (folder / EVALUATION_FILE).write_text(json.dumps(verdict, indent=2, default=str))
        write_text(
            html.render_report(
                evaluation,
                meta,
                title=f"{name}: {meta['candidate']} on {meta['target']}",
                lineage=lineage,
                gate=verdict["gate"],
                champion=champion,
                images=images,
            ),
            report,
        )
        write_text(
            html.markdown_summary(evaluation, meta, gate=verdict["gate"], champion=champion),
            summary,
        )
    metrics = {f"holdout_{k}": float(v) for k, v in evaluation.metrics.items() if v == v}
    for kind, values in evaluation.baselines.items():
        metrics.update({f"{kind}_{k}": float(v) for k, v in values.items() if v == v})
    if champion:
        metrics.update(
            {f"champion_{k}": float(v) for k, v in champion["metrics"].items() if v == v}
        )
    metrics["gate_passed"] = 1.0 if passed else 0.0
    return {
        "metadata": {
            "gate_passed": passed,
            "gate_reason": verdict["gate"]["reason"],
            "model_name": name,
            "holdout_rows": evaluation.n_rows,
        },
        "metrics": metrics,
    }


def read_headline(folder: Path) -> str:
    """One line of the main numbers from an evaluation folder, for the CLI's closing message."""
    verdict = json.loads((Path(folder) / EVALUATION_FILE).read_text())
    m = verdict["metrics"]
    base = verdict["baselines"].get(verdict["gate"]["baseline"], {})
    parts = [
        f"holdout rmse {m['rmse']:.4g} (naive {base.get('rmse', float('nan')):.4g})",
        f"mae {m['mae']:.4g}",
        f"r2 {m['r2']:.3f}",
        f"directional accuracy {m['directional_accuracy']:.1%}",
    ]
    stats = (verdict.get("backtest") or {}).get("stats") or {}
    if "strategy" in stats:
        s, b = stats["strategy"], stats.get("buy_and_hold", {})
        parts.append(
            f"backtest Sharpe {s.get('sharpe', float('nan')):.2f} "
            f"vs buy-and-hold {b.get('sharpe', float('nan')):.2f}"
        )
    return ", ".join(parts)
