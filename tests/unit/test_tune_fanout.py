"""The training pipeline's fan-out: candidates tuned one per task, then ranked and fitted by train.

The same model must come out whether the candidates were tuned in one process or by parallel
tasks finishing in any order, and scores that do not match the run config must be refused.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_train import FEATURES, features_frame

from kubeline.errors import TrainingError
from kubeline.runconfig import RunConfig
from kubeline.steps import train as step
from kubeline.train import candidate_count, train, tune

# Three candidates of two families; ridge and poly2 tie nowhere, hist_gbm is slow enough to
# finish last when run in parallel.
TEXT = """
models:
  - {name: ridge, params: {alpha: [0.001, 10.0]}}
  - {name: hist_gbm, params: {learning_rate: [0.1], max_leaf_nodes: [7]}}
  - {name: poly2, params: {alpha: [0.01]}}
split: {n_splits: 3}
"""


@pytest.fixture(scope="module")
def cfg() -> RunConfig:
    return RunConfig.from_yaml_text(TEXT)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return features_frame()


def _tuned(frame: pd.DataFrame, cfg: RunConfig) -> list[pd.DataFrame]:
    return [
        tune(frame, cfg, feature_names=FEATURES, candidate=i) for i in range(candidate_count(cfg))
    ]


def test_tuning_apart_gives_the_model_tuning_together_gives(frame, cfg) -> None:
    together = train(frame, cfg, feature_names=FEATURES)
    apart = train(frame, cfg, feature_names=FEATURES, scores=_tuned(frame, cfg)[::-1])
    assert (apart.candidate, apart.params) == (together.candidate, together.params)
    columns = [c for c in together.cv_results.columns if c != "fit_seconds"]
    pd.testing.assert_frame_equal(apart.cv_results[columns], together.cv_results[columns])
    assert list(apart.cv_results["candidate"]) == ["ridge", "ridge", "hist_gbm", "poly2"]
    np.testing.assert_array_equal(
        apart.model.predict(frame[FEATURES]), together.model.predict(frame[FEATURES])
    )


def test_a_tie_goes_to_the_earlier_candidate_whatever_order_the_tasks_finished_in(frame) -> None:
    twins = RunConfig.from_yaml_text(
        "models: [{name: ridge, params: {alpha: [1.0]}}, {name: ridge, params: {alpha: [1.0]}}]\n"
        "split: {n_splits: 3}\n"
    )
    tuned = _tuned(frame, twins)
    for order in (tuned, tuned[::-1]):
        assert train(frame, twins, feature_names=FEATURES, scores=order).candidate == "ridge"
    ranked = train(frame, twins, feature_names=FEATURES, scores=tuned[::-1]).cv_results
    assert list(ranked.loc[ranked["selected"], "candidate"]) == ["ridge"]
    assert list(ranked["candidate"]) == ["ridge", "ridge#2"]


@pytest.mark.parametrize(
    ("pick", "message"),
    [
        (lambda t: t[:2], r"scores for candidates \[0, 1\], but the run config has 3"),
        (lambda t: [*t, t[0]], r"scores for candidates \[0, 0, 1, 2\]"),
        (lambda t: [], "no candidate was tuned"),
    ],
)
def test_scores_that_miss_or_repeat_a_candidate_are_refused(frame, cfg, pick, message) -> None:
    with pytest.raises(TrainingError, match=message):
        train(frame, cfg, feature_names=FEATURES, scores=pick(_tuned(frame, cfg)))


def test_scores_of_another_run_config_are_refused(frame, cfg) -> None:
    other = RunConfig.from_yaml_text(TEXT.replace("name: poly2", "name: ridge"))
    with pytest.raises(TrainingError, match="candidate 2 was tuned as poly2, the run config's"):
        train(frame, other, feature_names=FEATURES, scores=_tuned(frame, cfg))


def test_a_candidate_index_outside_the_config_is_refused(frame, cfg) -> None:
    with pytest.raises(TrainingError, match=r"candidate 3 does not exist: the run config has 3"):
        tune(frame, cfg, feature_names=FEATURES, candidate=3)


def test_the_steps_tune_into_files_and_train_from_them(frame, tmp_path: Path) -> None:
    table = tmp_path / "table.parquet"
    frame.to_parquet(table)
    assert step.candidates(config=TEXT) == [0, 1, 2]
    assert step.candidates(config="") == [0, 1]  # the defaults: ridge and hist_gbm
    paths = []
    for i in step.candidates(config=TEXT):
        paths.append(str(tmp_path / f"scores-{i}.json"))
        tuned = step.tune(table=str(table), config=TEXT, candidate=i, out=paths[-1])
        assert tuned.metadata()["candidate"] == ["ridge", "hist_gbm", "poly2"][i]
    json.loads(Path(paths[0]).read_text())  # standard JSON: no NaN
    apart = step.run(table=str(table), config=TEXT, out=str(tmp_path / "a"), scores=paths)
    together = step.run(table=str(table), config=TEXT, out=str(tmp_path / "b"))
    assert apart.metadata == together.metadata
    cv = {k: v for k, v in apart.metrics.items() if "seconds" not in k}
    assert cv == {k: v for k, v in together.metrics.items() if "seconds" not in k}


def test_a_missing_score_survives_the_file_as_nan(tmp_path: Path) -> None:
    scores = pd.DataFrame(
        {"candidate": ["ridge"], "params": ["alpha=1"], "_params": [{"alpha": 1}],
         "mean_r2": [math.nan], "std_r2": [0.1], "fit_seconds": [0.2], "_index": [0]}
    )  # fmt: skip
    path = tmp_path / "s.json"
    path.write_text(step.scores_json(scores))
    assert "NaN" not in path.read_text()
    back = step.read_scores(str(path))
    assert math.isnan(back["mean_r2"].iloc[0]) and back["mean_r2"].dtype == float
    assert back["_params"].iloc[0] == {"alpha": 1}


def test_a_file_that_is_no_tune_output_names_itself(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(b"\x80\x04")
    with pytest.raises(TrainingError, match=r"model\.pkl: not a tune task's scores"):
        step.read_scores(str(path))
