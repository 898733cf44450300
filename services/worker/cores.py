"""The CPU cores this process may really use: what sizes the inference service and each pipeline's threads.

``os.cpu_count()`` counts the host's cores. A worker in a container limited to 2 CPUs on a 64-core
host (``docker run --cpus 2``, a compose file's ``deploy.resources.limits.cpus``, a Kubernetes CPU
limit) or pinned to a few cores (``taskset``, ``--cpuset-cpus``) would size itself for 64: 64
single-threaded inference runs time-sliced on 2 cores' worth of quota, each run about 32 times
slower than it could be, 64 sessions' arenas in memory, 65 rounds in flight per pipeline.

:func:`usable_cores` is the smaller of

- the CPU affinity (``os.sched_getaffinity``: taskset, cpusets), and
- the CPU quota of the process's cgroup and of each of its ancestors (the tightest applies), rounded
  up: cgroup v2's ``cpu.max`` (``max 100000`` is no limit, ``150000 100000`` is 1.5 CPUs), cgroup v1's
  ``cpu.cfs_quota_us`` over ``cpu.cfs_period_us`` (a quota of -1 is no limit). Both hierarchies are
  read where they are mounted (a hybrid host has both); a file that is missing or unreadable, or says
  something else, is no limit.

A container with its own cgroup namespace sees its cgroup as the root of ``/sys/fs/cgroup``; one
without it sees the host's path in ``/proc/self/cgroup`` while ``/sys/fs/cgroup`` holds its own
cgroup: walking up from that path to the mount's root reads the right file either way.
"""

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PROC_CGROUP = Path("/proc/self/cgroup")
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True, slots=True)
class Cores:
    usable: int  # what to size for: min(affinity, ceil(quota)), at least 1
    affinity: int  # cores the process may be scheduled on
    quota: float | None  # CPUs' worth of time per period allowed by the cgroups; None: no limit

    def describe(self) -> str:
        """For a log line: ``2 usable cores (affinity 16, CPU quota 2.0)``."""
        quota = "no CPU quota" if self.quota is None else f"CPU quota {self.quota:g}"
        return f"{self.usable} usable core{'s' if self.usable != 1 else ''} (affinity {self.affinity}, {quota})"


def usable_cores(proc_cgroup: Path = PROC_CGROUP, cgroup_root: Path = CGROUP_ROOT) -> Cores:
    """The cores this process may use (see the module)."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        affinity = os.cpu_count() or 1
    quota = cgroup_quota(proc_cgroup, cgroup_root)
    usable = affinity if quota is None else min(affinity, math.ceil(quota))
    return Cores(max(1, usable), affinity, quota)


def cgroup_quota(proc_cgroup: Path = PROC_CGROUP, cgroup_root: Path = CGROUP_ROOT) -> float | None:
    """The tightest CPU quota (in CPUs) over the process's cgroups and their ancestors; None without one."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    quotas: list[float] = []
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":  # cgroup v2 (unified)
            if (cgroup_root / "cgroup.controllers").is_file():
                quotas.extend(_walk(cgroup_root, path, _v2_quota))
        elif "cpu" in controllers.split(","):  # cgroup v1, the cpu controller's hierarchy
            mount = next((cgroup_root / name for name in (controllers, "cpu", "cpu,cpuacct")
                          if (cgroup_root / name).is_dir()), None)
            if mount is not None:
                quotas.extend(_walk(mount, path, _v1_quota))
    return min(quotas) if quotas else None


def _walk(mount: Path, path: str, read: Callable[[Path], float | None]) -> list[float]:
    """The quotas found from ``mount``/``path`` up to ``mount`` itself (directories that do not exist skipped)."""
    found = []
    directory = mount / path.strip("/")
    while True:
        quota = read(directory)
        if quota is not None:
            found.append(quota)
        if directory == mount or mount not in directory.parents:
            return found
        directory = directory.parent


def _v2_quota(directory: Path) -> float | None:
    words = _read(directory / "cpu.max").split()
    if len(words) != 2 or words[0] == "max":
        return None
    return _ratio(words[0], words[1])


def _v1_quota(directory: Path) -> float | None:
    return _ratio(_read(directory / "cpu.cfs_quota_us").strip(), _read(directory / "cpu.cfs_period_us").strip())


def _ratio(quota: str, period: str) -> float | None:
    try:
        over, under = int(quota), int(period)
    except ValueError:
        return None
    return over / under if over > 0 and under > 0 else None


def _read(file: Path) -> str:
    try:
        return file.read_text()
    except (OSError, UnicodeDecodeError):
        return ""
