"""Fleet scale: one Redis and one manager under 10 -> 25 -> 50 -> 100 -> 200 simulated workers of 16 pipelines each.

How far does the control plane go on one Redis? The video is not the question here, so there is none: a
fleet simulator (``tests.support.fleet``) stands in for the workers with their real Redis traffic, their
registrations each second, their pipelines' claim, init reply and fenced tick (heartbeat, state, report)
each second. Everything else is real: redis-server, ``python -m services.manager``, the TCP client.

Theory of operation
-------------------
At each fleet size the benchmark

1. grows the simulated fleet to that many workers (each has registered before the next step);
2. INITs the new pipelines (16 per new worker) through the real TCP client
   (``AsyncManagerClient.initialise``), ``--init-concurrency`` at a time, each timed from its connection to
   the success reply: admission over every live registration, the record, the Celery message on the device
   queue, a simulated worker's ``BRPOP``, its claim and reply;
3. waits until the simulator runs every pipeline, then two seconds more (every report fresh, a few sweeps);
4. measures for ``--seconds``: a fixed, small client load (``--status-rate`` STATUS of random pipelines and
   ``--list-rate`` LIST_PIPELINES per second, an open loop: each request starts on its schedule on its own
   connection, whatever the previous one is doing) and, over the same window, Redis's commands per second
   and CPU (``INFO stats`` / ``INFO cpu`` / ``INFO commandstats`` deltas), the manager's and the simulator's
   CPU (psutil), this process's own (getrusage: the client load and the sampling), the host's, the reaper's
   sweeps (the manager's ``vsim_manager_reaper_sweep_seconds`` histogram: mean over the window from its sum
   and count; the last-sweep gauge sampled each second: max), and the simulated ticks' lateness against their
   one-second schedule and round trip to Redis (the simulator's own ``stats``).

A simulator that falls behind would understate the load it stands for, so its CPU share and its ticks'
lateness are in the table: a tick sent late by more than a few tens of milliseconds means it was the bottleneck.

From the curve the benchmark computes, not a person: a least-squares line through Redis's CPU share against
the number of workers, extrapolated to one full core (Redis executes commands on one thread); the same for
the manager's CPU; the same for the reaper's sweep time against its interval (``MANAGER_REAPER_INTERVAL``);
and the latency knee, the first size at which a p99 exceeds twice its value at the smallest size (and by
more than 5 ms). The smallest of the three extrapolations is the fleet one Redis and one manager carry.

Usage: ``python -m tests.benchmarks.fleet [--output docs/benchmarks.md] [--sizes 10,25,50,100,200]
[--pipelines-per-worker 16] [--seconds 10] [--init-concurrency 8] [--status-rate 20] [--list-rate 2]
[--sim-processes 1]``
"""

import argparse
import asyncio
import os
import random
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import redis
from prometheus_client.parser import text_string_to_metric_families

from services.client import AsyncManagerClient
from tests.benchmarks.report import cpu_seconds, host_busy, stamp, write_section
from tests.support.fleet import FleetHandle, running_fleet
from tests.support.redis_server import free_port, running_redis
from tests.support.stack import running_stack
from tools.payloads import newer_init

SIZES = (10, 25, 50, 100, 200)
MANAGER_ENV = {"MANAGER_MAX_REQUESTS_PER_SECOND": "0", "MANAGER_MAX_CONNECTIONS": "0", "MANAGER_LOG_LEVEL": "WARNING"}
REAPER_INTERVAL = 1.0  # the manager's default MANAGER_REAPER_INTERVAL, which the benchmark keeps
KNEE_FACTOR, KNEE_FLOOR = 2.0, 0.005  # a p99 is past the knee above twice its first value and 5 ms more
FIRST_ERRORS = 5
BUSY_HOST = 0.5  # a 1-minute load average at or above this before the run: the figures were taken on a busy host
VIDEO = "data/media/vtest.avi"  # named in the INITs (the manager checks it exists); nobody reads it


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))] if ordered else float("nan")


