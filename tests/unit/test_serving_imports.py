"""The serving package's import boundaries: BentoML only in the service modules."""

from __future__ import annotations

import subprocess
import sys


def loaded_after(statement: str, modules: list[str]) -> list[str]:
    code = f"import sys\n{statement}\nprint('loaded:' + ','.join(m for m in {modules!r} if m in sys.modules))\n"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    last = done.stdout.strip().splitlines()[-1].removeprefix("loaded:")
    return [m for m in last.split(",") if m]


def test_the_serving_package_imports_nothing_heavy() -> None:
    heavy = ["bentoml", "mlflow", "sklearn", "pandas", "polars", "numpy"]
    assert loaded_after("import kubeline.serving", heavy) == []


def test_the_loading_code_does_not_import_bentoml() -> None:
    assert loaded_after("import kubeline.serving.loaded", ["bentoml", "_bentoml_sdk"]) == []
