"""Load: 1,000 concurrent TCP clients on persistent connections sending STATUS / LIST_PIPELINES in a loop, then
the HTTP API (with 1, then 2 processes: ``API_WORKERS``) under 50 concurrent keep-alive connections:
``/healthz`` (the HTTP stack alone), ``GET /inference_pipelines/list`` and ``GET
/inference_pipelines/{id}/status``, each for ``--seconds``; throughput, latency percentiles, errors, the CPU
share of each process and the RSS of the manager and the API over time.

Real processes: redis-server, `python -m services.manager` (rate and connection limits off:
``MANAGER_MAX_REQUESTS_PER_SECOND=0``, ``MANAGER_MAX_CONNECTIONS=0``), one worker (nice 10) running 2
pipelines on vtest.avi at max_fps 1, and `python -m services.api` (its pool of ``--pool-size`` persistent
manager connections) for the HTTP part.

Theory of operation of the load generator: it is a process of its own (``--child``), so its CPU use is
measured, not hidden inside the latencies. Each connection is a raw asyncio protocol that works in a
closed loop: the callback that completes a reply (a 4-byte length + JSON frame, or an HTTP/1.1 response
read by its ``Content-Length``) records the latency and writes the next request at once; no task, no
HTTP library, no parsing beyond the status line and the length. Connections are opened first; the
measured window then starts for all of them at once and each stops sending at its end. The generator
reports its own CPU seconds over the window (getrusage); the parent reads the API's and the manager's
(psutil) and the host's 1-minute load average at the end of each window, and samples the API's
established connections to the manager (which the pool bounds).

Usage: ``python -m tests.benchmarks.load [--output docs/benchmarks.md] [--seconds 60] [--clients 1000]
[--http-connections 50] [--pool-size 8] [--api-workers 1,2]``
"""

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psutil

from services.core.framing import encode_frame
from tests.benchmarks.report import stamp, write_section
from tests.manager.fakes import call
from tests.support.redis_server import running_redis
from tests.support.stack import running_stack
from tools.payloads import newer_init

MANAGER_ENV = {"MANAGER_MAX_REQUESTS_PER_SECOND": "0", "MANAGER_MAX_CONNECTIONS": "0", "MANAGER_LOG_LEVEL": "WARNING"}
API_ENV = {"API_LOG_LEVEL": "WARNING"}
FIRST_ERRORS = 5
WINDOW_STARTS, WINDOW_ENDS = "window starts", "window ends"  # the child's stdout lines around the measured window


# ---------------------------------------------------------------------------------------------------------------
# The load generator (the child process)


class _Run:
    """One measured window shared by every connection of the generator."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = float("inf")  # set when the window starts
        self.latencies: list[float] = []
        self.errors = 0
        self.first_errors: list[str] = []
        self.open = 0
        self.last_reply = 0.0
        self.all_closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def error(self, text: str) -> None:
        self.errors += 1
        if len(self.first_errors) < FIRST_ERRORS:
            self.first_errors.append(text[:300])

    def closed(self) -> None:
        self.open -= 1
        if self.open == 0 and not self.all_closed.done():
            self.all_closed.set_result(None)


class _ClosedLoop(asyncio.Protocol):
    """One connection: sends a request, and from the callback that completes its reply, the next one."""

    def __init__(self, run: _Run, requests: Sequence[bytes], offset: int) -> None:
        self._run = run
        self._requests = requests
        self._count = offset
        self._buffer = bytearray()
        self._sent_at: float | None = None
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._run.open += 1

    def start(self) -> None:
        self._send()

    def _send(self) -> None:
        assert self._transport is not None
        now = time.perf_counter()
        if now >= self._run.deadline:
            self._sent_at = None
            self._transport.close()
            return
        self._sent_at = now
        self._transport.write(self._requests[self._count % len(self._requests)])
        self._count += 1

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        try:
            while (reply := self._reply()) is not None:
                self._answered(*reply)
        except ValueError as exc:
            self._run.error(f"unreadable reply: {exc}")
            assert self._transport is not None
            self._transport.close()

    def _reply(self) -> tuple[bool, str] | None:
        """The next complete reply in the buffer (consumed): (success, what failed); None: incomplete."""
        raise NotImplementedError

    def _answered(self, ok: bool, detail: str) -> None:
        now = time.perf_counter()
        if self._sent_at is None:
            self._run.error("a reply to no request")
            return
        self._run.latencies.append(now - self._sent_at)
        self._run.last_reply = now
        if not ok:
            self._run.error(detail)
        self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._sent_at is not None:
            self._run.error(f"connection lost before the reply: {exc!r}")
        self._run.closed()


class _FrameLoop(_ClosedLoop):
    """The manager's protocol: a 4-byte big-endian length, a JSON envelope."""

    def _reply(self) -> tuple[bool, str] | None:
        if len(self._buffer) < 4:
            return None
        end = 4 + int.from_bytes(self._buffer[:4], "big")
        if len(self._buffer) < end:
            return None
        body = bytes(self._buffer[4:end])
        del self._buffer[:end]
        response = json.loads(body).get("response", {})
        return response.get("status") == "success", body.decode(errors="replace")


