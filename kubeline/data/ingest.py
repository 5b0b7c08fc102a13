"""Read any supported layout into the canonical long frame, keeping where each row came from.

Files that share a header are read together by one multi-threaded polars scan (8,000 Yahoo
files are one scan, not 8,000 reads). Numbers are read straight as Float64; only when that fails
is the group re-read as text to find every offending value with its file, row and column.
Structural problems (no recognizable columns, empty files, text in numeric columns, dates in no
known format) raise DataError listing all of them; rules about the values themselves belong to
``kubeline.data.validate``.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from kubeline import storage
from kubeline.data import schema as s
from kubeline.data.dates import parse_date_column
from kubeline.data.layouts import COLUMN_ALIASES, Layout, detect_layout, match_columns, read_header
from kubeline.errors import DataError, Problem

if TYPE_CHECKING:
    from kubeline.settings import Settings

# Spellings of "no value" found in real exports (Yahoo writes "null" on non-trading rows).
NULL_VALUES = ["null", "NULL", "Null", "NA", "N/A", "n/a", "NaN", "nan", "None", "#N/A", "-"]
_PATH = "_path"
_NUMERIC = (s.OPEN, s.HIGH, s.LOW, s.CLOSE, s.ADJ_CLOSE, s.VOLUME)


def ingest(location: str | Path, *, settings: Settings | None = None) -> pl.DataFrame:
    """The canonical frame (plus ``_file`` and ``_row``) of a local path or s3:// prefix."""
    with tempfile.TemporaryDirectory(prefix="kubeline-ingest-") as workdir:
        layout = detect_layout(storage.fetch(location, Path(workdir), settings))
        return read_files(layout, layout.files)


def iter_batches(
    location: str | Path, files_per_batch: int, *, settings: Settings | None = None
) -> Iterator[pl.DataFrame]:
    """Canonical frames of successive groups of whole files, to bound memory.

    A ticker never spans batches unless it appears in two files (which validation rejects).
    Each batch raises its own DataError; callers that want every problem catch and go on.
    """
    with tempfile.TemporaryDirectory(prefix="kubeline-ingest-") as workdir:
        layout = detect_layout(storage.fetch(location, Path(workdir), settings))
        step = max(1, files_per_batch)
        for first in range(0, len(layout.files), step):
            yield read_files(layout, layout.files[first : first + step])


def read_files(layout: Layout, files: tuple[Path, ...] | list[Path]) -> pl.DataFrame:
    """Read ``files`` of ``layout`` into one canonical frame sorted by ticker and date."""
    problems: list[Problem] = []
    groups: dict[tuple[str, tuple[str, ...]], list[Path]] = defaultdict(list)
    for path in files:
        header = read_header(path)
        if not header:
            problems.append(Problem(layout.relative(path), None, None, "file is empty"))
            continue
        groups[(path.suffix.lower(), tuple(header))].append(path)

    frames = []
    for (suffix, header), paths in groups.items():
        columns = match_columns(list(header))
        missing = _missing_columns(columns, layout)
        if missing:
            problems += [
                Problem(layout.relative(p), 1, None, f"no {name} column; {_expected(name)}")
                for p in paths
                for name in missing
            ]
            continue
        try:
            frame = _read_group(paths, suffix, columns)
        except (pl.exceptions.ComputeError, pl.exceptions.InvalidOperationError):
            problems += _diagnose(layout, paths, suffix, columns)
            continue
        frame = _with_lineage(frame, layout, columns, suffix)
        got = set(frame.get_column(s.SOURCE_FILE).unique().to_list())
        problems += [
            Problem(layout.relative(p), None, None, "file has a header but no rows")
            for p in paths
            if layout.relative(p) not in got
        ]
        frames.append(frame)

    if not frames:
        problems = problems or [Problem(str(layout.root), None, None, "no price rows found")]
        raise DataError(_summary(problems), problems)
    frame = pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]
    frame, date_problems = parse_date_column(frame, s.DATE)
    problems += date_problems
    if problems:
        raise DataError(_summary(problems), sorted(problems))
    return _canonical(frame)


def _missing_columns(columns: dict[str, str], layout: Layout) -> list[str]:
    required = [s.DATE, s.CLOSE] + ([s.TICKER] if layout.kind == "long" else [])
    return [name for name in required if name not in columns]


def _expected(name: str) -> str:
    return "expected a column named one of: " + ", ".join(COLUMN_ALIASES[name])


def _summary(problems: list[Problem]) -> str:
    files = {p.file for p in problems}
    return f"cannot read the data: {len(problems)} problems in {len(files)} files"


