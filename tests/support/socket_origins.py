"""Where a socket left open was made: named in the error its ResourceWarning raises in the tests.

A socket finalised open raises a ResourceWarning (an error here) that names only the socket's addresses, and
at a time that says nothing about its owner: the end of a module (``tests/conftest.py`` collects the garbage
there), in whichever thread dropped it. Tracing every allocation (``PYTHONTRACEMALLOC``) would name its maker
but slows the suite too much to run whole. This records, for each socket still open, the thread and the stack
that made it (not read from the source until needed), and adds them to the message pytest reports.
"""

import re
import socket
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

_HARNESS = re.compile(r"/(_pytest|pluggy|pytest)/|^<frozen runpy>$")  # frames that say nothing of the owner
_FRAMES = 40  # the innermost frames kept: enough to reach a test or a fixture from inside redis-py or asyncio


class SocketOrigins:
    """Installed for the session: ``socket.socket``'s ``__init__``, ``close`` and ``detach`` note and forget."""

    def __init__(self) -> None:
        self._made: dict[int, tuple[str, traceback.StackSummary]] = {}
        self._originals: dict[str, Any] = {}
        self._previous_hook: Callable[[Any], object] | None = None

    def install(self) -> None:
        made = self._made
        init, close, detach = socket.socket.__init__, socket.socket.close, socket.socket.detach

        def traced_init(sock: socket.socket, *args: Any, **kwargs: Any) -> None:
            init(sock, *args, **kwargs)
            stack = traceback.StackSummary.extract(traceback.walk_stack(sys._getframe(1)), limit=_FRAMES,
                                                   lookup_lines=False)
            made[id(sock)] = (threading.current_thread().name, stack)

        def traced_close(sock: socket.socket) -> None:
            made.pop(id(sock), None)
            close(sock)

        def traced_detach(sock: socket.socket) -> int:
            made.pop(id(sock), None)
            return detach(sock)

        self._originals = {"__init__": init, "close": close, "detach": detach}
        socket.socket.__init__ = traced_init  # type: ignore[method-assign]
        socket.socket.close = traced_close  # type: ignore[method-assign]
        socket.socket.detach = traced_detach  # type: ignore[method-assign]
        self._previous_hook = sys.unraisablehook
        sys.unraisablehook = self._hook

    def uninstall(self) -> None:
        for name, original in self._originals.items():
            setattr(socket.socket, name, original)
        if self._previous_hook is not None:
            sys.unraisablehook = self._previous_hook
        self._made.clear()

    def origin(self, obj: object) -> str | None:
        """The thread and stack that made ``obj``, a socket this has seen made and not closed."""
        if not isinstance(obj, socket.socket) or id(obj) not in self._made:
            return None
        thread, stack = self._made[id(obj)]
        ours = traceback.StackSummary.from_list([frame for frame in stack if not _HARNESS.search(frame.filename)])
        return f"made in thread {thread!r} at (innermost last):\n" + "".join(reversed(ours.format()))

    def _hook(self, unraisable: Any) -> None:
        try:
            origin = self.origin(unraisable.object)
        except Exception as exc:  # never lose the report itself
            origin = f"(where it was made could not be told: {exc!r})"
        if origin is not None:
            message = unraisable.err_msg or "Exception ignored in"
            unraisable = type(unraisable)((unraisable.exc_type, unraisable.exc_value, unraisable.exc_traceback,
                                           f"{message} a socket {origin}\nthe socket", unraisable.object))
        assert self._previous_hook is not None
        self._previous_hook(unraisable)