class _HttpLoop(_ClosedLoop):
    """HTTP/1.1 keep-alive: a response is its head and ``Content-Length`` bytes of body."""

    _need: int | None = None
    _status = 0

    def _reply(self) -> tuple[bool, str] | None:
        if self._need is None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return None
            head = bytes(self._buffer[:end]).lower()
            at = head.find(b"\r\ncontent-length:")
            if at < 0:
                raise ValueError(f"no content-length in {head[:200]!r}")
            line_end = head.find(b"\r\n", at + 2)
            self._need = end + 4 + int(head[at + 17 : line_end if line_end >= 0 else len(head)])
            self._status = int(head[9:12])
        if len(self._buffer) < self._need:
            return None
        body = bytes(self._buffer[: self._need]) if self._status != 200 else b""
        del self._buffer[: self._need]
        self._need = None
        return self._status == 200, f"HTTP {self._status}: {body[-200:].decode(errors='replace')}"


async def _generate(factory: Callable[[_Run, int], _ClosedLoop], connections: int, port: int,
                    seconds: float) -> dict[str, Any]:
    run = _Run(seconds)
    loop = asyncio.get_running_loop()
    protocols: list[_ClosedLoop] = []
    for index in range(connections):  # in waves, so the accept backlog is never overrun
        try:
            _, protocol = await loop.create_connection(lambda index=index: factory(run, index),  # type: ignore[misc]
                                                       "127.0.0.1", port)
            protocols.append(protocol)
        except OSError as exc:
            run.error(f"connect: {exc!r}")
        if index % 100 == 99:
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    print(WINDOW_STARTS, flush=True)  # the parent reads the servers' CPU times now
    usage = resource.getrusage(resource.RUSAGE_SELF)
    begin = time.perf_counter()
    run.deadline = begin + seconds
    for protocol in protocols:
        protocol.start()
    try:
        await asyncio.wait_for(asyncio.shield(run.all_closed), seconds + 60)
    except TimeoutError:
        run.error(f"{run.open} connections still waiting for a reply 60 s after the window")
    end = max(run.last_reply, run.deadline)
    after = resource.getrusage(resource.RUSAGE_SELF)
    print(WINDOW_ENDS, flush=True)
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    latencies = sorted(run.latencies)

    def percentile(fraction: float) -> float:
        return latencies[min(len(latencies) - 1, round(fraction * (len(latencies) - 1)))] if latencies else 0.0

    return {"connections": len(protocols), "answered": len(latencies), "elapsed": end - begin,
            "p50": percentile(0.5), "p99": percentile(0.99), "max": latencies[-1] if latencies else 0.0,
            "errors": run.errors, "first_errors": run.first_errors, "cpu": cpu}


