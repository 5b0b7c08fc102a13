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

# What the monitor image deletes after installing its lock: required by Evidently's metadata,
# never imported by a check (an example notebook, LLM data generation, the UI's event loop).
DROPPED = ("statsmodels", "patsy", "faker", "uvloop", "pyarrow.substrait")


def warm() -> set[str]:
    """Import the check's chain and run the drift report on a small frame; the modules loaded."""
    import numpy as np
    import pandas as pd

    import kubeline.monitor as monitor
    from kubeline.monitor.drift import drift_report

    # The loop back submits through kfp.Client (kubeline.runner.remote) when it retrains.
    chain = ("kubeline.steps.monitor", "kubeline.cli", "kubeline.runner.remote", "kfp.client")
    for name in (*chain, "mlflow.sklearn", "skops.io"):
        importlib.import_module(name)
    for found in pkgutil.iter_modules(monitor.__path__, "kubeline.monitor."):
        if found.name != __name__:
            importlib.import_module(found.name)
    import boto3

    boto3.session.Session().client("s3", region_name="us-east-1")  # botocore's S3 model
    rng = np.random.default_rng(0)
    columns = ["a", "b", "c"]
    reference = pd.DataFrame(rng.normal(size=(500, 3)), columns=columns)
    reference["prediction"] = rng.normal(size=500)
    current = reference + 1.0
    _, snapshot = drift_report(
        reference, current, columns, "prediction",
        method="wasserstein", threshold=0.3, drifted_share=0.3,
    )  # fmt: skip
    snapshot.save_html("/tmp/warm-report.html")  # a str: given a Path, Evidently writes nothing
    return set(sys.modules)


if __name__ == "__main__":
    loaded = warm()
    needed = [name for name in DROPPED if name in loaded]
    if needed:
        raise SystemExit(f"a check imports {', '.join(needed)}, which the monitor image drops")
    print(f"warm: {len(loaded)} modules loaded")
