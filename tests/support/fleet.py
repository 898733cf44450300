"""A fleet simulator: the control-plane traffic of many workers and their pipelines, without video.

Theory of operation
-------------------
One asyncio process (``python -m tests.support.fleet``; a benchmark may start a few) stands in for
any number of workers. Each simulated worker does against the real Redis what a real worker and its
pipeline tasks do there, with the project's own scripts and schemas, and nothing else:

- **Registration.** Every second (``services.worker.registration.PERIOD``) it publishes its
  registration (``services.core.registration.WorkerRegistration``: queue, slots, busy slots, the
  host's RAM, the current format version, consuming) with the registry's own publishing call
  (``services.infra.registry.publish``), TTL 5 s. A stop withdraws it with ``registry.withdraw``.
- **Consuming.** While it has a free slot it waits on its device queue with ``BRPOP`` (1 s
  timeout) on the queue's list and its priority lists, as Celery's Redis transport does: the
  message is kombu's JSON envelope, its body Celery protocol 2 (``[args, kwargs, embed]``), base64.
  Like kombu it books the delivery in ``unacked`` / ``unacked_index`` and removes it again on the
  (early) acknowledgement. A full worker (every slot busy) stops consuming, as a prefork worker
  without prefetch does.
- **A pipeline task.** The task's kwargs (``pipeline_id``, ``epoch``, ``spec``, ``reply_to``) are
  handled like ``services.worker.tasks`` / ``runner`` do: the spec is loaded
  (``plan.load_task_spec``), the record claimed with ``services.worker.ownership.Ownership.claim`` (the
  real claim script, through a synchronous client in a thread), the init reply pushed with
  ``services.worker.replies.push_reply``; then, like the supervisor, one fenced write a second:
  ``Ownership.tick`` with heartbeat (TTL 3 s), state and a status report of the real schema (about
  2 KB of JSON, counters moving, ``reported_at`` fresh). The desired state it reads back is applied
  (MUTED / RUNNING); TERMINATED releases the pipeline with ``Ownership.release`` and frees the
  slot. A tick refused by the fence (another epoch, or the record gone) ends the simulated task
  without another write.

What is left out: video, results (no stream writes), the per-pipeline control subscription (a
MUTE / TERMINATE reaches the task through the desired state it reads back each tick instead, as a
lost pub/sub message would; ``PUBLISH`` then reaches nobody and the manager answers at once), the
restore of a record Redis lost, and Celery's own traffic (task events, worker heartbeats, gossip,
the remote-control mailbox). All of a worker's pipelines share one Redis connection, plus one for
its ``BRPOP``.

The hot path (registrations, ticks, ``BRPOP``) goes through a minimal RESP protocol on asyncio
(commands packed and replies parsed by hiredis) so that one process can carry thousands of
pipelines; every tick is a command of its own, never batched with another pipeline's. What a
registration or a tick sends is not written down here: the real code (``registry.publish``,
``Ownership.tick`` / ``release``) is called on a :class:`Recorder` that captures its script call
(script, keys, arguments), and exactly that is sent, so the simulator follows the real scripts
and key layouts as they change. Each tick
records how late it was sent against its schedule (the simulator falling behind) and its round trip
(Redis as the fleet sees it); ``stats`` reports both.

Control (one line each on stdin, answered on stdout): ``grow FIRST COUNT`` adds the workers with
those indices and answers ``grown N`` once each has registered; ``stats`` answers one JSON line and
resets the tick samples; ``stop`` withdraws every registration and answers ``stopped``.
:func:`running_fleet` runs such processes for a test or a benchmark.
"""

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import os
import random
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import hiredis
import psutil
import redis
from pydantic import ValidationError

from services.core import formats
from services.core.errors import InvalidPayloadError, OperationError, failure_response, invalid_payload_from
from services.core.formats import FormatError
from services.core.metrics import HistogramCounts, PipelineMetrics, SinkMetrics, SourceMetrics
from services.core.plan import load_task_spec
from services.core.records import DesiredState, PipelineState
from services.core.registration import WorkerRegistration
from services.core.tasks import RUN_PIPELINE, queue_for
from services.infra import registry
from services.worker import ownership as ownership_module
from services.worker.ownership import HEARTBEAT_TTL, TERMINATION_REQUESTED, Ownership
from services.worker.registration import PERIOD as REGISTRATION_PERIOD
from services.worker.registration import TTL as REGISTRATION_TTL
from services.worker.replies import SUCCESS, push_reply

