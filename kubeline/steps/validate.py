"""Validate: the raw frame -> a clean, content-hashed snapshot, or every problem and a failure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kubeline.errors import Problem
from kubeline.steps.base import executor, run_config, write_parquet, write_text

if TYPE_CHECKING:
    import polars as pl

    from kubeline.data.validate import ValidationResult
    from kubeline.runconfig import RunConfig


@dataclass
class Checked:
    """A validation result under one run config, with the clean snapshot's summary and hash."""

    result: ValidationResult
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def clean(self) -> pl.DataFrame:
        return self.result.clean

    @property
    def problems(self) -> list[Problem]:
        return list(self.result.problems)

    @property
    def errors(self) -> list[Problem]:
        return self.result.errors

    @property
    def warnings(self) -> list[Problem]:
        return self.result.warnings

    def raise_for_errors(self) -> None:
        self.result.raise_for_errors()


def check_frame(raw: pl.DataFrame, config: RunConfig) -> Checked:
    """Validate a canonical frame under a run config; never raises for data problems."""
    from kubeline.data.schema import select_tickers
    from kubeline.data.snapshot import content_hash, summary
    from kubeline.data.validate import validate
    from kubeline.features import plan_for
    from kubeline.lineage import DATA_HASH

    selected = select_tickers(raw, config.data.tickers)
    checked = Checked(validate(selected, min_rows=plan_for(config, selected.columns).min_rows))
    if not checked.errors:
        checked.summary = {**summary(checked.clean), DATA_HASH: content_hash(checked.clean)}
    return checked


def check(data: str, config_text: str = "") -> Checked:
    """Ingest and validate ``data`` (what ``kubeline validate`` runs)."""
    from kubeline.data.ingest import ingest

    return check_frame(ingest(data), run_config(config_text))


def report_markdown(checked: Checked) -> str:
    """Every problem as a Markdown table, for the KFP UI."""
    lines = ["# Validation", ""]
    if checked.summary:
        s = checked.summary
        lines += [
            f"{s['rows']:,} rows, {s['tickers']} tickers, {s['first_date']} to {s['last_date']}; "
            f"data hash `{s['data_hash']}`.",
            "",
        ]
    if not checked.problems:
        return "\n".join([*lines, "No problems found."])
    lines += ["| severity | file | row | column | problem |", "|---|---|---|---|---|"]
    for p in checked.problems[:500]:
        cell = p.message.replace("|", "\\|")
        lines.append(f"| {p.severity} | {p.file} | {p.row or ''} | {p.column or ''} | {cell} |")
    if len(checked.problems) > 500:
        lines.append(f"\n... and {len(checked.problems) - 500} more.")
    return "\n".join(lines)


@executor
def run(*, raw: str, config: str, out: str, report: str) -> dict[str, Any]:
    """Validate the ingested frame; write the report always and the snapshot only if clean."""
    import polars as pl

    checked = check_frame(pl.read_parquet(raw), run_config(config))
    write_text(report_markdown(checked), report)
    checked.raise_for_errors()
    write_parquet(checked.clean, out)
    return {**checked.summary, "warnings": len(checked.warnings)}
