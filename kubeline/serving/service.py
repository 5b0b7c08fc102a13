"""The BentoML service: the registry's champion over HTTP.

``kubeline serve`` starts it; ``bentoml serve kubeline.serving.service:Kubeline`` works too.
Importing this module loads the version to serve (the alias, or KUBELINE_SERVE_VERSION),
because the ``/predict`` request model is generated from that version's feature list. A
later version with other features is refused by hot reload (the request schema is a contract
clients were given): restart to serve it.

Endpoints: the native ``/predict`` and ``/predict_history`` are BentoML APIs (typed pydantic
bodies, in the OpenAPI document at ``/docs.json``); the foreign protocols (MLflow's
``/invocations``, KServe V2) and ``/model`` and ``/admin/reload`` are a FastAPI app mounted in
the service, whose routes BentoML merges into the same document. ``FrontDoor`` (frontdoor.py)
sits in front of all of them.
"""

from __future__ import annotations

import os

# BentoML sends a usage report every 12 hours unless this is set; kubeline never reports.
# Set before bentoml is imported (it caches the answer at first use).
os.environ["BENTOML_DO_NOT_TRACK"] = "true"

import json
import logging
import secrets
from typing import Annotated, Any

import bentoml
from fastapi import FastAPI, Header, Path, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import ValidationError

from kubeline.errors import RequestError
from kubeline.serving import inputs, openapi
from kubeline.serving.frontdoor import SHAPED, FrontDoor
from kubeline.serving.loaded import ServedModel, load_served
from kubeline.serving.resources import default_workers
from kubeline.serving.runtime import LATENCY_BUCKETS, Runtime
from kubeline.settings import get_settings

log = logging.getLogger("kubeline.serving")
settings = get_settings()
first: ServedModel = load_served(
    settings, version=settings.serve_version, alias=settings.serve_alias
)
FEATURES = first.feature_names
PredictRequest = inputs.predict_request_model(
    FEATURES, settings.serve_max_rows, first.input_example
)
HistoryRequest = inputs.history_request_model(
    settings.serve_max_rows, inputs.example_bars(first.card)
)
_runtime: Runtime | None = None  # this worker's, once the service instance exists


def runtime() -> Runtime | None:
    return _runtime


def _ready() -> Runtime:
    if _runtime is None:  # FrontDoor answers /readyz 503 until then; requests should not come
        raise RequestError("the service is starting; no model is loaded yet", status=503)
    return _runtime


class _QuietValidation(logging.Filter):
    """BentoML logs every rejected body at ERROR with a traceback: the 400 says it already."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ValidationError | RequestError)


logging.getLogger("bentoml._internal.server.http_app").addFilter(_QuietValidation())


def error_response(exc: RequestError) -> JSONResponse:
    detail = [{"type": "invalid", **d} for d in exc.detail]
    return JSONResponse(
        {"error": exc.message, "detail": detail},
        status_code=exc.status,
        headers={SHAPED.decode(): "1"},
    )


# --- the protocols BentoML's API decorator cannot express: a mounted FastAPI app ----------

protocols = FastAPI(title="kubeline protocols", docs_url=None, redoc_url=None, openapi_url=None)

INVOCATIONS_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "description": "One of dataframe_split, dataframe_records, instances, inputs "
                    "(MLflow's scoring protocol).",
                },
                "example": {
                    "dataframe_split": {
                        "columns": FEATURES,
                        "data": [list(r.values()) for r in first.input_example],
                    }
                },
            },
            "text/csv": {
                "schema": {"type": "string"},
                "example": ",".join(FEATURES)
                + "\n"
                + ",".join(str(v) for v in first.input_example[0].values())
                + "\n",
            },
        },
    }
}


@protocols.post("/invocations", openapi_extra=INVOCATIONS_BODY, tags=["MLflow scoring protocol"])
async def invocations(request: Request) -> Any:
    """MLflow's scoring protocol, answered as ``mlflow models serve`` answers it."""
    rt = _ready()
    try:
        frame = inputs.mlflow_frame(
            await request.body(),
            request.headers.get("content-type", ""),
            rt.holder.current.input_schema,
        )
        frame = inputs.check_frame(frame, FEATURES, settings.serve_max_rows)
    except RequestError as exc:
        return error_response(exc)
    return {"predictions": rt.predict(frame, "invocations").predictions}