ROOT = Path(__file__).resolve().parents[2]
TICK_PERIOD = 1.0  # seconds, services.worker.supervisor.PERIOD (not imported: it loads the engine)
KOMBU_PRIORITY_SEPARATOR = "\x06\x16"
KOMBU_PRIORITY_STEPS = (3, 6, 9)  # kombu's default steps besides 0 (the queue's own list)
BRPOP_TIMEOUT = 1  # seconds, kombu's
REGISTER_TIMEOUT = 30.0  # seconds a new worker has to publish its first registration
MIB = 2**20
FIRST_ERRORS = 5
_TERMINATED_BEFORE_START = (TERMINATION_REQUESTED, f"pipeline is already {PipelineState.TERMINATED.value}")


class ReplyError(Exception):
    """Redis answered a command with an error."""


class Resp(asyncio.Protocol):
    """One Redis connection: commands written as they come, replies matched to them in order."""

    def __init__(self) -> None:
        self._reader = hiredis.Reader()
        self._waiting: deque[asyncio.Future[Any]] = deque()
        self._transport: asyncio.Transport | None = None
        self.closed = False

    @classmethod
    async def connect(cls, host: str, port: int) -> "Resp":
        _, protocol = await asyncio.get_running_loop().create_connection(cls, host, port)
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def command(self, *args: str | bytes | int | float) -> "asyncio.Future[Any]":
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.closed or self._transport is None:
            future.set_exception(ConnectionError("the Redis connection is closed"))
            return future
        self._waiting.append(future)
        self._transport.write(hiredis.pack_command(args))  # type: ignore[arg-type]  # its stub: a 1-tuple
        return future

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not False:
            future = self._waiting.popleft()
            if future.done():
                continue
            if isinstance(reply, hiredis.ReplyError):
                future.set_exception(ReplyError(str(reply)))
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_exception(ConnectionError(f"the Redis connection was lost: {exc!r}"))

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class Script:
    """A Lua script run by its SHA1 (``EVALSHA``), by its text when the server does not know it yet."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()

    async def __call__(self, connection: Resp, script_keys: Sequence[str], args: Sequence[str | int | float]) -> Any:
        try:
            return await connection.command("EVALSHA", self.sha, len(script_keys), *script_keys, *args)
        except ReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            return await connection.command("EVAL", self.text, len(script_keys), *script_keys, *args)


class Captured(Exception):
    """A script call the real code made on the :data:`RECORDER`: the script, its keys and its arguments."""

    def __init__(self, script: Script, script_keys: list[str], args: list[Any]) -> None:
        super().__init__(script.sha)
        self.script, self.keys, self.arguments = script, script_keys, args


class _CapturingScript:
    def __init__(self, script: Script) -> None:
        self._script = script

    def __call__(self, keys: Sequence[str] = (), args: Sequence[Any] = (), client: Any = None) -> Any:
        raise Captured(self._script, list(keys), list(args))


class Recorder:
    """Stands in for the ``redis.Redis`` the real code registers its Lua scripts on: running one raises
    :class:`Captured` instead of sending it, so the simulator sends exactly what the real code would
    (the same script, keys and arguments, whatever they become) on its own connection."""

    def __init__(self) -> None:
        self._scripts: dict[str, Script] = {}

    def register_script(self, text: str) -> _CapturingScript:
        if text not in self._scripts:
            self._scripts[text] = Script(text)
        return _CapturingScript(self._scripts[text])


RECORDER = Recorder()


def capture(call: Callable[..., object], *args: Any) -> Captured:
    """The script call ``call(*args)`` makes on the :data:`RECORDER` (it must make one)."""
    try:
        call(*args)
    except Captured as captured:
        return captured
    raise RuntimeError("the call ran no script")


async def send(connection: Resp, captured: Captured) -> Any:
    """Runs a captured script call on ``connection``; the script's reply."""
    return await captured.script(connection, captured.keys, captured.arguments)


class Samples:
    """Tick lateness and round trips (seconds) since the last ``stats``, and the counters."""

    def __init__(self) -> None:
        self.late: list[float] = []
        self.round_trips: list[float] = []
        self.ticks = 0
        self.claimed = 0
        self.refused = 0
        self.ended = 0
        self.errors = 0
        self.first_errors: list[str] = []

    def error(self, text: str) -> None:
        self.errors += 1
        if len(self.first_errors) < FIRST_ERRORS:
            self.first_errors.append(text[:300])


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))] if ordered else 0.0


