"""OS thread names: what top -H, ps -L and /proc show for our threads."""

import sys
import threading
from pathlib import Path

import pytest

from services.infra.os_threads import name_os_thread

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread names through prctl are Linux's")


def _comm(native_id: int) -> str:
    return Path(f"/proc/self/task/{native_id}/comm").read_text().strip()


def test_a_thread_takes_its_python_name_cut_to_what_the_kernel_keeps() -> None:
    seen: dict[str, object] = {}

    def body() -> None:
        seen["named"] = name_os_thread()
        seen["comm"] = _comm(threading.get_native_id())

    thread = threading.Thread(target=body, name="inference-12-of-a-long-pipeline")
    thread.start()
    thread.join()
    assert seen == {"named": True, "comm": "inference-12-of"}


def test_a_given_name_and_one_that_is_not_ascii() -> None:
    seen: list[str] = []

    def body() -> None:
        name_os_thread("runner-0")
        seen.append(_comm(threading.get_native_id()))
        name_os_thread("caméra")
        seen.append(_comm(threading.get_native_id()))

    thread = threading.Thread(target=body, name="python-name")
    thread.start()
    thread.join()
    assert seen == ["runner-0", "caméra"]
