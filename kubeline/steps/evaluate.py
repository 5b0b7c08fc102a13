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
    """The rows train held out, found by the same split function on the same rows.

    Train recorded the holdout's date range; a different range here means the table or the
    config changed between the steps, and scoring would be on the wrong rows.
    """
    import pandas as pd

    from kubeline.data.schema import DATE
    from kubeline.errors import TrainingError
    from kubeline.splits import holdout_split
    from kubeline.train import usable_rows

    rows, _ = usable_rows(table, config, meta["feature_names"])
    split = holdout_split(
        rows[DATE], holdout_fraction=config.split.holdout_fraction, gap=config.purge_gap
    )
    holdout = rows.iloc[split.holdout_index].reset_index(drop=True)
    dates = pd.to_datetime(holdout[DATE])
    found = (str(dates.min().date()), str(dates.max().date()))
    if found != (meta["holdout_start"], meta["holdout_end"]):
        raise TrainingError(
            f"the holdout here ({found[0]} to {found[1]}) is not the one train used "
            f"({meta['holdout_start']} to {meta['holdout_end']})",
            hint="evaluate the model with the feature table and run config it was trained with",
        )
    return holdout


def question(config: RunConfig) -> dict[str, str]:
    """What a model answers: target, horizon and tickers; only like models are compared."""
    return {
        "target": config.target,
        "horizon": str(config.horizon),
        "tickers": ",".join(config.data.tickers or []) or "all",
    }


def current_champion(
    name: str, config: RunConfig, meta: dict[str, Any], holdout: pd.DataFrame
) -> tuple[Any, dict[str, Any] | None, str | None]:
    """The champion to compare against: (model, info, None), or (None, info, why not).

    A champion that predicts something else, or that was trained on rows inside this holdout,
    cannot be compared fairly; the candidate is then not promoted automatically.
    """
    from kubeline import registry
    from kubeline.errors import KubelineError
    from kubeline.evaluate import input_columns
    from kubeline.settings import get_settings

    client = registry.connect(get_settings())
    current = registry.version_by_alias(client, name, registry.CHAMPION)
    if current is None:
        return None, None, None
    version = str(current.version)
    info = {"version": version, "uri": registry.model_uri(name, version)}
    tags = current.tags or {}
    for key, ours in question(config).items():
        theirs = tags.get(f"kubeline.{key}")
        if theirs is not None and theirs != ours:
            return None, info, f"champion version {version} predicts {key}={theirs}, not {ours}"
    trained_to = tags.get("kubeline.train_end")
    if trained_to and trained_to >= meta["holdout_start"]:
        return (
            None,
            info,
            (
                f"champion version {version} was trained on data up to {trained_to}, inside this "
                f"holdout (from {meta['holdout_start']}): scoring it there would flatter it"
            ),
        )
    try:
        model = registry.load_model(info["uri"])
        input_columns(model, holdout)
    except KubelineError as exc:
        return None, info, f"champion version {version} cannot be scored here: {exc.message}"
    return model, info, None


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
    champion_model, champion, champion_note = current_champion(name, cfg, meta, holdout)
    evaluation = evaluate(
        fitted,
        holdout,
        meta["feature_names"],
        cfg,
        target_kind=meta["target_kind"],
        champion=champion_model,
    )
    gate = decide_gate(evaluation, evaluation.champion)
    reasons = list(gate.reasons)
    passed = gate.passed
    if champion_note:
        # A champion we cannot compare with is not a champion we may silently replace.
        passed = False
        reasons[-1] = f"{champion_note}; promote by hand with `kubeline promote`"
    if champion is not None and evaluation.champion is not None:
        champion["metrics"] = evaluation.champion
    verdict = {
        "model_name": name,
        "metrics": evaluation.metrics,
        "baselines": evaluation.baselines,
        "champion": champion,
        "question": question(cfg),
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
    if evaluation.champion:
        metrics.update(
            {f"champion_{k}": float(v) for k, v in evaluation.champion.items() if v == v}
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
