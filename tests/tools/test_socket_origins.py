"""The tests' report of an unclosed socket names the thread and the code that made it."""

import socket
import sys
import threading
from typing import Any

from tests.support.socket_origins import SocketOrigins


def _hook_args_type() -> Any:
    """``sys.UnraisableHookArgs``, which the sys module does not name: taken from a real report."""
    caught: list[Any] = []
    previous, sys.unraisablehook = sys.unraisablehook, caught.append

    class Dies:
        def __del__(self) -> None:
            raise ValueError("finalised")

    try:
        Dies()
    finally:
        sys.unraisablehook = previous
    return type(caught[0])


def test_a_socket_left_open_is_reported_with_the_thread_and_the_code_that_made_it() -> None:
    args = _hook_args_type()
    reported: list[Any] = []
    origins = SocketOrigins()
    origins.install()
    previous, origins._previous_hook = origins._previous_hook, reported.append  # the report, caught here
    try:
        made: list[socket.socket] = []
        maker = threading.Thread(target=lambda: made.append(socket.socket()), name="the-maker")
        maker.start()
        maker.join()
        closed = socket.socket()
        closed.close()
        unraisable = args((ResourceWarning, ResourceWarning("unclosed"), None, None, made[0]))
        sys.unraisablehook(unraisable)
        other = args((ValueError, ValueError(), None, "Exception ignored in", object()))
        sys.unraisablehook(other)
    finally:
        origins._previous_hook = previous
        origins.uninstall()
        made[0].close()

    assert origins.origin(closed) is None
    [report, untouched] = reported
    assert "made in thread 'the-maker'" in report.err_msg
    assert "test_socket_origins.py" in report.err_msg and "made.append(socket.socket())" in report.err_msg
    assert report.object is made[0] and report.exc_type is ResourceWarning
    assert untouched is other
