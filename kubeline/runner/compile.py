"""Compile the pipelines to KFP v2 YAML, for a platform (image, ConfigMap, Secret).

The pipelines are built when compiled, so one process compiles the committed default specs
(``kubeline compile --check``) and a spec for a locally built image (``kubeline run --runner
docker``) without a fresh interpreter for each.
"""

from __future__ import annotations

import importlib
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kubeline.pipelines.cluster import Platform

# Each pipeline's builder: a function of the Platform that returns the pipeline.
PIPELINES = {
    "training": "kubeline.pipelines.training:training_pipeline",
    "training_per_ticker": "kubeline.pipelines.training_per_ticker:training_per_ticker_pipeline",
    "batch_scoring": "kubeline.pipelines.batch_scoring:batch_scoring_pipeline",
    "monitoring": "kubeline.pipelines.monitoring:monitoring_pipeline",
}


def compiled_dir() -> Path:
    """Where the committed specs live (package data of ``kubeline.pipelines``)."""
    from kubeline.pipelines import COMPILED_DIR

    return COMPILED_DIR


def compile_pipelines(out_dir: Path, platform: Platform | None = None) -> list[Path]:
    """Compile every pipeline to ``out_dir/<name>.yaml``; returns the written paths.

    ``platform`` defaults to the one the settings name (``KUBELINE_IMAGE``, ...).
    """
    from kfp import compiler

    from kubeline.pipelines.cluster import Platform
    from kubeline.settings import get_settings

    platform = platform or Platform.of(get_settings())
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, target in PIPELINES.items():
        module_name, _, attr = target.partition(":")
        build = getattr(importlib.import_module(module_name), attr)
        path = out_dir / f"{name}.yaml"
        compiler.Compiler().compile(build(platform), str(path))
        written.append(path)
    return written


def stale_specs(committed: Path) -> list[str]:
    """Names of committed specs that differ from what the code compiles to with default settings.

    A developer's KUBELINE_IMAGE must not make the committed (default) specs "stale".
    """
    from kubeline.pipelines.cluster import Platform

    with tempfile.TemporaryDirectory() as tmp:
        fresh = compile_pipelines(Path(tmp), Platform.defaults())
        return [
            p.name
            for p in fresh
            if not (committed / p.name).exists()
            or (committed / p.name).read_bytes() != p.read_bytes()
        ]
