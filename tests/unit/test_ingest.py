"""Every supported layout reads into the canonical frame with lineage; bad input is located."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from kubeline.data import schema as s
from kubeline.data.ingest import ingest
from kubeline.data.layouts import detect_layout, match_columns
from kubeline.errors import DataError

YAHOO = "Date,Open,High,Low,Close,Adj Close,Volume\n"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _yahoo(rows: int, start_day: int = 3) -> str:
    lines = [
        f"2000-01-{d:02d},{10 + d},{11 + d},{9 + d},{10.5 + d},{10.4 + d},{1000 * d}"
        for d in range(start_day, start_day + rows)
    ]
    return YAHOO + "\n".join(lines) + "\n"


def test_ingest_reads_a_yahoo_folder_taking_tickers_from_file_names(tmp_path: Path) -> None:
    _write(tmp_path / "AAPL.csv", _yahoo(3))
    _write(tmp_path / "BRK.B.csv", _yahoo(2))
    frame = ingest(tmp_path)
    assert detect_layout(tmp_path).kind == "per_ticker"
    assert frame.columns == [s.TICKER, s.DATE, *s.VALUES, *s.LINEAGE]
    assert frame.get_column(s.TICKER).to_list() == ["AAPL"] * 3 + ["BRK.B"] * 2
    assert frame.row(0, named=True) == {
        s.TICKER: "AAPL",
        s.DATE: date(2000, 1, 3),
        s.OPEN: 13.0,
        s.HIGH: 14.0,
        s.LOW: 12.0,
        s.CLOSE: 13.5,
        s.ADJ_CLOSE: 13.4,
        s.VOLUME: 3000.0,
        s.SOURCE_FILE: "AAPL.csv",
        s.SOURCE_ROW: 2,
    }


def test_ingest_reads_the_kaggle_layout_and_ignores_the_metadata_file(tmp_path: Path) -> None:
    _write(tmp_path / "stocks" / "MSFT.csv", _yahoo(2))
    _write(tmp_path / "etfs" / "SPY.csv", _yahoo(3))
    _write(tmp_path / "symbols_valid_meta.csv", "Nasdaq Traded,Symbol\nY,MSFT\n")
    frame = ingest(tmp_path)
    assert detect_layout(tmp_path).kind == "kaggle"
    assert frame.group_by(s.TICKER).len().sort(s.TICKER).rows() == [("MSFT", 2), ("SPY", 3)]
    assert set(frame.get_column(s.SOURCE_FILE)) == {"stocks/MSFT.csv", "etfs/SPY.csv"}


def test_ingest_reads_one_long_csv_with_aliases_in_any_case(tmp_path: Path) -> None:
    _write(
        tmp_path / "all.csv",
        "TIMESTAMP,SYMBOL,Open,High,Low,Close,adjusted_close,VOL\n"
        "2000-01-04,bbb,1,2,0.5,1.5,1.4,10\n"
        "2000-01-03,aaa,1,2,0.5,1.5,1.4,20\n",
    )
    frame = ingest(tmp_path / "all.csv")
    assert detect_layout(tmp_path / "all.csv").kind == "long"
    assert frame.get_column(s.TICKER).to_list() == ["aaa", "bbb"]
    assert frame.get_column(s.SOURCE_ROW).to_list() == [3, 2]
    assert frame.get_column(s.SOURCE_FILE).to_list() == ["all.csv", "all.csv"]
    assert frame.get_column(s.VOLUME).to_list() == [20.0, 10.0]


def test_ingest_reads_a_folder_holding_one_long_parquet_file(tmp_path: Path) -> None:
    pl.DataFrame(
        {"Ticker": ["X", "X"], "Date": [date(2000, 1, 3), date(2000, 1, 4)], "Price": [1.0, 2.0]}
    ).write_parquet(tmp_path / "prices.parquet")
    frame = ingest(tmp_path)
    assert detect_layout(tmp_path).kind == "long"
    assert frame.columns == [s.TICKER, s.DATE, s.CLOSE, s.ADJ_CLOSE, *s.LINEAGE]
    assert frame.get_column(s.SOURCE_ROW).to_list() == [1, 2]


def test_ingest_accepts_close_only_data_and_falls_back_adj_close_to_close(tmp_path: Path) -> None:
    _write(tmp_path / "p.csv", "date,ticker,close\n2000-01-03,A,5\n2000-01-04,A,6\n")
    frame = ingest(tmp_path)
    assert frame.columns == [s.TICKER, s.DATE, s.CLOSE, s.ADJ_CLOSE, *s.LINEAGE]
    assert frame.get_column(s.ADJ_CLOSE).to_list() == [5.0, 6.0]


def test_ingest_reads_weekly_bars_as_they_are(tmp_path: Path) -> None:
    _write(tmp_path / "W.csv", "Date,Close\n2000-01-03,1\n2000-01-10,2\n2000-01-17,3\n")
    frame = ingest(tmp_path)
    assert frame.get_column(s.DATE).diff().drop_nulls().dt.total_days().to_list() == [7, 7]


def test_ingest_reads_other_date_formats(tmp_path: Path) -> None:
    _write(tmp_path / "A.csv", "Date,Close\nJan 3 2000,1\nJan 4 2000,2\n")
    _write(tmp_path / "B.csv", "Date,Close\n13/01/2000,1\n14/01/2000,2\n")
    frame = ingest(tmp_path)
    assert frame.get_column(s.DATE).to_list() == [
        date(2000, 1, 3),
        date(2000, 1, 4),
        date(2000, 1, 13),
        date(2000, 1, 14),
    ]


def test_ingest_sorts_rows_by_ticker_and_date(tmp_path: Path) -> None:
    _write(tmp_path / "Z.csv", "Date,Close\n2000-01-05,3\n2000-01-03,1\n")
    _write(tmp_path / "A.csv", "Date,Close\n2000-01-04,1\n")
    frame = ingest(tmp_path)
    assert frame.select(s.TICKER, s.DATE, s.SOURCE_ROW).rows() == [
        ("A", date(2000, 1, 4), 2),
        ("Z", date(2000, 1, 3), 3),
        ("Z", date(2000, 1, 5), 2),
    ]


def test_ingest_reads_yahoo_null_rows_as_missing_values(tmp_path: Path) -> None:
    _write(
        tmp_path / "A.csv",
        YAHOO + "2000-01-03,null,null,null,null,null,null\n2000-01-04,1,1,1,1,1,1\n",
    )
    frame = ingest(tmp_path)
    assert frame.get_column(s.CLOSE).to_list() == [None, 1.0]


def test_ingest_reads_other_spellings_of_missing(tmp_path: Path) -> None:
    _write(tmp_path / "A.csv", "Date,Close,Volume\n2000-01-03,1,NA\n2000-01-04,2,\n")
    assert ingest(tmp_path).get_column(s.VOLUME).to_list() == [None, None]


def test_ingest_reports_text_in_a_numeric_column_with_file_row_and_column(tmp_path: Path) -> None:
    _write(tmp_path / "A.csv", _yahoo(2))
    _write(tmp_path / "B.csv", YAHOO + "2000-01-03,1,2,0.5,1,1,10\n2000-01-04,1,2,0.5,abc,1,10\n")
    with pytest.raises(DataError) as caught:
        ingest(tmp_path)
    (problem,) = caught.value.problems
    assert (problem.file, problem.row, problem.column) == ("B.csv", 3, "Close")
    assert "'abc'" in problem.message


def test_ingest_reports_unparseable_dates_with_the_bad_value(tmp_path: Path) -> None:
    _write(tmp_path / "A.csv", "Date,Close\n2000-01-03,1\nyesterday,2\n")
    with pytest.raises(DataError) as caught:
        ingest(tmp_path)
    (problem,) = caught.value.problems
    assert (problem.file, problem.row, problem.column) == ("A.csv", 3, s.DATE)
    assert "'yesterday'" in problem.message


def test_ingest_reports_empty_and_header_only_files(tmp_path: Path) -> None:
    _write(tmp_path / "A.csv", _yahoo(2))
    _write(tmp_path / "B.csv", "")
    _write(tmp_path / "C.csv", YAHOO)
    with pytest.raises(DataError) as caught:
        ingest(tmp_path)
    found = {(p.file, p.message) for p in caught.value.problems}
    assert found == {("B.csv", "file is empty"), ("C.csv", "file has a header but no rows")}


def test_ingest_reports_a_missing_close_column_naming_the_aliases(tmp_path: Path) -> None:
    _write(tmp_path / "A.csv", "Date,Open\n2000-01-03,1\n")
    with pytest.raises(DataError) as caught:
        ingest(tmp_path)
    (problem,) = caught.value.problems
    assert (problem.file, problem.row) == ("A.csv", 1)
    assert "no close column" in problem.message and "price" in problem.message


def test_ingest_rejects_a_folder_without_price_files(tmp_path: Path) -> None:
    _write(tmp_path / "notes.txt", "hello")
    with pytest.raises(DataError, match="unknown layout"):
        ingest(tmp_path)


def test_match_columns_prefers_close_over_price_and_ignores_case_and_separators() -> None:
    found = match_columns(["Price", "CLOSE", "Adj. Close", "Trade_Date", "Date", "Sym"])
    assert found == {s.DATE: "Date", s.CLOSE: "CLOSE", s.ADJ_CLOSE: "Adj. Close"}
