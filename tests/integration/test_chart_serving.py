"""The chart's serving Deployment, run for real with the environment it renders.

No cluster here, so the container runs as a process on 127.0.0.1: `kubeline serve` (the
container's command) with the settings ConfigMap as its environment (envFrom), then the
Deployment's own variables, Secret references filled with the test S3 server's keys and an
admin token. It serves a champion registered in a real `mlflow server` whose artifacts are on
the SeaweedFS server; its probes' paths answer, /predict answers the example /model gives, the
token the chart wires in opens /admin/reload, and after SIGTERM the inference log is in the
chart's bucket under the chart's prefix.

What differs from a pod, and why: the tracking URI and S3 endpoint in the ConfigMap name the
release's Services, which do not resolve here: they are replaced by the test servers' loopback
URLs. The port is a free one and the host 127.0.0.1 (the pod's 0.0.0.0:3000 would open this
machine to its network). The image's own variables (HOME, BENTOML_HOME on /tmp) point at a
temporary folder, as the pod's /tmp emptyDir.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import VENV_BIN, S3Server, free_port, running, stop  # tests/conftest.py
from test_executors import NAME, register_run, train_and_evaluate

from kubeline import chart
from kubeline.settings import get_settings

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Served:
    url: str
    token: str
    proc: subprocess.Popen[bytes]
    container: dict[str, Any]
    location: str
    logged_before: frozenset[str]  # inference-log keys other tests of the session wrote


def _by_name(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def _call(url: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            text = answer.read().decode()
            status = answer.status
    except urllib.error.HTTPError as exc:
        text, status = exc.read().decode(), exc.code
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


@pytest.fixture(scope="module")
def served(
    s3_server: S3Server, mlflow_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("chart-serving")
    # A champion in the real registry, its model on S3 behind the server.
    with pytest.MonkeyPatch.context() as env:
        for name in [n for n in os.environ if n.startswith("KUBELINE_")]:
            env.delenv(name)
        env.setenv("KUBELINE_STATE_DIR", str(root / "state"))
        env.setenv("KUBELINE_MLFLOW_TRACKING_URI", mlflow_server.tracking_uri)
        for key, value in s3_server.env().items():
            env.setenv(key, value)
        get_settings.cache_clear()
        assert register_run(train_and_evaluate(root / "run")).alias == "champion"
    get_settings.cache_clear()

    values = {
        "settings": {"modelName": NAME},
        "s3": {"bucket": s3_server.bucket},
        "serving": {"enabled": True, "adminToken": {"enabled": True}},
    }
    docs = chart.render(values)
    settings = dict(_by_name(docs, "ConfigMap", "kubeline-settings")["data"])
    assert settings["KUBELINE_MLFLOW_TRACKING_URI"].startswith(
        "http://kubeline-mlflow.kubeline.svc"
    )
    settings["KUBELINE_MLFLOW_TRACKING_URI"] = mlflow_server.tracking_uri
    settings["KUBELINE_S3_ENDPOINT_URL"] = s3_server.endpoint
    pod = _by_name(docs, "Deployment", "kubeline-serving")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert [e["configMapRef"]["name"] for e in container["envFrom"]] == ["kubeline-settings"]
    token = secrets.token_urlsafe(24)
    filled = {"access-key-id": s3_server.access_key, "secret-access-key": s3_server.secret_key}
    filled["token"] = token
    port = free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("KUBELINE_", "MLFLOW_", "AWS_"))
    }
    env |= settings  # envFrom first; the container's env wins over it, as in a pod
    for var in container["env"]:
        env[var["name"]] = (
            filled[var["valueFrom"]["secretKeyRef"]["key"]] if "valueFrom" in var else var["value"]
        )
    assert env["KUBELINE_SERVE_PORT"] == "3000" and env["KUBELINE_SERVE_HOST"] == "0.0.0.0"
    env |= {"KUBELINE_SERVE_PORT": str(port), "KUBELINE_SERVE_HOST": "127.0.0.1"}
    tmp = root / "tmp"  # the pod's /tmp emptyDir, where the image points everything that writes
    tmp.mkdir()
    env |= {
        "HOME": str(tmp),
        "TMPDIR": str(tmp),
        "BENTOML_HOME": str(tmp / "bentoml"),
        "KUBELINE_STATE_DIR": str(tmp / "kubeline"),
        "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
    }
    bucket, _, prefix = env["KUBELINE_INFERENCE_LOG_LOCATION"].removeprefix("s3://").partition("/")
    assert (bucket, prefix) == (s3_server.bucket, "inference-log")  # the chart's default
    before = frozenset(s3_server.keys(f"{prefix}/"))
    log = root / "serve.log"
    command = [str(VENV_BIN / container["command"][0]), *container["command"][1:]]
    url = f"http://127.0.0.1:{port}"
    startup = f"{url}{container['startupProbe']['httpGet']['path']}"
    with running(command, env=env, cwd=tmp, log=log, ready=startup, timeout=180) as proc:
        yield Served(url, token, proc, container, env["KUBELINE_INFERENCE_LOG_LOCATION"], before)


def test_the_probes_answer_on_the_paths_the_chart_names(served: Served) -> None:
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        path = served.container[probe]["httpGet"]["path"]
        status, _ = _call(served.url + path)
        assert status == 200, (probe, path)


def test_predict_answers_the_example_model_gives(served: Served) -> None:
    status, card = _call(served.url + "/model")
    assert status == 200 and card["name"] == NAME
    status, answer = _call(served.url + "/predict", card["example"])
    assert status == 200, answer
    assert answer["model_version"] == "1" and len(answer["predictions"]) == len(
        card["example"]["rows"]
    )
    status, metrics = _call(served.url + "/metrics")
    assert status == 200 and 'kubeline_requests_total{endpoint="predict",status="200"}' in metrics


def test_the_admin_token_the_chart_wires_in_opens_reload(served: Served) -> None:
    assert _call(served.url + "/admin/reload", {}, token="wrong")[0] == 401
    status, answer = _call(served.url + "/admin/reload", {}, token=served.token)
    assert status == 200 and answer["model_version"] == "1", answer


def test_after_sigterm_the_inference_log_is_in_the_charts_bucket(
    served: Served, s3_server: S3Server
) -> None:
    _call(served.url + "/predict", _call(served.url + "/model")[1]["example"])
    stop(served.proc)  # SIGTERM, as the kubelet sends it: the log flushes before the exit
    assert served.proc.returncode is not None
    prefix = served.location.removeprefix("s3://").partition("/")[2]
    written = set(s3_server.keys(f"{prefix}/")) - served.logged_before
    assert any(k.endswith(".parquet") for k in written), written
