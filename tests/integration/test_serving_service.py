"""The real service (``kubeline serve``) against a real ``mlflow server`` with S3 artifacts.

One MLflow server and one service for the module (the registry-down test, last, stops this
module's MLflow server by PID; the session's is left alone). Every endpoint over HTTP, bad
input, the training-parity of /predict_history, /invocations against a real ``mlflow models
serve`` on the same version, schemathesis on the service's own OpenAPI document, hot reload
under load and the registry going away.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest
from conftest import VENV_BIN, MlflowServer, free_port, start_mlflow_server, stop, wait_http
from test_executors import NAME, Run, prices, register_run, train_and_evaluate

from kubeline import features, registry
from kubeline import model as model_file
from kubeline.settings import Settings, get_settings

pytestmark = pytest.mark.integration

TOKEN = "test-admin-token"  # made up for this module's service only


@dataclass
class Live:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    mlflow: MlflowServer
    mlflow_proc: subprocess.Popen[bytes]
    runs: dict[str, Run]
    env: dict[str, str]

    def settings(self) -> Settings:
        return Settings(mlflow_tracking_uri=self.mlflow.tracking_uri, model_name=NAME)


def call(
    url: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
    method: str | None = None,
) -> tuple[int, Any]:
    """One HTTP request; the status and the decoded JSON body (text when it is not JSON)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", content_type)
    for k, v in (headers or {}).items():
        request.add_header(k, v)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


@pytest.fixture(scope="module")
def live(s3_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("serving")
    mlflow, mlflow_proc = start_mlflow_server(s3_server, root, prefix="serving")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("KUBELINE_", "MLFLOW_", "AWS_"))
    }
    env.update(
        s3_server.env(),
        KUBELINE_SETTINGS_FILE="",
        KUBELINE_STATE_DIR=str(root / "state"),
        KUBELINE_MLFLOW_TRACKING_URI=mlflow.tracking_uri,
        KUBELINE_MODEL_NAME=NAME,
        MLFLOW_DISABLE_TELEMETRY="true",
    )
    try:
        with pytest.MonkeyPatch.context() as mp:
            for key, value in env.items():
                if key.startswith(("KUBELINE_", "MLFLOW_")):
                    mp.setenv(key, value)
            get_settings.cache_clear()
            runs = {
                "a": train_and_evaluate(root / "a"),
                "b": train_and_evaluate(root / "b", seed=7),
            }
            for run in runs.values():
                register_run(run)
            # Version 1 serves first, whatever the gate made of version 2.
            registry.promote(registry.connect(get_settings()), NAME, "1", "the test starts here")
        get_settings.cache_clear()
        port = free_port()
        service_env = {
            **env,
            "KUBELINE_SERVE_RELOAD_INTERVAL": "1",
            "KUBELINE_SERVE_ADMIN_TOKEN": TOKEN,
            "KUBELINE_SERVE_MAX_ROWS": "1000",
            "KUBELINE_SERVE_MAX_BODY_BYTES": "200000",
            "KUBELINE_INFERENCE_LOG_FLUSH_SECONDS": "0.5",  # the skew test reads it back
            "NO_COLOR": "1",
        }
        log = root / "service.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(VENV_BIN / "kubeline"), "serve", "--port", str(port), "--workers", "1"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=service_env,
                start_new_session=True,
                cwd=root,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_http(f"{url}/readyz", 120, proc, log)
            yield Live(url, proc, log, mlflow, mlflow_proc, runs, service_env)
        finally:
            stop(proc)
    finally:
        stop(mlflow_proc)


def example_rows(live: Live) -> list[dict[str, float]]:
    status, found = call(f"{live.url}/model")
    assert status == 200, found
    return found["example"]["rows"]


