"""The loop back's guards: N consecutive breaches of one model then a cooldown, and one claim
per window even when claimants race (threads and processes, the real O_EXCL primitive)."""

from __future__ import annotations

import multiprocessing
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from check_records import summary

from kubeline.durations import duration
from kubeline.errors import ConfigError
from kubeline.monitor.retrain import claim_window, may_retrain, window_key

NOW = datetime(2026, 3, 10, 6, tzinfo=UTC)


def check(decision: str, days_ago: int, model: str = "m", start: str = "2026-03-01"):
    when = NOW - timedelta(days=days_ago)
    return summary(when, decision, "3", model=model, start=start, end="2026-03-08")


def verdict(history, consecutive=2, cooldown="24h", last_started=None):
    return may_retrain(
        history,
        consecutive=consecutive,
        cooldown=duration(cooldown),
        last_started=last_started,
        now=NOW,
    )


def test_one_breach_is_not_enough_two_in_a_row_are() -> None:
    assert not verdict([check("ok", 2), check("drift", 0)]).act
    assert verdict([check("drift", 1), check("decay", 0)]).act
    assert verdict([check("drift", 0)], consecutive=1).act


def test_an_ok_or_too_little_data_check_between_resets_the_count() -> None:
    assert not verdict([check("drift", 2), check("ok", 1), check("drift", 0)]).act
    history = [check("drift", 2), check("insufficient-data", 1), check("drift", 0)]
    assert "1 consecutive" in verdict(history).reason


def test_another_models_checks_neither_count_nor_reset() -> None:
    assert not verdict([check("drift", 1, model="other"), check("drift", 0)]).act
    assert verdict([check("drift", 2), check("ok", 1, model="other"), check("drift", 0)]).act


def test_a_newest_check_that_is_no_breach_never_acts() -> None:
    assert not verdict([check("drift", 2), check("drift", 1), check("ok", 0)]).act
    assert not verdict([]).act


def test_the_cooldown_holds_back_a_second_start() -> None:
    history = [check("drift", 1), check("drift", 0)]
    assert not verdict(history, last_started=NOW - timedelta(hours=23)).act
    assert verdict(history, last_started=NOW - timedelta(hours=25)).act
    assert not verdict(history, cooldown="7d", last_started=NOW - timedelta(days=6)).act


def test_a_duration_is_hours_or_days() -> None:
    assert duration("36h") == timedelta(hours=36) and duration(" 7d ") == timedelta(days=7)
    with pytest.raises(ConfigError, match="'soon' is not a duration"):
        duration("soon")


def test_the_window_key_is_the_window_not_the_check() -> None:
    first, later = check("drift", 1), check("drift", 0)
    assert first.check_id != later.check_id
    assert window_key(first) == window_key(later)
    assert window_key(first) != window_key(check("drift", 0, start="2026-03-02"))
    assert window_key(first) != window_key(replace(first, model_version="4"))
    assert window_key(first) != window_key(replace(first, source="market data"))


def test_a_window_is_claimed_once(tmp_path: Path) -> None:
    assert claim_window(str(tmp_path), check("drift", 1))
    assert not claim_window(str(tmp_path), check("drift", 0))  # same window, a later check
    assert claim_window(str(tmp_path), check("drift", 0, start="2026-03-02"))


def test_threads_racing_on_one_window_claim_it_exactly_once(tmp_path: Path) -> None:
    barrier = threading.Barrier(16)
    won: list[bool] = []

    def race(days_ago: int) -> None:
        barrier.wait()
        won.append(claim_window(str(tmp_path), check("drift", days_ago)))

    threads = [threading.Thread(target=race, args=(i % 3,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(won) == [False] * 15 + [True]


def _claim_in_a_process(root: str, start, results) -> None:
    start.wait()
    results.put(claim_window(root, check("drift", 0)))


def test_processes_racing_on_one_window_claim_it_exactly_once(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_claim_in_a_process, args=(str(tmp_path), start, results))
        for _ in range(4)
    ]
    for proc in procs:
        proc.start()
    start.set()
    outcomes = [results.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
    assert sorted(outcomes) == [False, False, False, True]


def test_yaml_s_unquoted_off_is_off_and_a_mode_not_known_is_refused() -> None:
    from pydantic import ValidationError

    from kubeline.runconfig import MonitorConfig

    assert MonitorConfig(retrain=False).retrain == "off"  # YAML's unquoted off
    assert MonitorConfig(retrain="auto").retrain == "auto"
    with pytest.raises(ValidationError, match="'off', 'manual' or 'auto'"):
        MonitorConfig(retrain="sometimes")
