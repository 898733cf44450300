"""The event loop a service runs on: uvloop where it is installed (the default), else asyncio's own.

Measured on 2 cores (tests/benchmarks/load.py, 10 s windows in one run): the API on uvicorn with
uvloop and httptools answered ``/healthz`` at 6,905 req/s against 4,986 with asyncio and h11, and the
manager's list through it at 3,163 against 2,581. ``auto`` takes uvloop when it imports and falls back
to asyncio quietly; ``uvloop`` insists on it (a start-up error without it); ``asyncio`` never uses it.
"""

import asyncio
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

T = TypeVar("T")

EventLoopChoice = Literal["auto", "uvloop", "asyncio"]


def run(main: Coroutine[Any, Any, T], choice: EventLoopChoice = "auto") -> T:
    """Runs ``main`` to completion on the chosen loop, as ``asyncio.run`` does."""
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                main.close()
                raise RuntimeError("the uvloop event loop was asked for and is not installed") from None
        else:
            return uvloop.run(main)
    return asyncio.run(main)


def loop_name() -> str:
    """The running loop's kind, for the start-up log: "uvloop" or "asyncio"."""
    return "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else "asyncio"