def _child(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["tcp", "http"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--requests", required=True, help="JSON list: manager commands (tcp) or paths (http)")
    args = parser.parse_args(argv)
    _raise_nofile(args.connections + 256)
    items = json.loads(args.requests)
    factory: Callable[[_Run, int], _ClosedLoop]
    if args.kind == "tcp":
        # Persistent connections: each request asks the manager to keep its connection open after the reply.
        frames = [encode_frame(json.dumps({**command, "keep_alive": True}).encode()) for command in items]
        factory = lambda run, index: _FrameLoop(run, frames, index)  # noqa: E731
    else:
        host = f"Host: 127.0.0.1:{args.port}\r\n"
        requests = [f"GET {path} HTTP/1.1\r\n{host}\r\n".encode() for path in items]
        factory = lambda run, index: _HttpLoop(run, requests, index)  # noqa: E731
    result = asyncio.run(_generate(factory, args.connections, args.port, args.seconds))
    print(json.dumps(result))


# ---------------------------------------------------------------------------------------------------------------
# The benchmark (the parent process)


def _raise_nofile(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(max(soft, wanted), hard) if hard != resource.RLIM_INFINITY else max(soft, wanted)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


class Sampler(threading.Thread):
    """Samples a process's RSS every 5 s and, optionally, its established connections to ``port`` every 0.2 s."""

    def __init__(self, process: psutil.Process, connections_to: int | None = None) -> None:
        super().__init__(daemon=True)
        self._process = process
        self._port = connections_to
        self.rss: list[float] = []
        self.max_connections = 0
        self._halt = threading.Event()

    def run(self) -> None:
        next_rss = 0.0
        while True:
            now = time.monotonic()
            if now >= next_rss:
                self.rss.append(_rss(self._process))
                next_rss = now + 5.0
            if self._port is not None:
                established = [c for process in _tree(self._process) for c in process.net_connections(kind="tcp")
                               if c.raddr and c.raddr.port == self._port and c.status == psutil.CONN_ESTABLISHED]
                self.max_connections = max(self.max_connections, len(established))
            if self._halt.wait(0.2):
                break
        self.rss.append(_rss(self._process))

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


def _tree(process: psutil.Process) -> list[psutil.Process]:
    """``process`` and its children (an API with API_WORKERS > 1 serves from its children)."""
    return [process, *process.children(recursive=True)]


def _cpu(process: psutil.Process) -> float:
    """CPU seconds of ``process`` and its children (the same long-lived children over a window)."""
    return sum(float(times.user + times.system) for times in (member.cpu_times() for member in _tree(process)))


def _rss(process: psutil.Process) -> float:
    """RSS of ``process`` and its children, MiB (summed: shared pages count once per process)."""
    return sum(member.memory_info().rss for member in _tree(process)) / 2**20


class Measured:
    """One row: the generator's summary plus the CPU shares of the servers over the same time."""

    def __init__(self, name: str, result: dict[str, Any], wall: float, servers: dict[str, float]) -> None:
        self.name = name
        self.result = result
        self.servers = servers  # CPU share of each server process over the run, 1.0 = one core
        self.load = os.getloadavg()[0]
        self.wall = wall

    @property
    def rate(self) -> float:
        return float(self.result["answered"]) / float(self.result["elapsed"])

    def row(self) -> str:
        r = self.result
        shares = ", ".join(f"{name} {100 * share:.0f}%" for name, share in self.servers.items())
        return (f"| {self.name} | {r['answered']:,} | {self.rate:,.0f} | {1000 * r['p50']:.1f} | {1000 * r['p99']:.1f} "
                f"| {1000 * r['max']:.1f} | {r['errors']} | {100 * r['cpu'] / r['elapsed']:.0f}% | {shares} "
                f"| {self.load:.2f} |")


def measure(name: str, kind: str, port: int, connections: int, seconds: float, requests: list[Any],
            servers: dict[str, psutil.Process]) -> Measured:
    """Runs the generator in a child process; the servers' CPU times are read when it says its window starts
    and ends (its stdout lines), so their shares cover the same window as its figures."""
    command = [sys.executable, "-m", "tests.benchmarks.load", "--child", kind, "--port", str(port), "--connections",
               str(connections), "--seconds", str(seconds), "--requests", json.dumps(requests)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None
        lines = iter(child.stdout.readline, "")
        if next(lines, "").strip() != WINDOW_STARTS:
            raise RuntimeError("the load generator failed before its window")
        before, started = {label: _cpu(process) for label, process in servers.items()}, time.perf_counter()
        if next(lines, "").strip() != WINDOW_ENDS:
            raise RuntimeError("the load generator failed in its window")
        after, wall = {label: _cpu(process) for label, process in servers.items()}, time.perf_counter() - started
        result: dict[str, Any] = json.loads(next(lines, "{}"))
        if child.wait(timeout=60) != 0 or not result:
            raise RuntimeError(f"the load generator exited with status {child.returncode}")
    return Measured(name, result, wall, {label: (after[label] - before[label]) / wall for label in servers})


def _rss_line(name: str, samples: list[float]) -> str:
    trail = ", ".join(f"{rss:.0f}" for rss in samples[:: max(1, len(samples) // 8)])
    return (f"{name} RSS every 5 s, MiB: first {samples[0]:.0f}, last {samples[-1]:.0f}, max {max(samples):.0f} "
            f"(samples: {trail}).")


def run(seconds: float, clients: int, connections: int, pool_size: int, nice: int, api_workers: list[int],
        log: Any) -> str:
    nofile = _raise_nofile(clients * 2 + 256)  # the manager (a child) inherits the raised limit
    quiet_load = os.getloadavg()[0]
    with running_redis() as server, running_stack(server.url) as stack:
        stack.start_manager(**MANAGER_ENV)
        stack.start_worker("bench", "pipelines.cpu", concurrency=2, nice=nice)
        assert stack.manager is not None
        manager = psutil.Process(stack.manager.pid)
        assert server.process is not None
        redis_process = psutil.Process(server.process.pid)
        pipeline_ids = []
        for _ in range(2):
            reply = call(stack.port, newer_init("data/media/vtest.avi", max_fps=1))
            if reply["response"]["status"] != "success":
                raise RuntimeError(f"init failed: {reply}")
            pipeline_ids.append(reply["pipeline_id"])
        time.sleep(2)

        manager_sampler = Sampler(manager)
        manager_sampler.start()
        commands = [{"type": "list_pipelines"}, {"type": "status", "pipeline_id": pipeline_ids[0]},
                    {"type": "list_pipelines"}, {"type": "status", "pipeline_id": pipeline_ids[1]}]
        tcp = measure(f"TCP: {clients:,} concurrent clients, persistent connections, status / list_pipelines "
                      f"alternately, {seconds:.0f} s", "tcp", stack.port, clients, seconds, commands,
                      {"manager": manager, "Redis": redis_process})
        manager_sampler.stop()
        log(f"TCP: {tcp.row()}; errors {tcp.result['first_errors']}")

        http, api_samplers = [], {}
        for workers in api_workers:
            name = f"api-{workers}"
            url = stack.start_api(name, **API_ENV, API_MANAGER_POOL_SIZE=str(pool_size), API_WORKERS=str(workers))
            api_port = int(url.rsplit(":", 1)[1])
            api = psutil.Process(stack.apis[name].pid)
            time.sleep(1)  # every worker process up (the first that answered /healthz may be alone so far)
            api_samplers[workers] = sampler = Sampler(api, connections_to=stack.port)
            sampler.start()
            processes = "1 process" if workers == 1 else f"{workers} processes"
            for label, paths in [
                ("`GET /healthz` (no manager call)", ["/healthz"]),
                ("`GET /inference_pipelines/list`", ["/inference_pipelines/list"]),
                ("`GET /inference_pipelines/{id}/status`",
                 [f"/inference_pipelines/{i}/status" for i in pipeline_ids]),
            ]:
                measured = measure(f"HTTP API ({processes}): {connections} keep-alive connections, {label}, "
                                   f"{seconds:.0f} s", "http", api_port, connections, seconds, paths,
                                   {"API": api, "manager": manager, "Redis": redis_process})
                log(f"HTTP: {measured.row()}; errors {measured.result['first_errors']}")
                http.append(measured)
            sampler.stop()
            stack.stop_api(name)
        manager_after = manager.memory_info().rss / 2**20
        for pipeline_id in pipeline_ids:
            call(stack.port, {"type": "terminate", "pipeline_id": pipeline_id})
    lines = [
        "## Load", "", stamp(), "",
        f"Real processes: redis-server, the manager ({', '.join(f'`{k}={v}`' for k, v in MANAGER_ENV.items())}; "
        f"RLIMIT_NOFILE {nofile}), one worker (`nice -n {nice}`) running 2 pipelines on vtest.avi at max_fps 1, "
        f"and for HTTP `python -m services.api` (`API_MANAGER_POOL_SIZE={pool_size}` persistent manager connections, "
        f"{', '.join(f'`{k}={v}`' for k, v in API_ENV.items())}; `API_REDIS_URL` set, so list and status are "
        "answered from Redis as the manager would answer them, and the manager only when they cannot be; "
        f"`API_WORKERS` {' then '.join(str(w) for w in api_workers)}: that many processes on one socket). "
        "The load generator is a process of its own on "
        "the same host: raw asyncio protocols, one per connection, each writing its next request from the callback "
        "that completes the previous reply. CPU columns: "
        "CPU seconds over wall seconds of the run, 100% = one core; load average: the host's 1-minute one at the end "
        f"of the run ({quiet_load:.2f} before the benchmark started).",
        "",
        "| load | requests answered | per second | p50 ms | p99 ms | max ms | errors | generator CPU | server CPU "
        "| load avg |",
        "|---|---|---|---|---|---|---|---|---|---|",
        tcp.row(),
        *(measured.row() for measured in http),
        "",
        "The API's established connections to the manager during the HTTP runs: at most "
        + ", ".join(f"{sampler.max_connections} with {workers} process(es)"
                    for workers, sampler in api_samplers.items())
        + f" (sampled every 0.2 s; each process's pool holds at most {pool_size}; the pool connects on first use, "
        "so 0 means no request of these runs went to the manager: every list and status was answered from Redis). "
        "CPU and RSS of the API: its processes summed.",
        _rss_line("Manager, during the TCP load:", manager_sampler.rss),
        f"Manager after the HTTP load too: {manager_after:.0f} MiB.",
        *(_rss_line(f"API ({workers} process(es)), during the HTTP load:", sampler.rss)
          for workers, sampler in api_samplers.items()),
    ]
    errors = [error for measured in (tcp, *http) for error in measured.result["first_errors"]]
    if errors:
        lines += ["", "First errors: " + "; ".join(errors[:FIRST_ERRORS])]
    return "\n".join(lines)


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        _child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--http-connections", type=int, default=50)
    parser.add_argument("--pool-size", type=int, default=8, help="the API's API_MANAGER_POOL_SIZE")
    parser.add_argument("--nice", type=int, default=10, help="nice value of the worker (it shares the host)")
    parser.add_argument("--api-workers", default="1,2", help="the API's API_WORKERS: one HTTP run per value")
    args = parser.parse_args()
    markdown = run(args.seconds, args.clients, args.http_connections, args.pool_size, args.nice,
                   [int(value) for value in args.api_workers.split(",")],
                   lambda text: print(text, file=sys.stderr, flush=True))
    write_section(args.output, "load", markdown)
    print(markdown)


if __name__ == "__main__":
    main()