@dataclass
class Timings:
    """Latencies (seconds) of one kind of request, and its failures."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_errors: list[str] = field(default_factory=list)

    def failed(self, text: str) -> None:
        self.errors += 1
        if len(self.first_errors) < FIRST_ERRORS:
            self.first_errors.append(text[:300])

    def ms(self, fraction: float) -> float:
        return 1000 * percentile(self.latencies, fraction)


async def _timed(timings: Timings, call: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    try:
        result = await call()
    except Exception as exc:
        timings.failed(f"{type(exc).__name__}: {exc}")
        return None
    timings.latencies.append(time.perf_counter() - started)
    return result


async def start_pipelines(port: int, count: int, concurrency: int) -> tuple[Timings, list[str]]:
    """INITs ``count`` pipelines, ``concurrency`` at a time; their timings and ids."""
    client = AsyncManagerClient(port=port)
    timings, ids = Timings(), []
    slots = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with slots:
            reply = await _timed(timings, lambda: client.initialise(newer_init(VIDEO)))
            if reply is not None and reply.context.pipeline_id:
                ids.append(reply.context.pipeline_id)

    await asyncio.gather(*(one() for _ in range(count)))
    return timings, ids


async def client_load(port: int, pipeline_ids: list[str], seconds: float, status_rate: float,
                      list_rate: float, tick: Callable[[], None]) -> tuple[Timings, Timings]:
    """STATUS and LIST_PIPELINES on their schedules (open loop) for ``seconds``; ``tick`` runs once a second."""
    client = AsyncManagerClient(port=port, timeout=30)
    status, listing = Timings(), Timings()
    pending: set[asyncio.Task[Any]] = set()
    rng = random.Random(16)

    async def schedule(rate: float, request: Callable[[], Any]) -> None:
        if rate <= 0:
            return
        start = time.perf_counter()
        for index in range(int(seconds * rate)):
            await asyncio.sleep(max(0.0, start + index / rate - time.perf_counter()))
            task = asyncio.create_task(request())
            pending.add(task)
            task.add_done_callback(pending.discard)

    async def each_second() -> None:
        for _ in range(int(seconds)):
            await asyncio.sleep(1.0)
            await asyncio.to_thread(tick)

    await asyncio.gather(
        schedule(status_rate, lambda: _timed(status, lambda: client.status(rng.choice(pipeline_ids)))),
        schedule(list_rate, lambda: _timed(listing, client.list_pipelines)),
        each_second(),
    )
    if pending:
        await asyncio.wait(pending, timeout=60)
    return status, listing


class ManagerMetricsReader:
    """The manager's reaper metrics from its /metrics endpoint."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.last_sweeps: list[float] = []

    def read(self) -> dict[str, float]:
        text = httpx.get(self.url, timeout=10).text
        values = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name.startswith("vsim_manager_reaper_") and not sample.labels:
                    values[sample.name] = sample.value
        return values

    def sample_last_sweep(self) -> None:
        self.last_sweeps.append(self.read().get("vsim_manager_reaper_last_sweep_seconds", float("nan")))


@dataclass
class Window:
    """What one measured window saw at one fleet size."""

    workers: int
    pipelines: int
    inits: Timings
    status: Timings
    listing: Timings
    seconds: float
    redis_commands: float  # per second
    redis_cpu: float  # share of one core
    commands: dict[str, tuple[float, float]]  # name -> (calls per second, share of Redis's command time)
    manager_cpu: float
    simulator_cpu: float
    client_cpu: float
    host_cpu: float  # share of the whole host (all cores)
    sweep_mean: float  # seconds
    sweep_max: float
    sweep_pipelines: float
    fleet: dict[str, Any]


def _redis_snapshot(client: redis.Redis) -> dict[str, Any]:
    info: dict[str, Any] = client.info("all")
    commands = {name.removeprefix("cmdstat_"): (float(value["calls"]), float(value["usec"]))
                for name, value in info.items() if name.startswith("cmdstat_")}
    return {"commands": float(info["total_commands_processed"]),
            "cpu": float(info["used_cpu_sys"]) + float(info["used_cpu_user"]), "cmdstat": commands}


