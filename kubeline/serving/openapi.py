"""The OpenAPI document BentoML generates, amended to say what the service really answers.

BentoML declares its 400/404/500 bodies with ``detail`` as a string (the body holds a list),
and FastAPI declares 422s the front door turns into 400s; neither knows the 413 and 415 the
front door answers, the 401/404/503 of the admin and V2 routes, or that ``/ping`` is text. A
client generator or a schemathesis run reads this document, so it must match the responses.
"""

from __future__ import annotations

import copy
from typing import Any

ERROR_REF = "#/components/schemas/KubelineError"
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "KubelineError",
    "description": "Every error: one sentence naming the field and row, and each problem located.",
    "required": ["error", "detail"],
    "properties": {
        "error": {"type": "string"},
        "detail": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["loc", "msg"],
                "properties": {
                    "loc": {
                        "type": "array",
                        "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                    },
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
}
ERRORS = {
    "400": "The body is malformed: the message names the field and the row.",
    "404": "No such model (V2: the path names another model), or the endpoint is off.",
    "413": "The body is larger than KUBELINE_SERVE_MAX_BODY_BYTES, or has too many rows.",
    "415": "The content type is not one the endpoint takes.",
    "503": "No model is loaded yet, or a reload failed (the old model still serves).",
}
TEXT = {"/ping", "/version", "/metrics"}
BENTOML_ERRORS = ("InvalidArgument", "NotFound", "InternalServerError")


def amend(doc: dict[str, Any], model_name: str) -> dict[str, Any]:
    """``doc`` with the error bodies, statuses and content types the service answers."""
    doc = copy.deepcopy(doc)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas["KubelineError"] = ERROR_SCHEMA
    for name in BENTOML_ERRORS:
        schemas[name] = ERROR_SCHEMA
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    error = {"application/json": {"schema": {"$ref": ERROR_REF}}}
    for path, item in doc.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            responses.pop("422", None)  # the front door answers 400 for what FastAPI calls 422
            if method == "post" or "{model}" in path or path in ("/model", "/ping", "/readyz"):
                for status, description in ERRORS.items():
                    responses[status] = {"description": description, "content": error}
            if path == "/admin/reload":
                responses["401"] = {
                    "description": "The bearer token is missing or wrong.",
                    "content": error,
                }
                operation["security"] = [{"bearer": []}]
            if path in TEXT:
                responses["200"] = {
                    "description": "Successful Response",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            for parameter in operation.get("parameters", []):
                if parameter.get("name") == "model" and parameter.get("in") == "path":
                    parameter["schema"] = {"type": "string", "example": model_name}
                    parameter["example"] = model_name
    doc["components"].setdefault("securitySchemes", {})["bearer"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "KUBELINE_SERVE_ADMIN_TOKEN",
    }
    doc["info"] = {
        **doc.get("info", {}),
        "title": "kubeline",
        "description": "The registry's champion over HTTP: native /predict and /predict_history, "
        "MLflow's /invocations, KServe V2, /model, probes and /metrics.",
    }
    return doc
