"""Helpers of the command-line tests: ``vsim`` in-process and as a real subprocess, pipelines on the stack."""

import contextlib
import io
import os
import queue
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from services.client.cli import main
from tests.support.stack import ROOT, Stack
from tests.support.waiting import wait_until

VTEST = "data/media/vtest.avi"
BIKES = "data/media/bikes.mp4"
WORKER = "cli@test"
SLOTS = 3


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


def vsim(*argv: object, stdin: str | None = None, monkeypatch: pytest.MonkeyPatch | None = None) -> CliResult:
    """``main([...])`` in this process, with stdout and stderr captured (and stdin fed, when given)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.ExitStack() as stack:
        if stdin is not None:
            assert monkeypatch is not None, "feeding stdin needs the monkeypatch fixture"
            monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        stack.enter_context(contextlib.redirect_stdout(out))
        stack.enter_context(contextlib.redirect_stderr(err))
        code = main([str(arg) for arg in argv])
    return CliResult(code, out.getvalue(), err.getvalue())


_running: dict[int, set[str]] = {}  # stack port -> pipelines started by the tests and not yet terminated


def start(stack: Stack, *flags: object) -> str:
    """A pipeline started with ``vsim start``; returns the id it printed."""
    result = vsim("--port", stack.port, "start", *flags)
    assert result.code == 0, result
    (pipeline_id,) = result.lines
    track(stack, pipeline_id)
    return pipeline_id


def track(stack: Stack, pipeline_id: str) -> None:
    """Counts a pipeline started another way, so :func:`terminate` knows how many slots stay busy."""
    _running.setdefault(stack.port, set()).add(pipeline_id)


def terminate(stack: Stack, pipeline_id: str) -> None:
    """Terminates through the CLI, then waits for the worker's slot so the next init finds one."""
    result = vsim("--port", stack.port, "terminate", pipeline_id)
    assert result.code == 0, result
    running = _running.setdefault(stack.port, set())
    running.discard(pipeline_id)
    wait_until(lambda: (stack.registration(WORKER) or {}).get("free_slots") == SLOTS - len(running), timeout=20,
               message=lambda: f"worker slots: {stack.registration(WORKER)}, {len(running)} pipelines running")


def status_line(stack: Stack, pipeline_id: str, label: str) -> str:
    """The value of one ``label   value`` line of the status table."""
    result = vsim("--port", stack.port, "status", pipeline_id)
    assert result.code == 0, result
    for line in result.lines:
        if line.startswith(label + " "):
            return line[len(label):].strip()
    raise AssertionError(f"no {label!r} line in:\n{result.out}")


def subprocess_env(stack: Stack | None = None) -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if stack is not None:
        env.update(STREAM_MANAGER_HOST="127.0.0.1", STREAM_MANAGER_PORT=str(stack.port))
    return env


def python_m_vsim(*argv: object) -> list[str]:
    """The command line of ``python -m services.client ARGV`` with this interpreter."""
    return [sys.executable, "-m", "services.client", *(str(arg) for arg in argv)]


def installed_vsim() -> Path:
    """The ``vsim`` console script of this environment (pyproject's [project.scripts])."""
    script = Path(sys.executable).with_name("vsim")
    assert script.is_file(), f"{script} is missing: run `pip install -e .`"
    return script


def run(command: list[str], stack: Stack | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, env=subprocess_env(stack), capture_output=True, text=True,
                          timeout=timeout, check=False)


class LineReader:
    """Collects a child's output lines on a thread, so a test can wait for the next one with a deadline."""

    def __init__(self, stream: IO[str]) -> None:
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)  # end of output

    def next(self, timeout: float) -> str | None:
        """The next line; None at the end of the output. AssertionError when none comes in time."""
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output line within {timeout} s") from None

    def rest(self, timeout: float = 20) -> list[str]:
        """Every remaining line, up to the end of the output."""
        lines = []
        while (line := self.next(timeout)) is not None:
            lines.append(line)
        return lines
