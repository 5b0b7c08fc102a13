"""Each role's image has one name and tag, its setting's; its lock is the dev lock's subset."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeline import __version__
from kubeline.errors import ConfigError, KubelineError, PipelineError
from kubeline.images import (
    BuiltImage,
    Pin,
    build_images,
    build_tool_requirements,
    find_engine,
    local_reference,
    lock_pins,
    role_image,
)
from kubeline.settings import get_settings


def test_build_tags_by_default_the_image_compile_and_the_docker_runner_use() -> None:
    from kubeline.pipelines.cluster import Platform

    name, tag = role_image("pipeline")
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
    assert role_image("pipeline") == ("registry.example.com/ml/kubeline-pipeline", "7")
    assert role_image("pipeline", "8") == ("registry.example.com/ml/kubeline-pipeline", "8")
    # a name with a registry is what kfp.local finds as it is
    assert local_reference(get_settings().image) == get_settings().image


def test_the_serving_image_is_named_by_its_own_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert role_image("serving") == ("kubeline-serving", __version__)
    assert f"kubeline-serving:{__version__}" == get_settings().serving_image
    monkeypatch.setenv("KUBELINE_SERVING_IMAGE", "registry.example.com/ml/serve:3")
    get_settings.cache_clear()
    assert role_image("serving", "4") == ("registry.example.com/ml/serve", "4")
    assert role_image("pipeline") == ("kubeline-pipeline", __version__)
    monkeypatch.setenv("KUBELINE_SERVING_IMAGE", "serve")
    get_settings.cache_clear()
    with pytest.raises(ConfigError, match="KUBELINE_SERVING_IMAGE 'serve' has no tag"):
        role_image("serving")


def test_an_image_setting_without_a_tag_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBELINE_IMAGE", "localhost:5000/kubeline-pipeline")
    get_settings.cache_clear()
    with pytest.raises(ConfigError, match="has no tag"):
        role_image("pipeline")


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


def pins_within_the_dev_lock(lock: str) -> dict[str, Pin]:
    """A role's lock: every entry hashed, at the dev lock's version, with a subset of its hashes."""
    pins = lock_pins(REQUIREMENTS / lock)
    dev = lock_pins(REQUIREMENTS / "dev.txt")
    assert len(pins) > 50 and all(pin.hashes for pin in pins.values())
    for name, pin in pins.items():
        assert dev[name].version == pin.version, name
        assert set(pin.hashes) <= set(dev[name].hashes), name
    return pins


def test_the_pipeline_lock_is_the_core_at_the_dev_locks_versions_and_hashes() -> None:
    import tomllib

    from packaging.requirements import Requirement

    pipeline = pins_within_the_dev_lock("pipeline.txt")
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


def test_the_serving_lock_is_its_named_set_at_the_dev_locks_versions_and_hashes() -> None:
    serving = pins_within_the_dev_lock("serving.txt")
    assert serving_names() <= set(serving), "re-lock with `make lock`"


def serving_names() -> set[str]:
    """The distributions requirements/serving.in names (comments and blank lines dropped)."""
    lines = (REQUIREMENTS / "serving.in").read_text().splitlines()
    return {line.split("#")[0].strip().lower() for line in lines} - {""}


# The core's distributions the service never imports: the pipeline runtime and the report's.
NOT_SERVED = {"kfp", "kfp-kubernetes", "kubernetes", "docker", "matplotlib", "jinja2"}


def test_the_serving_set_is_the_core_without_the_pipeline_runtime_plus_the_serving_extra() -> None:
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((REQUIREMENTS.parent / "pyproject.toml").read_text())["project"]
    core = {Requirement(spec).name.lower() for spec in project["dependencies"]}
    extra = {Requirement(spec).name.lower() for spec in project["optional-dependencies"]["serving"]}
    # A dependency added to the core or the serving extra must be decided for serving too.
    assert serving_names() == (core - NOT_SERVED) | extra


def test_the_serving_lock_holds_bentoml_and_the_mlflow_client_not_kfp_nor_other_roles() -> None:
    serving = lock_pins(REQUIREMENTS / "serving.txt")
    for needed in ("bentoml", "mlflow-skinny", "scikit-learn", "skops", "polars", "boto3"):
        assert needed in serving, needed
    for left_out in ("kfp", "kubernetes", "docker", "mlflow", "flask", "gunicorn", "evidently"):
        assert left_out not in serving, left_out
    assert not {name for name in serving if name.startswith(("pytest", "kfp"))}


def monitor_names() -> set[str]:
    """The distributions requirements/monitor.in names (comments and blank lines dropped)."""
    lines = (REQUIREMENTS / "monitor.in").read_text().splitlines()
    return {line.split("#")[0].strip().lower() for line in lines} - {""}


def test_the_monitor_lock_is_its_named_set_at_the_dev_locks_versions_and_hashes() -> None:
    monitor = pins_within_the_dev_lock("monitor.txt")
    assert monitor_names() <= set(monitor), "re-lock with `make lock`"


def test_the_monitor_set_is_the_core_without_the_launchers_plus_the_monitor_extra() -> None:
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((REQUIREMENTS.parent / "pyproject.toml").read_text())["project"]
    core = {Requirement(spec).name.lower() for spec in project["dependencies"]}
    extra = {Requirement(spec).name.lower() for spec in project["optional-dependencies"]["monitor"]}
    # kfp stays (the monitoring step runs under its executor); what only launches pipelines goes.
    assert monitor_names() == (core - {"kfp-kubernetes", "kubernetes", "docker"}) | extra


def test_the_monitor_lock_holds_evidently_and_kfp_not_the_serving_stack_nor_the_server() -> None:
    monitor = lock_pins(REQUIREMENTS / "monitor.txt")
    for needed in ("evidently", "kfp", "mlflow-skinny", "scikit-learn", "skops", "polars"):
        assert needed in monitor, needed
    for left_out in ("bentoml", "mlflow", "flask", "gunicorn", "docker", "kfp-kubernetes"):
        assert left_out not in monitor, left_out


def _modules_the_serving_image_lacks() -> set[str]:
    """Top-level modules of the dev lock's distributions that the serving lock does not hold."""
    from importlib.metadata import packages_distributions

    serving = set(lock_pins(REQUIREMENTS / "serving.txt")) | {"kubeline"}
    lacking: set[str] = set()
    for module, dists in packages_distributions().items():
        names = {d.lower().replace("_", "-") for d in dists}
        if names and not names & serving:
            lacking.add(module)
    return lacking


