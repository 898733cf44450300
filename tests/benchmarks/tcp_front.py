"""The TCP front side by side with the reference stream manager, a new connection per request.

The reference's client opens a connection, sends one ``list_pipelines`` frame, reads the reply and
closes; scripts written for it do the same. This benchmark runs that pattern at 1, 4, 16, 64 and 256
concurrent clients against these two servers (and the two floor servers below), started by the run and
measured one after the other at each level:

- the reference: ``streamvision`` 0.1.3's stream manager (``RoboflowTCPServer``, a blocking
  ``socketserver.TCPServer``), in an environment of its own built by :mod:`tools.side_env` under
  ``data/streamvision`` (it needs torch; the environment is several GB, built once);
- ours: ``python -m services.manager`` on a redis-server started by the run, as shipped but for
  ``MANAGER_LOG_LEVEL=WARNING`` (the reference configures no logging, so it logs no request either)
  and ``MANAGER_MAX_CONNECTIONS=0`` (the 256-client level opens and closes connections faster than
  closed ones leave the count).

The reference keeps its pipelines in its own memory. Ours keeps them in Redis and answers LIST from
the ids it last read while Redis has not said that the index changed since
(:mod:`services.infra.tracked_keys`), so a LIST costs Redis nothing (Redis's CPU is still reported).
Two floor servers run at each level too (``--floor``): a bare ``asyncio.Protocol`` on uvloop that parses
the frame's JSON and answers a constant list, with no validation, timeouts, metrics or logging, the least a
server built on the event loop's transports does per request. The first leaves the close to its client; the
second (``--close``) closes each connection after its reply, as the reference and ours do. The two floors
against each other show what the order of the closes costs the client: the side that closes first keeps the
connection in TIME_WAIT, and a client that keeps thousands of its own ports there makes each ``connect()``
search for a free one (measured on this host, 2026-12-05, 4 clients on the first floor: the generator's CPU
per request 2.5 times the reference's, and every uvloop server held at about 14,300 connections a second
while it was the client that closed). A transport's ``close()`` takes effect a turn of the event loop after
the reply, and a client woken by the reply often closes first: so the closing floor, and ours while it
served every connection through a transport, still left many TIME_WAITs to the client (on an Intel host,
2026-12-05: ours at 4 clients 0.86 of the reference, the generator's CPU per request 32 against 19 us).

Ours no longer uses a transport for such a connection (``services/manager/server.py``): it accepts from its
own listening socket with ``TCP_DEFER_ACCEPT`` (the kernel hands the connection over once its request has
arrived), reads the request, sends the reply and closes the socket in the accept's own callback. Ours against
the closing floor is therefore no longer the price of what the manager adds, but what that path saves over
any server built on transports.

The generator is a C program (``tcp_once.c``, compiled by the run with the host's C compiler), one
epoll loop; each client connects (non-blocking), writes the frame once connected, reads the reply
(latency from the connect call to the reply's last byte), closes and connects again. It reports its
CPU seconds. Until 2026-12-05 it was an asyncio program, which spent 160-176 us of CPU per request,
more than either server: it ran at 77-99 % of a core at every level, so the tables measured it as
much as the servers (at 1 client the reference then answered 4,870 requests/s; with this generator,
on the same host, over 10,000).

Usage: ``python -m tests.benchmarks.tcp_front [--output docs/benchmarks.md] [--seconds 4]
[--levels 1,4,16,64,256]``
"""

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

