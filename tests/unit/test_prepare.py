"""kubeline features (steps.features.prepare): batches of whole files into one Parquet file, all or nothing."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import kubeline.features as engine
from kubeline.data import schema as s
from kubeline.data.generate import generate, write_dataset
from kubeline.data.ingest import ingest
from kubeline.data.snapshot import content_hash
from kubeline.data.validate import validate
from kubeline.errors import DataError, StorageError
from kubeline.steps.features import prepare


@pytest.fixture(scope="module")
def yahoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("data") / "yahoo"
    write_dataset(generate(tickers=5, years=0.5, seed=2), folder, "yahoo")
    return folder


def test_prepare_in_batches_writes_what_building_in_memory_gives(
    yahoo: Path, tmp_path: Path
) -> None:
    out = tmp_path / "features.parquet"
    seen: list[tuple[int, int]] = []
    summary = prepare(
        yahoo,
        out,
        on_progress=lambda d, t: seen.append((d, t)),
        hash_content=True,
        files_per_batch=2,
    )
    assert seen == [(2, 5), (4, 5), (5, 5)]
    clean = validate(
        ingest(yahoo),
        min_rows=engine.plan(None, [s.CLOSE, s.HIGH, s.LOW, s.VOLUME]).min_rows,
    ).clean
    expected = engine.build(clean)
    written = pl.read_parquet(out)
    # Rolling sums run over the batch's whole column, so the last bits can differ by batch.
    assert_frame_equal(written, expected, rel_tol=1e-9, abs_tol=1e-12)
    assert summary.rows == written.height and summary.tickers == 5 and summary.batches == 3
    assert summary.features == engine.DEFAULT_FEATURES and summary.skipped == {}
    assert summary.content_hash == content_hash(clean)


def test_prepare_reports_skipped_features_for_close_only_data(tmp_path: Path) -> None:
    frame = generate(tickers=2, years=0.3, seed=1).select(s.TICKER, s.DATE, s.CLOSE)
    write_dataset(frame, tmp_path / "long.csv", "long")
    summary = prepare(tmp_path / "long.csv", tmp_path / "f.parquet")
    assert summary.skipped == {"volume_ratio_30": [s.VOLUME], "hl_range": [s.HIGH, s.LOW]}
    assert "hl_range" not in pl.read_parquet_schema(tmp_path / "f.parquet")


def test_prepare_collects_problems_from_every_batch_and_writes_nothing(
    yahoo: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for path in sorted(yahoo.glob("*.csv")):
        (broken / path.name).write_text(path.read_text())
    files = sorted(broken.glob("*.csv"))
    lines = files[0].read_text().splitlines()
    lines[5] = lines[5].rsplit(",", 1)[0] + ",-5"  # negative volume: a validation error
    files[0].write_text("\n".join(lines) + "\n")
    lines = files[-1].read_text().splitlines()
    lines[3] = lines[3].replace(lines[3].split(",")[4], "oops", 1)  # text in Close: ingest
    files[-1].write_text("\n".join(lines) + "\n")
    out = tmp_path / "f.parquet"
    with pytest.raises(DataError) as caught:
        prepare(broken, out, files_per_batch=2)
    located = {(p.file, p.row, p.column) for p in caught.value.problems}
    assert (files[0].name, 6, s.VOLUME) in located
    assert (files[-1].name, 4, "Close") in located
    assert not out.exists()
    assert list(tmp_path.glob(".f.parquet*")) == []


def test_prepare_rejects_a_ticker_split_across_batches(tmp_path: Path) -> None:
    frame = generate(tickers=1, years=0.4, seed=3)
    write_dataset(frame, tmp_path / "k", "kaggle")
    ticker = frame.item(0, s.TICKER)
    source = next((tmp_path / "k").rglob(f"{ticker}.csv"))
    other = tmp_path / "k" / ("etfs" if source.parent.name == "stocks" else "stocks")
    other.mkdir(exist_ok=True)
    (other / f"{ticker}.csv").write_text(source.read_text())
    with pytest.raises(DataError) as caught:
        prepare(tmp_path / "k", tmp_path / "f.parquet", files_per_batch=1)
    assert any(p.column == s.TICKER and "also in" in p.message for p in caught.value.problems)


def test_prepare_keeps_only_the_tickers_asked_for(yahoo: Path, tmp_path: Path) -> None:
    wanted = sorted(p.stem for p in yahoo.glob("*.csv"))[:2]
    summary = prepare(yahoo, tmp_path / "f.parquet", f"data: {{tickers: [{', '.join(wanted)}]}}")
    written = pl.read_parquet(tmp_path / "f.parquet")
    assert sorted(written.get_column(s.TICKER).unique()) == wanted and summary.tickers == 2


def test_prepare_rejects_tickers_absent_from_the_data(yahoo: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="ZZZZZ") as caught:
        prepare(yahoo, tmp_path / "f.parquet", "data: {tickers: [ZZZZZ]}")
    # The files of other tickers are not read, yet their names are offered instead.
    assert caught.value.hint is not None
    assert sorted(p.stem for p in yahoo.glob("*.csv"))[0] in caught.value.hint
    assert not (tmp_path / "f.parquet").exists()


def test_prepare_fills_a_column_a_later_batch_lacks_with_nulls(tmp_path: Path) -> None:
    frame = generate(tickers=2, years=0.4, seed=4)
    folder = tmp_path / "yahoo"
    write_dataset(frame, folder, "yahoo")
    second = sorted(folder.glob("*.csv"))[1]
    no_volume = pl.read_csv(second).drop("Volume")
    no_volume.write_csv(second)
    summary = prepare(folder, tmp_path / "f.parquet", files_per_batch=1)
    written = pl.read_parquet(tmp_path / "f.parquet")
    assert summary.batches == 2 and "volume_ratio_30" in summary.features
    by_ticker = written.group_by(s.TICKER).agg(pl.col("volume_ratio_30").is_not_null().sum())
    counts = dict(by_ticker.sort(s.TICKER).iter_rows())
    assert counts[second.stem] == 0 and counts[sorted(counts)[0]] > 0


@pytest.mark.parametrize("inside", [False, True])
def test_prepare_refuses_to_write_over_or_into_its_input(
    yahoo: Path, tmp_path: Path, inside: bool
) -> None:
    one = tmp_path / "prices.parquet"
    pl.DataFrame({"ticker": ["A"], "date": ["2001-01-02"], "close": [1.0]}).write_parquet(one)
    data, out = (yahoo, yahoo / "f.parquet") if inside else (one, one)
    before = sorted((p.name, p.stat().st_size) for p in Path(data).parent.rglob("*"))
    with pytest.raises(StorageError, match="replace or sit inside the input"):
        prepare(data, out)
    assert sorted((p.name, p.stat().st_size) for p in Path(data).parent.rglob("*")) == before
