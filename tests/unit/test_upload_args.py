"""What `kubeline upload` refuses before any request: no endpoint, a pipeline that is not there."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from kubeline.errors import ConfigError
from kubeline.runner import compiled_dir
from kubeline.runner.remote import committed_specs

NEVER_REACHED = "http://127.0.0.1:9"  # a reached endpoint would say "does not answer", exit 1


def test_no_kfp_endpoint_is_one_sentence_naming_the_setting(cli: Callable[..., Any]) -> None:
    done = cli("upload")
    assert done.exit_code == 2 and done.exception is None, done.output
    assert "KUBELINE_KFP_HOST is empty" in done.flat and "port-forward" in done.flat


@pytest.mark.parametrize("names", [["trainig"], ["training", "scoring"]])
def test_an_unknown_pipeline_is_named_with_the_ones_there(
    cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, names: list[str]
) -> None:
    monkeypatch.setenv("KUBELINE_KFP_HOST", NEVER_REACHED)
    done = cli("upload", *[part for name in names for part in ("--pipeline", name)])
    assert done.exit_code == 2 and done.exception is None, done.output
    assert f"no compiled pipeline named {names[-1]!r}" in done.flat
    assert "choose from: batch_scoring, monitoring, training" in done.flat
    assert "does not answer" not in done.flat


def test_an_unreachable_endpoint_is_said_after_the_names_are_checked(
    cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBELINE_KFP_HOST", NEVER_REACHED)
    done = cli("upload", "--pipeline", "training")
    assert done.exit_code == 1 and done.exception is None, done.output
    assert f"the KFP API at {NEVER_REACHED} does not answer" in done.flat


def test_every_committed_spec_is_chosen_by_default_each_once() -> None:
    every = committed_specs()
    assert [s.pipeline for s in every] == sorted(p.stem for p in compiled_dir().glob("*.yaml"))
    assert [s.pipeline for s in committed_specs(["training", "training"])] == ["training"]


def test_a_committed_spec_is_named_by_its_file_hash_and_pipeline_name() -> None:
    (spec,) = committed_specs(["batch_scoring"])
    data = (compiled_dir() / "batch_scoring.yaml").read_bytes()
    assert spec.version_name == f"sha256-{hashlib.sha256(data).hexdigest()[:12]}"
    assert spec.display_name == next(yaml.safe_load_all(data))["pipelineInfo"]["name"]


def test_a_folder_with_no_specs_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    import kubeline.runner.compile

    monkeypatch.setattr(kubeline.runner.compile, "compiled_dir", lambda: tmp_path)
    with pytest.raises(ConfigError, match="no compiled pipelines in"):
        committed_specs()
