"""Load: 1,000 concurrent TCP clients on persistent connections sending STATUS / LIST_PIPELINES in a loop, then
the HTTP API under 100 concurrent connections (list and status), each for ``--seconds``; latency percentiles,
errors and the manager's RSS over time.

Real processes: redis-server, `python -m services.manager` (rate and connection limits off:
``MANAGER_MAX_REQUESTS_PER_SECOND=0``, ``MANAGER_MAX_CONNECTIONS=0``), one worker (nice 10) running 2
pipelines on vtest.avi at max_fps 1, and `python -m services.api` for part (b). The load generators are
asyncio in this process (raw sockets for TCP, httpx for HTTP), so on a small host their own CPU use is part
of the latencies measured.

Usage: ``python -m tests.benchmarks.load [--output docs/benchmarks.md] [--seconds 60] [--clients 1000]
[--http-connections 100]``
"""

import argparse
import asyncio
import contextlib
import json
import resource
import statistics
import struct
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from services.core.framing import encode_frame
from tests.benchmarks.report import stamp, write_section
from tests.manager.fakes import call
from tests.support.redis_server import running_redis
from tests.support.stack import running_stack
from tools.payloads import newer_init

MANAGER_ENV = {"MANAGER_MAX_REQUESTS_PER_SECOND": "0", "MANAGER_MAX_CONNECTIONS": "0", "MANAGER_LOG_LEVEL": "WARNING"}


