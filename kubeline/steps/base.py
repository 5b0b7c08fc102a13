"""What every step executor shares: the run config from its YAML text, errors a log can show."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from kubeline.errors import KubelineError

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl

    from kubeline.runconfig import RunConfig

F = TypeVar("F", bound=Callable[..., Any])
ERROR_PREFIX = "kubeline error:"
EXIT_CODE_PREFIX = "kubeline exit code:"  # so `kubeline run` exits as the step's error would


def executor(func: F) -> F:
    """Mark a step's entry point: a kubeline error is printed as plain lines, then re-raised.

    KFP prints the traceback of a failed task; the plain lines are what ``kubeline run`` shows
    the user (file, row, column), so they must be findable in the task's log.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except KubelineError as exc:
            for line in str(exc).splitlines():
                print(f"{ERROR_PREFIX} {line}", file=sys.stdout, flush=True)
            print(f"{EXIT_CODE_PREFIX} {exc.exit_code}", file=sys.stdout, flush=True)
            raise

    return wrapper  # type: ignore[return-value]


def run_config(text: str) -> RunConfig:
    """The run config a pipeline parameter carries as YAML text ("" = the defaults)."""
    from kubeline.runconfig import RunConfig

    return RunConfig.from_yaml_text(text, source="run config") if text.strip() else RunConfig()


def registered_name(config: RunConfig, override: str = "") -> str:
    """The registered model name: the pipeline parameter, else the config's, else the setting."""
    from kubeline.settings import get_settings

    return override or config.model_name or get_settings().model_name


def write_parquet(frame: pl.DataFrame | pd.DataFrame, path: str | Path) -> None:
    """Write a frame as Parquet atomically (readers never see a half-written file)."""
    import polars as pl

    from kubeline.storage import atomic_path

    with atomic_path(path) as tmp:
        if isinstance(frame, pl.DataFrame):
            frame.write_parquet(tmp, compression="zstd", statistics=True)
        else:
            frame.to_parquet(tmp, index=False, compression="zstd")


def write_text(text: str, path: str | Path) -> None:
    from kubeline.storage import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
