"""Predict: score a whole data set with a registered version (batch scoring).

Two entry points, as ``features`` has: ``run`` (the pipeline step: the canonical frame ingest
wrote in, a predictions Dataset out) and ``score`` (``kubeline predict``: raw files in any
layout ingest reads, local or s3://, in; one predictions file out). Both load the version
through the service's loader (``kubeline.serving.loaded.load_served``: the champion, or a pinned
version), validate the data and compute its features with the code training uses
(``kubeline.data.validate``, ``kubeline.features``) under the model's own feature list, target
and horizon, and predict every row whose features are all known.

The output has one row per scored bar: ticker, date, prediction, model_name, model_version
(Parquet, or CSV when the name ends in .csv), written atomically. A bar whose features are not
all known (a ticker's first bars, which the feature windows need as history) cannot be scored:
such rows are counted (``Scored.incomplete_rows``), never silently left out, and tickers too
short for any full window are named (``Scored.dropped_tickers``).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubeline.data.schema import PREDICTION
from kubeline.steps.base import executor, write_parquet

if TYPE_CHECKING:
    import polars as pl

    from kubeline.serving.loaded import ServedModel
    from kubeline.settings import Settings

MODEL_NAME = "model_name"
MODEL_VERSION = "model_version"


@dataclass(frozen=True)
class Scored:
    """What a batch scoring wrote, with what it could not score and the lineage of both sides."""

    out: str
    rows: int  # predictions written
    incomplete_rows: int  # bars not scored: a feature is unknown (mostly the windows' warm-up)
    tickers: int  # tickers with at least one prediction
    dropped_tickers: list[str]  # too short for the feature windows: nothing scored
    first_date: str | None
    last_date: str | None
    model_name: str
    model_version: str
    mlflow_run_id: str | None
    pipeline_run_id: str | None  # the training run behind the version
    model_data_hash: str | None  # what the version was trained on
    data_hash: str  # the content hash of the scored data (as validate computes it)
    features: list[str]
    seconds: float
    warnings: list[str] = field(default_factory=list)

    def metadata(self, max_warnings: int = 50) -> dict[str, Any]:
        """JSON-able form for artifact metadata and ``--json`` output (the first warnings)."""
        out = asdict(self)
        out["warnings"] = self.warnings[:max_warnings]
        out["warnings_total"] = len(self.warnings)
        return out


def predictions_frame(
    raw: pl.DataFrame, served: ServedModel
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Validate ``raw`` (canonical), compute the model's features, predict the complete rows.

    Returns the predictions (ticker, date, prediction, model_name, model_version) and what was
    found on the way: incomplete rows, dropped tickers, warnings, the clean data's hash.
    DataError when the data is invalid or lacks a column a feature of the model reads.
    """
    import polars as pl

    from kubeline.data import schema as s

    table, found = scored_table(raw, served)
    out = table.select(
        s.TICKER,
        s.DATE,
        PREDICTION,
        pl.lit(served.name, dtype=pl.String).alias(MODEL_NAME),
        pl.lit(served.version, dtype=pl.String).alias(MODEL_VERSION),
    )
    return out, found