from services.core.framing import encode_frame
from tests.benchmarks.report import stamp, write_section
from tests.support.redis_server import running_redis
from tools import side_env
from tools.embedded_redis import free_port

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_ENV = ROOT / "data" / "streamvision"
# streamvision's manager imports its WebRTC module (aiortc, av) and roboflow_workflows (torch, torchvision)
# at start-up; roboflow-workflows' own dependencies beyond those are not needed to serve list_pipelines.
REFERENCE_REQUIREMENTS = ("streamvision[webrtc]==0.1.3", "torch==2.14.1", "torchvision==0.29.1", "pybase64==1.5.1")
REFERENCE_NO_DEPS = ("roboflow-workflows==0.2.14",)
REFERENCE_MAIN = """
from streamvision.stream.configuration import get_configuration
from streamvision.stream_manager.manager_app.bootstrap import install_process_settings
from streamvision.stream_manager.manager_app.host import PipelineHostDescriptor
descriptor = PipelineHostDescriptor(factory="builtins:dict", settings={})  # no pipeline is started here
install_process_settings(configuration=get_configuration(), host_descriptor=descriptor)
from streamvision.stream_manager.manager_app.app import start
start(expected_warmed_up_pipelines=0, host_descriptor=descriptor)
"""
REQUEST = encode_frame(json.dumps({"type": "list_pipelines"}).encode())
LEVELS = (1, 4, 16, 64, 256)
ROUNDS = 3
GENERATOR_SOURCE = Path(__file__).with_name("tcp_once.c")
GENERATOR_BINARY = ROOT / "data" / "bin" / "tcp_once"


# ---------------------------------------------------------------------------------------------------------------
# The generator (the child process)


def generator() -> Path:
    """The generator (``tcp_once.c``), compiled here once (and again when its source is newer)."""
    binary = GENERATOR_BINARY
    if not binary.exists() or binary.stat().st_mtime < GENERATOR_SOURCE.stat().st_mtime:
        binary.parent.mkdir(parents=True, exist_ok=True)
        compiler = shutil.which("cc") or shutil.which("gcc")
        if compiler is None:
            raise RuntimeError("the TCP front benchmark compiles its load generator: no C compiler (cc, gcc) found")
        subprocess.run([compiler, "-O2", "-Wall", "-o", str(binary), str(GENERATOR_SOURCE)], check=True)
    return binary


def generate(port: int, clients: int, seconds: float) -> dict[str, Any]:
    """One window of the generator against ``port``: its JSON report (see ``tcp_once.c``)."""
    child = subprocess.run([str(generator()), str(port), str(clients), f"{seconds:g}", REQUEST.hex()],
                           capture_output=True, text=True, check=False, timeout=seconds + 60)
    if child.returncode != 0:
        raise RuntimeError(f"the generator failed ({child.returncode}): {child.stderr[-1500:]}")
    result: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    return result


# ---------------------------------------------------------------------------------------------------------------
# The floor servers (a child process each)


class _FloorServer(asyncio.Protocol):
    """Answers each ``list_pipelines`` frame with a constant list; with ``closing``, closes the connection after
    the reply (as the reference does) instead of waiting for the client to close it."""

    closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._buffer = b""

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) >= 4 and len(self._buffer) >= 4 + int.from_bytes(self._buffer[:4], "big"):
            json.loads(self._buffer[4:])
            self._buffer = b""
            self._transport.write(encode_frame(json.dumps(  # type: ignore[attr-defined]
                {"request_id": str(uuid.uuid4()), "response": {"status": "success", "pipelines": []},
                 "pipeline_id": None}).encode()))
            if self.closing:
                self._transport.close()


def _floor(argv: list[str]) -> None:
    import uvloop

    port = int(argv[0])
    _FloorServer.closing = "--close" in argv[1:]

    async def serve() -> None:
        await asyncio.get_running_loop().create_server(_FloorServer, "127.0.0.1", port, backlog=1024)
        await asyncio.Event().wait()

    uvloop.run(serve())


# ---------------------------------------------------------------------------------------------------------------
# The parent


def _wait_listening(port: int, process: "subprocess.Popen[bytes]", timeout: float = 120) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before listening on {port}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on {port} after {timeout:g} s")


def _measure(port: int, clients: int, seconds: float, servers: list[psutil.Process]) -> dict[str, Any]:
    before = [server.cpu_times() for server in servers]
    result = generate(port, clients, seconds)
    # At least 0: a process's CPU times, read in clock ticks, can read a tick lower a moment later.
    result["server_cpu"] = [max(0.0, after.user + after.system - b.user - b.system) / result["elapsed"]
                            for b, after in zip(before, (server.cpu_times() for server in servers), strict=True)]
    return result


