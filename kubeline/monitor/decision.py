"""The outcome of one check, and the exit code a CronJob sees for it."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    OK = "ok"
    DRIFT = "drift"
    DECAY = "decay"
    INSUFFICIENT = "insufficient-data"


# 1-3 are kubeline's error codes (failure, usage, bad data): the outcomes stay clear of them,
# so a CronJob (or a shell) tells "the check ran and found drift" from "the check failed".
EXIT_CODES = {Outcome.OK: 0, Outcome.DRIFT: 10, Outcome.DECAY: 11, Outcome.INSUFFICIENT: 12}


def decide(
    *,
    rows: int,
    min_rows: int,
    drifted: bool,
    decayed: bool | None,
    truth_rows: int = 0,
    truth_asked: bool = False,
) -> tuple[Outcome, str]:
    """Decay outranks drift (the model is worse, not just asked about other data); too few rows
    outrank both. ``decayed`` is None when decay was not judged: no realized target, or fewer
    than ``min_rows`` of them; when ground truth was asked for, that is insufficient data."""
    if rows < min_rows:
        return Outcome.INSUFFICIENT, f"{rows} rows in the window; at least {min_rows} are needed"
    if decayed is None and truth_asked:
        return Outcome.INSUFFICIENT, (
            f"{truth_rows} rows of the window have a realized target; at least {min_rows} are "
            "needed to judge decay"
        )
    if decayed:
        return Outcome.DECAY, "the model decayed on the window's rows with a realized target"
    if drifted:
        return Outcome.DRIFT, "the window's features drifted from the training data"
    if decayed is None:
        return Outcome.OK, "no drift; decay not judged: no row has a realized target yet"
    return Outcome.OK, "no drift, no decay"
