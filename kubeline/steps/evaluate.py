"""Evaluate: the model on the holdout vs naive baselines and the current champion -> the gate.

As TFX's Evaluator blesses a model, this step writes the verdict the register step obeys. The
champion is scored on this run's holdout rows, so every comparison is like for like.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubeline.steps.base import executor, registered_name, run_config, write_text

if TYPE_CHECKING:
    import pandas as pd

    from kubeline.evaluate.verdict import Champion
    from kubeline.model import ModelCard
    from kubeline.runconfig import RunConfig


@dataclass(frozen=True)
class Evaluated:
    """What the evaluate step hands KFP: the verdict's headline metadata and its flat metrics."""

    metadata: dict[str, Any]
    metrics: dict[str, float]


def holdout_rows(table: pd.DataFrame, card: ModelCard, config: RunConfig) -> pd.DataFrame:
    """The rows train held out, found by the same split function on the same rows.

    Train recorded the holdout's date range; a different range here means the table or the
    config changed between the steps, and scoring would be on the wrong rows.
    """
    import pandas as pd

    from kubeline.data.schema import DATE
    from kubeline.errors import TrainingError
    from kubeline.splits import holdout_split
    from kubeline.train import usable_rows

    rows, _ = usable_rows(table, config, card.feature_names)
    split = holdout_split(
        rows[DATE], holdout_fraction=config.split.holdout_fraction, gap=config.purge_gap
    )
    holdout = rows.iloc[split.holdout_index].reset_index(drop=True)
    dates = pd.to_datetime(holdout[DATE])
    found = (str(dates.min().date()), str(dates.max().date()))
    if found != (card.holdout_start, card.holdout_end):
        raise TrainingError(
            f"the holdout here ({found[0]} to {found[1]}) is not the one train used "
            f"({card.holdout_start} to {card.holdout_end})",
            hint="evaluate the model with the feature table and run config it was trained with",
        )
    return holdout


def current_champion(
    name: str, config: RunConfig, card: ModelCard, holdout: pd.DataFrame
) -> tuple[Any, Champion | None]:
    """The champion to compare against: (model, its record), or (None, a record saying why not).

    A champion that predicts something else, or that was trained on rows inside this holdout,
    cannot be compared fairly; the candidate is then not promoted automatically.
    """
    from kubeline import model, registry
    from kubeline.errors import KubelineError
    from kubeline.evaluate.verdict import Champion
    from kubeline.promotion import champion_mismatch
    from kubeline.settings import get_settings

    client = registry.connect(get_settings())
    current = registry.version_by_alias(client, name, registry.CHAMPION)
    if current is None:
        return None, None
    version = str(current.version)
    uri = registry.model_uri(name, version)
    note = champion_mismatch(version, current.tags or {}, config, card.holdout_start)
    if note is not None:
        return None, Champion(version=version, uri=uri, note=note)
    try:
        fitted = registry.load_model(uri)
        model.columns_read(fitted, holdout)
    except KubelineError as exc:
        note = f"champion version {version} cannot be scored here: {exc.message}"
        return None, Champion(version=version, uri=uri, note=note)
    return fitted, Champion(version=version, uri=uri)


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
) -> Evaluated:
    """Score, compare, decide; write the verdict, predictions, example, plots and the reports."""
    import pandas as pd

    from kubeline import model as model_file
    from kubeline.evaluate import decide_gate, evaluate, to_verdict
    from kubeline.evaluate.verdict import EXAMPLE_FILE, PLOTS_DIR, PREDICTIONS_FILE
    from kubeline.promotion import question, with_margin
    from kubeline.report import html, plots
    from kubeline.storage import atomic_path

    cfg = with_margin(run_config(config), min_improvement)
    name = registered_name(cfg, model_name)
    saved = model_file.load(model)
    card = saved.card
    holdout = holdout_rows(pd.read_parquet(table), card, cfg)
    champion_model, champion = current_champion(name, cfg, card, holdout)
    evaluation = evaluate(
        saved.estimator,
        holdout,
        card.feature_names,
        cfg,
        target_kind=card.target_kind,
        train_mean=card.train_target_mean,
        champion=champion_model,
    )
    gate = decide_gate(
        evaluation, cfg.gate, evaluation.champion, champion.note if champion else None
    )
    verdict = to_verdict(
        evaluation,
        gate,
        card,
        model_name=name,
        question=question(cfg),
        champion=champion,
        lineage=dict(lineage or {}),
    )
    with atomic_path(out) as folder:
        (folder / PLOTS_DIR).mkdir(parents=True)
        images = plots.write_all(evaluation, folder / PLOTS_DIR)
        evaluation.predictions.to_parquet(folder / PREDICTIONS_FILE, index=False)
        model_file.input_example(holdout, card.feature_names).to_parquet(
            folder / EXAMPLE_FILE, index=False
        )
        verdict.write(folder)
        title = f"{name}: {card.candidate} on {card.target}"
        write_text(html.render_report(verdict, card, title=title, images=images), report)
        write_text(html.markdown_summary(verdict, card, title=title), summary)
    return Evaluated(
        metadata={
            "gate_passed": gate.passed,
            "gate_reason": gate.summary,
            "gate_failed": ",".join(gate.failed),
            "model_name": name,
            "holdout_rows": evaluation.n_rows,
        },
        metrics=verdict.flat_metrics(),
    )