def report_template(pipeline_id: str, epoch: int, owner: str) -> dict[str, Any]:
    """A status report of the real schema (``InferencePipeline.status_report`` plus the supervisor's fields)
    for one file source at 25 fps; :func:`advance` moves its counters each tick."""
    histogram = HistogramCounts(counts=[0, 0, 0, 120, 860, 310, 40, 5, 0, 0, 0, 0, 0, 0, 0, 0], sum=41.2)
    metrics = PipelineMetrics(
        sources=[SourceMetrics(source_id=0, frames_decoded=1335, frames_processed=1335,
                               frames_dropped={"max_fps": 0, "buffer_full": 0}, decode=histogram,
                               inference=histogram, frame_age=histogram)],
        sinks=[SinkMetrics(name="redis_stream", delivered=1335, dropped={"queue_full": 0, "sink_error": 0})],
    ).model_dump(mode="json")
    return {
        "video_source_status_updates": [
            {"timestamp": "2026-01-01T00:00:00.000000+00:00", "severity": 20, "event_type": "SOURCE_STATE_UPDATE",
             "payload": {"source_id": 0, "state": state, "source_reference": "data/media/vtest.avi"},
             "context": "video_source"}
            for state in ("NOT_STARTED", "INITIALISING", "RUNNING")
        ],
        "latency_reports": [{"source_id": 0, "frame_decoding_latency": 0.012, "inference_latency": 0.031,
                             "e2e_latency": 0.047}],
        "inference_throughput": 25.0,
        "sources_metadata": [{
            "source_properties": {"width": 768, "height": 576, "total_frames": 795, "is_file": True, "fps": 10.0},
            "source_reference": "data/media/vtest.avi", "buffer_size": 64, "state": "RUNNING",
            "buffer_filling_strategy": "WAIT", "buffer_consumption_strategy": "LAZY", "processing_mode": "offline",
            "max_staleness": None, "source_id": 0, "reconnect_attempts": 0, "offline_since": None,
            "frames_decoded": 1335, "frames_dropped": 0,
        }],
        "state": "RUNNING",
        "frames_processed": 1335,
        "inference_errors": 0,
        "workflow_errors": {},
        "sinks": [{"name": "redis_stream", "delivered": 1335, "dropped": 0, "queued": 0, "healthy": True}],
        "metrics": metrics,
        "pipeline_id": pipeline_id, "epoch": epoch, "owner": owner, "reported_at": 0.0,
    }


def advance(report: dict[str, Any], state: PipelineState, frames: int) -> str:
    """The report as of now, as the supervisor stores it (compact JSON)."""
    report["frames_processed"] += frames
    report["sources_metadata"][0]["frames_decoded"] += frames
    report["state"] = state.value
    report["reported_at"] = time.time()
    return json.dumps(report, separators=(",", ":"))


