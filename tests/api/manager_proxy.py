"""A TCP proxy in front of a manager, to watch and break the connections a client makes to it.

It runs its own event loop in a thread. It counts the connections it accepts (and the most open at
once) and records the ``type`` of every request frame that passes, in order. It can also cut a
connection once the manager has answered a given command (:meth:`ManagerProxy.cut_reply_of`: the
request reached the manager and was carried out, the reply never reaches the client, which sees the
connection close), or close every connection at once (:meth:`ManagerProxy.drop_all`), as a manager
restart does. Bytes pass unchanged, so TLS goes through it end to end (with ``read_frames=False``:
it then only counts connections).
"""

import asyncio
import contextlib
import json
import threading
from concurrent.futures import Future
from typing import Any

from services.core.framing import FrameDecoder

_MAX_FRAME = 1 << 26


class _Link:
    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream = upstream
        self.cut_pending = False  # the reply now awaited must not reach the client

    def close(self) -> None:
        self.client.close()
        self.upstream.close()


class ManagerProxy:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1", read_frames: bool = True) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._read_frames = read_frames  # False for TLS: count connections only
        self.accepted = 0
        self.open = 0
        self.max_open = 0
        self.requests: list[str] = []
        self._cuts: set[str] = set()
        self._links: set[_Link] = set()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="manager-proxy")
        self._thread.start()
        self._server = self._run(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port: int = self._server.sockets[0].getsockname()[1]

    def _run(self, coroutine: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(10)

    def cut_reply_of(self, kind: str) -> None:
        """The next request of type ``kind`` reaches the manager; its connection closes before the reply."""
        self._loop.call_soon_threadsafe(self._cuts.add, kind)

    def drop_all(self) -> None:
        """Closes every connection through the proxy (both sides), as a manager going away does."""
        async def drop() -> None:
            for link in list(self._links):
                link.close()
        self._run(drop())

    def count(self, kind: str) -> int:
        return self.requests.count(kind)

    def close(self) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            for link in list(self._links):
                link.close()
        with contextlib.suppress(Exception):
            self._run(stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            self.open -= 1
            client_writer.close()
            return
        link = _Link(client_writer, upstream_writer)
        self._links.add(link)
        try:
            pumps = [asyncio.create_task(self._requests(client_reader, link)),
                     asyncio.create_task(self._replies(upstream_reader, link))]
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            for pump in pumps:
                pump.cancel()
        finally:
            link.close()
            self._links.discard(link)
            self.open -= 1

    async def _requests(self, reader: asyncio.StreamReader, link: _Link) -> None:
        decoder = FrameDecoder(_MAX_FRAME)
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                for frame in decoder.feed(data) if self._read_frames else ():
                    try:
                        kind = str(json.loads(frame).get("type"))
                    except (ValueError, AttributeError):
                        kind = "?"
                    self.requests.append(kind)
                    if kind in self._cuts:
                        self._cuts.discard(kind)
                        link.cut_pending = True  # set before the request goes on, so before its reply comes
                link.upstream.write(data)
                await link.upstream.drain()

    async def _replies(self, reader: asyncio.StreamReader, link: _Link) -> None:
        decoder = FrameDecoder(_MAX_FRAME)
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                frames = decoder.feed(data) if self._read_frames else []
                if link.cut_pending:  # one request in flight: this is its reply, held back
                    if frames:
                        return  # the manager answered: close without passing the reply on
                    continue
                link.client.write(data)
                await link.client.drain()
