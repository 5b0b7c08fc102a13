"""How many worker processes the container's CPU limit allows (not the host's core count).

In a pod, ``os.cpu_count()`` is the node's cores: 64 workers on a 2-CPU limit would each get a
sliver of CPU and the memory of a whole model. The limit is cgroup v2's ``cpu.max`` (quota and
period), else cgroup v1's CFS quota, else the CPUs this process may run on.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_V2 = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1 = (
    Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"),
    Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us"),
)


def cpu_limit(v2: Path = CGROUP_V2, v1: tuple[Path, Path] = CGROUP_V1) -> float | None:
    """The CPU limit in cores, or None when there is none."""
    try:
        quota, period = v2.read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int(v1[0].read_text())
        period_us = int(v1[1].read_text())
    except (OSError, ValueError):
        return None
    return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us


def default_workers(v2: Path = CGROUP_V2, v1: tuple[Path, Path] = CGROUP_V1) -> int:
    """One worker per CPU the container may use (a fraction rounds up), at least one."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    limit = cpu_limit(v2, v1)
    cores = min(available or 1, math.ceil(limit)) if limit else (available or 1)
    return max(1, cores)