class SimWorker:
    """One simulated worker: its registration, its consumer, its pipeline tasks."""

    def __init__(self, fleet: "Fleet", index: int) -> None:
        self.fleet = fleet
        self.hostname = f"sim-{index:04d}@fleet"
        self.pid = 100000 + index  # a stand-in: every simulated worker is this one process
        self.busy = 0
        self.room = asyncio.Event()
        self.room.set()
        self.registered = asyncio.Event()
        self.connection: Resp | None = None
        self.blocking: Resp | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self._slot = 0

    async def start(self) -> None:
        host, port = self.fleet.address
        self.connection = await Resp.connect(host, port)
        self.blocking = await Resp.connect(host, port)
        self._spawn(self._register(), "registration")
        self._spawn(self._consume(), "consumer")

    def _spawn(self, coroutine: Any, name: str) -> None:
        task = asyncio.create_task(coroutine, name=f"{self.hostname} {name}")
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.fleet.samples.error(f"{task.get_name()}: {task.exception()!r}")

    def registration(self) -> str:
        ram_total, ram_available = self.fleet.ram()
        concurrency = self.fleet.concurrency
        return WorkerRegistration(
            hostname=self.hostname, queues=(self.fleet.queue,), concurrency=concurrency, busy_slots=self.busy,
            free_slots=max(0, concurrency - self.busy), device=self.fleet.device, pid=self.pid,
            ram_total_mb=ram_total, ram_available_mb=ram_available, pipelines_ram_mb=0,
            inference_service_ram_mb=0, format_version=str(formats.REGISTRATION), consuming=True,
        ).model_dump_json()

    async def _register(self) -> None:
        assert self.connection is not None
        await asyncio.sleep(random.uniform(0, REGISTRATION_PERIOD))  # workers do not start in lockstep
        while True:
            try:
                await send(self.connection, capture(registry.publish, RECORDER, self.hostname, self.registration(),
                                                    REGISTRATION_TTL))
                self.registered.set()
            except (ReplyError, ConnectionError) as exc:
                self.fleet.samples.error(f"{self.hostname} registration: {exc}")
            await asyncio.sleep(REGISTRATION_PERIOD)

    async def _consume(self) -> None:
        assert self.blocking is not None and self.connection is not None
        queue = self.fleet.queue
        lists = [queue, *(f"{queue}{KOMBU_PRIORITY_SEPARATOR}{step}" for step in KOMBU_PRIORITY_STEPS)]
        while True:
            await self.room.wait()
            popped = await self.blocking.command("BRPOP", *lists, BRPOP_TIMEOUT)
            if popped is None:
                continue
            message = json.loads(popped[1])
            self._take_slot()
            tag = message["properties"]["delivery_tag"]
            # kombu's QoS: the delivery is booked as unacknowledged, then acknowledged at once (early ack).
            self.connection.command("MULTI")
            self.connection.command("ZADD", "unacked_index", time.time(), tag)
            self.connection.command("HSET", "unacked", tag, json.dumps([message, "", queue]))
            await self.connection.command("EXEC")
            self.connection.command("MULTI")
            self.connection.command("ZREM", "unacked_index", tag)
            self.connection.command("HDEL", "unacked", tag)
            await self.connection.command("EXEC")
            self._slot += 1
            self._spawn(self._run_task(message, self._slot), f"task {tag}")

    def _take_slot(self) -> None:
        self.busy += 1
        if self.busy >= self.fleet.concurrency:
            self.room.clear()

    def _free_slot(self) -> None:
        self.busy -= 1
        self.room.set()

    async def _run_task(self, message: dict[str, Any], slot: int) -> None:
        try:
            if message["headers"].get("task") != RUN_PIPELINE:
                self.fleet.samples.error(f"unexpected task {message['headers'].get('task')!r}")
                return
            _, kwargs, _ = json.loads(base64.b64decode(message["body"]))
            await SimPipeline(self, kwargs, f"{self.hostname}:{self.pid + slot}").run()
        finally:
            self._free_slot()

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for connection in (self.connection, self.blocking):
            if connection is not None:
                connection.close()


