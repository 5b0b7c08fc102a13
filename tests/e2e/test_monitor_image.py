"""The monitor image runs one check in a container as a CronJob runs it.

The champion is trained on the host (``kubeline demo --no-serve``, a state folder of its own,
mounted at the same path so the artifact locations the store records resolve inside the
container). The container runs as UID 10001 on a read-only root with a tmpfs ``/tmp`` and no
network, checks the demo data's holdout dates (``ok``) and the same bars with the regime
change planted from the holdout's start (``decay``: their realized targets are in the data),
and writes its report and summary into the mounted state folder. The exit code is the decision.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

PREBUILT = os.environ.get("KUBELINE_E2E_MONITOR_IMAGE")
KUBELINE = str(Path(sys.executable).parent / "kubeline")


@dataclass(frozen=True)
class Trained:
    state: Path
    clean: Path
    shifted: Path
    holdout_start: str


@pytest.fixture(scope="module")
def monitor_image(tmp_path_factory: pytest.TempPathFactory, role_image: Any) -> Any:
    return role_image("monitor", tmp_path_factory.mktemp("build-monitor"), PREBUILT)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, readable: Callable[[Path], Path]) -> Trained:
    from kubeline.data.demo import DEMO_SEED, DEMO_TICKERS, DEMO_YEARS
    from kubeline.data.generate import generate, write_dataset
    from kubeline.serving.loaded import load_served
    from kubeline.settings import get_settings

    root = tmp_path_factory.mktemp("monitor")
    state = root / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBELINE_", "MLFLOW_"))}
    done = subprocess.run(
        [KUBELINE, "demo", "--no-serve"],
        env={**env, "KUBELINE_STATE_DIR": str(state), "COLUMNS": "200", "NO_COLOR": "1"},
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and "as champion" in done.stdout, done.stdout + done.stderr
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KUBELINE_STATE_DIR", str(state))
        get_settings.cache_clear()
        card = load_served(get_settings()).card
    get_settings.cache_clear()
    start = date.fromisoformat(card.holdout_start[:10])
    clean = next((state / "data").iterdir())
    shifted = root / "shifted"
    write_dataset(
        generate(tickers=DEMO_TICKERS, years=DEMO_YEARS, seed=DEMO_SEED, drift_from=start),
        shifted,
        "yahoo",
    )
    readable(shifted)
    for path in [state, *state.rglob("*")]:  # MLflow writes beside what it reads
        path.chmod(0o777 if path.is_dir() else 0o666)
    return Trained(state, clean, shifted, str(start))


def run_check(
    image: Any, trained: Trained, data: Path, out: str
) -> subprocess.CompletedProcess[str]:
    state = str(trained.state)
    return subprocess.run(
        [
            image.engine, "run", "--rm", "--read-only", "--tmpfs", "/tmp",
            "--user", "10001:10001", "--cap-drop=ALL", "--security-opt=no-new-privileges",
            "--network", "none",
            f"--volume={state}:{state}", f"--volume={data}:{data}:ro",
            "--env", f"KUBELINE_STATE_DIR={state}",
            image.reference,
            "kubeline", "monitor", "--current", str(data), "--since", trained.holdout_start,
            "--out", f"{state}/{out}",
        ],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_a_check_of_the_holdout_is_ok_and_written_into_the_mounted_state(
    monitor_image: Any, trained: Trained
) -> None:
    done = run_check(monitor_image, trained, trained.clean, "check-clean")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "ok"
    summary = json.loads((trained.state / "check-clean" / "summary.json").read_text())
    assert summary["decision"] == "ok" and summary["model_version"] == "1"
    report = trained.state / "check-clean" / "report.html"
    assert report.stat().st_size > 100_000 and report.stat().st_uid == 10001


def test_a_check_of_the_shifted_bars_exits_with_the_decay_code(
    monitor_image: Any, trained: Trained
) -> None:
    done = run_check(monitor_image, trained, trained.shifted, "check-shifted")
    assert done.returncode == 11, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "decay"
    summary = json.loads((trained.state / "check-shifted" / "summary.json").read_text())
    assert "volatility_20" in summary["drifted_features"]


def test_the_monitor_image_is_bounded_labelled_and_holds_no_serving_stack(
    monitor_image: Any,
) -> None:
    done = subprocess.run(
        [
            monitor_image.engine, "image", "inspect", "--format",
            '{{.Size}}|{{.Config.User}}|{{index .Config.Labels "org.opencontainers.image.title"}}',
            monitor_image.reference,
        ],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    size, user, title = done.stdout.strip().split("|")
    print(f"monitor image: {int(size) / 1e6:.0f} MB")
    # The target, in the engine's (SI) unit: measured 982 MB, after the Containerfile
    # drops what a check never loads and writes bytecode only for what it imports (1.30 GB
    # before).
    assert int(size) < 1_000_000_000
    assert (user, title) == ("10001:10001", "kubeline-monitor")
    # kfp is in it on purpose (the monitoring step runs under kfp's executor); what serves or
    # launches is not: BentoML, the MLflow server's web stack, kfp-kubernetes, docker.
    absent = subprocess.run(
        [
            monitor_image.engine, "run", "--rm", "--network", "none", monitor_image.reference,
            "python3", "-c",
            "import importlib.util as u; "
            "print([m for m in ('bentoml', 'flask', 'gunicorn', 'kfp.kubernetes', 'docker') "
            "if u.find_spec(m)]); import kfp, evidently",
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert absent.returncode == 0 and absent.stdout.strip() == "[]", absent.stdout + absent.stderr
