"""Checks read back from their folders: order, ids, old summaries, and a broken one named."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest
from check_records import summary, write

from kubeline.errors import ConfigError, StorageError
from kubeline.monitor.history import find_check, list_checks


def test_checks_come_back_oldest_first_with_their_ids(tmp_path: Path) -> None:
    days = [datetime(2026, 12, d, 6, tzinfo=UTC) for d in (3, 1, 2)]
    for day in days:
        write(tmp_path, summary(day))
    (tmp_path / "stray").mkdir()  # a folder with no summary is not a check
    checks = list_checks(str(tmp_path))
    assert [c.checked_at[:10] for c in checks] == ["2026-12-01", "2026-12-02", "2026-12-03"]
    assert checks[0].check_id == "20261201T060000Z-m-v1"
    assert checks[0].drift_scores == {"a": None}  # NaN was written as null


def test_an_absent_location_is_no_checks(tmp_path: Path) -> None:
    assert list_checks(str(tmp_path / "none")) == []


def test_a_summary_from_before_ids_takes_its_folder_name(tmp_path: Path) -> None:
    item = summary(datetime(2026, 12, 1, tzinfo=UTC))
    old = dataclasses.replace(item, check_id="")
    text = old.to_json().replace('"check_id": ""', '"retired_field": 1')
    write(tmp_path, item, text)
    assert list_checks(str(tmp_path))[0].check_id == item.check_id


def test_a_broken_summary_is_named_not_skipped(tmp_path: Path) -> None:
    item = summary(datetime(2026, 12, 1, tzinfo=UTC))
    write(tmp_path, item, "{not json")
    with pytest.raises(StorageError, match=item.check_id):
        list_checks(str(tmp_path))


def test_find_check_names_the_latest_ids_when_missing(tmp_path: Path) -> None:
    item = summary(datetime(2026, 12, 1, tzinfo=UTC), decision="drift")
    write(tmp_path, item)
    assert find_check(str(tmp_path), item.check_id).decision == "drift"
    with pytest.raises(ConfigError, match="20261201T000000Z-m-v1"):
        find_check(str(tmp_path), "nope")
