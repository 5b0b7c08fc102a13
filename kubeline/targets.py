"""The target catalogue: what a run can predict, its kind, inputs and naive-baseline window.

The one list of targets. The run config validates ``target`` against it and reads the kind from
it; the feature engine turns each entry into expressions. Kept free of polars and pandas so
loading a run config stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from kubeline.data import schema as s
from kubeline.errors import ConfigError

TargetName = Literal["next_return", "next_log_return", "next_volume"]
TargetKind = Literal["return", "log_return", "level"]


@dataclass(frozen=True)
class TargetSpec:
    """A target: what is predicted ``horizon`` bars ahead, and its naive baselines at t."""

    name: TargetName
    kind: TargetKind
    inputs: tuple[str, ...]  # canonical columns it reads
    ma_window: int  # bars in the moving-average baseline
    description: str

    def history(self, horizon: int) -> int:
        """Bars a ticker needs before both naive baselines exist."""
        if self.kind == "level":
            return self.ma_window
        return horizon + self.ma_window


TARGETS: dict[TargetName, TargetSpec] = {
    spec.name: spec
    for spec in (
        TargetSpec(
            "next_return", "return", (s.ADJ_CLOSE,), 20, "adj_close[t+h] / adj_close[t] - 1"
        ),
        TargetSpec(
            "next_log_return",
            "log_return",
            (s.ADJ_CLOSE,),
            20,
            "log(adj_close[t+h] / adj_close[t])",
        ),
        TargetSpec("next_volume", "level", (s.VOLUME,), 30, "volume[t+h]"),
    )
}
# The Literal is what the run config's schema and mypy see; this keeps it the catalogue's keys.
if set(get_args(TargetName)) != set(TARGETS):  # pragma: no cover - a broken edit of this file
    raise ImportError("kubeline.targets: TargetName and TARGETS list different targets")


def target_spec(name: str) -> TargetSpec:
    """The catalogue entry for ``name``; ConfigError listing the choices when there is none."""
    for spec in TARGETS.values():
        if spec.name == name:
            return spec
    raise ConfigError(f"unknown target {name!r}", hint=f"choose from: {', '.join(TARGETS)}")
