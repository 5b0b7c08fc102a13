"""Train: the feature table -> the best candidate, fit on the training window, saved with skops."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kubeline.steps.base import executor, run_config

MODEL_FILE = "model.skops"
META_FILE = "model.json"


def feature_columns(columns: list[str]) -> list[str]:
    """The model inputs of a feature table: everything but keys, helper columns and the target."""
    from kubeline.data.schema import DATE, TARGET, TICKER

    return [c for c in columns if c not in (TICKER, DATE, TARGET) and not c.startswith("_")]


def save_model(model: Any, meta: dict[str, Any], folder: str | Path) -> None:
    """Write the fitted pipeline (skops: no pickle) and what evaluation needs to know about it."""
    import skops.io

    from kubeline.storage import atomic_path

    with atomic_path(folder) as tmp:
        tmp.mkdir(parents=True)
        skops.io.dump(model, tmp / MODEL_FILE)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, default=str))


# skops refuses to build any type it is not told to trust; these are what kubeline's candidates
# are made of. A model file with other types is refused rather than executed.
TRUSTED_MODULES = ("sklearn.", "numpy.", "scipy.", "builtins.", "collections.")


def trusted_types(folder: Path, meta: dict[str, Any]) -> list[str]:
    """The types in a saved model that may be loaded: scikit-learn's and the config's own.

    Estimators named by import path in the run config are trusted by their module, because
    the config that named them is what the user asked to run.
    """
    import skops.io

    from kubeline.errors import TrainingError

    modules = TRUSTED_MODULES + tuple(f"{m}." for m in meta.get("estimator_modules", []))
    found = skops.io.get_untrusted_types(file=folder / MODEL_FILE)
    refused = [t for t in found if not t.startswith(modules)]
    if refused:
        raise TrainingError(
            f"{folder / MODEL_FILE} holds types kubeline does not trust: {', '.join(refused)}",
            hint="only models trained by kubeline from its candidates or the run config load",
        )
    return found


def load_model(folder: str | Path) -> tuple[Any, dict[str, Any]]:
    """The fitted pipeline and its metadata, as ``save_model`` wrote them."""
    import skops.io

    folder = Path(folder)
    meta = json.loads((folder / META_FILE).read_text())
    model = skops.io.load(folder / MODEL_FILE, trusted=trusted_types(folder, meta))
    return model, meta


@executor
def run(*, table: str, config: str, out: str) -> dict[str, Any]:
    """Tune and fit the candidates; return the model's metadata and the CV metrics."""
    import pandas as pd

    from kubeline.train import train

    cfg = run_config(config)
    frame = pd.read_parquet(table)
    result = train(frame, cfg, feature_names=feature_columns(list(frame.columns)))
    summary = result.summary()
    cv = result.cv_results.drop(columns=["_params"], errors="ignore")
    meta = {
        **summary,
        "target": cfg.target,
        "horizon": cfg.horizon,
        "cv_results": cv.to_dict(orient="records"),
        "estimator_modules": sorted(
            {c.estimator.rsplit(".", 1)[0] for c in cfg.models if c.estimator}
        ),
    }
    save_model(result.model, meta, out)
    best = cv.loc[cv["selected"]].iloc[0]
    metrics = {
        f"cv_{str(k).removeprefix('mean_')}": float(v)
        for k, v in best.items()
        if str(k).startswith("mean_") and pd.notna(v)
    }
    metadata = {k: v for k, v in meta.items() if k != "cv_results"}
    metadata["framework"] = "scikit-learn"
    return {"metadata": metadata, "metrics": metrics}
