"""The demo's serving half against a real `kubeline serve` on a real store with a champion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import psutil
import pytest
from test_executors import NAME, register_run, train_and_evaluate

from kubeline.settings import get_settings

pytestmark = pytest.mark.integration


def test_the_demo_serves_the_champion_calls_it_shows_the_counts_and_stops_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kubeline.data.generate import generate, write_dataset
    from kubeline.serving import demo
    from kubeline.serving.loaded import load_served

    monkeypatch.setenv("KUBELINE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("KUBELINE_MODEL_NAME", NAME)
    get_settings.cache_clear()
    assert register_run(train_and_evaluate(tmp_path / "a")).alias == "champion"
    data = tmp_path / "bars"
    write_dataset(generate(tickers=2, years=2, seed=3), data, "yahoo")

    served = demo.serve_and_call(data, tmp_path / "serve.log")

    assert [(c.path, c.status) for c in served.calls] == [
        ("/predict", 200),
        ("/predict_history", 200),
        ("/invocations", 200),
    ], served.calls
    native, history, mlflow = (c.answer for c in served.calls)
    champion = load_served(get_settings())
    expected = champion.predict(champion.example_frame())
    np.testing.assert_allclose(native["predictions"], expected, rtol=1e-12)
    np.testing.assert_allclose(mlflow["predictions"], expected, rtol=1e-12)
    assert native["model_version"] == history["model_version"] == "1"
    assert len(history["predictions"]) == 1 and set(history["features"]) == set(
        champion.feature_names
    )
    counted = "\n".join(served.metrics)
    rows = len(expected)
    for endpoint, predicted in (("predict", rows), ("predict_history", 1), ("invocations", rows)):
        assert f'kubeline_requests_total{{endpoint="{endpoint}",status="200"}} 1.0' in counted
        assert f'endpoint="{endpoint}",model_name="{NAME}",model_version="1"}} {predicted}.0' in (
            counted
        )
    assert not psutil.pid_exists(served.pid)  # stopped by its PID, and reaped