# What `kubeline serve` and the service import; kubeline.serving's modules are found, not listed.
# The typer app itself is imported too: `kubeline serve --help` runs in the same process.
SERVED_MODULES = (
    "kubeline.cli",
    "kubeline.settings",
    "kubeline.model",
    "kubeline.registry",
    "kubeline.features",
    "kubeline.storage",
)


def test_the_serving_modules_import_without_anything_the_serving_image_lacks() -> None:
    import subprocess
    import sys

    lacking = _modules_the_serving_image_lacks()
    assert {"kfp", "kubernetes", "docker", "matplotlib", "evidently", "pytest"} <= lacking
    # An import hook refuses every module the image lacks, as its absence would.
    script = f"""
import importlib, importlib.abc, pkgutil, sys
AT_START = set(sys.modules)  # a .pth file's (setuptools' _distutils_hack) is the venv's, not ours
LACKING = {sorted(lacking)!r}
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in LACKING:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not in the serving image)")
        return None
sys.meta_path.insert(0, Absent())
for name in {list(SERVED_MODULES)!r}:
    importlib.import_module(name)
import kubeline
import kubeline.serving as serving
for info in pkgutil.walk_packages(serving.__path__, "kubeline.serving."):
    if info.name != "kubeline.serving.service":  # loads the champion: the e2e test serves it
        importlib.import_module(info.name)
from typer.testing import CliRunner
from kubeline.cli import app
served = CliRunner().invoke(app, ["serve", "--help"])
assert served.exit_code == 0, served.output
print(sorted({{m.split(".")[0] for m in set(sys.modules) - AT_START}} & set(LACKING)))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[]"


def test_every_package_of_the_source_is_in_the_wheel() -> None:
    # A package left out of pyproject's list is missing from every image, and only an image
    # build finds out (the monitor image did).
    import tomllib

    root = REQUIREMENTS.parent
    listed = set(
        tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(p.parent.relative_to(root).parts)
        for p in (root / "kubeline").rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    assert found <= listed, sorted(found - listed)


def test_a_check_never_imports_what_the_monitor_image_drops() -> None:
    """The monitor image deletes distributions Evidently requires but a check never imports,
    and writes bytecode by running this warm-up: it fails when a dropped one is imported."""
    import subprocess
    import sys

    from kubeline.monitor.warmup import BOTOCORE_SERVICES, DROPPED

    root = Path(__file__).resolve().parents[2]
    containerfile = (root / "images" / "monitor" / "Containerfile").read_text()
    for name in DROPPED:
        assert name.replace("pyarrow.", "pyarrow/*") in containerfile, name
    for service in BOTOCORE_SERVICES:  # the models it keeps are the ones the warm-up loads
        assert f"! -name {service}" in containerfile, service
    done = subprocess.run(
        [sys.executable, "-m", "kubeline.monitor.warmup"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("warm: ")
    # A retraining also imports kfp.client (left out of the warm-up's bytecode, not the image).
    submit = (
        "import sys, kfp.client; from kubeline.monitor.warmup import DROPPED; "
        "print([n for n in DROPPED if n in sys.modules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", submit], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]"