@protocols.get("/ping", tags=["MLflow scoring protocol"], response_class=PlainTextResponse)
async def ping() -> PlainTextResponse:
    _ready()
    return PlainTextResponse("\n")


@protocols.get("/version", tags=["MLflow scoring protocol"], response_class=PlainTextResponse)
async def version() -> PlainTextResponse:
    import mlflow

    return PlainTextResponse(mlflow.__version__)


@protocols.get("/model", tags=["kubeline"])
async def model() -> dict[str, Any]:
    """The served version: name, version, alias, lineage, features, and a working /predict body."""
    return _ready().holder.current.metadata()


ModelName = Annotated[str, Path(description="The registered model name")]


def _v2_model(name: str) -> ServedModel:
    served = _ready().holder.current
    if name != served.name:
        raise RequestError(f"this service serves {served.name!r}, not {name!r}", status=404)
    return served


@protocols.get("/v2", tags=["KServe V2"])
async def v2_server() -> dict[str, Any]:
    return {"name": "kubeline", "version": "2", "extensions": []}


@protocols.get("/v2/health/live", tags=["KServe V2"])
async def v2_live() -> dict[str, bool]:
    return {"live": True}


@protocols.get("/v2/health/ready", tags=["KServe V2"])
async def v2_ready() -> JSONResponse:
    ready = _runtime is not None
    return JSONResponse({"ready": ready}, status_code=200 if ready else 503)


@protocols.get("/v2/models/{model}", tags=["KServe V2"])
async def v2_metadata(model: ModelName) -> Any:
    try:
        served = _v2_model(model)
    except RequestError as exc:
        return error_response(exc)
    return inputs.v2_metadata(served.name, served.version, served.feature_names)


@protocols.get("/v2/models/{model}/ready", tags=["KServe V2"])
async def v2_model_ready(model: ModelName) -> Any:
    try:
        _v2_model(model)
    except RequestError as exc:
        return error_response(exc)
    return {"name": model, "ready": True}


@protocols.post(
    "/v2/models/{model}/infer",
    tags=["KServe V2"],
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {
                    "example": {
                        "inputs": [
                            {
                                "name": n,
                                "shape": [1],
                                "datatype": "FP64",
                                "data": [first.input_example[0][n]],
                            }
                            for n in FEATURES
                        ]
                    }
                }
            }
        }
    },
)
async def v2_infer(model: ModelName, body: inputs.V2Request) -> Any:
    """One input tensor per feature (shape [N] or [N, 1], FP32/FP64), one output tensor."""
    try:
        _v2_model(model)
        frame = inputs.v2_frame(body, FEATURES, settings.serve_max_rows)
    except RequestError as exc:
        return error_response(exc)
    done = _ready().predict(frame, "v2_infer", request_id=body.id)
    return inputs.v2_response(done.served.name, done.served.version, done.predictions, body.id)


@protocols.post("/admin/reload", tags=["kubeline"])
async def admin_reload(authorization: Annotated[str | None, Header()] = None) -> Any:
    """Reload the version the registry names now (bearer token; off without one configured)."""
    token = settings.serve_admin_token.get_secret_value() if settings.serve_admin_token else ""
    if not token:
        return error_response(
            RequestError(
                "reloading by request is off: KUBELINE_SERVE_ADMIN_TOKEN is not set", status=404
            )
        )
    given = (authorization or "").removeprefix("Bearer ").strip()
    if not secrets.compare_digest(given.encode(), token.encode()):
        return error_response(RequestError("a valid bearer token is required", status=401))
    import anyio.to_thread

    result = await anyio.to_thread.run_sync(lambda: _ready().holder.reload())
    if result.outcome == "failed":  # an error like any other: the one error shape, a 503
        return error_response(
            RequestError(
                f"reload failed, still serving version {result.version}: {result.message}",
                [{"loc": ["registry"], "msg": result.message, "outcome": result.outcome}],
                status=503,
            )
        )
    return JSONResponse(
        {"outcome": result.outcome, "model_version": result.version, "message": result.message}
    )


