"""Image tags are reproducible from the version and the git revision; bad inputs fail early."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeline.errors import ConfigError, KubelineError, PipelineError
from kubeline.images import (
    build_images,
    build_tool_requirements,
    default_tag,
    find_engine,
    lock_pins,
)

REV = "0123456789abcdef0123456789abcdef01234567"


def test_default_tag_is_version_and_twelve_hex_of_the_revision() -> None:
    assert default_tag("0.1.0", REV) == "0.1.0-0123456789ab"


def test_default_tag_keeps_dirty_when_the_checkout_has_changes() -> None:
    assert default_tag("0.1.0", f"{REV}-dirty") == "0.1.0-0123456789ab-dirty"


def test_default_tag_is_the_version_alone_without_a_revision() -> None:
    assert default_tag("0.1.0", "") == "0.1.0"


def test_default_tag_replaces_characters_a_tag_cannot_hold() -> None:
    assert default_tag("0.1.0+local", "feature/x") == "0.1.0-local-feature-x"


def test_default_tag_follows_the_configured_revision(monkeypatch: pytest.MonkeyPatch) -> None:
    from kubeline.settings import get_settings

    monkeypatch.setenv("KUBELINE_GIT_REVISION", REV)
    get_settings.cache_clear()
    assert default_tag("0.1.0") == "0.1.0-0123456789ab"


def test_build_rejects_an_invalid_tag_before_any_work() -> None:
    with pytest.raises(ConfigError, match="not valid"):
        build_images(engine=None, base=None, tag="-bad:tag", wheelhouse=None)


def test_build_rejects_an_unknown_role() -> None:
    with pytest.raises(ConfigError, match="unknown image role"):
        build_images(engine=None, base=None, tag="t", wheelhouse=None, roles=("nope",))


def test_find_engine_fails_with_a_hint_when_none_is_on_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(PipelineError) as err:
        find_engine()
    assert "no container engine is reachable" in str(err.value)
    assert isinstance(err.value, KubelineError) and err.value.hint


def test_build_tool_requirements_are_cut_from_the_dev_lock_with_hashes() -> None:
    text = build_tool_requirements(Path(__file__).parents[2] / "requirements" / "dev.txt")
    lines = [line for line in text.splitlines() if "==" in line]
    assert [line.split("==")[0] for line in lines] == ["setuptools", "wheel"]
    assert "--hash=sha256:" in text and "# via" not in text


REQUIREMENTS = Path(__file__).parents[2] / "requirements"


def test_the_pipeline_lock_is_the_core_at_the_dev_locks_versions_and_hashes() -> None:
    import tomllib

    from packaging.requirements import Requirement

    pipeline = lock_pins(REQUIREMENTS / "pipeline.txt")
    dev = lock_pins(REQUIREMENTS / "dev.txt")
    assert len(pipeline) > 50 and all(pin.hashes for pin in pipeline.values())
    for name, pin in pipeline.items():
        assert dev[name].version == pin.version, name
        assert set(pin.hashes) <= set(dev[name].hashes), name
    project = tomllib.loads((REQUIREMENTS.parent / "pyproject.toml").read_text())["project"]
    core = {Requirement(spec).name.lower() for spec in project["dependencies"]}
    assert core <= set(pipeline), "re-lock with `make lock`"


def test_the_pipeline_lock_holds_the_mlflow_client_not_the_server_nor_other_roles() -> None:
    pipeline = lock_pins(REQUIREMENTS / "pipeline.txt")
    assert "mlflow-skinny" in pipeline
    for other_role in ("mlflow", "flask", "gunicorn", "bentoml", "evidently", "pytest"):
        assert other_role not in pipeline, other_role
