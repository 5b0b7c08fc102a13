"""Workers follow the container's CPU limit (cgroup cpu.max), not the host's core count."""

from __future__ import annotations

import os
from pathlib import Path

from kubeline.serving.resources import cpu_limit, default_workers

HOST = len(os.sched_getaffinity(0))


def files(
    tmp_path: Path, v2: str | None, quota: str | None = None
) -> tuple[Path, tuple[Path, Path]]:
    cpu_max = tmp_path / "cpu.max"
    if v2 is not None:
        cpu_max.write_text(v2)
    q, p = tmp_path / "quota", tmp_path / "period"
    if quota is not None:
        q.write_text(quota)
        p.write_text("100000\n")
    return cpu_max, (q, p)


def test_a_cgroup_v2_quota_sets_the_workers(tmp_path: Path) -> None:
    v2, v1 = files(tmp_path, "100000 100000\n")
    assert cpu_limit(v2, v1) == 1.0 and default_workers(v2, v1) == 1


def test_a_fractional_limit_rounds_up_and_never_exceeds_the_host(tmp_path: Path) -> None:
    v2, v1 = files(tmp_path, "50000 100000\n")
    assert default_workers(v2, v1) == 1
    v2, v1 = files(tmp_path, f"{(HOST + 8) * 100000} 100000\n")
    assert default_workers(v2, v1) == HOST


def test_no_limit_means_the_cpus_this_process_may_use(tmp_path: Path) -> None:
    v2, v1 = files(tmp_path, "max 100000\n")
    assert cpu_limit(v2, v1) is None and default_workers(v2, v1) == HOST
    v2, v1 = files(tmp_path, None, quota="-1\n")
    assert cpu_limit(v2, v1) is None and default_workers(v2, v1) == HOST


def test_a_cgroup_v1_quota_is_read_when_there_is_no_v2(tmp_path: Path) -> None:
    v2, v1 = files(tmp_path, None, quota="100000\n")
    assert default_workers(v2, v1) == 1