def _latencies(result: dict[str, Any]) -> str:
    """p50 / p99 / mean / max in ms, the replies slower than 100 ms, and the clients answered at a time."""
    return (" / ".join(f"{result[key] * 1e3:.2f}" for key in ("p50", "p99", "mean", "max"))
            + f" | {result['over_100ms']:,} | {answered_at_a_time(result):.1f}")


def answered_at_a_time(result: dict[str, Any]) -> float:
    """How many clients were being answered at any moment, on average (Little's law: the latencies of the replies
    that took at most 100 ms, summed, over the window), leaving out those waiting for a retransmitted SYN."""
    return float(result["under_100ms_s"]) / max(1e-9, float(result["elapsed"]))


def _start(argv: list[str], env: dict[str, str]) -> "subprocess.Popen[bytes]":
    return subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _rate(result: dict[str, Any]) -> float:
    return float(result["answered"]) / max(1e-9, float(result["elapsed"]))


def _cpu_per_request(result: dict[str, Any], index: int = 0) -> str:
    """Microseconds of a server process's CPU per answered request."""
    return f"{result['server_cpu'][index] * result['elapsed'] / max(1, result['answered']) * 1e6:.0f}"


def run(seconds: float, levels: tuple[int, ...]) -> str:
    reference_python = side_env.ensure(REFERENCE_ENV, REFERENCE_REQUIREMENTS, no_deps=REFERENCE_NO_DEPS)
    rows, latency_rows, floor_rows, notes = [], [], [], []
    with running_redis() as server:
        assert server.process is not None
        ours_port, reference_port, bare_port, closing_port = free_port(), free_port(), free_port(), free_port()
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        ours = _start([sys.executable, "-m", "services.manager"],
                      dict(env, MANAGER_REDIS_URL=server.url, MANAGER_PORT=str(ours_port), MANAGER_LOG_LEVEL="WARNING",
                           MANAGER_MAX_CONNECTIONS="0"))
        reference = _start([str(reference_python), "-c", REFERENCE_MAIN],
                           dict(os.environ, STREAM_MANAGER_PORT=str(reference_port)))
        floors = [_start([sys.executable, "-m", "tests.benchmarks.tcp_front", "--floor", str(port), *closing], env)
                  for port, closing in ((bare_port, []), (closing_port, ["--close"]))]
        processes = [ours, reference, *floors]
        try:
            for port, process in zip((ours_port, reference_port, bare_port, closing_port), processes, strict=True):
                _wait_listening(port, process)
            redis_process = psutil.Process(server.process.pid)
            servers = ((reference_port, [psutil.Process(reference.pid)]),
                       (bare_port, [psutil.Process(floors[0].pid)]),
                       (closing_port, [psutil.Process(floors[1].pid)]),
                       (ours_port, [psutil.Process(ours.pid), redis_process]))
            for clients in levels:
                # Rounds interleaved (each server once per round), the median round of each: this VM's speed
                # drifts by tens of percent within minutes.
                rounds: list[list[dict[str, Any]]] = [[] for _ in servers]
                for _ in range(ROUNDS):
                    for results, (port, watched) in zip(rounds, servers, strict=True):
                        results.append(_measure(port, clients, seconds, watched))
                theirs, bare, closing, mine = (sorted(results, key=_rate)[len(results) // 2] for results in rounds)
                rows.append(f"| {clients} | {_rate(theirs):,.0f} | {_rate(mine):,.0f} | "
                            f"{_rate(mine) / max(1e-9, _rate(theirs)):.2f} | {theirs['errors']} / {mine['errors']} | "
                            f"{theirs['server_cpu'][0]:.0%} | "
                            f"{mine['server_cpu'][0]:.0%} + {mine['server_cpu'][1]:.0%} | "
                            f"{theirs['cpu'] / theirs['elapsed']:.0%} / {mine['cpu'] / mine['elapsed']:.0%} |")
                latency_rows.append(f"| {clients} | {_latencies(theirs)} | {_latencies(mine)} |")
                floor_rows.append(
                    f"| {clients} | {_rate(theirs):,.0f} ({_cpu_per_request(theirs)}) | "
                    f"{_rate(bare):,.0f} ({_cpu_per_request(bare)}) | "
                    f"{_rate(closing):,.0f} ({_cpu_per_request(closing)}) | "
                    f"{_rate(mine):,.0f} ({_cpu_per_request(mine)}) | "
                    f"{_rate(closing) / max(1e-9, _rate(theirs)):.2f} | "
                    f"{_rate(mine) / max(1e-9, _rate(closing)):.2f} | "
                    f"{bare['cpu'] / bare['elapsed']:.0%} / {closing['cpu'] / closing['elapsed']:.0%} |")
                for name, result in (("reference", theirs), ("ours", mine), ("floor", bare),
                                     ("floor, closing first", closing)):
                    if result["first_errors"]:
                        notes.append(f"{name} at {clients} clients, first errors: {result['first_errors']}")
        finally:
            for process in processes:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
    return "\n".join([
        "## TCP front: a connection per request, side by side with the reference",
        "",
        stamp(),
        "",
        f"`list_pipelines` with no pipeline, each client opening a new connection per request as the reference's "
        f"client does; at each level {ROUNDS} rounds of {seconds:g} s windows, each round the reference, the two "
        "floor servers, then ours, and the median round of each server is shown. "
        "Reference: streamvision 0.1.3's stream manager (a blocking `socketserver.TCPServer`, pipelines in its "
        "memory). Ours: `python -m services.manager` (uvloop, `MANAGER_LOG_LEVEL=WARNING`, "
        "`MANAGER_MAX_CONNECTIONS=0`) and its redis-server; both close each connection after its reply (ours in "
        "the callback that accepted it, with no transport). The generator: `tcp_once.c`, a C program, one epoll "
        "loop, so one core at most: a generator CPU near 100% means that the generator, not the server, set the "
        "rate. CPU: seconds over wall seconds, 100% = one core.",
        "",
        "| clients | reference req/s | ours req/s | ours / reference | errors (ref / ours) | reference CPU "
        "| ours CPU (manager + Redis) | generator CPU (ref / ours) |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Latency of the same windows, from the connect call to the reply's last byte, in ms: p50 / p99 / mean / max, "
        "and the replies that took over 100 ms. A connection the server's listen backlog has no room for waits for "
        "the client's SYN to be sent again (1 s, then 3 s): such replies show in the mean, the max and the count, "
        "not in p50 or p99 while they stay under 1% (the reference's `socketserver.TCPServer` listens with its "
        "default backlog, 5; ours with 1,024). "
        "With N clients each waiting for its reply, the mean is N / throughput. Answered at a time: the latencies "
        "of the replies that took at most 100 ms, summed, over the window (Little's law): how many clients the "
        "server was answering at any moment, those waiting for a retransmitted SYN left out; p50 and p99 grow "
        "with it.",
        "",
        "| clients | reference p50 / p99 / mean / max | reference > 100 ms | reference answered at a time "
        "| ours p50 / p99 / mean / max | ours > 100 ms | ours answered at a time |",
        "|---|---|---|---|---|---|---|",
        *latency_rows,
        "",
        "The floor servers (see the module's docstring): a bare `asyncio.Protocol` server on uvloop, the least a "
        "server built on the event loop's transports does per request, leaving the close to its client, and the "
        "same closing each connection after its reply as the reference and ours do; req/s (the server's CPU per "
        "request, µs).",
        "",
        "| clients | reference | floor | floor, closing first | ours | floor closing first / reference "
        "| ours / floor closing first "
        "| generator CPU (floor / closing first) |",
        "|---|---|---|---|---|---|---|---|",
        *floor_rows,
        "",
        *notes,
    ])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--floor":
        _floor(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)))
    args = parser.parse_args()
    markdown = run(args.seconds, tuple(int(level) for level in args.levels.split(",")))
    print(markdown)
    write_section(args.output, "tcp-front", markdown)


if __name__ == "__main__":
    main()
