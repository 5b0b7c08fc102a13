"""The one place that decides which image the components run in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kfp import dsl

from kubeline.settings import get_settings


def kubeline_component(func: Callable[..., Any]) -> Any:
    """``dsl.component`` bound to the configured kubeline image, with nothing installed at run time.

    The image already holds kubeline and kfp (the same lock as the venv), so the compiled spec
    carries no ``pip install`` and a task starts as fast as its container does.
    """
    return dsl.component(func, base_image=get_settings().image, install_kfp_package=False)
