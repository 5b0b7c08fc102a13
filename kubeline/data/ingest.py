"""Read any supported layout into the canonical long frame, keeping where each row came from.

Files that share a header are read together by one multi-threaded polars scan (8,000 Yahoo
files are one scan, not 8,000 reads). Numbers are read straight as Float64; only when that fails
is the group re-read as text to find every offending value with its file, row and column.
Structural problems (no recognizable columns, empty files, text in numeric columns, dates in no
known format) raise DataError listing all of them; rules about the values themselves belong to
``kubeline.data.validate``.
"""

from __future__ import annotations

import re
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from kubeline import storage
from kubeline.data import schema as s
from kubeline.data.dates import parse_date_column
from kubeline.data.layouts import (
    COLUMN_ALIASES,
    Layout,
    detect_layout,
    match_columns,
    normalize_name,
    read_first_lines,
)
from kubeline.errors import DataError, Problem

if TYPE_CHECKING:
    from kubeline.settings import Settings

# Spellings of "no value" found in real exports (Yahoo writes "null" on non-trading rows).
# Each spelling slows the reader, so the first attempt knows only Yahoo's and empty fields.
FAST_NULL_VALUES = ["null"]
NULL_VALUES = ["null", "NULL", "Null", "NA", "N/A", "n/a", "NaN", "nan", "None", "#N/A", "-"]
_PATH = "_path"
_INDEX = "_index"
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NUMERIC = (s.OPEN, s.HIGH, s.LOW, s.CLOSE, s.ADJ_CLOSE, s.VOLUME)


def ingest(location: str | Path, *, settings: Settings | None = None) -> pl.DataFrame:
    """The canonical frame (plus ``_file`` and ``_row``) of a local path or s3:// prefix."""
    with tempfile.TemporaryDirectory(prefix="kubeline-ingest-") as workdir:
        layout = detect_layout(storage.fetch(location, Path(workdir), settings))
        return read_files(layout, layout.files)


def read_files(layout: Layout, files: tuple[Path, ...] | list[Path]) -> pl.DataFrame:
    """Read ``files`` of ``layout`` into one canonical frame sorted by ticker and date."""
    problems: list[Problem] = []
    groups: dict[tuple[str, tuple[str, ...]], list[Path]] = defaultdict(list)
    iso: dict[tuple[str, tuple[str, ...]], bool] = defaultdict(lambda: True)
    # In ticker order, so that the concatenated scan usually needs no sort.
    for path in sorted(files, key=lambda p: (_ticker_of(p), p)):
        header, first = read_first_lines(path)
        if not header:
            problems.append(Problem(layout.relative(path), None, None, "file is empty"))
            continue
        key = (path.suffix.lower(), tuple(header))
        groups[key].append(path)
        iso[key] = iso[key] and _looks_iso(header, first)

    frames = []
    for (suffix, names), paths in groups.items():
        columns = match_columns(list(names))
        missing = _missing_columns(columns, layout)
        if missing:
            problems += [
                Problem(layout.relative(p), 1, None, f"no {name} column; {_expected(name)}")
                for p in paths
                for name in missing
            ]
            continue
        try:
            frame = _read_group(layout, paths, suffix, columns, iso[(suffix, names)], fast=True)
        except (pl.exceptions.ComputeError, pl.exceptions.InvalidOperationError):
            try:  # other spellings of "no value", or dates not all ISO: the slower, lenient read
                frame = _read_group(layout, paths, suffix, columns, iso_dates=False, fast=False)
            except (pl.exceptions.ComputeError, pl.exceptions.InvalidOperationError):
                problems += _diagnose(layout, paths, suffix, columns)
                continue
        ignored = _other_date_columns(list(names), columns)
        if ignored:
            frame = frame.with_columns(pl.lit(ignored).alias(s.ALSO_DATED))
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
        raise DataError(_summary(problems), sorted(problems, key=_location))
    return _canonical(frame)


def _other_date_columns(header: list[str], columns: dict[str, str]) -> str:
    """Date-like columns besides the one dates are read from ("" when none), for a warning."""
    aliases = set(COLUMN_ALIASES[s.DATE])
    used = columns.get(s.DATE)
    return ", ".join(n for n in header if n != used and normalize_name(n) in aliases)


def _location(problem: Problem) -> tuple[str, int, str]:
    return problem.file, problem.row or 0, problem.column or ""


