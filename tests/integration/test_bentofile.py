"""`bentoml build` makes a Bento of the service from bentofile.yaml, offline, on a real store.

The service loads the champion when imported and `bentoml build` imports it, so the store has
one (trained and registered by the executors, as in test_serving_loaded.py). Every proxy points
at a closed port and pip and uv are told to stay offline: a build that downloads fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_executors import NAME, register_run, train_and_evaluate

from kubeline.images import lock_pins
from kubeline.settings import get_settings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens, every download fails fast


@pytest.fixture(scope="module")
def champion_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bento")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KUBELINE_STATE_DIR", str(root / "state"))
        mp.setenv("KUBELINE_SETTINGS_FILE", "")
        get_settings.cache_clear()
        assert register_run(train_and_evaluate(root / "a")).alias == "champion"
        get_settings.cache_clear()
    return root / "state"


def test_bentoml_build_makes_a_bento_of_the_service_offline(
    champion_state: Path, tmp_path: Path
) -> None:
    home = tmp_path / "bentoml"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("KUBELINE_", "MLFLOW_"))},
        "KUBELINE_STATE_DIR": str(champion_state),
        "KUBELINE_MODEL_NAME": NAME,
        "BENTOML_HOME": str(home),
        "BENTOML_DO_NOT_TRACK": "true",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "PIP_NO_INDEX": "1",
        "UV_OFFLINE": "1",
        **{proxy: CLOSED for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")},
        "NO_PROXY": "",
        "no_proxy": "",
    }
    bentoml = str(Path(sys.executable).parent / "bentoml")
    done = subprocess.run(
        [bentoml, "build", "-o", "tag", str(ROOT)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    bentos = [p for p in (home / "bentos" / "kubeline").iterdir() if p.name != "latest"]
    assert len(bentos) == 1, bentos
    bento = bentos[0]
    assert bento.name in done.stdout  # `-o tag` prints the tag it built
    spec = yaml.safe_load((bento / "bento.yaml").read_text())
    assert spec["service"] == "kubeline.serving.service:Kubeline"
    assert spec["labels"] == {"project": "kubeline", "role": "serving"}
    routes = {r["route"] for r in spec["schema"]["routes"]}
    assert {"/predict", "/predict_history"} <= routes
    # The Bento installs the serving image's own lock, hashes and all; BentoML appends a pin of
    # itself (the same version, unhashed) at the end.
    lock = lock_pins(ROOT / "requirements" / "serving.txt")
    text = (bento / "env" / "python" / "requirements.txt").read_text()
    head, _, own = text.rpartition("\nbentoml==")
    assert own.strip() == lock["bentoml"].version
    (tmp_path / "head.txt").write_text(head + "\n")
    assert lock_pins(tmp_path / "head.txt") == lock
    sources = {p.relative_to(bento / "src").as_posix() for p in (bento / "src").rglob("*")}
    assert "kubeline/serving/service.py" in sources and "kubeline/features.py" in sources
    assert not {s for s in sources if s.startswith(("tests", ".venv", ".kubeline", "bench"))}
    assert not {s for s in sources if "__pycache__" in s}
