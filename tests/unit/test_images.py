"""The pipeline image has one name and tag, KUBELINE_IMAGE's; bad inputs fail early."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeline import __version__
from kubeline.errors import ConfigError, KubelineError, PipelineError
from kubeline.images import (
    BuiltImage,
    build_images,
    build_tool_requirements,
    find_engine,
    local_reference,
    lock_pins,
    pipeline_image,
)
from kubeline.settings import get_settings


def test_build_tags_by_default_the_image_compile_and_the_docker_runner_use() -> None:
    from kubeline.pipelines.cluster import Platform

    name, tag = pipeline_image()
    assert (name, tag) == ("kubeline-pipeline", __version__)
    # compile names it in the spec; the docker runner looks it up (kfp.local needs localhost/)
    assert f"{name}:{tag}" == get_settings().image == Platform.defaults().image
    built = BuiltImage("pipeline", name, tag, size_bytes=0, build_seconds=0.0)
    assert built.reference == local_reference(get_settings().image)
    assert built.reference == f"localhost/kubeline-pipeline:{__version__}"


def test_build_follows_the_image_setting_and_a_tag_given_on_the_command_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KUBELINE_IMAGE", "registry.example.com/ml/kubeline-pipeline:7")
    get_settings.cache_clear()
    assert pipeline_image() == ("registry.example.com/ml/kubeline-pipeline", "7")
    assert pipeline_image("8") == ("registry.example.com/ml/kubeline-pipeline", "8")
    # a name with a registry is what kfp.local finds as it is
    assert local_reference(get_settings().image) == get_settings().image


def test_an_image_setting_without_a_tag_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBELINE_IMAGE", "localhost:5000/kubeline-pipeline")
    get_settings.cache_clear()
    with pytest.raises(ConfigError, match="has no tag"):
        pipeline_image()


def test_local_reference_puts_localhost_before_a_bare_name_only() -> None:
    assert local_reference("kubeline-pipeline:1") == "localhost/kubeline-pipeline:1"
    assert local_reference("localhost/kubeline-pipeline:1") == "localhost/kubeline-pipeline:1"
    assert local_reference("host:5000/kubeline-pipeline:1") == "host:5000/kubeline-pipeline:1"


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


def test_the_wheel_is_built_from_the_package_folders_pyproject_names() -> None:
    from kubeline.images import source_root, wheel_sources

    root = source_root()
    assert [p.name for p in wheel_sources(root)] == [
        "pyproject.toml",
        "README.md",
        "components",
        "kubeline",
        "pipelines",
    ]


def test_the_wheel_leaves_out_a_stale_build_folder_and_leaves_the_checkout_alone(
    tmp_path: Path,
) -> None:
    import zipfile

    from kubeline.images import build_kubeline_wheel

    root = tmp_path / "checkout"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "README.md").write_text("tiny\n")
    (root / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "tiny"\nversion = "1"\nreadme = "README.md"\n'
        '[tool.setuptools]\npackages = ["pkg"]\n'
    )
    # What an earlier in-tree build left behind: a module since deleted from the source.
    (root / "build" / "lib" / "pkg").mkdir(parents=True)
    (root / "build" / "lib" / "pkg" / "deleted.py").write_text("STALE = True\n")
    before = sorted(p.relative_to(root) for p in root.rglob("*"))

    (wheel,) = build_kubeline_wheel(root, tmp_path / "out").glob("tiny-*.whl")

    names = zipfile.ZipFile(wheel).namelist()
    assert "pkg/__init__.py" in names and "pkg/deleted.py" not in names
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before