def test_every_endpoint_answers_over_http(live: Live) -> None:
    url = live.url
    status, found = call(f"{url}/model")
    assert status == 200 and (found["name"], found["version"], found["alias"]) == (
        NAME,
        "1",
        "champion",
    )
    assert found["feature_names"] == ["ret_1", "ret_5", "volatility_20"]
    assert found["pipeline_run_id"] == "run-a" and found["git_revision"] == "abc123"
    assert found["data_hash"].startswith("sha256:") and found["training_window"]["end"]
    rows = found["example"]["rows"]
    status, predicted = call(f"{url}/predict", found["example"])  # the example works as is
    assert status == 200 and predicted["model_version"] == "1", predicted
    assert len(predicted["predictions"]) == len(rows)
    names = found["feature_names"]
    status, invoked = call(
        f"{url}/invocations",
        {"dataframe_split": {"columns": names, "data": [list(r.values()) for r in rows]}},
    )
    assert status == 200 and invoked["predictions"] == pytest.approx(
        predicted["predictions"], rel=1e-12
    )
    tensors = [
        {"name": n, "shape": [len(rows), 1], "datatype": "FP32", "data": [[r[n]] for r in rows]}
        for n in names
    ]
    status, v2 = call(f"{url}/v2/models/{NAME}/infer", {"id": "r1", "inputs": tensors})
    assert status == 200 and v2["id"] == "r1" and v2["model_version"] == "1", v2
    (output,) = v2["outputs"]
    assert output["shape"] == [len(rows)] and output["datatype"] == "FP64"
    # FP32 tensors: the float32 rounding of the inputs is all that differs.
    assert output["data"] == pytest.approx(predicted["predictions"], rel=1e-3, abs=1e-6)
    status, meta = call(f"{url}/v2/models/{NAME}")
    assert status == 200 and [i["name"] for i in meta["inputs"]] == names
    assert call(f"{url}/v2/models/{NAME}/ready") == (200, {"name": NAME, "ready": True})
    assert call(f"{url}/v2/health/live") == (200, {"live": True})
    assert call(f"{url}/v2/health/ready") == (200, {"ready": True})
    assert call(f"{url}/v2/models/another/ready")[0] == 404
    assert call(f"{url}/ping")[0] == 200 and call(f"{url}/livez")[0] == 200
    status, ready = call(f"{url}/readyz")
    assert (
        status == 200
        and ready["ready"]
        and ready["model_version"] == "1"
        and ready["serving_since"]
    )
    status, doc = call(f"{url}/docs.json")
    assert status == 200 and {"/predict", "/invocations", "/v2/models/{model}/infer"} <= set(
        doc["paths"]
    )
    status, metrics = call(f"{url}/metrics")
    assert status == 200
    assert (
        f'kubeline_predictions_total{{endpoint="predict",model_name="{NAME}",model_version="1"}}'
        in metrics
    )
    assert 'kubeline_requests_total{endpoint="model",status="200"}' in metrics
    assert (
        'kubeline_request_duration_seconds_bucket{endpoint="predict",le="0.0005",status="200"}'
        in metrics
    )


