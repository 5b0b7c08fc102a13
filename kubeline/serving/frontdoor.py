"""The ASGI middleware every request passes first: limits, content types, probes, error shape.

BentoML answers some bad requests with a 500 (a multipart content type without a boundary
crashes its form parser), reads any content type as JSON, reads bodies of any size, and shapes
error bodies differently by status (validation errors as an object, other 4xx wrapped in a
list, starlette's 404 as plain text). Here, before BentoML sees the request:

- a body over ``max_body_bytes`` is a 413, whether announced by Content-Length or streamed;
- a POST whose content type the endpoint does not take is a 415 (multipart never reaches
  BentoML's parser);
- ``/livez`` and ``/readyz`` answer with details (which version serves, since when, the last
  failed reload), which BentoML's own probes cannot;

and after: every 4xx/5xx body becomes ``{"error": "<sentence naming field and row>", "detail":
[{"loc", "msg", "type"}]}``, and each request is counted and timed by route name.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from kubeline.serving.inputs import describe_validation_errors

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON = "application/json"
CSV = "text/csv"
# Route name (the metrics label) -> path pattern, and the content types each POST takes.
ROUTES: dict[str, tuple[re.Pattern[str], tuple[str, ...]]] = {
    name: (re.compile(pattern), types)
    for name, pattern, types in (
        ("predict", r"/predict", (JSON,)),
        ("predict_history", r"/predict_history", (JSON,)),
        ("invocations", r"/invocations", (JSON, CSV)),
        ("ping", r"/ping", ()),
        ("version", r"/version", ()),
        ("v2_infer", r"/v2/models/[^/]+(/versions/[^/]+)?/infer", (JSON,)),
        ("v2_model_ready", r"/v2/models/[^/]+(/versions/[^/]+)?/ready", ()),
        ("v2_model", r"/v2/models/[^/]+(/versions/[^/]+)?", ()),
        ("v2_health", r"/v2/health/(live|ready)", ()),
        ("v2", r"/v2", ()),
        ("model", r"/model", ()),
        ("admin_reload", r"/admin/reload", (JSON, "")),
        ("livez", r"/livez|/healthz", ()),
        ("readyz", r"/readyz", ()),
        ("metrics", r"/metrics", ()),
        ("docs", r"/|/docs|/docs\.json|/schema\.json|/static_content/.*|/assets/.*", ()),
    )
}


def route_name(path: str) -> str:
    for name, (pattern, _) in ROUTES.items():
        if pattern.fullmatch(path):
            return name
    return "other"


class FrontDoor:
    """See the module docstring; ``runtime`` returns the worker's Runtime (None before init)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        runtime: Callable[[], Any],
        max_body_bytes: int,
        amend_openapi: Callable[[dict[str, Any]], dict[str, Any]] = lambda doc: doc,
    ) -> None:
        self.app = app
        self.runtime = runtime
        self.max_body_bytes = max_body_bytes
        self.amend_openapi = amend_openapi

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path = scope["path"]
        name = route_name(path)
        status = {"code": 500}

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self._handle(scope, receive, counted, name)
        finally:
            runtime = self.runtime()
            if runtime is not None:
                runtime.metrics.observe_request(name, status["code"], time.perf_counter() - started)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, name: str) -> None:
        from kubeline.serving.runtime import describe

        method = scope.get("method", "GET")
        if name in ("livez", "readyz") and method in ("GET", "HEAD"):
            runtime = self.runtime()
            if name == "livez":
                await _json(send, 200, {"status": "alive"})
            else:
                details = describe(runtime)
                await _json(send, 200 if details.get("ready") else 503, details)
            return
        if scope["path"] == "/docs.json" and method == "GET":
            await self._openapi(scope, receive, send)
            return
        if method == "POST" and name in ROUTES:
            allowed = ROUTES[name][1]
            headers = dict(scope.get("headers") or [])
            mime = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
            if allowed and mime not in allowed and not (mime == "" and "" in allowed):
                await _error(
                    send,
                    415,
                    f"{scope['path']} takes {' or '.join(a for a in allowed if a)}, "
                    f"not {mime or 'a body without a content type'}",
                    [
                        {
                            "loc": ["header", "content-type"],
                            "msg": f"unsupported: {mime!r}",
                            "type": "content_type",
                        }
                    ],
                )
                return
            length = headers.get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
                await self._too_large(send)
                return
            body = await self._read_body(receive)
            if body is None:
                await self._too_large(send)
                return
            receive = _replay(body)
        await self.app(scope, receive, _ErrorShape(send))

    async def _openapi(self, scope: Scope, receive: Receive, send: Send) -> None:
        """BentoML's document, amended (see openapi.py)."""
        captured: dict[str, Any] = {"status": 500, "body": b""}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
            elif message["type"] == "http.response.body":
                captured["body"] += message.get("body", b"")

        await self.app(scope, receive, capture)
        if captured["status"] != 200:
            await _error(send, 500, "the OpenAPI document could not be generated", [])
            return
        await _json(send, 200, self.amend_openapi(json.loads(captured["body"])))

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole body, or None as soon as it grows past the limit (a streamed upload)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def _too_large(self, send: Send) -> None:
        await _error(
            send,
            413,
            f"the body is larger than the {self.max_body_bytes} bytes this service reads",
            [{"loc": ["body"], "msg": f"at most {self.max_body_bytes} bytes", "type": "too_large"}],
        )


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _json(send: Send, status: int, payload: Any) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", JSON.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _error(send: Send, status: int, message: str, detail: list[dict[str, Any]]) -> None:
    await _json(send, status, {"error": message, "detail": detail})


