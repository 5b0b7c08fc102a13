"""`kubeline validate` on each kind of broken input: exit 3, file/row/column named, no traceback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

HEADER = "Date,Open,High,Low,Close,Adj Close,Volume"
ROWS = 60


def good_lines() -> list[str]:
    lines = [HEADER]
    for i in range(ROWS):
        lines.append(f"2001-{i // 28 + 1:02d}-{i % 28 + 1:02d},10,11,9,10.5,10.4,1000")
    return lines


def write(folder: Path, name: str, lines: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("\n".join(lines) + "\n")


Edit = tuple[int, str, str]  # 1-based line of AAA.csv (line 1 is the header), old, new

BROKEN: dict[str, tuple[Edit, int, str]] = {
    "unparseable date": ((4, "2001-01-03", "2001-13-45"), 4, "date"),
    "conflicting duplicate": (
        (5, "2001-01-04,10,11,9,10.5", "2001-01-03,10,11,9,10.7"),
        5,
        "date",
    ),
    "non-positive price": ((6, ",10.5,10.4,", ",-1,10.4,"), 6, "close"),
    "non-finite price": ((7, ",10.5,10.4,", ",inf,10.4,"), 7, "close"),
    "high below low": ((8, ",10,11,9,", ",10,8,9,"), 8, "high"),
    "negative volume": ((9, ",1000", ",-5"), 9, "volume"),
    "non-numeric close": ((10, ",10.5,10.4,", ",abc,10.4,"), 10, "close"),
}


@pytest.fixture
def run(cli: Callable[..., Any]) -> Callable[[Path], tuple[int, str]]:
    def validate(path: Path) -> tuple[int, str]:
        done = cli("validate", path)
        return done.exit_code, done.output

    return validate


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_validate_names_file_row_and_column(
    tmp_path: Path, kind: str, run: Callable[[Path], tuple[int, str]], corrupt: Callable[..., None]
) -> None:
    change, row, column = BROKEN[kind]
    write(tmp_path, "AAA.csv", good_lines())
    corrupt(tmp_path / "AAA.csv", *change)
    write(tmp_path, "BBB.csv", good_lines())
    code, output = run(tmp_path)
    assert code == 3, output
    flat = " ".join(output.split())
    assert f"AAA.csv, row {row}, column '{column}'" in flat.replace("'Close'", "'close'")
    assert "Traceback" not in output
    assert "BBB.csv" not in output


def test_validate_rejects_an_empty_file(
    tmp_path: Path, run: Callable[[Path], tuple[int, str]]
) -> None:
    write(tmp_path, "AAA.csv", good_lines())
    write(tmp_path, "BBB.csv", [HEADER])
    code, output = run(tmp_path)
    assert code == 3 and "BBB.csv" in output and "no rows" in output


def test_validate_rejects_an_unknown_layout(
    tmp_path: Path, run: Callable[[Path], tuple[int, str]]
) -> None:
    (tmp_path / "notes.txt").write_text("hello\n")
    code, output = run(tmp_path)
    assert code == 3 and "unknown layout" in output


def test_validate_rejects_a_file_without_close(
    tmp_path: Path, run: Callable[[Path], tuple[int, str]]
) -> None:
    lines = [",".join(c for i, c in enumerate(line.split(",")) if i != 4) for line in good_lines()]
    write(tmp_path, "AAA.csv", lines)
    code, output = run(tmp_path)
    assert code == 3 and "AAA.csv" in output and "no close column" in output


def test_validate_drops_short_tickers_with_a_warning(
    tmp_path: Path, run: Callable[[Path], tuple[int, str]]
) -> None:
    write(tmp_path, "AAA.csv", good_lines())
    write(tmp_path, "BBB.csv", good_lines()[:10])
    code, output = run(tmp_path)
    assert code == 0, output
    assert "warning" in output and "BBB" in output and "dropped" in output
    assert "1 tickers" in output


def test_validate_keeps_range_text_in_messages(
    tmp_path: Path, run: Callable[[Path], tuple[int, str]], corrupt: Callable[..., None]
) -> None:
    # Messages hold brackets ("[low, high]"); the console must not eat them as markup.
    write(tmp_path, "AAA.csv", good_lines())
    corrupt(tmp_path / "AAA.csv", 8, ",10,11,9,10.5,", ",10,11,9,12,")
    code, output = run(tmp_path)
    assert code == 3 and "[low, high]" in output
