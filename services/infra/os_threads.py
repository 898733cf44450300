"""OS-level names for our threads, so ``top -H``, ``ps -L`` and ``/proc/<pid>/task/<tid>/comm`` tell them apart.

Python (before 3.14) leaves every thread of a process with the process's own name (``python``), so
a busy thread in a worker is a number. A thread body calls :func:`name_os_thread` first; the kernel
keeps 15 bytes of a name, so names start with what tells them apart (``post``, ``inference-0``,
``runner-1``, ``source-0``). ``make bench`` reads them to split a pipeline's CPU by stage.
"""

import ctypes
import ctypes.util
import sys
import threading
from collections.abc import Callable

_PR_SET_NAME = 15  # prctl(2): name the calling thread
_NAME_BYTES = 15  # TASK_COMM_LEN (16) minus the terminating NUL


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    prctl = libc.prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


_PRCTL = _prctl()


def name_os_thread(name: str | None = None) -> bool:
    """Give the calling thread's OS thread ``name`` (default: its Python thread's name), cut to 15 bytes.

    False where the platform has no such name (not Linux); naming never fails the thread.
    """
    if _PRCTL is None:
        return False
    text = (name if name is not None else threading.current_thread().name).encode("utf-8", "replace")
    return bool(_PRCTL(_PR_SET_NAME, text[:_NAME_BYTES], 0, 0, 0) == 0)