def bad_cases(rows: list[dict[str, float]]) -> list[tuple[str, str, Any, str, int, str]]:
    """(name, path, body, content type, status, text the error must hold)."""
    one = rows[0]
    names = list(one)
    first = names[0]
    return [
        ("missing field", "/predict", {"rows": [{k: v for k, v in one.items() if k != first}]}, "application/json", 400, f"rows[0].{first}"),
        ("extra field", "/predict", {"rows": [one, {**one, "rett_1": 1.0}]}, "application/json", 400, "rows[1].rett_1"),
        ("boolean", "/predict", {"rows": [{**one, first: False}]}, "application/json", 400, f"rows[0].{first}"),
        ("string for a number", "/predict", {"rows": [one, one, {**one, first: "0.1"}]}, "application/json", 400, f"rows[2].{first}"),
        ("NaN", "/predict", f'{{"rows": [{{"{names[0]}": NaN, "{names[1]}": 1, "{names[2]}": 1}}]}}', "application/json", 400, f"rows[0].{first}"),
        ("Infinity", "/predict", f'{{"rows": [{{"{names[0]}": 1, "{names[1]}": Infinity, "{names[2]}": 1}}]}}', "application/json", 400, f"rows[0].{names[1]}"),
        ("empty list", "/predict", {"rows": []}, "application/json", 400, "rows"),
        ("too many rows", "/predict", {"rows": [one] * 1001}, "application/json", 400, "rows"),
        ("not JSON", "/predict", "{rows: oops", "application/json", 400, "JSON"),
        ("wrong content type", "/predict", {"rows": [one]}, "text/plain", 415, "application/json"),
        ("multipart without boundary", "/predict", "x", "multipart/form-data", 415, "multipart/form-data"),
        ("oversized body", "/predict", "[" + "1," * 150000 + "1]", "application/json", 413, "200000 bytes"),
        ("invocations: no known key", "/invocations", {"dataframe": {}}, "application/json", 400, "dataframe_split"),
        ("invocations: missing feature", "/invocations", {"dataframe_records": [{first: 1.0}]}, "application/json", 400, names[1]),
        ("invocations: text in CSV", "/invocations", f"{','.join(names)}\n1,x,2\n", "text/csv", 400, f"row[0].{names[1]}"),
        ("invocations: NaN in CSV", "/invocations", f"{','.join(names)}\n1,2,\n", "text/csv", 400, f"row[0].{names[2]}"),
        ("v2: wrong datatype", f"/v2/models/{NAME}/infer", {"inputs": [{"name": n, "shape": [1], "datatype": "BYTES", "data": [1.0]} for n in names]}, "application/json", 400, "inputs[0].datatype"),
        ("v2: wrong shape", f"/v2/models/{NAME}/infer", {"inputs": [{"name": n, "shape": [1, 2], "datatype": "FP64", "data": [1.0, 2.0]} for n in names]}, "application/json", 400, "inputs[0].shape"),
        ("v2: another model", "/v2/models/other/infer", {"inputs": [{"name": n, "shape": [1], "datatype": "FP64", "data": [1.0]} for n in names]}, "application/json", 404, "'other'"),
        ("history: too short", "/predict_history", {"ticker": "T0", "bars": [{"date": "2024-01-02", "close": 1.0}]}, "application/json", 400, "too few"),
        ("history: dates out of order", "/predict_history", {"ticker": "T0", "bars": [{"date": f"2024-01-{d:02d}", "close": 1.0} for d in (2, 4, 3)]}, "application/json", 400, "bars[2].date"),
        ("history: duplicated date", "/predict_history", {"ticker": "T0", "bars": [{"date": "2024-01-02", "close": 1.0}] * 2}, "application/json", 400, "bars[1].date"),
        ("history: string close", "/predict_history", {"ticker": "T0", "bars": [{"Date": "2024-01-02", "Close": "1.0"}]}, "application/json", 400, "bars[0].Close"),
        ("history: no close", "/predict_history", {"ticker": "T0", "bars": [{"date": "2024-01-02"}]}, "application/json", 400, "close"),
    ]  # fmt: skip


def test_bad_input_is_a_4xx_naming_the_field_and_row_and_the_server_keeps_serving(
    live: Live,
) -> None:
    rows = example_rows(live)
    failures = []
    for name, path, body, content_type, status, named in bad_cases(rows):
        raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        got, found = call(f"{live.url}{path}", raw=raw, content_type=content_type)
        shaped = (
            isinstance(found, dict)
            and isinstance(found.get("error"), str)
            and isinstance(found.get("detail"), list)
        )
        if got != status or not shaped or named not in found["error"]:
            failures.append(f"{name}: {got} {found}")
    assert not failures, "\n".join(failures)
    assert call(f"{live.url}/predict", {"rows": rows})[0] == 200
    assert "Traceback" not in live.log.read_text()


