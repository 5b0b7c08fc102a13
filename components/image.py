"""The components' own image: the default one; a pipeline sets each task's image when compiled.

``kubeline.pipelines.cluster.on_platform`` gives every task the image of the settings that
compile the pipeline (``KUBELINE_IMAGE``); the ``base_image`` here is only what a component
used on its own names. Nothing is read from the environment when a component is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kfp import dsl
from kubeline.components.docs import one_line_entries

from kubeline.settings import Settings


def kubeline_component(func: Callable[..., Any]) -> Any:
    """``dsl.component`` on the default kubeline image, with nothing installed at run time.

    The image already holds kubeline and kfp (the same lock as the venv), so the compiled spec
    carries no ``pip install`` and a task starts as fast as its container does.
    """
    image = Settings.model_fields["image"].default
    return dsl.component(one_line_entries(func), base_image=image, install_kfp_package=False)