def measure(size: int, pipelines: int, inits: Timings, port: int, pipeline_ids: list[str], args: argparse.Namespace,
            redis_client: redis.Redis, manager: psutil.Process, fleet: FleetHandle,
            metrics: ManagerMetricsReader) -> Window:
    simulators = [psutil.Process(pid) for pid in fleet.pids]
    fleet.stats()  # the simulator's tick samples start with the window
    metrics.last_sweeps.clear()
    before_redis, before_metrics = _redis_snapshot(redis_client), metrics.read()
    before_cpu = cpu_seconds([manager, *simulators])
    before_self, before_host, started = resource.getrusage(resource.RUSAGE_SELF), host_busy(), time.perf_counter()
    status, listing = asyncio.run(client_load(port, pipeline_ids, args.seconds, args.status_rate, args.list_rate,
                                              metrics.sample_last_sweep))
    wall = time.perf_counter() - started
    after_self, after_host = resource.getrusage(resource.RUSAGE_SELF), host_busy()
    after_cpu = cpu_seconds([manager, *simulators])
    after_redis, after_metrics = _redis_snapshot(redis_client), metrics.read()
    stats = fleet.stats()

    def share(pids: list[int]) -> float:
        return sum(after_cpu.get(pid, 0.0) - before_cpu.get(pid, 0.0) for pid in pids) / wall

    usec = {name: after_redis["cmdstat"][name][1] - before_redis["cmdstat"].get(name, (0.0, 0.0))[1]
            for name in after_redis["cmdstat"]}
    total_usec = sum(usec.values()) or 1.0
    commands = {name: ((after_redis["cmdstat"][name][0] - before_redis["cmdstat"].get(name, (0.0, 0.0))[0]) / wall,
                       usec[name] / total_usec) for name in after_redis["cmdstat"]}
    sweeps = (after_metrics.get("vsim_manager_reaper_sweep_seconds_count", 0.0)
              - before_metrics.get("vsim_manager_reaper_sweep_seconds_count", 0.0))
    swept = (after_metrics.get("vsim_manager_reaper_sweep_seconds_sum", 0.0)
             - before_metrics.get("vsim_manager_reaper_sweep_seconds_sum", 0.0))
    client_cpu = (after_self.ru_utime - before_self.ru_utime) + (after_self.ru_stime - before_self.ru_stime)
    return Window(
        workers=size, pipelines=pipelines, inits=inits, status=status, listing=listing, seconds=wall,
        redis_commands=(after_redis["commands"] - before_redis["commands"]) / wall,
        redis_cpu=(after_redis["cpu"] - before_redis["cpu"]) / wall, commands=commands,
        manager_cpu=share([manager.pid]), simulator_cpu=share([s.pid for s in simulators]),
        client_cpu=client_cpu / wall, host_cpu=(after_host - before_host) / wall / (os.cpu_count() or 1),
        sweep_mean=swept / sweeps if sweeps else float("nan"),
        sweep_max=max((s for s in metrics.last_sweeps if s == s), default=float("nan")),
        sweep_pipelines=after_metrics.get("vsim_manager_reaper_last_sweep_pipelines", 0.0), fleet=stats,
    )


