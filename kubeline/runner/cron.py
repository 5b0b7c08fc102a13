"""The cron users write (five fields) as the cron KFP's backend reads (six, seconds first).

KFP schedules recurring runs with robfig/cron v1, whose fields are ``second minute hour
day-of-month month day-of-week``; given five fields it drops day-of-week, not seconds, so the
``0 * * * *`` a user means as "hourly" runs every minute there. Five fields get ``0`` seconds in
front; six are taken as KFP's own; ``@hourly``-style descriptors mean the same to both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kubeline.errors import ConfigError

DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
# What a cron field may hold: numbers, ranges, steps, lists, names (JAN, MON), * and ?.
_FIELD = re.compile(r"^[0-9A-Za-z*?/,-]+$")
_NAMES = ("minute", "hour", "day of month", "month", "day of week")
# Each field's bounds, as robfig/cron checks them when KFP creates the schedule (seconds first).
_BOUNDS = {
    "second": (0, 59), "minute": (0, 59), "hour": (0, 23),
    "day of month": (1, 31), "month": (1, 12), "day of week": (0, 6),
}  # fmt: skip
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


@dataclass(frozen=True)
class KfpCron:
    """A schedule as written, and as KFP gets it."""

    written: str
    kfp: str

    @property
    def converted(self) -> bool:
        return self.written != self.kfp

    def note(self) -> str:
        """One line saying what KFP will be given, and why when it differs from what was written."""
        if not self.converted:
            return f"cron {self.kfp!r} passed to KFP as written"
        return (
            f"cron {self.written!r} (minute hour day month weekday) sent to KFP as {self.kfp!r}: "
            "KFP's cron has six fields, seconds first"
        )


def to_kfp_cron(expression: str) -> KfpCron:
    """``0 6 * * 1-5`` -> ``0 0 6 * * 1-5``; six fields and ``@daily`` pass unchanged."""
    written = " ".join(expression.split())
    if written.startswith("@"):
        if written.split()[0] not in (*DESCRIPTORS, "@every"):
            raise ConfigError(
                f"--cron {expression!r} is not a cron descriptor KFP knows",
                hint=f"use five fields (e.g. '0 6 * * *') or one of {', '.join(DESCRIPTORS)}",
            )
        return KfpCron(written, written)
    fields = written.split()
    if len(fields) not in (5, 6):
        raise ConfigError(
            f"--cron {expression!r} has {len(fields)} fields; a cron has five "
            "(minute hour day-of-month month day-of-week)",
            hint="e.g. '0 6 * * *' runs daily at 06:00",
        )
    for position, field in enumerate(fields):
        name = _NAMES[position - (len(fields) - 5)] if position >= len(fields) - 5 else "second"
        if not _FIELD.match(field):
            raise ConfigError(
                f"--cron {expression!r}: the {name} field {field!r} is not a cron field",
                hint="a field holds numbers, ranges (1-5), steps (*/15), lists (1,15) or *",
            )
        problem = _out_of_range(name, field)
        if problem:
            low, high = _BOUNDS[name]
            raise ConfigError(
                f"--cron {expression!r}: the {name} field {field!r}: {problem}",
                hint=f"the {name} runs from {low} to {high}",
            )
    if len(fields) == 6:
        return KfpCron(written, written)
    return KfpCron(written, f"0 {written}")


def _out_of_range(name: str, field: str) -> str | None:
    """What in one field KFP's cron would refuse (a value out of bounds, a bad step), or None."""
    low, high = _BOUNDS[name]
    names = {"month": _MONTHS, "day of week": _DAYS}.get(name, ())
    for part in field.split(","):
        base, _, step = part.partition("/")
        if step and (not step.isdigit() or int(step) == 0):
            return f"the step {step!r} is not a positive number"
        if base in ("*", "?"):
            continue
        ends = base.split("-")
        if len(ends) > 2 or not all(ends):
            return f"{base!r} is not a value or a range"
        values = []
        for end in ends:
            if end.isdigit():
                values.append(int(end))
            elif end.upper() in names:
                values.append(names.index(end.upper()) + low)
            else:
                return f"{end!r} is not a number{' or a name' if names else ''}"
        if any(v < low or v > high for v in values):
            return f"{base!r} is outside {low}-{high}"
        if len(values) == 2 and values[0] > values[1]:
            return f"the range {base!r} runs backwards"
    return None