def _raise_nofile(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(max(soft, wanted), hard) if hard != resource.RLIM_INFINITY else max(soft, wanted)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class Stats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors: list[str] = []

    def row(self, name: str, seconds: float) -> str:
        lat = self.latencies
        if not lat:
            return f"| {name} | 0 | 0 | - | - | - | {len(self.errors)} |"
        return (f"| {name} | {len(lat):,} | {len(lat) / seconds:,.0f} | {1000 * statistics.median(lat):.1f} | "
                f"{1000 * _percentile(lat, 0.99):.1f} | {1000 * max(lat):.1f} | {len(self.errors)} |")


class Window:
    """The measured window, set once every client is connected."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.deadline = 0.0


async def _tcp_client(port: int, index: int, pipeline_ids: list[str], window: Window, stats: Stats) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as exc:
        stats.errors.append(f"connect: {exc!r}")
        return
    await window.started.wait()
    count = index
    try:
        while time.perf_counter() < window.deadline:
            count += 1
            request: dict[str, Any] = ({"type": "list_pipelines"} if count % 2 else
                                       {"type": "status", "pipeline_id": pipeline_ids[count % len(pipeline_ids)]})
            sent = time.perf_counter()
            writer.write(encode_frame(json.dumps(request).encode()))
            (size,) = struct.unpack(">I", await reader.readexactly(4))
            reply = json.loads(await reader.readexactly(size))
            stats.latencies.append(time.perf_counter() - sent)
            if reply["response"].get("status") != "success":
                stats.errors.append(json.dumps(reply)[:300])
    except (OSError, asyncio.IncompleteReadError) as exc:
        stats.errors.append(f"connection: {exc!r}")
    finally:
        writer.close()


async def _sample_rss(process: psutil.Process, samples: list[tuple[float, float]], stop: asyncio.Event) -> None:
    begin = time.perf_counter()
    while not stop.is_set():
        samples.append((time.perf_counter() - begin, process.memory_info().rss / 2**20))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 5.0)
    samples.append((time.perf_counter() - begin, process.memory_info().rss / 2**20))


async def run_tcp(port: int, clients: int, seconds: float, pipeline_ids: list[str],
                  manager: psutil.Process) -> tuple[Stats, list[tuple[float, float]], float]:
    stats, samples, stop, window = Stats(), [], asyncio.Event(), Window()
    sampler = asyncio.create_task(_sample_rss(manager, samples, stop))
    tasks = []
    for index in range(clients):  # connect in waves, so the accept backlog is never overrun
        tasks.append(asyncio.create_task(_tcp_client(port, index, pipeline_ids, window, stats)))
        if index % 100 == 99:
            await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)
    begin = time.perf_counter()
    window.deadline = begin + seconds
    window.started.set()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - begin
    stop.set()
    await sampler
    return stats, samples, elapsed


async def _http_client(http: httpx.AsyncClient, index: int, pipeline_ids: list[str], deadline: float,
                       stats: Stats) -> None:
    count = index
    while time.perf_counter() < deadline:
        count += 1
        path = ("/inference_pipelines/list" if count % 2 else
                f"/inference_pipelines/{pipeline_ids[count % len(pipeline_ids)]}/status")
        sent = time.perf_counter()
        try:
            response = await http.get(path)
        except httpx.HTTPError as exc:
            stats.errors.append(f"{path}: {exc!r}")
            continue
        stats.latencies.append(time.perf_counter() - sent)
        if response.status_code != 200:
            stats.errors.append(f"{path}: {response.status_code} {response.text[:200]}")


async def run_http(url: str, connections: int, seconds: float, pipeline_ids: list[str],
                   api: psutil.Process) -> tuple[Stats, list[tuple[float, float]], float]:
    stats, samples, stop = Stats(), [], asyncio.Event()
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:
        sampler = asyncio.create_task(_sample_rss(api, samples, stop))
        begin = time.perf_counter()
        await asyncio.gather(*(_http_client(http, index, pipeline_ids, begin + seconds, stats)
                               for index in range(connections)))
        elapsed = time.perf_counter() - begin
        stop.set()
        await sampler
    return stats, samples, elapsed


def _rss_line(name: str, samples: list[tuple[float, float]]) -> str:
    values = [rss for _, rss in samples]
    trail = ", ".join(f"{rss:.0f}" for _, rss in samples[:: max(1, len(samples) // 8)])
    return (f"{name} RSS every 5 s, MiB: first {values[0]:.0f}, last {values[-1]:.0f}, max {max(values):.0f} "
            f"(samples: {trail}).")


def run(seconds: float, clients: int, connections: int, nice: int, log: Any) -> str:
    nofile = _raise_nofile(clients * 2 + 256)  # the manager (a child) inherits the raised limit
    with running_redis() as server, running_stack(server.url) as stack:
        stack.start_manager(**MANAGER_ENV)
        stack.start_worker("bench", "pipelines.cpu", concurrency=2, nice=nice)
        assert stack.manager is not None
        manager = psutil.Process(stack.manager.pid)
        pipeline_ids = []
        for _ in range(2):
            reply = call(stack.port, newer_init("data/media/vtest.avi", max_fps=1))
            if reply["response"]["status"] != "success":
                raise RuntimeError(f"init failed: {reply}")
            pipeline_ids.append(reply["pipeline_id"])
        time.sleep(2)
        tcp, tcp_rss, tcp_elapsed = asyncio.run(run_tcp(stack.port, clients, seconds, pipeline_ids, manager))
        log(f"TCP: {tcp.row('tcp', tcp_elapsed)}; errors {tcp.errors[:3]}")
        url = stack.start_api()
        api = psutil.Process(stack.apis["api"].pid)
        http, api_rss, http_elapsed = asyncio.run(run_http(url, connections, seconds, pipeline_ids, api))
        log(f"HTTP: {http.row('http', http_elapsed)}; errors {http.errors[:3]}")
        manager_after = manager.memory_info().rss / 2**20
        for pipeline_id in pipeline_ids:
            call(stack.port, {"type": "terminate", "pipeline_id": pipeline_id})
    lines = [
        "## Load", "", stamp(), "",
        f"Real processes: redis-server, the manager ({', '.join(f'`{k}={v}`' for k, v in MANAGER_ENV.items())}; "
        f"RLIMIT_NOFILE {nofile}), one worker (`nice -n {nice}`) running 2 pipelines on vtest.avi at max_fps 1, "
        "and for HTTP `python -m services.api` (one manager connection per command, as the reference). The load "
        "generators are asyncio in one process on the same host, so their own CPU use is inside the latencies.",
        "",
        "| load | requests answered | per second | p50 ms | p99 ms | max ms | errors |",
        "|---|---|---|---|---|---|---|",
        tcp.row(f"TCP: {clients:,} concurrent clients, persistent connections, status / list_pipelines "
                f"alternately, {tcp_elapsed:.0f} s", tcp_elapsed),
        http.row(f"HTTP API: {connections} concurrent keep-alive connections (httpx), `GET /inference_pipelines/list`"
                 f" / `/{{id}}/status` alternately, {http_elapsed:.0f} s", http_elapsed),
        "",
        _rss_line("Manager, during the TCP load:", tcp_rss),
        f"Manager after the HTTP load too: {manager_after:.0f} MiB.",
        _rss_line("API, during the HTTP load:", api_rss),
    ]
    if tcp.errors or http.errors:
        lines += ["", "First errors: " + "; ".join((tcp.errors + http.errors)[:5])]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--http-connections", type=int, default=100)
    parser.add_argument("--nice", type=int, default=10, help="nice value of the worker (it shares the host)")
    args = parser.parse_args()
    markdown = run(args.seconds, args.clients, args.http_connections, args.nice,
                   lambda text: print(text, file=sys.stderr, flush=True))
    write_section(args.output, "load", markdown)
    print(markdown)


if __name__ == "__main__":
    main()
