"""The verdict: the one typed record of an evaluation, written by evaluate and read by the rest.

Register obeys it, the report and the CLI show it, MLflow keeps a copy. Its files (the verdict,
the holdout predictions, the input example, the plots) are named here and nowhere else, and
``flat_metrics`` is the one flattening of its numbers: the KFP ``Metrics`` artifact and the
MLflow run carry the same names.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

EVALUATION_FILE = "evaluation.json"
PREDICTIONS_FILE = "predictions.parquet"
EXAMPLE_FILE = "example.parquet"
PLOTS_DIR = "plots"


class _Record(BaseModel):
    # NaN is a real answer (r2 of a constant target): kept as NaN, not turned into null.
    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="constants")


class Condition(_Record):
    """One gate condition: what it checked, whether it held, and a sentence saying so."""

    name: str  # baseline, significance, champion, directional_accuracy, backtest_edge
    passed: bool
    reason: str


class GateDecision(_Record):
    """Whether the candidate may become champion: every condition must hold."""

    metric: str
    baseline: str  # the naive forecast the gate compared with (the strongest, for "best")
    min_improvement: float
    conditions: list[Condition]
    # One-sided p-value of the gain over ``baseline`` (Diebold-Mariano); a gate condition
    # unless the run config sets ``gate.max_p_value`` to null.
    p_value: float = math.nan

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.conditions)

    @property
    def reasons(self) -> list[str]:
        return [c.reason for c in self.conditions]

    @property
    def failed(self) -> list[str]:
        """The names of the conditions that did not hold."""
        return [c.name for c in self.conditions if not c.passed]

    @property
    def summary(self) -> str:
        """One line: passed or not, then every reason."""
        return ("passed: " if self.passed else "not promoted: ") + "; ".join(self.reasons)


class Champion(_Record):
    """The champion when the run was evaluated, and its score on the same holdout rows."""

    version: str
    uri: str
    metrics: dict[str, float] | None = None  # None: it could not be compared (see ``note``)
    note: str | None = None


class BacktestSummary(_Record):
    cost_bps: float
    stats: dict[str, dict[str, float]]  # {"strategy": {...}, "buy_and_hold": {...}}


class Holdout(_Record):
    start: str
    end: str
    rows: int
    dropped_rows: int = 0  # rows without a naive forecast, left out of every score


class Verdict(_Record):
    """Everything the evaluate step decided, and what it decided it on."""

    model_name: str
    question: dict[str, str]  # target, horizon, tickers: only like models are compared
    candidate: str
    params: dict[str, Any]
    target: str
    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]]  # {"constant": {...}, "persistence": {...}, ...}
    champion: Champion | None
    backtest: BacktestSummary | None
    backtest_note: str | None
    gate: GateDecision
    holdout: Holdout
    lineage: dict[str, str]

    def flat_metrics(self) -> dict[str, float]:
        """Every number under one name: holdout_*, baseline_<kind>_*, champion_*, backtest_*.

        NaN is left out: MLflow stores it but its UI and KFP's choke on it.
        """
        out: dict[str, float] = {}

        def put(prefix: str, values: dict[str, float] | None) -> None:
            out.update({f"{prefix}{k}": float(v) for k, v in (values or {}).items() if v == v})

        put("holdout_", self.metrics)
        for kind, values in self.baselines.items():
            put(f"baseline_{kind}_", values)
        put("champion_", self.champion.metrics if self.champion else None)
        for side, values in (self.backtest.stats if self.backtest else {}).items():
            put(f"backtest_{side}_", values)
        if self.gate.p_value == self.gate.p_value:
            out["gate_baseline_p_value"] = float(self.gate.p_value)
        out["holdout_rows"] = float(self.holdout.rows)
        out["gate_passed"] = 1.0 if self.gate.passed else 0.0
        return out

    def scores(self) -> dict[str, float]:
        """The gate metric of the model and of each naive forecast: what ``models`` shows."""
        metric = self.gate.metric
        out = {"model": self.metrics.get(metric, math.nan)}
        out |= {kind: values.get(metric, math.nan) for kind, values in self.baselines.items()}
        return out

    def headline(self) -> str:
        """One line of the main numbers, for the CLI's closing message."""
        m = self.metrics
        nan = math.nan
        naive = ", ".join(
            f"{kind.replace('_', ' ')} {values.get('rmse', nan):.4g}"
            for kind, values in self.baselines.items()
        )
        parts = [
            f"holdout rmse {m.get('rmse', nan):.4g} (naive: {naive})",
            f"mae {m.get('mae', nan):.4g}",
            f"r2 {m.get('r2', nan):.3f}",
            f"directional accuracy {m.get('directional_accuracy', nan):.1%}",
        ]
        if self.backtest is not None and "strategy" in self.backtest.stats:
            s, b = self.backtest.stats["strategy"], self.backtest.stats.get("buy_and_hold", {})
            parts.append(
                f"backtest Sharpe {s.get('sharpe', nan):.2f} after {self.backtest.cost_bps:g} bps "
                f"costs (turnover {s.get('turnover', nan):.1%}) vs buy-and-hold "
                f"{b.get('sharpe', nan):.2f}"
            )
        return ", ".join(parts)

    def write(self, folder: str | Path) -> Path:
        path = Path(folder) / EVALUATION_FILE
        path.write_text(self.model_dump_json(indent=2), encoding="utf-8")
        return path

    @classmethod
    def read(cls, folder: str | Path) -> Verdict:
        """The verdict in an evaluation folder (the evaluate step's ``evaluation`` output)."""
        from kubeline.errors import PipelineError

        path = Path(folder) / EVALUATION_FILE
        try:
            return cls.model_validate_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PipelineError(
                f"{path} does not exist: {folder} is not an evaluation folder",
                hint="pass the folder the evaluate step wrote",
            ) from None