def _read_group(paths: list[Path], suffix: str, columns: dict[str, str]) -> pl.DataFrame:
    """One scan over files that share a header; numbers as Float64, dates and tickers as text."""
    wanted = {canonical: source for canonical, source in columns.items()}
    if suffix == ".csv":
        overrides: dict[str, pl.DataType] = {
            source: pl.Float64() if canonical in _NUMERIC else pl.String()
            for canonical, source in wanted.items()
        }
        lazy = pl.scan_csv(
            paths,
            schema_overrides=overrides,
            infer_schema=False,
            null_values=NULL_VALUES,
            include_file_paths=_PATH,
            row_index_name="_index",
            encoding="utf8-lossy",
        )
    else:
        lazy = pl.scan_parquet(paths, include_file_paths=_PATH, row_index_name="_index")
    return lazy.select(
        _PATH,
        "_index",
        *[
            (
                pl.col(source).cast(pl.Float64, strict=True)
                if canonical in _NUMERIC
                else pl.col(source)
            ).alias(canonical)
            for canonical, source in wanted.items()
        ],
    ).collect()


def _with_lineage(
    frame: pl.DataFrame, layout: Layout, columns: dict[str, str], suffix: str
) -> pl.DataFrame:
    """Add ``_file`` (relative to the root), ``_row`` and, when absent, the file-name ticker."""
    base = (layout.root if layout.root.is_dir() else layout.root.parent).as_posix().rstrip("/")
    path = pl.col(_PATH).str.replace_all("\\", "/", literal=True)
    relative = path.str.strip_prefix(base + "/")
    # Global scan index minus the file's first index: the position within the file.
    first_line = 2 if suffix == ".csv" else 1
    extra = [relative.alias(s.SOURCE_FILE)]
    extra.append(
        (pl.col("_index") - pl.col("_index").min().over(_PATH) + first_line)
        .cast(pl.Int64)
        .alias(s.SOURCE_ROW)
    )
    if s.TICKER not in columns:
        extra.append(path.str.extract(r"([^/]+?)(?:\.[^./]+)?$", 1).alias(s.TICKER))
    else:
        extra.append(pl.col(s.TICKER).cast(pl.String).str.strip_chars())
    return frame.with_columns(extra).drop(_PATH, "_index")


def _diagnose(
    layout: Layout, paths: list[Path], suffix: str, columns: dict[str, str]
) -> list[Problem]:
    """Every value that stopped a group from reading: re-read as text, locate the bad cells."""
    problems: list[Problem] = []
    for path in paths:
        name = layout.relative(path)
        try:
            if suffix == ".csv":
                raw = pl.read_csv(
                    path,
                    infer_schema=False,
                    null_values=NULL_VALUES,
                    encoding="utf8-lossy",
                    columns=list(columns.values()),
                )
                offset = 2
            else:
                raw = pl.read_parquet(path, columns=list(columns.values()))
                offset = 1
        except (pl.exceptions.ComputeError, pl.exceptions.NoDataError, OSError) as exc:
            problems.append(Problem(name, None, None, f"cannot be read: {exc}".splitlines()[0]))
            continue
        raw = raw.with_row_index("_index")
        for canonical, source in columns.items():
            if canonical not in _NUMERIC:
                continue
            text = pl.col(source).cast(pl.String)
            bad = raw.filter(
                text.is_not_null() & text.str.strip_chars().cast(pl.Float64, strict=False).is_null()
            )
            problems += [
                Problem(name, int(index) + offset, source, f"{value!r} is not a number")
                for index, value in bad.select("_index", text).iter_rows()
            ]
    if not problems:  # the scan failed for a reason no single file shows
        problems.append(Problem(layout.relative(paths[0]), None, None, "files could not be read"))
    return problems


def _canonical(frame: pl.DataFrame) -> pl.DataFrame:
    """Canonical column order and types; ``adj_close`` falls back to ``close``."""
    if s.ADJ_CLOSE not in frame.columns:
        frame = frame.with_columns(pl.col(s.CLOSE).alias(s.ADJ_CLOSE))
    order = [s.TICKER, s.DATE, *[c for c in s.VALUES if c in frame.columns], *s.LINEAGE]
    return (
        frame.select(order)
        .with_columns(pl.col(c).cast(pl.Float64) for c in s.VALUES if c in frame.columns)
        .sort(s.TICKER, s.DATE, s.SOURCE_FILE, s.SOURCE_ROW)
    )
