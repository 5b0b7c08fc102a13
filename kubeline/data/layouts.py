"""Recognize how a folder of price data is laid out, and which source column is which.

Three layouts are read without configuration:

* ``per_ticker``: a folder of ``TICKER.csv`` files (Yahoo style), the ticker taken from the file
  name unless the file has a ticker column;
* ``kaggle``: ``stocks/`` and/or ``etfs/`` folders of per-ticker files, as in Kaggle's "Stock
  Market Dataset" (``symbols_valid_meta.csv`` beside them is metadata, not prices);
* ``long``: one CSV or Parquet file (or a folder holding exactly one) with a ticker column.

Column names match case-insensitively, ignoring spaces, underscores, dashes and dots, against
the aliases in ``COLUMN_ALIASES``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl

from kubeline.data import schema as s
from kubeline.errors import DataError, Problem

LayoutKind = Literal["per_ticker", "kaggle", "long"]

# Earlier aliases win when a file has several (e.g. both "close" and "price").
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    s.DATE: ("date", "timestamp", "datetime", "day", "time", "tradedate"),
    s.TICKER: ("ticker", "symbol", "name", "code", "tickersymbol", "stock"),
    s.OPEN: ("open", "openprice"),
    s.HIGH: ("high", "highprice"),
    s.LOW: ("low", "lowprice"),
    s.CLOSE: ("close", "closeprice", "price", "last"),
    s.ADJ_CLOSE: ("adjclose", "adjustedclose", "adjclosingprice", "adjustedcloseprice"),
    s.VOLUME: ("volume", "vol"),
}
DATA_SUFFIXES = (".csv", ".parquet", ".pq")
KAGGLE_FOLDERS = ("stocks", "etfs")
METADATA_FILES = ("symbols_valid_meta.csv",)


@dataclass(frozen=True)
class Layout:
    """What ``detect_layout`` found: the kind, the data root and its price files, sorted."""

    kind: LayoutKind
    root: Path
    files: tuple[Path, ...]

    def relative(self, path: Path) -> str:
        """How problems name ``path``: relative to the root, or the bare name for one file."""
        base = self.root if self.root.is_dir() else self.root.parent
        return path.relative_to(base).as_posix()


def normalize_name(name: str) -> str:
    """``" Adj_Close "`` -> ``"adjclose"``: the key column names are matched on."""
    return re.sub(r"[\s_.\-]+", "", name.strip().lower().lstrip("\ufeff"))


def match_columns(header: list[str]) -> dict[str, str]:
    """Canonical name -> source column name, for every canonical column the header has."""
    by_key: dict[str, str] = {}
    for name in header:
        by_key.setdefault(normalize_name(name), name)
    found: dict[str, str] = {}
    for canonical, aliases in COLUMN_ALIASES.items():
        for alias in aliases:
            if alias in by_key and by_key[alias] not in found.values():
                found[canonical] = by_key[alias]
                break
    return found


def read_header(path: Path) -> list[str]:
    """Column names of a CSV (its first line) or a Parquet file; [] for an empty file."""
    return read_first_lines(path)[0]


def read_first_lines(path: Path) -> tuple[list[str], list[str]]:
    """A file's column names and first data row as text ([] when absent); Parquet: no row."""
    if path.suffix.lower() in (".parquet", ".pq"):
        return list(pl.read_parquet_schema(path)), []
    with path.open("r", encoding="utf-8-sig", errors="replace", newline="") as handle:
        lines = [handle.readline(), handle.readline()]
    header, first = (_fields(line) for line in lines)
    return header, first if header else []


def _fields(line: str) -> list[str]:
    # Headers and dates never contain commas inside quotes in the layouts read here.
    if not line.strip():
        return []
    return [field.strip().strip('"') for field in line.rstrip("\r\n").split(",")]


def _data_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file()
        and p.suffix.lower() in DATA_SUFFIXES
        and not p.name.startswith((".", "_"))
        and p.name.lower() not in METADATA_FILES
    )


def detect_layout(root: Path) -> Layout:
    """The layout of a local file or folder; DataError when it is none of the known ones."""
    root = Path(root)
    if root.is_file():
        if root.suffix.lower() not in DATA_SUFFIXES:
            raise DataError(
                f"{root.name} is not a CSV or Parquet file",
                [Problem(root.name, None, None, "unsupported file type")],
                hint="point --data at a .csv/.parquet file or a folder of them",
            )
        kind: LayoutKind = "long" if s.TICKER in match_columns(read_header(root)) else "per_ticker"
        return Layout(kind, root, (root,))
    if not root.is_dir():
        raise DataError(f"no such file or folder: {root}")
    kaggle = [root / name for name in KAGGLE_FOLDERS if (root / name).is_dir()]
    if kaggle:
        files = tuple(f for folder in kaggle for f in _data_files(folder))
        if files:
            return Layout("kaggle", root, files)
    files_list = _data_files(root)
    if not files_list:
        raise DataError(
            f"unknown layout: no CSV or Parquet price files in {root}",
            [Problem(str(root), None, None, "no .csv or .parquet files found")],
            hint="use a folder of TICKER.csv files, Kaggle's stocks/ and etfs/ folders, "
            "or one long file with a ticker column",
        )
    if len(files_list) == 1 and s.TICKER in match_columns(read_header(files_list[0])):
        return Layout("long", root, tuple(files_list))
    return Layout("per_ticker", root, tuple(files_list))
