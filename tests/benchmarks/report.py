"""Writes one benchmark's section into docs/benchmarks.md, leaving the other sections alone; and the
process accounting the stack benchmarks share (process trees, their CPU seconds, the host's)."""

import contextlib
import json
import os
import platform
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

HEADER = "# Benchmarks\n\nWritten by `make bench`; each section is replaced by its own benchmark run.\n"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB RAM, Python {platform.python_version()}"


def stamp() -> str:
    return f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}."


def write_section(path: Path, name: str, markdown: str) -> None:
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    text = path.read_text() if path.exists() else HEADER
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.DOTALL)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def run_child(module: str, args: list[str], timeout: float) -> dict[str, Any]:
    """Runs ``python -m <module> --child <args>`` (one measurement in a fresh process); its last
    stdout line is the JSON result."""
    done = subprocess.run([sys.executable, "-m", module, "--child", *args],
                          capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child {module} {args[:2]} failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def process_tree(root: psutil.Process) -> list[psutil.Process]:
    """``root`` and all its descendants (prefork children, an inference service process, ...)."""
    try:
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_seconds(processes: list[psutil.Process]) -> dict[int, float]:
    """User + system CPU seconds so far, by pid (processes that are gone are left out)."""
    seconds = {}
    for process in processes:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            seconds[process.pid] = times.user + times.system
    return seconds


def host_busy() -> float:
    """CPU seconds the whole host has been busy (all cores, neither idle nor waiting for I/O)."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))
