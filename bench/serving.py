"""Serve the same registered model three ways on this machine and load each with ``hey``.

    python bench/serving.py [--rounds 3] [--duration 10] [--state bench/.data/serving-state]
                            [--contenders mlflow,fastapi,kubeline] [--no-batching]

Trains a champion first if the state folder has none (``kubeline demo``: the demo data, the
whole pipeline), then starts side by side, one worker each, on 127.0.0.1:

* mlflow: ``mlflow models serve -m models:/<name>/<version> --env-manager local --workers 1``;
* fastapi: bench/serving_fastapi.py, a minimal FastAPI + uvicorn app serving the same version
  the way the reference project did (the estimator and a DataFrame, nothing else);
* kubeline: ``kubeline serve --workers 1`` on the champion with everything on (validation,
  inference log, metrics).

Each is asked once with the same rows and must give the same predictions. Then, in rounds whose
contender order rotates, ``hey`` drives each for ``--duration`` seconds per cell: bodies of 1 and
100 rows at concurrency 1 and 32. Printed and written to bench/results/serving-<time>.json: RPS
(successful answers per second),
p50, p99, errors (transport errors and non-2xx answers), the server's peak RSS (its process tree,
sampled every 0.25 s), the medians over rounds, and the ratios kubeline/mlflow and
kubeline/fastapi with the issue's targets. Unless ``--no-batching``, the same cells also compare
kubeline with BentoML's adaptive batching on against off.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
CELLS = [(1, 1), (1, 32), (100, 1), (100, 32)]  # (rows per body, concurrency)
# The targets for the full service (quoted for single-row bodies at concurrency 32).
TARGETS = {"rps_vs_mlflow": 2.0, "p99_vs_mlflow": 0.5, "rps_vs_fastapi": 0.5}
QUIET = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "BENTOML_DO_NOT_TRACK": "true",
    "DO_NOT_TRACK": "1",
    "PYTHONUNBUFFERED": "1",
}


@dataclass
class Server:
    """One contender: how to start it, where it is ready, where and what to post."""

    name: str
    argv: list[str]
    env: dict[str, str]
    ready_path: str
    predict_path: str
    body: Callable[[list[str], list[list[float]]], dict[str, Any]]
    answer: Callable[[Any], list[float]]
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@dataclass
class Cell:
    round: int
    contender: str
    rows: int
    concurrency: int
    rps: float  # 2xx answers per second
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    peak_rss_mb: float
    statuses: dict[str, int] = field(default_factory=dict)
    answered_rps: float = 0.0  # every answer, errors included (hey's Requests/sec)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_champion(state: Path, env: dict[str, str]) -> tuple[str, str]:
    """The registered model name and the champion's version; ``kubeline demo`` makes one."""
    probe = (
        "from kubeline.settings import get_settings; from kubeline import registry; "
        "s = get_settings(); c = registry.connect(s, create=False); "
        "v = registry.version_by_alias(c, s.model_name, 'champion'); "
        "print(s.model_name, v.version if v else '')"
    )
    if (state / "mlflow.db").exists():
        name, _, version = _python(probe, env).strip().partition(" ")
        if version:
            return name, version
    print(f"training a champion: kubeline demo in {state}", flush=True)
    subprocess.run([str(VENV_BIN / "kubeline"), "demo"], env=env, check=True)
    name, _, version = _python(probe, env).strip().partition(" ")
    if not version:
        sys.exit("kubeline demo registered no champion: nothing to serve")
    return name, version


def example_rows(
    name: str, version: str, env: dict[str, str]
) -> tuple[list[str], list[list[float]]]:
    """The version's feature names and its input example's rows (what register logged)."""
    script = (
        "import json; from mlflow.models import Model; from kubeline import registry; "
        f"uri = registry.model_uri({name!r}, {version!r}); "
        "example = Model.load(uri).load_input_example(uri); "
        "from kubeline.model import input_columns; names = input_columns(example); "
        "print(json.dumps([names, example[names].astype(float).values.tolist()]))"
    )
    names, rows = json.loads(_python(script, env).strip().splitlines()[-1])
    return names, rows


