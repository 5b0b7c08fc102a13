"""The monitor image's warm-up: import what a check imports and draw one drift report.

The image's build runs ``python -m kubeline.monitor.warmup`` with bytecode writing on, so the
read-only image carries bytecode for exactly the modules a check loads (not for all of
site-packages), and a build whose check cannot import fails there. It prints the top-level
modules it loaded; ``tests/unit/test_images.py`` holds it to never needing what the image drops.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import tempfile
from pathlib import Path
from typing import Any

# What the monitor image deletes after installing its lock: required by Evidently's metadata,
# never imported by a check (an example notebook, LLM data generation, the UI's event loop).
DROPPED = (
    "statsmodels", "patsy", "faker", "uvloop", "uvicorn", "websockets", "watchfiles",
    "httptools", "dynaconf", "polyfactory", "formulaic", "jupyterlab_plotly", "git", "gitdb",
    "smmap",
)  # fmt: skip
# botocore's service models the image keeps: S3, and what the credential chain may call.
BOTOCORE_SERVICES = ("s3", "sts", "sso", "sso-oidc")


def warm() -> set[str]:
    """Import the check's chain and run the drift report on a small frame; the modules loaded."""
    with tempfile.TemporaryDirectory(prefix="kubeline-warm-") as tmp:
        return _warm(Path(tmp))


def _warm(folder: Path) -> set[str]:
    import numpy as np
    import pandas as pd

    import kubeline.monitor as monitor
    from kubeline.monitor.drift import drift_report

    # Not kfp.client: only a retraining on a cluster submits through it, at most once per
    # cooldown, and its import chain (the kubernetes client) is 14 MB of bytecode.
    chain = ("kubeline.steps.monitor", "kubeline.cli", "kubeline.runner.remote")
    for name in (*chain, "mlflow.sklearn", "skops.io"):
        importlib.import_module(name)
    for found in pkgutil.iter_modules(monitor.__path__, "kubeline.monitor."):
        if found.name != __name__:
            importlib.import_module(found.name)
    import boto3

    session = boto3.session.Session()
    for service in ("s3", "sts"):  # their models; STS is how web-identity credentials come
        session.client(service, region_name="us-east-1")
    rng = np.random.default_rng(0)
    columns = ["a", "b", "c"]
    reference = pd.DataFrame(rng.normal(size=(500, 3)), columns=columns)
    reference["prediction"] = rng.normal(size=500)
    current = reference + 1.0
    _, snapshot = drift_report(
        reference, current, columns, "prediction",
        method="wasserstein", threshold=0.3, drifted_share=0.3,
    )  # fmt: skip
    snapshot.save_html(str(folder / "report.html"))  # a str: given a Path, Evidently writes nothing
    _parquet_round_trip(reference, folder)
    _trend_plot(folder)
    return set(sys.modules)


def _parquet_round_trip(frame: Any, folder: Path) -> None:
    """The reference and the inference log are Parquet: pandas and polars over pyarrow (whose
    shared libraries load each other: a missing one fails here, not in a CronJob)."""
    import pandas as pd
    import polars as pl

    frame.to_parquet(folder / "warm.parquet")
    pd.read_parquet(folder / "warm.parquet")
    pl.read_parquet(folder / "warm.parquet")


def _trend_plot(folder: Path) -> None:
    """``monitor history``'s PNG (matplotlib's Agg and fonts)."""
    from datetime import UTC, datetime, timedelta

    from kubeline.monitor.summary import CheckSummary, check_key
    from kubeline.monitor.trend import write_plot

    days = [datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=d) for d in range(3)]
    checks = [
        CheckSummary(
            decision="ok", reason="", exit_code=0, checked_at=when.isoformat(), model_name="m",
            model_version="1", mlflow_run_id=None, pipeline_run_id=None, source="warm-up",
            window_start=None, window_end=None, rows=1, drift_rows=1, sampled=False,
            reference_rows=1, drift_method="wasserstein", drift_threshold=0.3,
            drifted_share=0.1 * i, drifted_features=[], drift_scores={}, prediction_drift=None,
            truth_rows=0, rmse=None, mae=None, holdout_rmse=None,
            check_id=check_key(when, "m", "1"),
        )
        for i, when in enumerate(days)
    ]  # fmt: skip
    write_plot(checks, str(folder / "trend.png"))


if __name__ == "__main__":
    loaded = warm()
    needed = [name for name in DROPPED if name in loaded]
    if needed:
        raise SystemExit(f"a check imports {', '.join(needed)}, which the monitor image drops")
    print(f"warm: {len(loaded)} modules loaded")