def scored_table(raw: pl.DataFrame, served: ServedModel) -> tuple[pl.DataFrame, dict[str, Any]]:
    """``predictions_frame``'s work, keeping the whole features table of the scored rows:
    ticker, date, the features, the target (null where not realized yet), the naive forecasts'
    columns and the prediction. The monitor judges the model on it."""
    import polars as pl

    from kubeline import features as feature_engine
    from kubeline.data.snapshot import content_hash
    from kubeline.data.validate import validate
    from kubeline.errors import DataError

    card = served.card
    plan = feature_engine.plan(card.feature_names, raw.columns, card.target, card.horizon)
    if plan.skipped:
        lacking = sorted({c for columns in plan.skipped.values() for c in columns})
        raise DataError(
            f"the data lacks column(s) {', '.join(lacking)}, which feature(s) "
            f"{', '.join(plan.skipped)} of {served.name} version {served.version} read",
            hint="score data with the columns the model was trained on",
        )
    # The feature windows alone decide which tickers can be scored: the target's lead, which
    # training also needs, is not needed to predict.
    checked = validate(raw, min_rows=plan.required_history)
    checked.raise_for_errors()
    clean = checked.clean  # validation refuses data where no ticker is long enough
    table = feature_engine.build_lazy(clean, plan, card.target, card.horizon).collect(
        engine="in-memory"
    )
    names = card.feature_names
    complete = table.drop_nulls(names)
    predicted = served.predict(complete.select(names).to_pandas())
    out = complete.with_columns(pl.Series(PREDICTION, predicted, dtype=pl.Float64))
    found = {
        "incomplete_rows": table.height - complete.height,
        "dropped_tickers": sorted(checked.dropped_tickers),
        "warnings": [str(p) for p in checked.warnings],
        "data_hash": content_hash(clean),
    }
    return out, found


def _scored(
    out: str, predictions: pl.DataFrame, found: dict[str, Any], served: ServedModel, started: float
) -> Scored:
    from kubeline.data import schema as s

    dates = predictions.get_column(s.DATE)
    return Scored(
        out=out,
        rows=predictions.height,
        tickers=predictions.get_column(s.TICKER).n_unique(),
        first_date=str(dates.min()) if predictions.height else None,
        last_date=str(dates.max()) if predictions.height else None,
        model_name=served.name,
        model_version=served.version,
        mlflow_run_id=served.mlflow_run_id,
        pipeline_run_id=served.pipeline_run_id,
        model_data_hash=served.data_hash,
        features=served.feature_names,
        seconds=round(time.perf_counter() - started, 3),
        **found,
    )


def _write(predictions: pl.DataFrame, out: str, settings: Settings | None) -> None:
    """Parquet, or CSV for a name ending in .csv; atomically, local or s3://."""
    from kubeline.storage import output_location

    with output_location(out, settings) as tmp:
        if out.lower().endswith(".csv"):
            predictions.write_csv(tmp)
        else:
            predictions.write_parquet(tmp, compression="zstd", statistics=True)


def _load(settings: Settings, model_name: str, version: str) -> ServedModel:
    from kubeline.serving.loaded import load_served

    return load_served(settings, name=model_name or None, version=version or None)


def score(
    data: str | Path,
    out: str,
    *,
    model_name: str = "",
    version: str = "",
    settings: Settings | None = None,
) -> Scored:
    """Score the raw files at ``data`` (any layout, local or s3://) into the file ``out``.

    ``version`` "" scores with the champion; ``model_name`` "" is the KUBELINE_MODEL_NAME
    setting. The output's place is checked before the model is loaded or the data read.
    """
    from kubeline.data.ingest import ingest
    from kubeline.errors import StorageError
    from kubeline.settings import get_settings
    from kubeline.storage import check_file_target, is_s3, refuse_writing_into_the_input, split_s3

    started = time.perf_counter()
    settings = settings or get_settings()
    # Wrong places fail before the registry is asked for anything.
    refuse_writing_into_the_input(data, out, what="the predictions")
    if not is_s3(out):
        check_file_target(out, "--out")
    if is_s3(data):
        split_s3(str(data))
    elif not Path(data).expanduser().exists():
        raise StorageError(f"no such file or folder: {data}")
    served = _load(settings, model_name, version)
    predictions, found = predictions_frame(ingest(str(data), settings=settings), served)
    _write(predictions, out, settings)
    return _scored(out, predictions, found, served, started)


@executor
def run(*, raw: str, out: str, model_name: str = "", version: str = "") -> Scored:
    """The pipeline step: the canonical frame (ingest's Parquet) -> predictions Parquet."""
    import polars as pl

    from kubeline.settings import get_settings

    started = time.perf_counter()
    settings = get_settings()
    served = _load(settings, model_name, version)
    predictions, found = predictions_frame(pl.read_parquet(raw), served)
    write_parquet(predictions, out)
    return _scored(out, predictions, found, served, started)