def error_body(status: int, raw: bytes) -> dict[str, Any]:
    """Any error body (BentoML's, starlette's, FastAPI's, ours) in the one shape."""
    try:
        found: Any = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError):
        found = raw.decode("utf-8", "replace").strip() or None
    if isinstance(found, list) and len(found) == 1 and isinstance(found[0], dict):
        found = found[0]  # BentoML wraps its non-validation 4xx bodies in a list
    detail: list[dict[str, Any]] = []
    message = None
    if isinstance(found, dict):
        raw_detail = found.get("detail")
        if isinstance(raw_detail, list) and all(isinstance(d, dict) for d in raw_detail):
            message, detail = describe_validation_errors(raw_detail)
            for d, r in zip(detail, raw_detail, strict=True):
                d["type"] = str(r.get("type", "invalid"))
        elif isinstance(raw_detail, str):
            message = raw_detail
        if isinstance(found.get("error"), str) and (not message or not detail):
            message = found["error"]
    elif isinstance(found, str):
        message = found
    if status >= 500:
        message = "the service failed on this request; the server log says why"
    return {"error": message or _REASONS.get(status, f"HTTP {status}"), "detail": detail}


_REASONS = {404: "no such endpoint", 405: "method not allowed on this endpoint"}


class _ErrorShape:
    """A ``send`` that rewrites error responses (status >= 400) into the one error shape."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.status = 200
        self.start: Message | None = None
        self.chunks: list[bytes] = []

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            if self.status < 400:
                await self.send(message)
            else:
                # FastAPI's 422 for a body that does not fit its model is a 400 everywhere else.
                self.status = 400 if self.status == 422 else self.status
                self.start = {**message, "status": self.status}
            return
        if self.start is None or message["type"] != "http.response.body":
            await self.send(message)
            return
        self.chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        if _already_shaped(self.start):
            body = b"".join(self.chunks)
        else:
            body = json.dumps(error_body(self.status, b"".join(self.chunks))).encode()
        headers = [
            (k, v)
            for k, v in self.start.get("headers", [])
            if k.lower() not in (b"content-length", b"content-type")
        ]
        headers += [(b"content-type", JSON.encode()), (b"content-length", str(len(body)).encode())]
        await self.send({**self.start, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})


SHAPED = b"x-kubeline-error"


def _already_shaped(start: Message) -> bool:
    return any(k.lower() == SHAPED for k, _ in start.get("headers", []))
