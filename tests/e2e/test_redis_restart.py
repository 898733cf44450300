"""Redis restarts under a running stack: the real manager and Celery worker processes, the real model,
an ffmpeg live camera, and a redis-server of this module's own that the test stops and starts.

What must hold, in both cases (Redis comes back WITH its data: append-only file; and EMPTY: no
persistence, records, index, specs, streams, Celery queues and worker registrations all lost):

- a request sent while Redis is down gets a clear failure reply (``internal_error``, "Redis is
  unavailable ...") within the client's timeout, never a hang, and the manager keeps serving;
- the running pipeline keeps running through the outage and is the same pipeline afterwards: listed
  again, STATUS RUNNING with a report written after Redis came back, same epoch and no restart (the
  reaper does not mistake the outage for a lost task), new results in its stream;
- when Redis came back empty, the task restores its record, spec and index entry itself
  (``services.worker.ownership``), so the manager lists and controls it again;
- every command works afterwards: consume, mute, resume, terminate; and the worker's Celery consumer
  has reconnected to the broker, so a NEW pipeline starts.

Printed for the documentation (no test asserts on timing): the outage, how long each request took
during it, the time from Redis being back to the pipeline being listed and to its first new result,
and the results lost around the outage (frame ids skipped, and the task's own ``results_dropped``).
"""

import contextlib
import itertools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from services.client import ManagerClient
from services.client.errors import ProcessesManagerClientError
from services.core import keys
from tests.support.redis_server import RedisServer, running_redis
from tests.support.stack import Stack, running_stack
from tests.support.streams import LiveStream
from tests.support.waiting import wait_until
from tools.payloads import newer_init

ROOT = Path(__file__).resolve().parents[2]
VTEST = str(ROOT / "data" / "media" / "vtest.avi")  # 768x576, 10 fps
MAX_FPS = 5
OUTAGE = 4.0  # seconds Redis is down
CLIENT_TIMEOUT = 10.0  # the client's own deadline on every request (its default)
RECOVERY = 30.0  # how long the test waits for anything after Redis is back


@dataclass
class Setup:
    server: RedisServer
    stack: Stack
    client: ManagerClient
    persistent: bool


@pytest.fixture(scope="module", params=[True, False], ids=["with-data", "empty"])
def setup(request: pytest.FixtureRequest) -> Iterator[Setup]:
    """A dedicated redis-server (the session's is shared by other tests and must not restart) with
    the manager and one two-slot CPU worker on it."""
    persistent = bool(request.param)
    with running_redis(persistent=persistent) as server, running_stack(server.url) as stack:
        stack.start_manager()
        stack.start_worker("cpu", "pipelines.cpu", concurrency=2)
        yield Setup(server, stack, ManagerClient("127.0.0.1", stack.port, timeout=CLIENT_TIMEOUT), persistent)


def _response(setup: Setup, command: dict[str, Any]) -> dict[str, Any]:
    return dict(setup.client.request(command)["response"])


def _ok(setup: Setup, command: dict[str, Any]) -> dict[str, Any]:
    response = _response(setup, command)
    assert response["status"] == "success", (command, response)
    return response


def _quietly(predicate: Callable[[], object]) -> Callable[[], object]:
    """``predicate``, with a failure reply or a Redis error (Redis is still coming back) read as False."""

    def attempt() -> object:
        try:
            return predicate()
        except (ProcessesManagerClientError, redis.RedisError, AssertionError, KeyError):
            return False

    return attempt


def _entries(client: redis.Redis, pipeline_id: str, since_ms: int = 0) -> list[tuple[int, int]]:
    """(stream id milliseconds, frame id) of each result of source 0 written since ``since_ms``."""
    found = []
    for entry_id, fields in client.xrange(keys.results_stream(pipeline_id), min=f"{since_ms}-0"):
        metadata = json.loads(fields[b"frames_metadata"])
        if metadata and metadata[0] is not None:
            found.append((int(entry_id.split(b"-")[0]), int(metadata[0]["frame_id"])))
    return found


def _status(setup: Setup, pipeline_id: str) -> dict[str, Any]:
    return dict(_ok(setup, {"type": "status", "pipeline_id": pipeline_id})["report"])


def _listed(setup: Setup, pipeline_id: str) -> bool:
    return pipeline_id in _ok(setup, {"type": "list_pipelines"})["pipelines"]


def _start(setup: Setup, video: str) -> str:
    envelope = setup.client.request(newer_init(video, max_fps=MAX_FPS), timeout=60)
    assert envelope["response"]["status"] == "success", envelope
    return str(envelope["pipeline_id"])