@protocols.exception_handler(RequestError)
async def _request_error(_: Request, exc: RequestError) -> JSONResponse:
    return error_response(exc)


# --- the service ---------------------------------------------------------------------------


@bentoml.service(
    name="kubeline",
    # BentoML runs one worker unless told; a CPU-bound model wants one per CPU the container
    # may use (cgroup cpu.max), never the node's core count.
    workers=settings.serve_workers or default_workers(),
    # The APIs are async and predict inline (a scikit-learn predict on a small body holds the
    # loop well under a millisecond): no thread hop per request, so BentoML's one-thread
    # default for sync APIs does not apply. Parallelism comes from workers.
    traffic={"timeout": 30},
    # BentoML's access log costs about a third of the RPS; /metrics counts every request.
    logging={"access": {"enabled": settings.serve_access_log}},
    # BentoML's own request histogram starts at 5 ms; ours (kubeline_request_duration_seconds)
    # is labelled by route, this one by raw path: keep its buckets useful too.
    metrics={
        "enabled": True,
        "namespace": "bentoml_service",
        "duration": {"buckets": list(LATENCY_BUCKETS)},
    },
    # bentoml.monitor writes files inside the pod; predictions go to kubeline's inference log.
    monitoring={"enabled": False},
)
@bentoml.asgi_app(protocols, path="/")
class Kubeline:
    """kubeline: the registry's champion, validated, observable and hot-swapped."""

    def __init__(self) -> None:
        global _runtime
        _runtime = Runtime.start(settings, first)
        log.info("serving %s version %s", first.name, first.version)

    @bentoml.on_shutdown
    def shutdown(self) -> None:
        """SIGTERM: stop polling and flush the inference log before the worker exits."""
        if _runtime is not None:
            _runtime.close()

    # BentoML's adaptive batching is off (batchable=False, its default) on purpose: its window
    # waits for more requests, and a batch of rows is already one vectorized predict here.
    @bentoml.api(route="/predict", input_spec=PredictRequest)
    async def predict(self, rows: list[Any]) -> inputs.Prediction:
        """One prediction per row of engineered features, with the version that made them."""
        frame = inputs.rows_frame(rows, FEATURES)
        try:
            done = _ready().predict(frame, "predict")
        except RequestError as exc:
            # BentoML passes a Response through as is (_bentoml_impl/server/app.py); the
            # annotation names the success body, which is what the OpenAPI document shows.
            return error_response(exc)  # type: ignore[return-value]
        return inputs.Prediction(
            model_name=done.served.name,
            model_version=done.served.version,
            predictions=done.predictions,
        )

    @bentoml.api(route="/predict_history", input_spec=HistoryRequest)
    async def predict_history(self, ticker: str, bars: list[dict[str, Any]]) -> Any:
        """The next-bar prediction from a ticker's recent bars (features computed as in training)."""
        rt = _ready()
        try:
            row, date = inputs.history_features(ticker, bars, rt.holder.current.card)
            frame = row.to_pandas()
            # The bars as sent: the monitor recomputes the features from them (skew).
            sent = json.dumps(bars, default=str, separators=(",", ":"))
            done = rt.predict(frame, "predict_history", tickers=[ticker], dates=[date], bars=[sent])
        except RequestError as exc:
            return error_response(exc)
        return inputs.HistoryPrediction(
            model_name=done.served.name,
            model_version=done.served.version,
            predictions=done.predictions,
            ticker=ticker,
            date=date,
            features={k: float(v) for k, v in frame.iloc[0].items()},
        )

    def __metrics__(self, content: str) -> str:
        # Scraped here: refresh this worker's inference-log gauges before BentoML renders.
        if _runtime is not None:
            _runtime.refresh_log_stats()
        return content


Kubeline.add_asgi_middleware(  # type: ignore[attr-defined]  # a bentoml Service at runtime
    FrontDoor,
    runtime=runtime,
    max_body_bytes=settings.serve_max_body_bytes,
    amend_openapi=lambda doc: openapi.amend(doc, first.name),
)
