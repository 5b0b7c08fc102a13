"""kfp.local's task logging made safe for a ParallelFor's concurrent tasks.

Every task kfp.local runs wraps its logging in ``logging_utils.local_logger_context()``, which
swaps the root logger's handlers and level in and restores the ones it found on exit. Tasks of
a fan-out run in threads, so one task's exit restores the level from before the run (WARNING)
while its sibling still runs: the sibling's ``Task 'tune' finished`` line is dropped, from the
run log and from the step events (measured: 2 tunes started, 1 finish logged, every run). The
replacement enters kfp's own context once for all tasks that overlap and leaves it when the
last one ends.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

_lock = threading.Lock()
_depth = 0
_outer: Any = None  # kfp's context, entered by the first of the overlapping tasks


def use_shared_task_logging() -> None:
    """Make kfp.local's task logging shared by concurrent tasks (idempotent)."""
    from kfp.local import logging_utils

    if getattr(logging_utils.local_logger_context, "_kubeline_shared", False):
        return
    original = logging_utils.local_logger_context

    @contextlib.contextmanager
    def shared_logger_context() -> Iterator[None]:
        global _depth, _outer
        with _lock:
            if _depth == 0:
                _outer = original()
                _outer.__enter__()
            _depth += 1
        try:
            yield
        finally:
            with _lock:
                _depth -= 1
                if _depth == 0:
                    outer, _outer = _outer, None
                    outer.__exit__(None, None, None)

    shared_logger_context._kubeline_shared = True  # type: ignore[attr-defined]
    # kfp's modules look the context up on logging_utils at each call.
    logging_utils.local_logger_context = shared_logger_context