def test_pipeline_and_commands_survive_a_redis_restart(setup: Setup) -> None:
    case = "with data" if setup.persistent else "empty"
    direct = redis.Redis.from_url(setup.server.url, socket_timeout=2, socket_connect_timeout=1)
    with contextlib.closing(direct), LiveStream.http(VTEST) as camera:
        pipeline_id = _start(setup, camera.url)
        wait_until(lambda: len(_entries(direct, pipeline_id)) >= 5, timeout=RECOVERY)
        before = _entries(direct, pipeline_id)
        steps = sorted(b[1] - a[1] for a, b in itertools.pairwise(before))
        step = steps[len(steps) // 2]  # the usual frame-id step between results (max_fps pacing)

        # ---------------------------------------------------------------- the outage
        down_at = time.monotonic()
        setup.server.stop()
        try:
            during = {}
            for command in ({"type": "status", "pipeline_id": pipeline_id}, {"type": "list_pipelines"},
                            {"type": "mute", "pipeline_id": pipeline_id}):
                sent = time.monotonic()
                response = _response(setup, command)  # raises ConnectivityError past the client's timeout
                during[command["type"]] = time.monotonic() - sent
                assert response["status"] == "failure", response
                assert response["error_type"] == "internal_error", response
                assert "Redis is unavailable" in response["error_message"], response
            time.sleep(max(0.0, OUTAGE - (time.monotonic() - down_at)))
        finally:
            setup.server.start()
        up_at, up_wall = time.monotonic(), time.time()
        outage = up_at - down_at

        # ---------------------------------------------------------------- the same pipeline, back
        wait_until(_quietly(lambda: _listed(setup, pipeline_id)), timeout=RECOVERY, interval=0.1)
        listed_after = time.monotonic() - up_at
        # A NEW pipeline as soon as the worker has registered again, typically before its Celery
        # consumer is back on the broker: the task waits in the queue until the consumer reconnects.
        setup.stack.wait_for_registration("cpu@test", timeout=RECOVERY)
        registered_after = time.monotonic() - up_at
        second = _start(setup, VTEST)
        second_after = time.monotonic() - up_at
        wait_until(_quietly(lambda: _status(setup, pipeline_id)["reported_at"] > up_wall), timeout=RECOVERY,
                   interval=0.1)
        wait_until(lambda: _entries(direct, pipeline_id, int(up_wall * 1000)), timeout=RECOVERY, interval=0.05)
        first_ms, first_frame = _entries(direct, pipeline_id, int(up_wall * 1000))[0]
        report = _status(setup, pipeline_id)
        assert report["pipeline_state"] == "RUNNING", report
        assert report["sources_metadata"][0]["state"] == "RUNNING", report
        assert (report["epoch"], report["restarts"]) == (1, 0), report  # the same task, never restarted
        record = direct.hgetall(keys.pipeline_record(pipeline_id))
        assert record[b"epoch"] == b"1" and record[b"desired_state"] == b"RUNNING", record
        assert direct.exists(keys.pipeline_spec(pipeline_id)), "the spec a restart would need is back"

        if setup.persistent:  # the entries written before the outage are still there: read the very last
            before = [entry for entry in _entries(direct, pipeline_id) if entry[0] < first_ms]
        last_frame = before[-1][1]
        lost = max(0, (first_frame - last_frame) // step - 1)
        print(f"\n[{case}] outage {outage:.1f} s; replies during it: "
              + ", ".join(f"{kind} {seconds * 1000:.0f} ms" for kind, seconds in during.items())
              + f"\n[{case}] Redis back -> pipeline listed {listed_after:.2f} s, first new result "
              f"{first_ms / 1000 - up_wall:.2f} s, worker registered {registered_after:.2f} s, "
              f"a new pipeline started {second_after:.2f} s"
              f"\n[{case}] frame ids: last before {last_frame}, first after {first_frame}, step {step}: "
              f"about {lost} results lost; results_dropped reported {report['results_dropped']}")

        # ---------------------------------------------------------------- every command works
        consumed = _ok(setup, {"type": "consume_result", "pipeline_id": pipeline_id, "excluded_fields": [],
                               "max_entries": 100})
        assert consumed["entries"], consumed
        _ok(setup, {"type": "mute", "pipeline_id": pipeline_id})
        wait_until(lambda: _status(setup, pipeline_id)["pipeline_state"] == "MUTED", timeout=10, interval=0.1)
        _ok(setup, {"type": "resume", "pipeline_id": pipeline_id})
        resumed_ms = int(time.time() * 1000)
        wait_until(lambda: _entries(direct, pipeline_id, resumed_ms), timeout=10, interval=0.05)

        wait_until(lambda: _entries(direct, second), timeout=RECOVERY)

        for pid in (pipeline_id, second):
            _ok(setup, {"type": "terminate", "pipeline_id": pid})
            assert not _listed(setup, pid)