def test_predict_history_computes_the_features_and_prediction_training_does(live: Live) -> None:
    run = live.runs["a"]
    snapshot = prices(0, 0.3)  # what run "a" trained on
    local = model_file.load(run.model)
    names = local.card.feature_names
    # Training's path: the feature engine on the whole snapshot, the ticker's last row.
    table, _ = features.build_polars(
        snapshot, features=names, target=local.card.target, horizon=local.card.horizon
    )
    last = features.latest(table).filter(pl.col("ticker") == "T1")
    expected_features = last.select(names).to_pandas()
    expected = local.predict(expected_features)
    # The endpoint's path: the ticker's bars as a client sends them (Yahoo-style names).
    bars = snapshot.filter(pl.col("ticker") == "T1").tail(300)
    body = {
        "ticker": "T1",
        "bars": [
            {"Date": d.isoformat(), "Close": c, "Adj Close": a}
            for d, c, a in bars.select("date", "close", "adj_close").iter_rows()
        ],
    }
    status, found = call(f"{live.url}/predict_history", body)
    assert status == 200, found
    assert found["date"] == str(last.get_column("date")[0])
    got = np.array([found["features"][n] for n in names])
    np.testing.assert_allclose(got, expected_features.iloc[0].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(found["predictions"], expected, rtol=1e-12)
    # The log keeps the bars as sent; recomputed with the training code, no skew.
    from kubeline.monitor.skew import recompute
    from kubeline.serving.inference_log import log_location, read_log
    from kubeline.settings import Settings

    where = log_location(Settings(state_dir=live.env["KUBELINE_STATE_DIR"]))
    deadline = time.monotonic() + 30
    while True:
        logged = read_log(where)
        mine = logged[logged["endpoint"] == "predict_history"]
        if len(mine) or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert len(mine) == 1 and json.loads(mine["bars"].iloc[0]) == body["bars"]
    skew = recompute(logged, local.card)
    assert (skew.checked, skew.skewed_rows, skew.failed) == (1, 0, 0), skew


@pytest.fixture(scope="module")
def mlflow_models_serve(live: Live) -> Iterator[str]:
    """``mlflow models serve`` on version 1, as a client of it would have it."""
    port = free_port()
    log = live.log.parent / "mlflow-models-serve.log"
    # It runs `uvicorn` by name: the venv's bin must be on PATH.
    path = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**live.env, "MLFLOW_TRACKING_URI": live.mlflow.tracking_uri, "PATH": path}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(VENV_BIN / "mlflow"), "models", "serve", "-m", f"models:/{NAME}/1", "--env-manager", "local",
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=live.log.parent,
        )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/ping", 120, proc, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def test_invocations_answer_every_format_as_mlflow_models_serve_does(
    live: Live, mlflow_models_serve: str
) -> None:
    rows = example_rows(live)
    names = list(rows[0])
    frame = pd.DataFrame(rows)
    csv = frame.to_csv(index=False)
    bodies = {
        "dataframe_split": (json.dumps({"dataframe_split": frame.to_dict(orient="split")}), "application/json"),
        "dataframe_records": (json.dumps({"dataframe_records": rows}), "application/json"),
        "instances": (json.dumps({"instances": rows}), "application/json"),
        "inputs as records": (json.dumps({"inputs": rows}), "application/json"),
        "inputs as columns": (json.dumps({"inputs": {n: frame[n].tolist() for n in names}}), "application/json"),
        "csv": (csv, "text/csv"),
        "json with charset": (json.dumps({"dataframe_records": rows}), "application/json; charset=utf-8"),
    }  # fmt: skip
    for fmt, (body, content_type) in bodies.items():
        theirs = call(
            f"{mlflow_models_serve}/invocations", raw=body.encode(), content_type=content_type
        )
        ours = call(f"{live.url}/invocations", raw=body.encode(), content_type=content_type)
        assert theirs[0] == ours[0] == 200, (fmt, theirs, ours)
        assert set(ours[1]) == {"predictions"}
        np.testing.assert_allclose(
            ours[1]["predictions"], theirs[1]["predictions"], rtol=1e-12, err_msg=fmt
        )
    # MLflow's own scoring client works unchanged against either server: only the URL differs.
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    answers = []
    for url in (mlflow_models_serve, live.url):
        host, port = url.removeprefix("http://").split(":")
        client = ScoringServerClient(host, int(port))
        client.wait_server_ready(timeout=10)
        answers.append(np.asarray(client.invoke(frame).get_predictions(), dtype=float).ravel())
    np.testing.assert_allclose(answers[1], answers[0], rtol=1e-12)
    # Both refuse a body that is not a table with a 4xx.
    for url in (mlflow_models_serve, live.url):
        assert 400 <= call(f"{url}/invocations", raw=b"[1, 2]")[0] < 500


