"""Two real manager processes on one real Redis with one real Celery worker, and clients given both
addresses: killing a manager fails only the commands in flight on it, its reaper lease passes to the
other manager, and an INIT whose manager is killed while it waits leaves no pipeline behind.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from services.client import ManagerClient
from services.client.errors import CommunicationProtocolError, ConnectivityError, ProcessesManagerClientError
from services.core import keys
from services.core.records import PipelineRecord
from tests.support.redis_server import RedisServer, free_port
from tests.support.stack import Stack, running_stack, stop_process
from tests.support.waiting import wait_until
from tools.payloads import newer_init

VTEST = "data/media/vtest.avi"
INTERVAL, LEASE_TTL, INIT_TIMEOUT, GRACE = 0.5, 2.0, 10.0, 1.0
MANAGER_ENV = {"MANAGER_REAPER_INTERVAL": str(INTERVAL), "MANAGER_REAPER_LEASE_TTL": str(LEASE_TTL),
               "MANAGER_INIT_TIMEOUT": str(INIT_TIMEOUT), "MANAGER_HEARTBEAT_GRACE": str(GRACE)}
WORKER = "several@test"
SLOTS = 3  # the long pipeline, one INIT at a time, one slot of slack while a terminated process goes away


class Managers:
    """Manager processes of one stack, each on its own port (the stack's own manager is not used)."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    def start(self, port: int | None = None) -> int:
        port = port or free_port()
        env = {**self.stack._env(**MANAGER_ENV), "STREAM_MANAGER_PORT": str(port)}
        self.processes[port] = self.stack._spawn(f"manager-{port}", [sys.executable, "-m", "services.manager"], env)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return port
            time.sleep(0.1)
        raise RuntimeError(f"manager did not listen on {port}")

    def kill(self, port: int) -> None:
        self.processes[port].send_signal(signal.SIGKILL)
        self.processes[port].wait(10)

    def holder(self) -> int | None:
        """The port of the manager holding the reaper lease (its token names its pid)."""
        token = self.stack.client.get(keys.reaper_lease())
        if token is None:
            return None
        pid = int(token.decode().split(":")[1])
        return next((port for port, process in self.processes.items() if process.pid == pid), None)

    def close(self) -> None:
        for process in self.processes.values():
            stop_process(process)


@pytest.fixture(scope="module")
def cluster(redis_server: RedisServer) -> Iterator[tuple[Stack, Managers]]:
    with running_stack(redis_server.url) as stack:
        stack.client.flushall()
        managers = Managers(stack)
        try:
            stack.start_worker(WORKER.split("@")[0], "pipelines.cpu", concurrency=SLOTS)
            yield stack, managers
        finally:
            managers.close()


def log_tail(stack: Stack, name: str) -> str:
    return (stack.log_dir / f"{name}.log").read_text(errors="replace")[-4000:]


def client_for(*ports: int, **options: float) -> ManagerClient:
    return ManagerClient(addresses=",".join(f"127.0.0.1:{port}" for port in ports), **options)


@dataclass
class Outcome:
    started: float
    ended: float
    error: Exception | None


class Traffic(threading.Thread):
    """One client connection at a time, issuing commands in a loop until stopped."""

    def __init__(self, client: ManagerClient, pipeline_id: str, stack: Stack | None = None) -> None:
        """With ``stack``: INIT then TERMINATE, each INIT once the worker has a slot free again."""
        super().__init__(daemon=True)
        self.client, self.pipeline_id, self.stack = client, pipeline_id, stack
        self.outcomes: list[Outcome] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            if self.stack is not None:
                self._wait_for_a_free_slot(self.stack)
                started = self._command(lambda: self.client.initialise(newer_init(VTEST, max_fps=2)))
                if started is not None and started.context.pipeline_id:
                    self._terminate(self.stack, str(started.context.pipeline_id))
            else:
                self._command(self.client.list_pipelines)
                self._command(lambda: self.client.status(self.pipeline_id))

    def _terminate(self, stack: Stack, pipeline_id: str) -> None:
        self._command(lambda: self.client.terminate(pipeline_id))
        wait_until(lambda: not stack.client.exists(keys.pipeline_heartbeat(pipeline_id)), timeout=30)

    def _wait_for_a_free_slot(self, stack: Stack) -> None:
        """Admission is advisory (registrations lag a second): an INIT sent while the last one's process is still
        going away would be refused, or wait in the queue. This client waits for a settled free slot instead."""
        time.sleep(1.5)
        wait_until(lambda: ((stack.registration(WORKER) or {}).get("free_slots") or 0) >= 2, timeout=30)

    def _command(self, command):  # type: ignore[no-untyped-def]
        started = time.monotonic()
        try:
            reply = command()
        except ProcessesManagerClientError as exc:
            self.outcomes.append(Outcome(started, time.monotonic(), exc))
            return None
        self.outcomes.append(Outcome(started, time.monotonic(), None))
        return reply


def test_killing_a_manager_fails_only_the_commands_in_flight_on_it(cluster: tuple[Stack, Managers]) -> None:
    stack, managers = cluster
    first = managers.start()
    wait_until(lambda: managers.holder() == first, timeout=10)  # the first one takes the lease
    second = managers.start()
    time.sleep(3 * INTERVAL)
    assert managers.holder() == first  # the second one does not take it from its holder

    pipeline_id = str(client_for(first, second, init_timeout=60).initialise(newer_init(VTEST, max_fps=2))
                      .context.pipeline_id)
    readers = [Traffic(client_for(first, second), pipeline_id) for _ in range(3)]  # prefer the first
    others = [Traffic(client_for(second, first), pipeline_id) for _ in range(2)]  # prefer the second
    starter = Traffic(client_for(first, second, init_timeout=30), pipeline_id, stack)
    threads = [*readers, *others, starter]
    for thread in threads:
        thread.start()
    time.sleep(4)

    killed_from = time.monotonic()
    managers.kill(first)
    killed_by = time.monotonic()
    wait_until(lambda: managers.holder() == second, timeout=LEASE_TTL + INTERVAL + 5)
    time.sleep(4)
    for thread in threads:
        thread.stop.set()
    for thread in threads:
        thread.join(45)
        assert not thread.is_alive()

    window = (killed_from, killed_by)  # SIGKILL sent .. the process reaped: it dies somewhere in between
    for thread in threads:
        failures = [outcome for outcome in thread.outcomes if outcome.error is not None]
        # One command at a time per client: the one in flight when the signal was sent, plus any that connected
        # while the process was being torn down (its listening socket still accepted) may fail; no other.
        dying = [o for o in thread.outcomes if killed_from <= o.started <= killed_by and o is not thread.outcomes[0]]
        assert len(failures) <= 1 + len(dying), (failures, window)
        for failure in failures:  # in flight on the killed manager: sent before it was gone, failed after the kill
            assert isinstance(failure.error, ConnectivityError | CommunicationProtocolError), failure
            assert failure.started <= killed_by and failure.ended >= killed_from, (failure, window)
        assert any(o.error is None and o.started > killed_by for o in thread.outcomes)  # served after the kill
    for thread in others:
        assert all(outcome.error is None for outcome in thread.outcomes)  # never on the killed manager
    assert sum(len(thread.outcomes) for thread in threads) > 50

    survivor = client_for(first, second)
    # An INIT in flight at the kill left an unconfirmed record: it is removed once its deadline passes.
    wait_until(lambda: survivor.list_pipelines().pipelines == [pipeline_id], timeout=INIT_TIMEOUT + GRACE + 15)
    status = survivor.status(pipeline_id).report
    assert (status.pipeline_state, status.restarts) == ("RUNNING", 0)  # the takeover restarted nothing
    survivor.terminate(pipeline_id)


def test_a_manager_killed_while_an_init_waits_leaves_no_pipeline_running(cluster: tuple[Stack, Managers]) -> None:
    stack, managers = cluster
    if len([p for p in managers.processes.values() if p.poll() is None]) < 2:
        managers.start()
    live = [port for port, process in managers.processes.items() if process.poll() is None]
    wait_until(lambda: managers.holder() in live, timeout=LEASE_TTL + INTERVAL + 5)
    victim = next(port for port in live if port != managers.holder())  # the other one's reaper cleans up
    worker = stack.workers[WORKER.split("@")[0]]
    known = {member.decode() for member in stack.client.smembers(keys.pipelines_index())}

    os.kill(worker.pid, signal.SIGSTOP)  # the task waits in the queue: the INIT waits for its reply
    errors: list[Exception] = []

    def init() -> None:
        try:
            ManagerClient("127.0.0.1", victim, init_timeout=30).initialise(newer_init(VTEST, max_fps=2))
        except ProcessesManagerClientError as exc:
            errors.append(exc)

    waiting = threading.Thread(target=init)
    try:
        waiting.start()
        new: set[str] = set()

        def recorded() -> bool:
            new.update(m.decode() for m in stack.client.smembers(keys.pipelines_index()) if m.decode() not in known)
            return bool(new)

        wait_until(recorded, timeout=10)
        pipeline_id = new.pop()
        record = PipelineRecord.from_hash(stack.client.hgetall(keys.pipeline_record(pipeline_id)))  # type: ignore[arg-type]
        assert record.confirm_by > 0  # unconfirmed while its INIT waits
        # Dispatched (sent to the broker; the stopped worker will find it when it resumes): the INIT now waits.
        wait_until(lambda: f"dispatched pipeline {pipeline_id}" in log_tail(stack, f"manager-{victim}"), timeout=10)
        managers.kill(victim)
    finally:
        os.kill(worker.pid, signal.SIGCONT)
    waiting.join(40)
    assert len(errors) == 1 and isinstance(errors[0], ConnectivityError | CommunicationProtocolError), errors

    # The task now claims the pipeline and starts it, for a client that never got its id ...
    wait_until(lambda: stack.client.exists(keys.pipeline_heartbeat(pipeline_id)) == 1, timeout=INIT_TIMEOUT,
               message=lambda: f"the task never ran; worker log:\n{log_tail(stack, 'worker-several')}")
    # ... until the deadline passes: terminated, and every key removed.
    wait_until(lambda: stack.client.exists(*keys.pipeline_keys(pipeline_id)) == 0,
               timeout=record.confirm_by - time.time() + LEASE_TTL + INTERVAL + 10)
    assert not stack.client.sismember(keys.pipelines_index(), pipeline_id)
    time.sleep(4)  # longer than the heartbeat's TTL: the task stopped and wrote nothing back
    assert stack.client.exists(*keys.pipeline_keys(pipeline_id)) == 0
    wait_until(lambda: (stack.registration(WORKER) or {}).get("free_slots") == SLOTS, timeout=15)
