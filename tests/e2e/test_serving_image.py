"""The serving image in a real container as a cluster runs it, serving a champion trained here.

The champion is trained on the host with the demo data (``kubeline demo``, a state folder of
its own); its embedded store (sqlite and artifacts) is mounted at the same path, so the
artifact locations the store records resolve inside the container too. Not read-only: MLflow
writes a ``registered_model_meta`` file beside a local model's artifacts when it loads one, so
the store is made writable by the image's user, as the README says for KUBELINE_CONTAINER_USER. The container runs
as UID 10001 on a read-only root with a tmpfs ``/tmp``, on the host network (it listens on
127.0.0.1 only). Its answers must equal what the venv's loader predicts for the same rows.

The image is built once per module with the README's command (``kubeline images build --role
serving``), or taken from ``KUBELINE_E2E_SERVING_IMAGE``; ``KUBELINE_E2E_BASE`` and
``KUBELINE_E2E_WHEELHOUSE`` are honoured as for the pipeline image (tests/e2e/conftest.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.e2e

PREBUILT = os.environ.get("KUBELINE_E2E_SERVING_IMAGE")
KUBELINE = str(Path(sys.executable).parent / "kubeline")


def new_user_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBELINE_", "MLFLOW_"))}
    return {**env, **extra}


@pytest.fixture(scope="module")
def serving_image(tmp_path_factory: pytest.TempPathFactory, role_image: Any) -> Any:
    """The serving image (a ``RoleImage``: engine and reference), built as the README says."""
    return role_image("serving", tmp_path_factory.mktemp("build-serving"), PREBUILT)


@pytest.fixture(scope="module")
def champion_state(
    tmp_path_factory: pytest.TempPathFactory, readable: Callable[[Path], Path]
) -> Path:
    """A state folder whose registry has a champion: the demo, run on the host."""
    state = tmp_path_factory.mktemp("serving") / "state"
    done = subprocess.run(
        [KUBELINE, "demo"],
        env=new_user_env(KUBELINE_STATE_DIR=str(state), COLUMNS="200", NO_COLOR="1"),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0 and "as champion" in done.stdout, done.stdout + done.stderr
    readable(state)
    for path in [state, *state.rglob("*")]:
        path.chmod(0o777 if path.is_dir() else 0o666)
    return state


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Running:
    engine: str
    container: str
    port: int

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(self.url(path), timeout=10) as answer:
                return answer.status, json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        request = urllib.request.Request(
            self.url(path),
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def exec(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.engine, "exec", self.container, *argv],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def logs(self) -> str:
        done = subprocess.run(
            [self.engine, "logs", self.container], capture_output=True, text=True, check=False
        )
        return (done.stdout + done.stderr)[-4000:]


@pytest.fixture(scope="module")
def served(serving_image: Any, champion_state: Path) -> Iterator[Running]:
    """The image's service on the champion, until the module ends (then stopped by its id)."""
    port = free_port()
    state = str(champion_state)
    started = subprocess.run(
        [
            serving_image.engine,
            "run",
            "--detach",
            "--read-only",
            "--tmpfs",
            "/tmp",
            "--user",
            "10001:10001",
            "--cap-drop=ALL",
            "--security-opt=no-new-privileges",
            "--network",
            "host",
            f"--volume={state}:{state}",
            # The image's own command (`kubeline serve`), told where to listen by settings.
            *("--env", f"KUBELINE_STATE_DIR={state}"),
            *("--env", "KUBELINE_SERVE_HOST=127.0.0.1"),
            *("--env", f"KUBELINE_SERVE_PORT={port}"),
            *("--env", "KUBELINE_SERVE_WORKERS=1"),
            serving_image.reference,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    running = Running(serving_image.engine, started.stdout.strip(), port)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if running.get("/readyz")[0] == 200:
                    break
            except OSError:
                pass
            state_of = subprocess.run(
                [running.engine, "inspect", "--format", "{{.State.Running}}", running.container],
                capture_output=True,
                text=True,
                check=False,
            )
            assert state_of.stdout.strip() == "true", f"the service exited:\n{running.logs()}"
            assert time.monotonic() < deadline, f"not ready in 120 s:\n{running.logs()}"
            time.sleep(0.5)
        yield running
    finally:
        subprocess.run(
            [running.engine, "stop", "--time", "20", running.container],
            capture_output=True,
            check=False,
        )
        subprocess.run(
            [running.engine, "rm", "--force", running.container], capture_output=True, check=False
        )


def test_the_service_runs_as_uid_10001_on_a_read_only_root(served: Running) -> None:
    done = served.exec(
        "sh", "-c", "id -u; touch /opt/kubeline/x 2>/dev/null && echo writable; true"
    )
    assert done.stdout.split() == ["10001"], done.stdout + done.stderr
    # The PID 1 of the container is the server itself (`kubeline serve` execs bentoml serve).
    cmdline = served.exec("cat", "/proc/1/cmdline").stdout.split("\0")
    assert "serve" in cmdline and "kubeline.serving.service:Kubeline" in cmdline, cmdline


def test_the_service_is_ready_with_the_champion(served: Running, champion_state: Path) -> None:
    status, body = served.get("/readyz")
    assert status == 200, body
    assert '"1"' in json.dumps(body) or "version 1" in json.dumps(body), body
    status, meta = served.get("/model")
    assert status == 200 and meta["version"] == "1" and meta["alias"] == "champion", meta


def test_its_predictions_equal_the_venvs(served: Running, champion_state: Path) -> None:
    from kubeline.serving.loaded import load_served
    from kubeline.settings import Settings

    venv = load_served(Settings(state_dir=champion_state))
    status, answer = served.post("/predict", {"rows": venv.input_example})
    assert status == 200, answer
    assert answer["model_version"] == venv.version == "1"
    expected = venv.predict(venv.example_frame())
    np.testing.assert_allclose(answer["predictions"], expected, rtol=1e-12, atol=0)


def test_the_image_health_check_asks_livez_and_passes(served: Running, serving_image: Any) -> None:
    done = subprocess.run(
        [
            serving_image.engine,
            "image",
            "inspect",
            "--format",
            "{{json .Config.Healthcheck.Test}}",
            serving_image.reference,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    test = json.loads(done.stdout)
    assert test[0] == "CMD" and "/livez" in test[-1], test
    # The image's own check, run in the container, finds the port the service was given.
    assert served.exec(*test[1:]).returncode == 0
    # and fails where nothing listens (the discard port)
    assert served.exec("env", "KUBELINE_SERVE_PORT=9", *test[1:]).returncode != 0


def test_the_serving_image_is_under_one_gigabyte_with_labels(serving_image: Any) -> None:
    done = subprocess.run(
        [
            serving_image.engine,
            "image",
            "inspect",
            "--format",
            '{{.Size}}|{{.Config.User}}|{{index .Config.Labels "org.opencontainers.image.title"}}|'
            '{{index .Config.Labels "org.opencontainers.image.version"}}',
            serving_image.reference,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    size, user, title, version = done.stdout.strip().split("|")
    from kubeline import __version__

    assert int(size) < 1_000_000_000  # the target, in the engine's (SI) unit
    assert (user, title, version) == ("10001:10001", "kubeline-serving", __version__)
