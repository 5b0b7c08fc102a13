"""The demo's serving half: start ``kubeline serve`` on the champion, call it, stop it by PID.

BentoML-free (the service runs in its own process, reached over HTTP only), so ``kubeline
demo`` imports nothing heavy for it. The three calls are the ones a user makes first:
``/predict`` with the example body ``/model`` hands out, ``/predict_history`` with a demo
ticker's last bars, ``/invocations`` (MLflow's scoring protocol) with the same rows; then the
``/metrics`` lines that counted them.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeline.errors import PipelineError

# Enough bars for every window of the default feature set (the longest, MACD's signal, needs
# 34), one trading year: what a client would send.
HISTORY_BARS = 250
READY_SECONDS = 120.0
# The counters of what the demo asked: requests by endpoint, rows predicted by version.
COUNTED = ("kubeline_requests_total{", "kubeline_predictions_total{")
CALLED = ("predict", "predict_history", "invocations")


@dataclass
class Call:
    """One request the demo made and what came back."""

    method: str
    path: str
    status: int
    answer: Any


@dataclass
class ServedDemo:
    url: str
    pid: int
    calls: list[Call] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    # Each batch sent: its name and the UTC times around it (the monitor's --since/--until).
    windows: list[tuple[str, str, str]] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_and_call(
    data: Path, log: Path, batches: dict[str, list[dict[str, float]]] | None = None
) -> ServedDemo:
    """Start the service on this process's settings, make the three calls, stop it by PID.

    ``data`` is the demo data folder (its first ticker's last bars go to ``/predict_history``);
    the service's output goes to ``log``. One worker: the demo wants a quick start. Each of
    ``batches`` (name -> /predict rows) is then sent in chunks, and its time window recorded;
    stopping the service (SIGTERM) writes the inference log's last rows.
    """
    port = free_port()
    argv = [sys.executable, "-m", "kubeline", "serve", "--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "KUBELINE_SERVE_WORKERS": "1", "KUBELINE_SERVE_RELOAD_INTERVAL": "0"}
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    demo = ServedDemo(f"http://127.0.0.1:{port}", proc.pid)
    try:
        _wait_ready(demo.url, proc, log)
        model = _request(demo.url, "GET", "/model")
        example = model.answer["example"]
        demo.calls.append(_request(demo.url, "POST", "/predict", example))
        demo.calls.append(_request(demo.url, "POST", "/predict_history", _history(data)))
        names = model.answer["feature_names"]
        split = {"columns": names, "data": [[row[n] for n in names] for row in example["rows"]]}
        demo.calls.append(_request(demo.url, "POST", "/invocations", {"dataframe_split": split}))
        for name, rows in (batches or {}).items():
            demo.windows.append((name, *_send(demo.url, rows)))
        text = _request(demo.url, "GET", "/metrics", raw=True).answer
        demo.metrics = [
            line
            for line in text.splitlines()
            if line.startswith(COUNTED) and any(f'endpoint="{e}"' in line for e in CALLED)
        ]
    finally:
        stop(proc)
    return demo


def _send(url: str, rows: list[dict[str, float]], chunk: int = 500) -> tuple[str, str]:
    """POST ``rows`` to /predict in chunks; the UTC times just before and just after."""
    from datetime import UTC, datetime

    start = datetime.now(UTC)
    for first in range(0, len(rows), chunk):
        answer = _request(url, "POST", "/predict", {"rows": rows[first : first + chunk]})
        if answer.status != 200:
            raise PipelineError(f"the service answered {answer.status}: {answer.answer}")
    time.sleep(0.01)  # the next batch's rows are stamped strictly later
    return start.isoformat(), datetime.now(UTC).isoformat()


def stop(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """SIGTERM to the server's PID (``bentoml serve`` then stops its workers); kill if it hangs."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-5:]
            raise PipelineError(
                f"kubeline serve exited ({proc.returncode}) before it was ready: "
                + " / ".join(tail),
                hint=f"its whole output is in {log}",
            )
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise PipelineError(
        f"kubeline serve was not ready within {READY_SECONDS:.0f} s", hint=f"see {log}"
    )


def _request(url: str, method: str, path: str, body: Any = None, *, raw: bool = False) -> Call:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{url}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            status, payload = answer.status, answer.read()
    except urllib.error.HTTPError as exc:  # a 4xx/5xx is an answer to show, not a crash
        status, payload = exc.code, exc.read()
    text = payload.decode("utf-8", errors="replace")
    if raw:
        return Call(method, path, status, text)
    try:
        return Call(method, path, status, json.loads(text))
    except json.JSONDecodeError:
        return Call(method, path, status, text)


def _history(data: Path) -> dict[str, Any]:
    """The last bars of the demo's first ticker, as a client would send them (ISO dates)."""
    from kubeline.data import schema as s
    from kubeline.data.ingest import ingest

    first = min(p for p in data.iterdir() if p.suffix == ".csv")
    frame = ingest(first).sort(s.DATE).tail(HISTORY_BARS)
    ticker = str(frame[s.TICKER][0])
    columns = [c for c in (s.DATE, *s.VALUES) if c in frame.columns]
    bars = frame.select(columns).with_columns(frame[s.DATE].cast(str)).to_dicts()
    return {"ticker": ticker, "bars": bars}