class SimPipeline:
    """One pipeline task: claim, init reply, then a fenced tick a second until it is told to stop."""

    def __init__(self, worker: SimWorker, kwargs: dict[str, Any], owner: str) -> None:
        self.worker = worker
        self.fleet = worker.fleet
        self.pipeline_id = str(kwargs["pipeline_id"])
        self.epoch = int(kwargs["epoch"])
        self.spec = kwargs["spec"]
        self.reply_to = str(kwargs["reply_to"])
        self.owner = owner
        self.state = PipelineState.INITIALISING

    async def run(self) -> None:
        client = self.fleet.sync_client
        ownership = Ownership(client, self.pipeline_id, self.epoch, self.owner, HEARTBEAT_TTL)
        try:
            load_task_spec(self.spec)
        except (ValidationError, FormatError) as exc:  # as the task and runner.reject: claimed, FAILED, a reply
            if await asyncio.to_thread(ownership.claim) is not None:
                invalid = (invalid_payload_from(exc, "pipeline spec") if isinstance(exc, ValidationError)
                           else InvalidPayloadError(f"{exc}: upgrade this worker"))
                await asyncio.to_thread(ownership.release, PipelineState.FAILED, str(invalid))
                await asyncio.to_thread(push_reply, client, self.reply_to, self.reply_to, failure_response(invalid))
            return
        desired = await asyncio.to_thread(ownership.claim)
        if desired is None:
            self.fleet.samples.refused += 1
            if ownership.refusal in _TERMINATED_BEFORE_START:
                error = OperationError(f"pipeline {self.pipeline_id} was terminated before it started",
                                       "The pipeline was terminated before it started.")
                await asyncio.to_thread(push_reply, client, self.reply_to, self.reply_to, failure_response(error))
            return
        self.fleet.samples.claimed += 1
        if self.fleet.start_seconds > 0:  # the build and the sources' opening, heartbeat kept fresh meanwhile
            await asyncio.sleep(self.fleet.start_seconds)
        await asyncio.to_thread(push_reply, client, self.reply_to, self.reply_to, dict(SUCCESS))
        self.fleet.running += 1
        try:
            await self._supervise()
        finally:
            self.fleet.running -= 1
            self.fleet.samples.ended += 1

    async def _supervise(self) -> None:
        connection = self.worker.connection
        assert connection is not None
        # The task's own fenced writes, each captured from the real Ownership and sent on our connection.
        writes = Ownership(RECORDER, self.pipeline_id, self.epoch, self.owner, HEARTBEAT_TTL)  # type: ignore[arg-type]
        report = report_template(self.pipeline_id, self.epoch, self.owner)
        self.state = PipelineState.RUNNING
        due = time.monotonic()
        while True:
            samples = self.fleet.samples  # replaced by each ``stats``
            sent = time.monotonic()
            samples.late.append(sent - due)
            frames = 0 if self.state is PipelineState.MUTED else 25
            try:
                reply = await send(connection, capture(writes.tick, self.state, advance(report, self.state, frames)))
            except (ReplyError, ConnectionError) as exc:  # a tick lost to Redis is retried by the next
                samples.error(f"{self.pipeline_id} tick: {exc}")
                reply = None
            samples.round_trips.append(time.monotonic() - sent)
            samples.ticks += 1
            if reply is not None:
                if int(reply[0]) != ownership_module.OWNED:
                    return  # fenced out or the record is gone: stop without another write
                desired = DesiredState(_text(reply[1]))
                if desired is DesiredState.TERMINATED:
                    await send(connection, capture(writes.release, PipelineState.TERMINATED, "",
                                                   advance(report, PipelineState.TERMINATED, 0)))
                    return
                self.state = PipelineState.MUTED if desired is DesiredState.MUTED else PipelineState.RUNNING
            due = max(due + TICK_PERIOD, time.monotonic())
            await asyncio.sleep(due - time.monotonic())


