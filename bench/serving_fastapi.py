"""The baseline of bench/serving.py: a minimal FastAPI + uvicorn app, the reference project's way.

    python bench/serving_fastapi.py --model-uri models:/kubeline-returns/1 --port 8001

What the projects we learn from hand-write: the model loaded once at start-up (here with
``mlflow.sklearn.load_model``: the bare estimator, faster than the ``mlflow.pyfunc`` wrapper, so
the baseline is the stronger one), a pydantic body of rows, a DataFrame, ``model.predict``, JSON
out; uvicorn with its defaults (one worker, access log on). Nothing else: no validation beyond
pydantic's types, no inference log, no metrics, no reload. It takes the same body as kubeline's
``/predict`` (rows of engineered features; the reference projects also rebuilt the features
per request, which the bench leaves out so all three servers do the same work). The tracking
URI comes from ``MLFLOW_TRACKING_URI``, as for ``mlflow models serve``.
"""

from __future__ import annotations

import argparse
from typing import Any

import mlflow.sklearn
import pandas as pd
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel


class PredictRequest(BaseModel):
    rows: list[dict[str, float]]


def make_app(model_uri: str) -> FastAPI:
    model = mlflow.sklearn.load_model(model_uri)
    app = FastAPI(title="baseline")

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/predict")
    def predict(request: PredictRequest) -> dict[str, Any]:
        frame = pd.DataFrame(request.rows)
        return {"predictions": [float(p) for p in model.predict(frame)]}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-uri", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    uvicorn.run(make_app(args.model_uri), host=args.host, port=args.port, workers=1)


if __name__ == "__main__":
    main()
