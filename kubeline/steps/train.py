"""Train: the feature table -> the best candidate, fit on the training window, saved with skops."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubeline.steps.base import executor, run_config


@dataclass(frozen=True)
class Trained:
    """What the train step hands KFP: the model's metadata and the selected CV scores."""

    metadata: dict[str, Any]
    metrics: dict[str, float]


@executor
def run(*, table: str, config: str, out: str) -> Trained:
    """Tune and fit the candidates; save the model folder; return its metadata and CV metrics."""
    import pandas as pd

    from kubeline import model
    from kubeline.train import train

    cfg = run_config(config)
    frame = pd.read_parquet(table)
    result = train(frame, cfg, feature_names=model.input_columns(frame))
    card = model.ModelCard.of(result, cfg)
    model.save(result.model, card, out)
    return Trained(metadata=card.metadata(), metrics=card.cv_metrics())