def _looks_iso(header: list[str], first: list[str]) -> bool:
    """Whether the first data row's date is plain ISO, which the CSV reader parses itself."""
    date_column = match_columns(header).get(s.DATE)
    if date_column is None or date_column not in header or len(first) != len(header):
        return False
    return bool(_ISO_DATE.match(first[header.index(date_column)].strip().strip('"')))


def _missing_columns(columns: dict[str, str], layout: Layout) -> list[str]:
    required = [s.DATE, s.CLOSE] + ([s.TICKER] if layout.kind == "long" else [])
    return [name for name in required if name not in columns]


def _expected(name: str) -> str:
    return "expected a column named one of: " + ", ".join(COLUMN_ALIASES[name])


def _summary(problems: list[Problem]) -> str:
    files = {p.file for p in problems}
    return f"cannot read the data: {len(problems)} problems in {len(files)} files"


def _read_group(
    layout: Layout,
    paths: list[Path],
    suffix: str,
    columns: dict[str, str],
    iso_dates: bool,
    fast: bool,
) -> pl.DataFrame:
    """One scan over files that share a header, with lineage and (if absent) file-name tickers.

    Numbers are read as Float64 and, when ``iso_dates``, dates as Date by the reader itself;
    otherwise dates stay text for ``parse_date_column``.
    """
    if suffix == ".csv":
        overrides: dict[str, pl.DataType] = {}
        for canonical, source in columns.items():
            if canonical in _NUMERIC:
                overrides[source] = pl.Float64()
            elif canonical == s.DATE and iso_dates:
                overrides[source] = pl.Date()
            else:
                overrides[source] = pl.String()
        lazy = pl.scan_csv(
            paths,
            schema_overrides=overrides,
            infer_schema=False,
            null_values=FAST_NULL_VALUES if fast else NULL_VALUES,
            include_file_paths=_PATH,
            row_index_name=_INDEX,
            encoding="utf8" if fast else "utf8-lossy",
        )
    else:
        lazy = pl.scan_parquet(paths, include_file_paths=_PATH, row_index_name=_INDEX)
    frame = lazy.select(
        _PATH,
        _INDEX,
        *[
            (pl.col(source).cast(pl.Float64) if canonical in _NUMERIC else pl.col(source)).alias(
                canonical
            )
            for canonical, source in columns.items()
        ],
    ).collect()
    return _with_lineage(frame, layout, s.TICKER in columns, 2 if suffix == ".csv" else 1)


def _with_lineage(
    frame: pl.DataFrame, layout: Layout, has_ticker: bool, first_line: int
) -> pl.DataFrame:
    """Swap the scan's path and global index for ``_file``, ``_row`` and maybe ``ticker``.

    Each file's rows are contiguous in a scan, so the work is done once per file (thousands)
    and spread to rows (millions) with a gather instead of a per-row string operation.
    """
    runs = frame.get_column(_PATH).rle()
    lengths = runs.struct.field("len").to_numpy().astype(np.int64)
    run_paths = [Path(p) for p in runs.struct.field("value").to_list()]
    run_of_row = np.repeat(np.arange(len(lengths), dtype=np.uint32), lengths)
    starts = np.cumsum(lengths) - lengths
    row = np.arange(frame.height, dtype=np.int64) - np.repeat(starts, lengths) + first_line
    gather = pl.Series(run_of_row)
    extra = [
        pl.Series(s.SOURCE_FILE, [layout.relative(p) for p in run_paths], pl.String).gather(gather),
        pl.Series(s.SOURCE_ROW, row),
    ]
    if not has_ticker:
        extra.append(
            pl.Series(s.TICKER, [_ticker_of(p) for p in run_paths], pl.String).gather(gather)
        )
    # Built from the Series directly: DataFrame.drop/select copy more than needed here.
    kept = [frame.get_column(c) for c in frame.columns if c not in (_PATH, _INDEX)]
    frame = pl.DataFrame([*kept, *extra])
    if has_ticker:  # spaces and case are validation's to normalise, with a warning
        frame = frame.with_columns(pl.col(s.TICKER).cast(pl.String))
    return frame


def _ticker_of(path: Path) -> str:
    """``stocks/BRK.B.csv`` -> ``BRK.B``: the file name without its extension."""
    return path.name[: -len(path.suffix)] if path.suffix else path.name


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
    if s.ALSO_DATED in frame.columns:
        order.append(s.ALSO_DATED)
    frame = frame.select(order).with_columns(
        pl.col(c).cast(pl.Float64) for c in s.VALUES if c in frame.columns
    )
    if not s.is_sorted(frame):
        frame = frame.sort(s.TICKER, s.DATE, s.SOURCE_FILE, s.SOURCE_ROW)
    return frame
