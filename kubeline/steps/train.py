"""Train: the feature table -> the best candidate, fit on the training window, saved with skops.

Three entry points, so the training pipeline can tune its candidates in parallel tasks:
``candidates`` (the run config's candidate indices: the fan-out's items), ``tune`` (one
candidate's cross-validation scores, as JSON) and ``run`` (select the best of those scores and
fit it; without scores it tunes every candidate itself, as ``kubeline train`` does).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubeline.steps.base import executor, run_config, write_text

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Trained:
    """What the train step hands KFP: the model's metadata and the selected CV scores."""

    metadata: dict[str, Any]
    metrics: dict[str, float]


@dataclass(frozen=True)
class Tuned:
    """What a tune task hands KFP: which candidate it tuned and its best score."""

    candidate: str
    combinations: int
    metric: str
    best: float

    def metadata(self) -> dict[str, Any]:
        best = self.best if math.isfinite(self.best) else None
        return {
            "candidate": self.candidate,
            "combinations": self.combinations,
            f"best_mean_{self.metric}": best,
        }


@executor
def candidates(*, config: str) -> list[int]:
    """The indices of the run config's candidates, one per parallel ``tune`` task."""
    from kubeline.errors import ConfigError
    from kubeline.train import candidate_count

    cfg = run_config(config)
    if cfg.data.per_ticker:
        # It would train one model on every listed ticker under the one name: not what was asked.
        raise ConfigError(
            "this run config asks for one model per ticker (data.per_ticker)",
            hint="run the kubeline-training-per-ticker pipeline (kubeline run picks it itself; "
            "kubeline submit --pipeline training_per_ticker)",
        )
    return list(range(candidate_count(cfg)))


@executor
def tune(*, table: str, config: str, candidate: int, out: str) -> Tuned:
    """Cross-validate one candidate's grid; write its scores (JSON) to ``out``."""
    import pandas as pd

    from kubeline import model
    from kubeline.evaluate.metrics import better
    from kubeline.train import tune as tune_candidate

    cfg = run_config(config)
    frame = pd.read_parquet(table)
    scores = tune_candidate(
        frame, cfg, feature_names=model.input_columns(frame), candidate=candidate
    )
    write_text(scores_json(scores), out)
    column = scores[f"mean_{cfg.selection_metric}"].dropna()
    best = column.min() if better(cfg.selection_metric) == "lower" else column.max()
    print(
        f"tuned candidate {candidate} ({scores['candidate'].iloc[0]}): {len(scores)} "
        f"combination(s), best mean {cfg.selection_metric} {best:.6g}",
        flush=True,
    )
    return Tuned(
        candidate=str(scores["candidate"].iloc[0]),
        combinations=len(scores),
        metric=cfg.selection_metric,
        best=float(best) if len(column) else math.nan,
    )


@executor
def run(*, table: str, config: str, out: str, scores: list[str] | None = None) -> Trained:
    """Select and fit the best candidate; save the model folder; return its metadata and CV
    metrics. ``scores`` are the tune tasks' files; ``None`` tunes every candidate here."""
    import pandas as pd

    from kubeline import model
    from kubeline.train import train

    cfg = run_config(config)
    frame = pd.read_parquet(table)
    tuned = None if scores is None else [read_scores(path) for path in scores]
    result = train(frame, cfg, feature_names=model.input_columns(frame), scores=tuned)
    card = model.ModelCard.of(result, cfg)
    model.save(result.model, card, out)
    return Trained(metadata=card.metadata(), metrics=card.cv_metrics())


def scores_json(scores: pd.DataFrame) -> str:
    """A tune table as standard JSON (a missing score is null, not NaN)."""
    rows = [
        {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
        for row in scores.to_dict(orient="records")
    ]
    return json.dumps({"rows": rows}, indent=1, default=_plain)


def read_scores(path: str) -> pd.DataFrame:
    """A tune task's table back, scores as floats (null = NaN)."""
    import pandas as pd

    from kubeline.errors import TrainingError

    try:
        rows = json.loads(Path(path).read_text(encoding="utf-8"))["rows"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TrainingError(
            f"{path}: not a tune task's scores: {exc}",
            hint="pass the scores the training pipeline's tune tasks wrote",
        ) from exc
    frame = pd.DataFrame(rows)
    numeric = [c for c in frame.columns if c.startswith(("mean_", "std_")) or c == "fit_seconds"]
    return frame.astype(dict.fromkeys(numeric, float))


def _plain(value: Any) -> Any:
    # numpy scalars in a grid (a YAML list read through numpy) are plain numbers in JSON.
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as JSON")
