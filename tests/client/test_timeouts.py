"""The clients' deadline covers sending too: a manager that accepts a connection but never reads the request
(its buffers full) makes a call fail in time, never hang."""

import asyncio

import pytest

from services.client import AsyncManagerClient, ConnectivityError, ManagerClient
from tests.client.servers import silent_server

SPECIFICATION = {"notes": "x" * (16 * 1024 * 1024)}  # far more than the socket buffers of an unread connection hold


def test_the_async_client_gives_up_on_a_manager_that_never_reads() -> None:
    async def scenario(port: int) -> None:
        client = AsyncManagerClient("127.0.0.1", port, timeout=0.5)
        async with asyncio.timeout(30):  # the guard of this test: before the fix, the call waited here forever
            with pytest.raises(ConnectivityError, match="did not answer in time"):
                await client.put_workflow("acme", "big", SPECIFICATION)

    with silent_server() as port:
        asyncio.run(scenario(port))


def test_the_sync_client_gives_up_on_a_manager_that_never_reads() -> None:
    with silent_server() as port, pytest.raises(ConnectivityError, match="did not answer in time"):
        ManagerClient("127.0.0.1", port, timeout=0.5).put_workflow("acme", "big", SPECIFICATION)
