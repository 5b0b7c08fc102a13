"""Which version becomes champion: pure functions, one rule each, no MLflow calls.

Evaluate asks ``champion_mismatch`` whether the current champion may be compared at all and
writes the verdict; register runs the infra check and asks ``decide`` what to do with the new
version. As TFX's Pusher obeys the Evaluator's blessing and the InfraValidator's, ``decide``
promotes only a version that passed both, against the champion the verdict was made against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kubeline.lineage import tag
from kubeline.registry import CHALLENGER, CHAMPION, GateState, Tag

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from kubeline.evaluate.verdict import Verdict
    from kubeline.runconfig import RunConfig


@dataclass(frozen=True)
class InfraCheck:
    """Whether the registered copy loads as the server loads it and predicts the same numbers."""

    passed: bool
    reason: str


@dataclass(frozen=True)
class Decision:
    """What register does with a new version: the alias it gets ("" = none), its state, why."""

    alias: str
    state: GateState
    reason: str


def question(config: RunConfig) -> dict[str, str]:
    """What a model answers: target, horizon and tickers; only like models are compared."""
    return {
        "target": config.target,
        "horizon": str(config.horizon),
        # Sorted: the same tickers in another order ask the same question.
        "tickers": ",".join(sorted(config.data.tickers or [])) or "all",
    }


def question_tags(config: RunConfig) -> dict[str, str]:
    """The question as model-version tags (``kubeline.target`` ...)."""
    return {tag(k): v for k, v in question(config).items()}


def label_end(dates: Iterable[str], train_end: str, horizon: int) -> str:
    """The last date whose realized target a model trained up to ``train_end`` has seen.

    A training row at ``train_end`` has a target realized ``horizon`` bars later. Bars are
    counted in ``dates`` (the training data's dates, ISO strings), as the split counts its
    purge gap; when the data ends sooner, its last date is the end.
    """
    later = sorted({d for d in dates if d > train_end})
    if not later:
        return train_end
    return later[min(horizon, len(later)) - 1]


def _estimated_label_end(train_end: str, horizon: int) -> str:
    """``horizon`` weekdays after ``train_end``: the label end of a version registered before
    kubeline recorded it (holidays make the true end later, so this errs towards comparing)."""
    import numpy as np

    day = np.busday_offset(np.datetime64(train_end[:10], "D"), horizon, roll="forward")
    return str(day)


def champion_mismatch(
    version: str, tags: Mapping[str, str], config: RunConfig, holdout_start: str
) -> str | None:
    """Why the champion cannot be compared with this run's model, or None when it can.

    A champion that answers another question (target, horizon, tickers) is not a rival; one
    that saw a realized target on this run's holdout dates (its label end, ``horizon`` bars
    after its last training row, on or after the holdout's start) would be scored on data it
    has seen. A version registered without a label end tag is judged by its training end
    plus ``horizon`` weekdays, an estimate the note names.
    """
    for key, ours in question(config).items():
        theirs = tags.get(tag(key))
        if theirs is not None and theirs != ours:
            return f"champion version {version} predicts {key}={theirs}, not {ours}"
    trained_to = tags.get(Tag.TRAIN_END)
    seen_to = tags.get(Tag.LABEL_END)
    how = ""
    if not seen_to and trained_to:
        seen_to = _estimated_label_end(trained_to, config.horizon)
        how = f" (estimated: training rows up to {trained_to} plus {config.horizon} weekdays)"
    if seen_to and seen_to >= holdout_start:
        return (
            f"champion version {version} was trained on targets realized up to {seen_to}{how}, "
            f"inside this holdout (from {holdout_start}): scoring it there would flatter it"
        )
    return None


def with_margin(config: RunConfig, min_improvement: float | None) -> RunConfig:
    """The config with the run's ``--min-improvement``, if one was given (None or < 0 = none)."""
    if min_improvement is None or min_improvement < 0:
        return config
    gate = config.gate.model_copy(update={"min_improvement": float(min_improvement)})
    return config.model_copy(update={"gate": gate})


def decide(verdict: Verdict, infra: InfraCheck, champion_now: str | None) -> Decision:
    """Promote only a version that passed the gate and the infra check, against this champion.

    ``champion_now`` is the version holding the champion alias as register runs; the verdict
    records the one it was evaluated against. When another run moved the alias in between,
    the verdict is stale and the version stays challenger until a run compares it again.
    """
    reason = f"{verdict.gate.summary}; {infra.reason}"
    if not infra.passed:
        return Decision("", GateState.REJECTED, reason)
    if not verdict.gate.passed:
        return Decision(CHALLENGER, GateState.FAILED, reason)
    evaluated = verdict.champion.version if verdict.champion else None
    if champion_now != evaluated:
        return Decision(
            CHALLENGER,
            GateState.FAILED,
            f"the champion changed during this run (version {evaluated} when evaluated, now "
            f"{champion_now}); run again to compare against it; {reason}",
        )
    return Decision(CHAMPION, GateState.PASSED, reason)
