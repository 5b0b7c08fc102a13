"""bench/serving.py's batching pair: kubeline's /predict with BentoML's adaptive batching on or off.

    BENCH_BATCHABLE=true bentoml serve serving_batching:Batching --working-dir bench --port P

Both contenders are this one module, so the only difference between them is ``batchable``: it
imports ``kubeline.serving.service``, whose model, runtime (metrics, inference log, reload),
front door and service configuration (workers, traffic, logging, metrics) it reuses as they
are. With batching on, BentoML merges the rows of concurrent requests into one call (at most
``MAX_BATCH_ROWS`` rows, waiting at most ``MAX_LATENCY_MS``) and splits the answers back. The
answer is the bare list of predictions in both (a batchable API returns one value per row).
"""

from __future__ import annotations

import os

import bentoml

from kubeline.serving import inputs
from kubeline.serving import service as kubeline_service
from kubeline.serving.frontdoor import FrontDoor

BATCHABLE = os.environ.get("BENCH_BATCHABLE", "false") == "true"
MAX_BATCH_ROWS = 1000
# BentoML answers 503 to what it expects to miss this bound; 10 ms shed most of a 32-client load.
MAX_LATENCY_MS = int(os.environ.get("BENCH_MAX_LATENCY_MS", "100"))
FEATURES = kubeline_service.FEATURES
Row = inputs.row_model(FEATURES, kubeline_service.first.input_example[0])


@bentoml.service(**kubeline_service.Kubeline.config)  # type: ignore[attr-defined]
class Batching:
    def __init__(self) -> None:
        kubeline_service.Kubeline.inner.__init__(self)  # type: ignore[attr-defined]

    @bentoml.api(
        route="/predict",
        batchable=BATCHABLE,
        batch_dim=0,
        max_batch_size=MAX_BATCH_ROWS,
        max_latency_ms=MAX_LATENCY_MS,
    )
    async def predict(self, rows: list[Row]) -> list[float]:  # type: ignore[valid-type]
        frame = inputs.rows_frame(rows, FEATURES)
        runtime = kubeline_service.runtime()
        assert runtime is not None  # FrontDoor answers 503 until the worker has one
        return runtime.predict(frame, "predict").predictions


Batching.add_asgi_middleware(  # type: ignore[attr-defined]
    FrontDoor,
    runtime=kubeline_service.runtime,
    max_body_bytes=kubeline_service.settings.serve_max_body_bytes,
)
