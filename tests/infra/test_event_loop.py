"""services.infra.event_loop: which loop a service runs on."""

import builtins
from typing import Any

import pytest

from services.infra import event_loop


async def _kind() -> str:
    return event_loop.loop_name()


def test_auto_takes_uvloop_which_the_manager_extra_installs() -> None:
    assert event_loop.run(_kind()) == "uvloop"
    assert event_loop.run(_kind(), "uvloop") == "uvloop"


def test_asyncio_never_takes_uvloop() -> None:
    assert event_loop.run(_kind(), "asyncio") == "asyncio"


def test_without_uvloop_auto_falls_back_and_uvloop_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_uvloop(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "uvloop":
            raise ImportError("no uvloop here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_uvloop)
    assert event_loop.run(_kind(), "auto") == "asyncio"
    with pytest.raises(RuntimeError, match="uvloop event loop was asked for and is not installed"):
        event_loop.run(_kind(), "uvloop")
