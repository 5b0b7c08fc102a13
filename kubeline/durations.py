"""Spans of time as kubeline's options spell them: ``24h`` or ``7d`` (``--since``, a CronJob's
window, the retraining cooldown)."""

from __future__ import annotations

import re
from datetime import timedelta

_SPAN = re.compile(r"\s*(\d+)([hd])\s*")


def parse_duration(text: str) -> timedelta | None:
    """``24h`` or ``7d`` as a timedelta; None when ``text`` is not a duration."""
    found = _SPAN.fullmatch(text)
    if not found:
        return None
    amount = int(found.group(1))
    return timedelta(hours=amount) if found.group(2) == "h" else timedelta(days=amount)


def duration(text: str) -> timedelta:
    """``parse_duration``, or a typed error saying how a duration is written."""
    span = parse_duration(text)
    if span is None:
        from kubeline.errors import ConfigError

        raise ConfigError(f"{text!r} is not a duration", hint="give hours or days, e.g. 24h or 7d")
    return span
