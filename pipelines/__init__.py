"""KFP pipelines (wiring only) and their compiled specs, shipped as ``kubeline.pipelines``."""

from pathlib import Path

COMPILED_DIR = Path(__file__).parent / "compiled"