class Fleet:
    """Every simulated worker of this process, and what they share."""

    def __init__(self, redis_url: str, concurrency: int, device: str, start_seconds: float) -> None:
        self.sync_client = redis.Redis.from_url(redis_url)
        pool = self.sync_client.connection_pool.connection_kwargs
        self.address = (str(pool.get("host", "127.0.0.1")), int(pool.get("port", 6379)))
        self.concurrency = concurrency
        self.device = device
        self.queue = queue_for(device)
        self.start_seconds = start_seconds
        self.workers: list[SimWorker] = []
        self.samples = Samples()
        self.running = 0
        self._ram: tuple[float, tuple[int, int]] = (0.0, (0, 0))

    def ram(self) -> tuple[int, int]:
        """The host's total and available RAM in MiB, read at most once a second for every worker."""
        now = time.monotonic()
        if now - self._ram[0] >= 1.0:
            memory = psutil.virtual_memory()
            self._ram = (now, (memory.total // MIB, memory.available // MIB))
        return self._ram[1]

    async def grow(self, first: int, count: int) -> None:
        added = [SimWorker(self, index) for index in range(first, first + count)]
        for worker in added:
            await worker.start()
        self.workers += added
        try:
            async with asyncio.timeout(REGISTER_TIMEOUT):
                await asyncio.gather(*(worker.registered.wait() for worker in added))
        except TimeoutError:
            raise RuntimeError(f"not every new worker registered within {REGISTER_TIMEOUT:g} s: "
                               f"{self.samples.first_errors}") from None

    def stats(self) -> dict[str, Any]:
        samples, self.samples = self.samples, Samples()
        # counters carry over: only the tick samples and errors start again
        for name in ("claimed", "refused", "ended"):
            setattr(self.samples, name, getattr(samples, name))
        return {
            "workers": len(self.workers), "running": self.running, "busy": sum(w.busy for w in self.workers),
            "claimed": samples.claimed, "refused": samples.refused, "ended": samples.ended, "ticks": samples.ticks,
            "late_p50": _percentile(samples.late, 0.5), "late_p99": _percentile(samples.late, 0.99),
            "late_max": max(samples.late, default=0.0),
            "round_trip_p50": _percentile(samples.round_trips, 0.5),
            "round_trip_p99": _percentile(samples.round_trips, 0.99),
            "errors": samples.errors, "first_errors": samples.first_errors,
        }

    async def stop(self) -> None:
        await asyncio.gather(*(worker.stop() for worker in self.workers))
        for worker in self.workers:
            with contextlib.suppress(redis.RedisError):
                registry.withdraw(self.sync_client, worker.hostname)
        self.sync_client.close()


async def _serve(fleet: Fleet) -> None:
    """Reads commands from stdin until ``stop`` (or its end)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while line := (await reader.readline()).decode().split():
            if line[0] == "grow":
                try:
                    await fleet.grow(int(line[1]), int(line[2]))
                except RuntimeError as exc:
                    _answer(f"error {exc}")
                else:
                    _answer(f"grown {len(fleet.workers)}")
            elif line[0] == "stats":
                _answer(json.dumps(fleet.stats()))
            elif line[0] == "stop":
                break
            else:
                _answer(f"error unknown command {line[0]!r}")
    finally:
        await fleet.stop()
        _answer("stopped")


def _answer(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--concurrency", type=int, default=16, help="slots (pipelines at once) of each worker")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--start-seconds", type=float, default=0.0,
                        help="how long a simulated pipeline takes from its claim to its init reply")
    args = parser.parse_args()
    asyncio.run(_serve(Fleet(args.redis_url, args.concurrency, args.device, args.start_seconds)))


# ---------------------------------------------------------------------------------------------------------------
# Running simulator processes (for tests and benchmarks)


class FleetProcess:
    """One simulator process, driven through its stdin / stdout."""

    def __init__(self, redis_url: str, concurrency: int, device: str, log: Path) -> None:
        command = [sys.executable, "-m", "tests.support.fleet", "--redis-url", redis_url,
                   "--concurrency", str(concurrency), "--device", device]
        with open(log, "ab") as stderr:
            self.process = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            stderr=stderr, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        self.log = log

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def receive(self) -> str:
        assert self.process.stdout is not None
        answer = self.process.stdout.readline().strip()
        if not answer:
            raise RuntimeError(f"the fleet simulator exited ({self.process.poll()}); see {self.log}: "
                               f"{self.log.read_text(errors='replace')[-3000:]}")
        return answer

    def close(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(OSError, RuntimeError):
                self.send("stop")
                self.receive()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()


class FleetHandle:
    """A few simulator processes as one fleet: workers are spread over them in turn."""

    def __init__(self, processes: list[FleetProcess]) -> None:
        self.processes = processes
        self.workers = 0

    @property
    def pids(self) -> list[int]:
        return [fleet.process.pid for fleet in self.processes]

    def grow(self, total: int) -> None:
        """Adds workers until the fleet has ``total``; returns once every new one has registered."""
        add = total - self.workers
        shares = [add // len(self.processes) + (1 if i < add % len(self.processes) else 0)
                  for i in range(len(self.processes))]
        first = self.workers
        for fleet, share in zip(self.processes, shares, strict=True):
            if share:
                fleet.send(f"grow {first} {share}")
                first += share
        answers = [fleet.receive() for fleet, share in zip(self.processes, shares, strict=True) if share]
        failed = [answer for answer in answers if not answer.startswith("grown")]
        if failed:
            raise RuntimeError(f"the fleet simulator did not grow: {failed}")
        self.workers = total

    def stats(self) -> dict[str, Any]:
        """Every process's stats together: counts added, percentiles the worst of them."""
        for fleet in self.processes:
            fleet.send("stats")
        parts = [json.loads(fleet.receive()) for fleet in self.processes]
        merged: dict[str, Any] = {}
        for part in parts:
            for name, value in part.items():
                if name == "first_errors":
                    merged[name] = (merged.get(name, []) + value)[:FIRST_ERRORS]
                elif name.endswith(("_p50", "_p99", "_max")):
                    merged[name] = max(merged.get(name, 0.0), value)
                else:
                    merged[name] = merged.get(name, 0) + value
        return merged


@contextlib.contextmanager
def running_fleet(redis_url: str, log_dir: Path, processes: int = 1, concurrency: int = 16,
                  device: str = "cpu") -> Iterator[FleetHandle]:
    started = [FleetProcess(redis_url, concurrency, device, log_dir / f"fleet-{index}.log")
               for index in range(processes)]
    try:
        yield FleetHandle(started)
    finally:
        for fleet in started:
            fleet.close()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


if __name__ == "__main__":
    main()
