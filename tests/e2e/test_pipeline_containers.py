"""The compiled training pipeline with every step in the pipeline image (kfp.local DockerRunner).

The containerized run must register the same model, by its metrics, as the subprocess run on the
same data and seed; and a failing step must fail the run (a runner that reports a crashed
container as success is the failure we fear most).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from kubeline.data.generate import generate, write_dataset

pytestmark = pytest.mark.e2e

KUBELINE = str(Path(sys.executable).parent / "kubeline")
REPO = Path(__file__).resolve().parents[2]


def run(
    state: Path, image: str, *args: str, settings: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBELINE_", "MLFLOW_"))}
    env.update(KUBELINE_STATE_DIR=str(state), KUBELINE_IMAGE=image, COLUMNS="200", NO_COLOR="1")
    env.update(settings or {})
    return subprocess.run(
        [KUBELINE, "run", *args], env=env, capture_output=True, text=True, cwd=REPO, timeout=900
    )


def shared_with_the_image_user(state: Path) -> Path:
    """A state folder the image's user (not the host's) may write, as KUBELINE_CONTAINER_USER
    requires."""
    state.mkdir()
    state.chmod(0o777)  # not mkdir's mode: the umask would mask it
    return state


def evaluation(state: Path) -> dict:
    (found,) = state.glob("pipeline-root/*/evaluate/evaluation/evaluation.json")
    return json.loads(found.read_text())


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory, readable: Callable[[Path], Path]) -> Path:
    data = tmp_path_factory.mktemp("market") / "yahoo"
    # Large enough that the planted signal is significant on 18 of 20 seeds (6 x 3: 12 of 20).
    write_dataset(generate(tickers=12, years=4, seed=5), data, "yahoo")
    return readable(data)


def test_containers_register_the_same_model_as_subprocesses(
    image,
    market: Path,
    tmp_path: Path,
) -> None:
    # Every step as a restricted pod runs it: the image's own user, read-only root, tmpfs /tmp.
    # The state folder is shared with that user (it is not the host's).
    state = shared_with_the_image_user(tmp_path / "docker")
    in_containers = run(
        state, image.reference, "--data", str(market), "--runner", "docker",
        settings={"KUBELINE_CONTAINER_USER": f"{image.user}:{image.user}"},
    )  # fmt: skip
    assert in_containers.returncode == 0, in_containers.stdout + in_containers.stderr
    assert "version 1 as champion" in in_containers.stdout
    log = next((state / "logs").glob("*.log")).read_text()
    # Printed by kubeline's container launcher once per task: every step ran in the image.
    # Six steps, the candidates list and one tune per candidate of the defaults (ridge, hist_gbm).
    assert log.count(f"Found image '{image.reference}'") == 9
    # ... and as UID 10001: each step's outputs are its.
    outputs = [*state.glob("pipeline-root/*/*/executor_output.json")]
    tunes = [*state.glob("pipeline-root/*/for-loop-*-iteration-*/tune/executor_output.json")]
    steps = {p.parent.name for p in outputs}
    assert steps == {
        "ingest",
        "validate",
        "features",
        "candidates",
        "train",
        "evaluate",
        "register",
    }
    assert len(tunes) == 2
    owners = {p.stat().st_uid for p in [*outputs, *tunes]}
    assert owners == {int(image.user)}
    # The registry was made by kubeline before the first task (registry.prepare_store) and
    # shared as the state folder is, so the steps as 10001 wrote into it (version 1 above).
    assert (state / "mlflow.db").stat().st_mode & 0o002

    in_processes = run(tmp_path / "local", image.reference, "--data", str(market))
    assert in_processes.returncode == 0, in_processes.stdout + in_processes.stderr

    a, b = evaluation(state), evaluation(tmp_path / "local")
    assert a["candidate"] == b["candidate"] and a["params"] == b["params"]
    for metric, value in b["metrics"].items():
        assert a["metrics"][metric] == pytest.approx(value, rel=1e-9, nan_ok=True), metric


def test_containers_train_against_an_mlflow_server_and_an_s3_server(
    image, tmp_path: Path, s3_server, mlflow_server
) -> None:
    # As on a cluster: input in a bucket, every step in the image as UID 10001, the registry
    # and the artifacts on servers the containers reach over the network (here: host network).
    local = tmp_path / "kaggle"
    write_dataset(generate(tickers=5, years=3, seed=3), local, "kaggle")
    data = s3_server.upload(local, "e2e/market")
    state = shared_with_the_image_user(tmp_path / "state")
    settings = {
        **s3_server.env(),
        "KUBELINE_CONTAINER_USER": f"{image.user}:{image.user}",
        "KUBELINE_MLFLOW_TRACKING_URI": mlflow_server.tracking_uri,
        "KUBELINE_MODEL_NAME": "kubeline-e2e",
    }
    done = run(state, image.reference, "--data", data, "--runner", "docker", settings=settings)
    assert done.returncode == 0, done.stdout + done.stderr
    # 5 tickers x 3 years do not beat the constant forecast: version 1 stays challenger
    # (tests/integration/test_servers.py trains on the same data).
    assert "registered kubeline-e2e version 1" in done.stdout
    log = next((state / "logs").glob("*.log")).read_text()
    assert log.count(f"Found image '{image.reference}'") == 9  # with candidates, 2 tunes
    assert not (state / "mlflow.db").exists()  # nothing went to the embedded store

    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server.tracking_uri, mlflow_server.tracking_uri)
    version = client.get_model_version("kubeline-e2e", "1")
    assert client.get_run(version.run_id).data.metrics["holdout_rmse"] > 0
    keys = s3_server.keys("mlflow/")
    assert any(version.run_id in k and k.endswith(".html") for k in keys), keys[:20]
    assert any(k.endswith("model.skops") for k in keys), keys[:20]


def test_a_failing_step_fails_the_containerized_run(
    image,
    market: Path,
    tmp_path: Path,
) -> None:
    broken = tmp_path / "broken"
    write_dataset(generate(tickers=3, years=2, seed=6), broken, "yahoo")
    victim = sorted(broken.glob("*.csv"))[0]
    lines = victim.read_text().splitlines()
    cells = lines[3].split(",")
    cells[4] = "-1"  # a negative Close
    lines[3] = ",".join(cells)
    victim.write_text("\n".join(lines) + "\n")

    state = tmp_path / "state"
    done = run(state, image.reference, "--data", str(broken), "--runner", "docker")
    assert done.returncode != 0, done.stdout
    assert "failed at step 'validate'" in " ".join((done.stdout + done.stderr).split())
    assert f"{victim.name}, row 4" in done.stderr
    from mlflow import MlflowClient

    uri = f"sqlite:///{state / 'mlflow.db'}"
    # The store exists (made before the first task); the registry URI is given too, or MLflow
    # uses the one an earlier test in this process set (mlflow.set_registry_uri).
    assert MlflowClient(uri, uri).search_registered_models() == []


def test_a_container_that_fails_at_once_is_reported_as_failed(image) -> None:
    # kfp.local's own launcher returns 0 when such a container is already removed at wait().
    import docker

    from kubeline.runner.docker_launcher import run_container

    client = docker.from_env()
    for _ in range(5):
        code = run_container(client, image.reference, ["python3", "-c", "raise SystemExit(3)"], {})
        assert code == 3


def test_the_readmes_commands_build_and_run_the_pipeline_with_default_settings(
    image, new_user, tmp_path: Path
) -> None:
    from kubeline.images import local_reference
    from kubeline.settings import Settings

    # The `image` fixture built it with the README's `kubeline images build`, no KUBELINE_*.
    default = local_reference(Settings.model_fields["image"].default)
    if image.reference != default:
        pytest.skip(f"KUBELINE_E2E_IMAGE={image.reference} is not the default image {default}")
    command = new_user.command("kubeline run --runner docker")
    assert command == ["kubeline", "run", "--runner", "docker", "--data", "data/"], command
    write_dataset(generate(tickers=4, years=3, seed=11), tmp_path / "data", "yahoo")

    done = new_user.run(command, cwd=tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "registered kubeline-returns version 1 as" in done.stdout
    log = next((tmp_path / ".kubeline" / "logs").glob("*.log")).read_text()
    assert log.count(f"Found image '{default}'") == 9  # with candidates, 2 tunes
    # Not a terminal: the command to open the MLflow UI is still one line, pasteable.
    (ui,) = [line for line in done.stdout.splitlines() if "MLflow UI:" in line]
    assert "ui --backend-store-uri sqlite:///" in ui and ui.rstrip().endswith("mlflow.db")
