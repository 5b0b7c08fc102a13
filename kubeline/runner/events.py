"""kfp.local's output turned into step events, and the reason a failed step gives.

kfp.local logs ``Executing task 'NAME'`` when a task starts and ``Task 'NAME' finished with
status STATUS`` (colored) when it ends, and prints each task's own output between them. This is
the only module that knows that wording; tests/unit/test_runner.py checks it against a real
kfp.local run, so a kfp upgrade that rewords it fails there and not in front of a user.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

# Each training pipeline's steps in the order they run: what the CLI's table lists. ``tune``
# runs once per candidate, and the per-ticker pipeline's steps once per ticker, every one under
# the same task name (kfp.local's ParallelFor).
PIPELINE_STEPS = {
    "training": (
        "ingest",
        "validate",
        "features",
        "candidates",
        "tune",
        "train",
        "evaluate",
        "register",
    ),
    "training_per_ticker": (
        "ingest",
        "ticker-configs",
        "validate",
        "features",
        "train-all",
        "evaluate",
        "register",
    ),
}

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_START = re.compile(r"Executing task '([^']+)'")
_END = re.compile(r"Task '([^']+)' finished with status (\w+)")


@dataclass
class StepEvent:
    step: str
    status: str  # "running" | "SUCCESS" | "FAILURE"
    seconds: float = 0.0


class StepTee(io.TextIOBase):
    """Copies kfp.local's output to the run log and turns task start/end lines into events."""

    def __init__(self, log: TextIO, on_event: Callable[[StepEvent], None] | None) -> None:
        self.log = log
        self.on_event = on_event
        self.events: list[StepEvent] = []
        self.last_lines: list[str] = []
        # Every kubeline error and exit-code line, however much a fan-out's siblings log after.
        self.kubeline_lines: list[str] = []
        # A task name's start times, oldest first: a fan-out starts one name several times.
        self._started: dict[str, list[float]] = {}
        self._buffer = ""

    def write(self, text: str) -> int:
        self.log.write(_ANSI.sub("", text))
        self._buffer += text
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            self._line(_ANSI.sub("", line))
        return len(text)

    def flush(self) -> None:
        self.log.flush()

    @property
    def reason_lines(self) -> list[str]:
        """What a failure's reason and exit code are read from (``failure_reason``)."""
        return [*self.kubeline_lines, *(x for x in self.last_lines if not _is_kubeline_line(x))]

    def failed_step(self) -> str:
        """The first step that ended in anything but success ("?" if none did)."""
        failed = [e.step for e in self.events if e.status != "SUCCESS"]
        return failed[0] if failed else "?"

    def _line(self, line: str) -> None:
        self.last_lines = [*self.last_lines[-199:], line]
        if _is_kubeline_line(line):
            self.kubeline_lines.append(line)
        if m := _START.search(line):
            self._started.setdefault(m.group(1), []).append(time.monotonic())
            self._emit(StepEvent(m.group(1), "running"))
        elif m := _END.search(line):
            starts = self._started.get(m.group(1)) or [time.monotonic()]
            # Which of a fan-out's tasks ended is not logged: the oldest gives the longest span.
            began = starts.pop(0)
            self._emit(StepEvent(m.group(1), m.group(2), time.monotonic() - began))

    def _emit(self, event: StepEvent) -> None:
        if event.status != "running":
            self.events.append(event)
        if self.on_event:
            self.on_event(event)


def _is_kubeline_line(line: str) -> bool:
    from kubeline.steps.base import ERROR_PREFIX, EXIT_CODE_PREFIX

    return ERROR_PREFIX in line or EXIT_CODE_PREFIX in line


def failure_reason(lines: list[str]) -> str:
    """The kubeline error a failed task printed (every line of it), else its last error line."""
    from kubeline.steps.base import ERROR_PREFIX

    found = [line.split(ERROR_PREFIX, 1)[1].strip() for line in lines if ERROR_PREFIX in line]
    if found:
        return "\n".join(found)
    for line in reversed(lines):
        text = line.strip()
        if re.match(r"^[\w.]+(Error|Exception)\b", text):
            return text
    return "see the log"


def failure_exit_code(lines: list[str]) -> int:
    """The exit code of the kubeline error a failed task printed (3 for bad data), else 1."""
    from kubeline.steps.base import EXIT_CODE_PREFIX

    for line in reversed(lines):
        code = line.partition(EXIT_CODE_PREFIX)[2].strip()
        if code.isdigit():
            return int(code)
    return 1
