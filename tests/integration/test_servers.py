"""The same pipeline against a real MLflow tracking server and a real S3 server, input from s3://."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kubeline.data.generate import generate, write_dataset

pytestmark = pytest.mark.integration

KUBELINE = str(Path(sys.executable).parent / "kubeline")
REPO = Path(__file__).resolve().parents[2]


def test_pipeline_reads_s3_and_logs_to_tracking_server(
    tmp_path: Path, s3_server, mlflow_server
) -> None:
    # Raw data lives in the bucket, in the Kaggle layout.
    local = tmp_path / "kaggle"
    write_dataset(generate(tickers=5, years=3, seed=3), local, "kaggle")
    data = s3_server.upload(local, "raw/market")

    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("KUBELINE_", "MLFLOW_", "AWS_"))
    }
    env.update(s3_server.env())
    env.update(
        KUBELINE_STATE_DIR=str(tmp_path / "state"),
        KUBELINE_MLFLOW_TRACKING_URI=mlflow_server.tracking_uri,
        KUBELINE_MODEL_NAME="kubeline-s3-test",
        MLFLOW_DISABLE_TELEMETRY="true",
        NO_COLOR="1",
    )
    done = subprocess.run(
        [KUBELINE, "run", "--data", data],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "registered kubeline-s3-test version 1" in done.stdout

    # Nothing went to the embedded store.
    assert not (tmp_path / "state" / "mlflow.db").exists()

    from mlflow import MlflowClient

    c = MlflowClient(mlflow_server.tracking_uri, mlflow_server.tracking_uri)
    # This data set has no skill to find (the model does not beat the constant forecast), so
    # the version may be challenger: what matters here is where it and its files went.
    mv = c.get_model_version("kubeline-s3-test", "1")
    assert mv.tags["kubeline.gate"] in ("passed", "failed")
    run = c.get_run(mv.run_id)
    assert run.data.metrics["holdout_rmse"] > 0
    assert run.data.tags["kubeline.pipeline_run_id"]
    source = run.inputs.dataset_inputs[0].dataset.source
    assert "raw/market" in source

    # The model, the report and the plots landed in the S3 bucket behind the server.
    keys = s3_server.keys("mlflow/")
    assert any(k.endswith("model.skops") for k in keys), keys[:20]
    assert any(k.endswith(".html") for k in keys)
    assert any(k.endswith(".png") for k in keys)
    # No temporary keys were left behind by atomic uploads.
    assert not any(".tmp-" in k for k in keys)


def test_fetch_reads_exactly_the_named_folder(tmp_path: Path, s3_server) -> None:
    from kubeline.errors import StorageError
    from kubeline.settings import Settings
    from kubeline.storage import fetch, fingerprint

    s3 = s3_server.client()
    for key in ("p/market/a.csv", "p/market/sub/b.csv", "p/market2/c.csv", "p/marketing.csv"):
        s3.put_object(Bucket=s3_server.bucket, Key=key, Body=key.encode())
    settings = Settings(
        s3_endpoint_url=s3_server.endpoint,
        s3_access_key_id=s3_server.access_key,
        s3_secret_access_key=s3_server.secret_key,
    )
    folder = fetch(f"s3://{s3_server.bucket}/p/market", tmp_path / "a", settings)
    got = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert got == ["a.csv", "sub/b.csv"]
    one = fetch(f"s3://{s3_server.bucket}/p/marketing.csv", tmp_path / "b", settings)
    assert one.read_text() == "p/marketing.csv"
    with pytest.raises(StorageError, match="whole bucket"):
        fetch(f"s3://{s3_server.bucket}", tmp_path / "c", settings)
    with pytest.raises(StorageError, match="nothing found"):
        fetch(f"s3://{s3_server.bucket}/p/absent", tmp_path / "d", settings)

    before = fingerprint(f"s3://{s3_server.bucket}/p/market", settings)
    assert before == fingerprint(f"s3://{s3_server.bucket}/p/market/", settings)
    s3.put_object(Bucket=s3_server.bucket, Key="p/market/a.csv", Body=b"changed")
    assert fingerprint(f"s3://{s3_server.bucket}/p/market", settings) != before