def wait_running(fleet: FleetHandle, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (running := fleet.stats()["running"]) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the simulator runs {running} of {count} pipelines after {timeout:.0f} s")
        time.sleep(0.5)


# ---------------------------------------------------------------------------------------------------------------
# The figures computed from the curve


def line(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least squares ``y = slope * x + intercept``."""
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread if spread else 0.0
    return slope, mean_y - slope * mean_x


def reach(xs: list[float], ys: list[float], limit: float) -> float | None:
    """Where the fitted line reaches ``limit`` (None: it does not grow)."""
    slope, intercept = line(xs, ys)
    return (limit - intercept) / slope if slope > 0 else None


def knee(windows: list[Window], p99: Callable[[Window], float]) -> Window | None:
    """The first window whose p99 exceeds twice the first window's, and by more than ``KNEE_FLOOR``."""
    base = p99(windows[0])
    for window in windows[1:]:
        value = p99(window)
        if value > KNEE_FACTOR * base and value - base > KNEE_FLOOR:
            return window
    return None


def conclusion(windows: list[Window], pipelines_per_worker: int) -> str:
    workers = [float(w.workers) for w in windows]
    limits = {
        "Redis's CPU": reach(workers, [w.redis_cpu for w in windows], 1.0),
        "the manager's CPU": reach(workers, [w.manager_cpu for w in windows], 1.0),
        f"the reaper's sweep (its {REAPER_INTERVAL:g} s interval)": reach(
            workers, [w.sweep_mean for w in windows], REAPER_INTERVAL),
    }
    slope, _ = line(workers, [w.redis_cpu for w in windows])

    def workers_text(value: float | None) -> str:
        if value is None:
            return "never (it does not grow with the fleet)"
        return f"about {value:,.0f} workers ({value * pipelines_per_worker:,.0f} pipelines)"

    parts = [f"{name} reaches one full core at {workers_text(value)}" if "CPU" in name
             else f"{name} fills its interval at {workers_text(value)}" for name, value in limits.items()]
    bound = {name: value for name, value in limits.items() if value is not None}
    first = min(bound, key=lambda name: bound[name]) if bound else None
    text = (f"Extrapolated with a least-squares line through the {len(windows)} sizes "
            f"(Redis: {100 * slope * 100:.1f}% of a core per 100 workers): " + "; ".join(parts) + ". ")
    if first is not None:
        text += (f"So one Redis and one manager carry about {bound[first]:,.0f} workers "
                 f"({bound[first] * pipelines_per_worker:,.0f} pipelines) of this kind, first limited by {first}. ")
    knees = []
    measures: tuple[tuple[str, Callable[[Window], float]], ...] = (
        ("INIT", lambda w: percentile(w.inits.latencies, 0.99)),
        ("STATUS", lambda w: percentile(w.status.latencies, 0.99)),
        ("LIST_PIPELINES", lambda w: percentile(w.listing.latencies, 0.99)),
        ("the workers' tick round trip", lambda w: float(w.fleet["round_trip_p99"])),
    )
    for name, p99 in measures:
        found = knee(windows, p99)
        if found is None:
            knees.append(f"{name} p99 has none up to {windows[-1].workers} workers")
        else:
            knees.append(f"{name} p99 bends at {found.workers} workers ({1000 * p99(found):.1f} ms against "
                         f"{1000 * p99(windows[0]):.1f} ms at {windows[0].workers})")
    return text + "Latency knee (p99 above twice its first value): " + "; ".join(knees) + "."


# ---------------------------------------------------------------------------------------------------------------
# The benchmark


def _raise_nofile(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(max(soft, wanted), hard) if hard != resource.RLIM_INFINITY else max(soft, wanted)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def run(args: argparse.Namespace, log: Callable[[str], None]) -> str:
    sizes = [int(size) for size in args.sizes.split(",")]
    _raise_nofile(4 * max(sizes) + 1024)  # redis-server, the manager and the simulator inherit it
    quiet_load = os.getloadavg()[0]
    windows: list[Window] = []
    metrics_port = free_port()
    with running_redis() as server, running_stack(server.url) as stack:
        stack.start_manager(**MANAGER_ENV, MANAGER_METRICS_PORT=str(metrics_port))
        assert stack.manager is not None
        manager = psutil.Process(stack.manager.pid)
        redis_client = redis.Redis.from_url(server.url)
        metrics = ManagerMetricsReader(metrics_port)
        pipeline_ids: list[str] = []
        with running_fleet(server.url, stack.log_dir, args.sim_processes, args.pipelines_per_worker) as fleet:
            for size in sizes:
                begun = time.perf_counter()
                fleet.grow(size)
                wanted = size * args.pipelines_per_worker - len(pipeline_ids)
                inits, ids = asyncio.run(start_pipelines(stack.port, wanted, args.init_concurrency))
                pipeline_ids += ids
                if inits.errors:
                    log(f"{size} workers: {inits.errors} INITs failed, e.g. {inits.first_errors}")
                wait_running(fleet, len(pipeline_ids), timeout=60 + wanted / 20)
                time.sleep(2)
                window = measure(size, len(pipeline_ids), inits, stack.port, pipeline_ids, args, redis_client,
                                 manager, fleet, metrics)
                windows.append(window)
                log(f"{size} workers, {len(pipeline_ids)} pipelines ({time.perf_counter() - begun:.0f} s): "
                    f"{row(window)}")
        redis_client.close()
    return markdown(windows, args, quiet_load)


def row(w: Window) -> str:
    f = w.fleet
    return (f"| {w.workers} | {w.pipelines:,} | {w.inits.ms(0.5):.1f} / {w.inits.ms(0.99):.1f} "
            f"| {w.status.ms(0.5):.1f} / {w.status.ms(0.99):.1f} | {w.listing.ms(0.5):.1f} / {w.listing.ms(0.99):.1f} "
            f"| {w.inits.errors + w.status.errors + w.listing.errors} | {w.redis_commands:,.0f} "
            f"| {100 * w.redis_cpu:.1f}% | {100 * w.manager_cpu:.1f}% "
            f"| {1000 * w.sweep_mean:.1f} / {1000 * w.sweep_max:.1f} "
            f"| {1000 * f['round_trip_p50']:.1f} / {1000 * f['round_trip_p99']:.1f} "
            f"| {100 * w.simulator_cpu:.1f}% (late p99 {1000 * f['late_p99']:.1f} ms) "
            f"| {100 * w.client_cpu:.1f}% | {100 * w.host_cpu:.0f}% |")


def markdown(windows: list[Window], args: argparse.Namespace, quiet_load: float) -> str:
    last = windows[-1]
    top = sorted(last.commands.items(), key=lambda item: -item[1][1])[:6]
    errors = [e for w in windows for e in (*w.inits.first_errors, *w.status.first_errors, *w.listing.first_errors,
                                           *w.fleet["first_errors"])]
    late_max = max(float(w.fleet["late_p99"]) for w in windows)
    simulator_max = max(w.simulator_cpu for w in windows)
    lines = [
        "## Fleet scale (control plane)", "", stamp(), "",
        f"One redis-server and one manager (`python -m services.manager`, "
        f"{', '.join(f'`{k}={v}`' for k, v in MANAGER_ENV.items())}, reaper every {REAPER_INTERVAL:g} s) under a "
        f"simulated fleet (`tests/support/fleet.py`, {args.sim_processes} process(es)): each worker registers every "
        f"second and takes its pipelines from the device queue with `BRPOP`; each of its "
        f"{args.pipelines_per_worker} pipelines is claimed with the real ownership script, answers its INIT with "
        "`push_reply` and writes the real fenced tick (heartbeat, state, a 2 KB status report) every second; no video, "
        "no results, no Celery events. INITs through the real TCP client, "
        f"{args.init_concurrency} at a time; then for {args.seconds:g} s a fixed client load of "
        f"{args.status_rate:g} STATUS (random pipeline) and {args.list_rate:g} LIST_PIPELINES per second, "
        "each on its own connection, started on schedule. CPU: CPU seconds over the window's wall seconds, "
        "100% = one core (host: share of all cores). Redis: `INFO` deltas over the window (commands per second: "
        "`total_commands_processed`, which counts the commands scripts run too). Reaper sweep: mean "
        "from the manager's histogram over the window / max of its last-sweep gauge sampled each second. "
        "Tick round trip: a simulated pipeline's fenced write, as the workers see Redis. "
        f"Host 1-minute load average before the run: {quiet_load:.2f}.",
        *([] if quiet_load < BUSY_HOST else [
            "", f"The host was not quiet (load average {quiet_load:.2f} before the run, on {os.cpu_count()} cores): "
            "other work shared its CPUs, so latencies include waiting for one and the CPU shares may run high."]),
        "",
        "| workers | pipelines | INIT p50 / p99 ms | STATUS p50 / p99 ms | LIST p50 / p99 ms | errors "
        "| Redis cmd/s | Redis CPU | manager CPU | reaper sweep mean / max ms | tick round trip p50 / p99 ms "
        "| simulator CPU | client CPU | host CPU |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        *(row(window) for window in windows),
        "",
        conclusion(windows, args.pipelines_per_worker),
        "",
        f"The simulator was {'not ' if simulator_max < 0.8 and late_max < 0.05 else ''}the bottleneck: at most "
        f"{100 * simulator_max:.0f}% of a core, its ticks sent at most {1000 * late_max:.1f} ms late (p99) against "
        "their one-second schedule.",
        "",
        f"Redis's commands at {last.workers} workers, by share of its command time (`INFO commandstats`; the "
        "commands a script runs count in the script's time too):",
        "",
        "| command | calls per second | share of command time |",
        "|---|---|---|",
        *(f"| `{name}` | {calls:,.0f} | {100 * part:.1f}% |" for name, (calls, part) in top),
    ]
    if errors:
        lines += ["", "First errors: " + "; ".join(errors[:FIRST_ERRORS])]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--sizes", default=",".join(str(size) for size in SIZES), help="workers at each step")
    parser.add_argument("--pipelines-per-worker", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window at each size")
    parser.add_argument("--init-concurrency", type=int, default=8, help="INITs in flight at once")
    parser.add_argument("--status-rate", type=float, default=20.0, help="STATUS requests per second")
    parser.add_argument("--list-rate", type=float, default=2.0, help="LIST_PIPELINES requests per second")
    parser.add_argument("--sim-processes", type=int, default=1, help="fleet simulator processes")
    args = parser.parse_args()
    text = run(args, lambda message: print(message, file=sys.stderr, flush=True))
    write_section(args.output, "fleet", text)
    print(text)


if __name__ == "__main__":
    main()