def _python(script: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.exit(f"python -c failed:\n{done.stderr[-2000:]}")
    return done.stdout


def tile(rows: list[list[float]], n: int) -> list[list[float]]:
    """``n`` rows cycled from the example; each copy nudged so no two bodies are alike."""
    return [[v * (1 + 1e-6 * (i // len(rows))) for v in rows[i % len(rows)]] for i in range(n)]


def rows_body(names: list[str], rows: list[list[float]]) -> dict[str, Any]:
    return {"rows": [dict(zip(names, row, strict=True)) for row in rows]}


def split_body(names: list[str], rows: list[list[float]]) -> dict[str, Any]:
    return {"dataframe_split": {"columns": names, "data": rows}}


def predictions(answer: Any) -> list[float]:
    return [float(p) for p in answer["predictions"]]


def contenders(model: str, version: str, env: dict[str, str]) -> dict[str, Server]:
    uri = f"models:/{model}/{version}"
    return {
        "mlflow": Server(
            "mlflow",
            [
                str(VENV_BIN / "mlflow"),
                "models",
                "serve",
                "-m",
                uri,
                "--env-manager",
                "local",
                "--workers",
                "1",
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
            ],
            env,
            "/ping",
            "/invocations",
            split_body,
            predictions,
        ),
        "fastapi": Server(
            "fastapi",
            [
                sys.executable,
                str(HERE / "serving_fastapi.py"),
                "--model-uri",
                uri,
                "--port",
                "{port}",
            ],
            env,
            "/ping",
            "/predict",
            rows_body,
            predictions,
        ),
        "kubeline": Server(
            "kubeline",
            [
                str(VENV_BIN / "kubeline"),
                "serve",
                "--version",
                version,
                "--workers",
                "1",
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
            ],
            env,
            "/readyz",
            "/predict",
            rows_body,
            predictions,
        ),
    }


def batching_pair(version: str, env: dict[str, str]) -> list[Server]:
    """kubeline's /predict with BentoML's adaptive batching on, and off (bench/serving_batching.py)."""
    pair = []
    for name, on in (("batched", "true"), ("unbatched", "false")):
        pair.append(
            Server(
                name,
                [
                    str(VENV_BIN / "bentoml"),
                    "serve",
                    "serving_batching:Batching",
                    "--working-dir",
                    str(HERE),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "{port}",
                ],
                {
                    **env,
                    "BENCH_BATCHABLE": on,
                    "KUBELINE_SERVE_VERSION": version,
                    "KUBELINE_SERVE_WORKERS": "1",
                },
                "/readyz",
                "/predict",
                rows_body,
                lambda answer: [float(p) for p in answer],
            )
        )
    return pair


def start(server: Server, logs: Path) -> None:
    server.port = free_port()
    server.log = logs / f"{server.name}.log"
    argv = [a.replace("{port}", str(server.port)) for a in server.argv]
    with server.log.open("wb") as out:
        # Its own session: the server's workers are found through its PID, not by name.
        server.proc = subprocess.Popen(
            argv, env=server.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            sys.exit(
                f"{server.name} exited ({server.proc.returncode}):\n{server.log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(server.url(server.ready_path), timeout=2) as answer:
                if answer.status == 200:
                    print(f"  {server.name} ready on port {server.port}", flush=True)
                    return
        except OSError:
            pass
        time.sleep(0.25)
    stop(server)
    sys.exit(f"{server.name} was not ready in 180 s:\n{server.log.read_text()[-3000:]}")


def stop(server: Server) -> None:
    """SIGTERM to the server's PID; whatever of its tree is left after 30 s is killed by PID."""
    import psutil

    if server.proc is None or server.proc.poll() is not None:
        return
    try:
        tree = psutil.Process(server.proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    server.proc.send_signal(signal.SIGTERM)
    try:
        server.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()
    for child in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


def ask(server: Server, body: dict[str, Any]) -> list[float]:
    request = urllib.request.Request(
        server.url(server.predict_path),
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return server.answer(json.loads(answer.read()))


def check_same(server: Server, got: list[float], reference: list[float] | None) -> list[float]:
    """The first answer is the reference; every other server must give the same numbers."""
    if reference is not None and (
        len(got) != len(reference)
        or max(abs(a - b) for a, b in zip(got, reference, strict=True)) > 1e-9
    ):
        sys.exit(f"{server.name} predicts {got}, the first server {reference}")
    return reference if reference is not None else got


class RssSampler(threading.Thread):
    """The peak resident memory of a process and its descendants, sampled until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0, threading.Event()

    def run(self) -> None:
        import psutil

        while not self.done.is_set():
            try:
                root = psutil.Process(self.pid)
                total = root.memory_info().rss
                for child in root.children(recursive=True):
                    with contextlib.suppress(psutil.NoSuchProcess):
                        total += child.memory_info().rss
                self.peak = max(self.peak, total)
            except psutil.NoSuchProcess:
                return
            self.done.wait(0.25)


def drive(server: Server, body_file: Path, concurrency: int, seconds: float) -> dict[str, Any]:
    """One ``hey`` run; its RPS, p50, p99, request and error counts, and the server's peak RSS."""
    assert server.proc is not None
    sampler = RssSampler(server.proc.pid)
    sampler.start()
    done = subprocess.run(
        [
            "hey",
            "-z",
            f"{seconds}s",
            "-c",
            str(concurrency),
            "-m",
            "POST",
            "-T",
            "application/json",
            "-D",
            str(body_file),
            server.url(server.predict_path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    sampler.done.set()
    sampler.join()
    return parse_hey(done.stdout) | {"peak_rss_mb": round(sampler.peak / 2**20, 1)}


def parse_hey(text: str) -> dict[str, Any]:
    def seconds(label: str) -> float:
        found = re.search(rf"^\s*{re.escape(label)} in ([0-9.]+) secs", text, re.M)
        return float(found.group(1)) if found else float("nan")

    rps = re.search(r"Requests/sec:\s+([0-9.]+)", text)
    statuses = {
        code: int(count) for code, count in re.findall(r"\[(\d{3})\]\s+(\d+) responses", text)
    }
    errors_block = text.split("Error distribution:", 1)[1] if "Error distribution:" in text else ""
    transport = sum(int(n) for n in re.findall(r"^\s*\[(\d+)\]", errors_block, re.M))
    non_2xx = sum(n for code, n in statuses.items() if not code.startswith("2"))
    answered = float(rps.group(1)) if rps else 0.0
    total = sum(statuses.values()) + transport
    ok = sum(n for code, n in statuses.items() if code.startswith("2"))
    return {
        # Successful answers per second: a server that sheds load with fast 503s (BentoML's
        # batching dispatcher does, when it expects to miss its latency bound) gains nothing.
        "rps": round(answered * ok / total, 1) if total else 0.0,
        "answered_rps": answered,
        "p50_ms": round(seconds("50%") * 1000, 2),
        "p99_ms": round(seconds("99%") * 1000, 2),
        "requests": sum(statuses.values()) + transport,
        "errors": transport + non_2xx,
        "statuses": statuses,
    }


def median_of(cells: list[Cell], contender: str, rows: int, conc: int) -> dict[str, float] | None:
    mine = [c for c in cells if (c.contender, c.rows, c.concurrency) == (contender, rows, conc)]
    if not mine:
        return None
    return {
        "rps": statistics.median(c.rps for c in mine),
        "p50_ms": statistics.median(c.p50_ms for c in mine),
        "p99_ms": statistics.median(c.p99_ms for c in mine),
        "errors": sum(c.errors for c in mine),
        "peak_rss_mb": max(c.peak_rss_mb for c in mine),
        "rounds": len(mine),
    }


def ratios(cells: list[Cell], ours: str, theirs: str) -> dict[str, dict[str, Any]]:
    """Per cell: ours/theirs RPS and p99, each the median of the per-round ratios (and range)."""
    out: dict[str, dict[str, Any]] = {}
    for rows, conc in CELLS:
        rps, p99 = [], []
        for r in sorted({c.round for c in cells}):
            a = [
                c
                for c in cells
                if (c.round, c.contender, c.rows, c.concurrency) == (r, ours, rows, conc)
            ]
            b = [
                c
                for c in cells
                if (c.round, c.contender, c.rows, c.concurrency) == (r, theirs, rows, conc)
            ]
            if a and b and b[0].rps > 0 and b[0].p99_ms > 0:
                rps.append(a[0].rps / b[0].rps)
                p99.append(a[0].p99_ms / b[0].p99_ms)
        if rps:
            out[f"{rows}x{conc}"] = {
                "rps": round(statistics.median(rps), 2),
                "rps_range": [round(min(rps), 2), round(max(rps), 2)],
                "p99": round(statistics.median(p99), 2),
                "p99_range": [round(min(p99), 2), round(max(p99), 2)],
            }
    return out


def measure(
    servers: list[Server], bodies: dict[tuple[str, int], Path], rounds: int, seconds: float
) -> list[Cell]:
    cells: list[Cell] = []
    for r in range(rounds):
        # The order rotates each round, so no contender always runs first (or last) in a cell.
        order = servers[r % len(servers) :] + servers[: r % len(servers)]
        for rows, conc in CELLS:
            for server in order:
                got = drive(server, bodies[(server.name, rows)], conc, seconds)
                cell = Cell(r + 1, server.name, rows, conc, **got)
                cells.append(cell)
                print(
                    f"  round {r + 1} {server.name:<17} {rows:>3} rows c{conc:<2} "
                    f"{cell.rps:8.0f} RPS  p50 {cell.p50_ms:7.2f} ms  p99 {cell.p99_ms:7.2f} ms  "
                    f"errors {cell.errors}  rss {cell.peak_rss_mb:.0f} MB",
                    flush=True,
                )
    return cells


def table(cells: list[Cell], names: list[str]) -> str:
    lines = [
        "| server | rows | concurrency | RPS | p50 ms | p99 ms | errors | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for rows, conc in CELLS:
        for name in names:
            m = median_of(cells, name, rows, conc)
            if m:
                lines.append(
                    f"| {name} | {rows} | {conc} | {m['rps']:,.0f} | {m['p50_ms']:.2f} | "
                    f"{m['p99_ms']:.2f} | {m['errors']} | {m['peak_rss_mb']:.0f} |"
                )
    return "\n".join(lines)


def ratio_table(found: dict[str, dict[str, dict[str, Any]]]) -> str:
    lines = [
        "| ratio | cell (rows x concurrency) | RPS (range) | p99 (range) |",
        "|---|---|---|---|",
    ]
    for label, per_cell in found.items():
        for cell, r in per_cell.items():
            lines.append(
                f"| {label} | {cell} | {r['rps']:.2f} ({r['rps_range'][0]:.2f}-{r['rps_range'][1]:.2f})"
                f" | {r['p99']:.2f} ({r['p99_range'][0]:.2f}-{r['p99_range'][1]:.2f}) |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", type=Path, default=HERE / ".data" / "serving-state")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per hey run")
    parser.add_argument("--contenders", default="mlflow,fastapi,kubeline")
    parser.add_argument("--no-batching", action="store_true", help="skip batched vs not")
    args = parser.parse_args()
    state = args.state.resolve()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("KUBELINE_", "MLFLOW_"))},
        **QUIET,
        # mlflow models serve execs `uvicorn` from PATH: this venv's.
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "KUBELINE_STATE_DIR": str(state),
        "MLFLOW_TRACKING_URI": f"sqlite:///{state / 'mlflow.db'}",
    }
    model, version = ensure_champion(state, env)
    names, example = example_rows(model, version, env)
    print(f"serving {model} version {version} ({len(names)} features)", flush=True)
    chosen = args.contenders.split(",")
    with tempfile.TemporaryDirectory(prefix="kubeline-bench-serving-") as tmp:
        work = Path(tmp)
        servers = contenders(model, version, env)
        running = [servers[name] for name in chosen]
        bodies: dict[tuple[str, int], Path] = {}
        batched_cells: list[Cell] = []
        try:
            for server in running:
                start(server, work)
            reference: list[float] | None = None
            for server in running:
                for rows in {r for r, _ in CELLS}:
                    body = server.body(names, tile(example, rows))
                    bodies[(server.name, rows)] = work / f"{server.name}-{rows}.json"
                    bodies[(server.name, rows)].write_text(json.dumps(body))
                got = ask(server, server.body(names, example))
                reference = check_same(server, got, reference)
            print(f"same predictions from {', '.join(s.name for s in running)}", flush=True)
            cells = measure(running, bodies, args.rounds, args.duration)
        finally:
            for server in running:
                stop(server)
        if not args.no_batching:
            pair = batching_pair(version, env)
            try:
                for server in pair:
                    start(server, work)
                    for rows in {r for r, _ in CELLS}:
                        bodies[(server.name, rows)] = work / f"{server.name}-{rows}.json"
                        bodies[(server.name, rows)].write_text(
                            json.dumps(server.body(names, tile(example, rows)))
                        )
                    check_same(server, ask(server, server.body(names, example)), reference)
                batched_cells = measure(pair, bodies, args.rounds, args.duration)
            finally:
                for server in pair:
                    stop(server)
    found: dict[str, dict[str, dict[str, Any]]] = {}
    if "kubeline" in chosen:
        for theirs in ("mlflow", "fastapi"):
            if theirs in chosen:
                found[f"kubeline/{theirs}"] = ratios(cells, "kubeline", theirs)
    if batched_cells:
        found["batched/unbatched"] = ratios(batched_cells, "batched", "unbatched")
    print("\nmedians over rounds:\n" + table(cells, chosen))
    if batched_cells:
        print("\nadaptive batching:\n" + table(batched_cells, ["batched", "unbatched"]))
    print("\nratios (median of per-round ratios):\n" + ratio_table(found))
    single = "1x32"
    verdicts = {}
    if single in found.get("kubeline/mlflow", {}):
        vm = found["kubeline/mlflow"][single]
        verdicts["rps_vs_mlflow"] = vm["rps"] >= TARGETS["rps_vs_mlflow"]
        verdicts["p99_vs_mlflow"] = vm["p99"] <= TARGETS["p99_vs_mlflow"]
    if single in found.get("kubeline/fastapi", {}):
        verdicts["rps_vs_fastapi"] = (
            found["kubeline/fastapi"][single]["rps"] >= TARGETS["rps_vs_fastapi"]
        )
    verdicts["zero_errors"] = all(
        c.errors == 0 for c in cells + batched_cells if c.contender.startswith("kubeline")
    )
    print(
        "\ntargets (1 row, concurrency 32): "
        + ", ".join(f"{k} {'met' if ok else 'MISSED'}" for k, ok in verdicts.items())
    )
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    out = results / f"serving-{time.strftime('%Y%m%d-%H%M%S')}.json"
    payload = {
        "model": model,
        "version": version,
        "features": len(names),
        "rounds": args.rounds,
        "duration_s": args.duration,
        "cells": [asdict(c) for c in cells],
        "batching_cells": [asdict(c) for c in batched_cells],
        "medians": {
            f"{name}/{rows}x{conc}": median_of(cells + batched_cells, name, rows, conc)
            for name in [*chosen, "batched", "unbatched"]
            for rows, conc in CELLS
            if median_of(cells + batched_cells, name, rows, conc)
        },
        "ratios": found,
        "targets": TARGETS,
        "verdicts": verdicts,
        "load_average": os.getloadavg(),
    }
    tmp_out = out.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(payload, indent=2))
    tmp_out.replace(out)
    print(f"\nresults: {out}")


if __name__ == "__main__":
    main()
