"""The cores the worker sizes itself for: CPU affinity and cgroup CPU quotas, not the host's core count."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.worker.cores import Cores, cgroup_quota, usable_cores

ROOT = Path(__file__).resolve().parents[2]


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def _proc(tmp_path: Path, text: str) -> Path:
    (tmp_path / "cgroup").write_text(text)
    return tmp_path / "cgroup"


V2 = "0::/kubepods/pod1/container\n"


@pytest.mark.parametrize(("files", "quota"), [
    ({"cgroup.controllers": "cpu\n", "kubepods/pod1/container/cpu.max": "200000 100000\n"}, 2.0),
    ({"cgroup.controllers": "cpu\n", "kubepods/pod1/container/cpu.max": "150000 100000\n"}, 1.5),
    ({"cgroup.controllers": "cpu\n", "kubepods/pod1/container/cpu.max": "max 100000\n"}, None),
    # an ancestor's tighter quota applies (a pod limit above its container's)
    ({"cgroup.controllers": "cpu\n", "kubepods/pod1/container/cpu.max": "400000 100000\n",
      "kubepods/pod1/cpu.max": "100000 100000\n", "kubepods/cpu.max": "max 100000\n"}, 1.0),
    # a namespaced container: its own cgroup is the mount's root, the path is not there
    ({"cgroup.controllers": "cpu\n", "cpu.max": "50000 100000\n"}, 0.5),
    ({"cgroup.controllers": "cpu\n"}, None),  # no cpu.max anywhere
    ({"kubepods/pod1/container/cpu.max": "200000 100000\n"}, None),  # not a cgroup v2 mount
    ({"cgroup.controllers": "cpu\n", "kubepods/pod1/container/cpu.max": "lots\n"}, None),  # unreadable: no limit
])
def test_cgroup_v2_quota(tmp_path: Path, files: dict[str, str], quota: float | None) -> None:
    root = _tree(tmp_path / "fs", files)
    assert cgroup_quota(_proc(tmp_path, V2), root) == quota


V1 = "12:cpuset:/\n4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n"


@pytest.mark.parametrize(("files", "quota"), [
    ({"cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "300000\n", "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n"},
     3.0),
    ({"cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "-1\n", "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n"},
     None),
    # without a cgroup namespace the container's own cgroup is mounted at the hierarchy's root
    ({"cpu/cpu.cfs_quota_us": "150000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1.5),
    ({"cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "100000\n"}, None),  # no period: no limit
])
def test_cgroup_v1_quota(tmp_path: Path, files: dict[str, str], quota: float | None) -> None:
    root = _tree(tmp_path / "fs", files)
    assert cgroup_quota(_proc(tmp_path, V1), root) == quota


def test_a_hybrid_host_takes_the_tighter_of_both_hierarchies(tmp_path: Path) -> None:
    root = _tree(tmp_path / "fs", {"cgroup.controllers": "\n", "pod/cpu.max": "300000 100000\n",
                                   "cpu/pod/cpu.cfs_quota_us": "200000\n", "cpu/pod/cpu.cfs_period_us": "100000\n"})
    assert cgroup_quota(_proc(tmp_path, "1:cpu:/pod\n0::/pod\n"), root) == 2.0


def test_without_a_readable_proc_file_there_is_no_quota(tmp_path: Path) -> None:
    assert cgroup_quota(tmp_path / "missing", tmp_path) is None


def test_usable_cores_is_the_affinity_capped_by_the_quota_rounded_up(tmp_path: Path) -> None:
    affinity = len(os.sched_getaffinity(0))
    unlimited = usable_cores(tmp_path / "missing", tmp_path)
    assert unlimited == Cores(affinity, affinity, None)
    root = _tree(tmp_path / "fs", {"cgroup.controllers": "cpu\n", "cpu.max": "50000 100000\n"})
    half = usable_cores(_proc(tmp_path, "0::/\n"), root)
    assert half == Cores(1, affinity, 0.5)  # half a CPU still runs one thread
    assert half.describe() == f"1 usable core (affinity {affinity}, CPU quota 0.5)"


def test_the_real_affinity_of_a_pinned_process_is_what_it_sizes_for() -> None:
    script = ("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
              "from services.worker.cores import usable_cores; print(usable_cores().usable, os.cpu_count())")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout.split()
    assert out[0] == "1"
    assert int(out[1]) == os.cpu_count()  # what the worker used to size for
