"""Features: the clean snapshot -> features, naive-baseline columns and target, as Parquet."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubeline.steps.base import executor, run_config, write_parquet


@executor
def run(*, snapshot: str, config: str, out: str, data_hash: str = "") -> dict[str, Any]:
    """Compute the configured features and target for every ticker of the snapshot."""
    import polars as pl

    from kubeline import features
    from kubeline.data.schema import TICKER

    cfg = run_config(config)
    clean = pl.read_parquet(snapshot)
    table, chosen = features.build_polars(
        clean, features=cfg.features, target=cfg.target, horizon=cfg.horizon
    )
    write_parquet(table, out)
    return {
        "rows": table.height,
        "tickers": table[TICKER].n_unique(),
        "features": list(chosen.features),
        "skipped_features": list(chosen.skipped),
        "target": cfg.target,
        "horizon": cfg.horizon,
        "data_hash": data_hash,
    }


def prepare(
    data: str,
    out: str | Path,
    config_text: str = "",
    on_progress: Callable[[int, int], None] | None = None,
    hash_content: bool = False,
) -> Any:
    """Ingest, validate and featurize ``data`` in memory-bounded batches into one Parquet file."""
    from kubeline.data.prepare import prepare_features

    cfg = run_config(config_text)
    return prepare_features(
        data,
        out,
        features=cfg.features,
        target=cfg.target,
        horizon=cfg.horizon,
        min_rows=cfg.data.min_rows,
        tickers=cfg.data.tickers,
        on_progress=on_progress,
        hash_content=hash_content,
    )