def test_schemathesis_finds_no_5xx_and_no_response_outside_the_schema(live: Live) -> None:
    # positive_data_acceptance is left out: a schema cannot say "dates rising, enough bars for
    # the longest window", and those schema-valid bodies are rightly refused with a 4xx.
    done = subprocess.run(
        [str(VENV_BIN / "schemathesis"), "run", f"{live.url}/docs.json", "--checks", "all",
         "--exclude-checks", "positive_data_acceptance", "--max-examples", "40", "--seed", "1",
         "--no-color", "--request-timeout", "30"],
        capture_output=True, text=True, timeout=600, cwd=live.log.parent,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "No issues found" in done.stdout or "passed" in done.stdout, done.stdout[-3000:]
    assert call(f"{live.url}/readyz")[0] == 200


def metric(text: str, line_start: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start)
    )


def test_a_moved_alias_is_served_without_one_failed_request(live: Live) -> None:
    rows = example_rows(live)
    sent, failed, versions = [0], [], set()
    stop_event = threading.Event()

    def client() -> None:
        while not stop_event.is_set():
            status, found = call(f"{live.url}/predict", {"rows": rows})
            sent[0] += 1
            if status != 200:
                failed.append((status, found))
            else:
                versions.add(found["model_version"])

    threads = [threading.Thread(target=client) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        registry.promote(registry.connect(live.settings()), NAME, "2", "reload test")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "2" not in versions:
            time.sleep(0.1)
        time.sleep(1.0)  # keep the load on after the swap
    finally:
        stop_event.set()
        for t in threads:
            t.join(30)
    print(f"reload test: {sent[0]} requests, {len(failed)} failed, versions {sorted(versions)}")
    assert not failed and sent[0] > 20, (sent[0], failed[:3])
    assert versions == {"1", "2"}
    status, ready = call(f"{live.url}/readyz")
    assert status == 200 and ready["model_version"] == "2" and ready["last_reload_error"] is None
    metrics = call(f"{live.url}/metrics")[1]
    assert metric(metrics, 'kubeline_model_reloads_total{outcome="swapped"}') >= 1
    assert (
        metric(
            metrics,
            'kubeline_predictions_total{endpoint="predict",model_name="'
            + NAME
            + '",model_version="2"}',
        )
        > 0
    )
    # The bearer-token reload answers too, and refuses without the token.
    assert call(f"{live.url}/admin/reload", method="POST")[0] == 401
    status, done = call(
        f"{live.url}/admin/reload", method="POST", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert status == 200 and done["outcome"] == "unchanged" and done["model_version"] == "2"


def test_with_the_registry_down_the_service_keeps_serving_and_says_why(live: Live) -> None:
    rows = example_rows(live)
    serving = call(f"{live.url}/readyz")[1]["model_version"]  # 2 after the reload test
    stop(live.mlflow_proc)  # this module's MLflow server, by PID
    deadline = time.monotonic() + 30
    ready: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status, ready = call(f"{live.url}/readyz")
        if ready.get("last_reload_error"):
            break
        time.sleep(0.2)
    assert status == 200 and ready["model_version"] == serving, ready
    assert "does not answer" in ready["last_reload_error"], ready
    status, found = call(f"{live.url}/predict", {"rows": rows})
    assert status == 200 and found["model_version"] == serving
    status, done = call(
        f"{live.url}/admin/reload", method="POST", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert status == 503, done
    assert done["error"].startswith(f"reload failed, still serving version {serving}: "), done
    assert "does not answer" in done["error"] and done["detail"][0]["outcome"] == "failed"
    metrics = call(f"{live.url}/metrics")[1]
    assert metric(metrics, 'kubeline_model_reloads_total{outcome="failed"}') >= 1
    assert f"reload failed, still serving version {serving}" in live.log.read_text()
