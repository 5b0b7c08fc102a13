"""The reference a check compares with: a sample of the champion's own training features.

Logged with each version's MLflow run at register (``REFERENCE_ARTIFACT``), so a check never
recomputes it from whatever data happens to be around: the same rows the version was fitted
on (dates up to its training end, after the feature windows filled), a deterministic sample of
at most ``REFERENCE_ROWS``, with the version's own predictions on them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kubeline.data.schema import PREDICTION
from kubeline.errors import RegistryError

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl

    from kubeline.model import SavedModel
    from kubeline.runconfig import RunConfig
    from kubeline.serving.loaded import ServedModel

REFERENCE_ARTIFACT = "monitor/reference.parquet"
# The demo's training window holds 18,836 rows (2.9 MB as Parquet); two halves of it score at
# most 0.027 against each other, a tenth of the drift threshold. Larger windows are sampled.
REFERENCE_ROWS = 20_000


def training_reference(
    snapshot: pl.DataFrame, config: RunConfig, saved: SavedModel, seed: int | None = None
) -> pd.DataFrame:
    """The training rows' features, target and the model's predictions, sampled."""
    import numpy as np
    import polars as pl

    from kubeline import features as feature_engine
    from kubeline.data import schema as s
    from kubeline.data.schema import keep_tickers

    card = saved.card
    clean = keep_tickers(snapshot, config.data.tickers)
    table, _ = feature_engine.build_polars(
        clean, features=card.feature_names, target=card.target, horizon=card.horizon
    )
    train_end = pl.lit(card.train_end).str.to_date()
    rows = feature_engine.trainable(table).filter(pl.col(s.DATE) <= train_end)
    if rows.height > REFERENCE_ROWS:
        rng = np.random.default_rng(config.seed if seed is None else seed)
        keep = np.sort(rng.choice(rows.height, REFERENCE_ROWS, replace=False))
        rows = rows[keep]
    frame = rows.select(s.TICKER, s.DATE, *card.feature_names, s.TARGET).to_pandas()
    frame[PREDICTION] = saved.predict(frame)
    return frame


def load_reference(served: ServedModel) -> pd.DataFrame:
    """The reference logged with the served version's run; RegistryError when it has none."""
    import mlflow
    import pandas as pd

    if not served.mlflow_run_id:
        raise RegistryError(f"{served.name} version {served.version} names no MLflow run")
    try:
        path = mlflow.artifacts.download_artifacts(
            run_id=served.mlflow_run_id, artifact_path=REFERENCE_ARTIFACT
        )
    except Exception as exc:  # MLflow raises its own and OSError alike for a missing file
        raise RegistryError(
            f"{served.name} version {served.version} has no monitoring reference "
            f"({REFERENCE_ARTIFACT} in run {served.mlflow_run_id}): it was registered before "
            f"kubeline logged one ({type(exc).__name__})",
            hint="retrain (kubeline run), or monitor a version registered since",
        ) from None
    return pd.read_parquet(path)
