"""The demo's monitoring half: a clean and a shifted batch of requests for the service.

Both are the demo data's own tickers over the champion's holdout dates (bars it was never fitted
on), their features computed by the training code. The clean batch is the demo data itself;
the shifted one is the same generator call with a regime change planted from the holdout's
first day (``generate(drift_from=...)``: volatility x2.5, volume x3), identical before it.
Sent through ``/predict``, they land in the inference log, where ``kubeline monitor`` finds
them: the clean batch should be ``ok`` and the shifted one ``drift``.
"""

from __future__ import annotations

from datetime import date

from kubeline.data.demo import DEMO_SEED, DEMO_TICKERS, DEMO_YEARS

BATCH_ROWS = 2_000  # per batch: well above the monitor's default min_rows (200)


def batches(feature_names: list[str], holdout_start: str) -> dict[str, list[dict[str, float]]]:
    """``{"clean": rows, "shifted": rows}``: /predict rows of the model's features."""
    import polars as pl

    from kubeline import features as feature_engine
    from kubeline.data.generate import generate

    start = date.fromisoformat(holdout_start[:10])
    out = {}
    for name, drift_from in (("clean", None), ("shifted", start)):
        bars = generate(
            tickers=DEMO_TICKERS, years=DEMO_YEARS, seed=DEMO_SEED, drift_from=drift_from
        )
        table, _ = feature_engine.build_polars(bars, features=feature_names)
        rows = table.filter(pl.col("date") >= start).drop_nulls(feature_names)
        # Spread over every ticker and date, as a day of traffic would be.
        rows = rows.sample(n=min(BATCH_ROWS, rows.height), seed=DEMO_SEED).select(feature_names)
        out[name] = rows.with_columns(pl.all().cast(pl.Float64)).to_dicts()
    return out
