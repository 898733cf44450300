"""Redis Sentinel failover under real processes: a real master, replica and three sentinels
(tests/support/sentinel.py), SIGKILL of the master, promotion of the replica.

- The results sink across a real failover (no stack): the replica is cut off right before the last
  writes, so the master acknowledges entries it never replicates; after the promotion the sink finds
  them missing and writes them again with their original ids (``replayed``), nothing lost or doubled.
- The whole stack on the Sentinel URL: manager and Celery worker processes, the real model on
  data/media/vtest.avi (paced at 10 fps, every frame processed). After the master is killed the
  pipeline stays RUNNING (same epoch, no restart), results keep arriving on the promoted master, the
  gap in the results' stream ids around the failover is measured and bounded, every frame id missing
  from the stream is accounted for by the sink's counters in the final report, no frame is written
  twice, and no password reaches a log.
"""

import contextlib
import itertools
import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from services.client import ManagerClient
from services.core import keys
from services.infra.redis_connect import sync_client
from services.worker.engine.results import RoundResult, SourceResult
from services.worker.engine.sinks.redis_stream import Fence, RedisStreamSink
from tests.support.pipelines import create_record
from tests.support.sentinel import PASSWORD, SENTINEL_PASSWORD, running_sentinel
from tests.support.stack import running_stack
from tests.support.waiting import wait_until
from tools.payloads import newer_init

ROOT = Path(__file__).resolve().parents[2]
VTEST = str(ROOT / "data" / "media" / "vtest.avi")  # 795 frames
MAX_FPS = 10
GAP_BOUND = 20.0  # seconds: generous; measured about 3 s (printed)


def _round(frame_id: int) -> RoundResult:
    slot = SourceResult(0, frame_id, datetime.now(UTC), 0.0, {"image": {"width": 1, "height": 1}, "predictions": []})
    return RoundResult((slot,))


def _frames(client: redis.Redis, pipeline_id: str) -> list[tuple[bytes, int, int | None]]:
    """(stream id, frame id of source 0, epoch) of every entry."""
    found = []
    for entry_id, fields in client.xrange(keys.results_stream(pipeline_id)):
        metadata = json.loads(fields[b"frames_metadata"])
        epoch = fields.get(b"epoch")
        found.append((entry_id, int(metadata[0]["frame_id"]), int(epoch) if epoch else None))
    return found


def test_the_sink_replays_what_the_old_master_never_replicated() -> None:
    with running_sentinel() as deployment:
        client = sync_client(deployment.url, socket_timeout=1, socket_connect_timeout=0.5)
        with contextlib.closing(client):
            record = create_record(client, device="cpu")
            owner = "worker@test:1"
            client.hset(keys.pipeline_record(record.pipeline_id), "owner", owner)  # as the task's claim leaves it
            sink = RedisStreamSink(client, record.pipeline_id, maxlen=1000,
                                   fence=Fence(1, owner, lambda: None, lambda: False))
            for frame_id in range(1, 11):
                sink.write([_round(frame_id)], 0)
            master = deployment.master_port()
            replica = next(port for port in deployment.data_ports if port != master)
            with contextlib.closing(deployment.data_client(replica)) as direct:
                wait_until(lambda: direct.xlen(keys.results_stream(record.pipeline_id)) == 10, timeout=5)
            # Cut the replica off (it cannot authenticate again), write three more (acknowledged by the
            # master only), kill the master: what async replication loses when a master dies.
            with contextlib.closing(deployment.data_client(replica)) as direct:
                direct.config_set("masterauth", "not-the-password")
            with contextlib.closing(deployment.data_client(master)) as old:
                old.client_kill_filter(_type="replica")
                for frame_id in range(11, 14):
                    sink.write([_round(frame_id)], 0)
                acknowledged = [entry_id for entry_id, _, _ in _frames(old, record.pipeline_id)]
            deployment.kill_master()
            deployment.wait_for_failover(master)
            with contextlib.closing(deployment.data_client(replica)) as promoted:
                assert promoted.xlen(keys.results_stream(record.pipeline_id)) < 13, "the replica had them all"
                before = promoted.xlen(keys.results_stream(record.pipeline_id))
            sink.write([_round(14)], 0)  # through redis-py's reconnect: the sink sees no error, checks anyway
            entries = _frames(client, record.pipeline_id)
            assert [frame for _, frame, _ in entries] == list(range(1, 15))
            assert [entry_id for entry_id, _, _ in entries][:13] == acknowledged  # the original ids
            recovery = sink.recovery()
            print(f"\nreplica had {before} of 13 entries; replayed {recovery.replayed}, lost {recovery.lost}")
            assert (recovery.replayed, recovery.lost) == (13 - before, 0)


def _report(client: redis.Redis, pipeline_id: str) -> dict[str, Any]:
    raw = client.get(keys.pipeline_report(pipeline_id))
    return dict(json.loads(raw)) if raw else {}


def test_a_pipeline_keeps_running_and_writing_through_a_sentinel_failover() -> None:
    with running_sentinel() as deployment, running_stack(deployment.url) as stack:
        stack.start_manager()
        stack.start_worker("cpu", "pipelines.cpu", concurrency=1)
        manager = ManagerClient("127.0.0.1", stack.port, timeout=10)
        client = stack.client
        envelope = manager.request(newer_init(VTEST, max_fps=MAX_FPS, results_buffer_size=5000), timeout=60)
        assert envelope["response"]["status"] == "success", envelope
        pipeline_id = str(envelope["pipeline_id"])
        wait_until(lambda: len(_frames(client, pipeline_id)) >= 30, timeout=60, interval=0.2)

        # Status requests keep being answered (a failure reply during the failover), never hang.
        replies: list[str] = []
        stop = threading.Event()

        def ask() -> None:
            while not stop.is_set():
                with contextlib.suppress(Exception):
                    replies.append(manager.request({"type": "status", "pipeline_id": pipeline_id})
                                   ["response"]["status"])
                time.sleep(0.5)

        asker = threading.Thread(target=ask, daemon=True)
        asker.start()
        killed_at = time.time()
        old_master = deployment.kill_master()
        new_master = deployment.wait_for_failover(old_master)
        promoted_at = time.time()

        def written_after(moment: float) -> int:
            return sum(1 for entry_id, _, _ in _frames(client, pipeline_id)
                       if int(entry_id.split(b"-")[0]) > moment * 1000)

        wait_until(lambda: written_after(promoted_at) >= 50, timeout=40, interval=0.2)
        report = _report(client, pipeline_id)
        assert report["state"] == "RUNNING", report
        assert report["epoch"] == 1, report  # the same task: never restarted
        record = client.hgetall(keys.pipeline_record(pipeline_id))
        assert record[b"epoch"] == b"1" and record[b"state"] == b"RUNNING", record
        status = manager.request({"type": "status", "pipeline_id": pipeline_id})["response"]
        assert status["status"] == "success" and status["report"]["pipeline_state"] == "RUNNING", status
        stop.set()
        asker.join(5)

        response = manager.request({"type": "terminate", "pipeline_id": pipeline_id})["response"]
        assert response["status"] == "success", response
        wait_until(lambda: _report(client, pipeline_id).get("state") == "TERMINATED", timeout=20, interval=0.2)
        final = _report(client, pipeline_id)
        sink = next(s for s in final["sinks"] if s["name"] == "redis_stream")
        metrics = next(s for s in final["metrics"]["sinks"] if s["name"] == "redis_stream")
        processed = final["metrics"]["sources"][0]["frames_processed"]
        entries = _frames(client, pipeline_id)
        frame_ids = [frame for _, frame, _ in entries]
        stamps = [int(entry_id.split(b"-")[0]) / 1000 for entry_id, _, _ in entries]
        around = [b - a for a, b in itertools.pairwise(stamps) if b > killed_at - 1]
        gap = max(around)
        missing = sorted(set(range(1, max(frame_ids) + 1)) - set(frame_ids))
        print(f"\nfailover: promoted {promoted_at - killed_at:.2f} s after SIGKILL (port {old_master} -> "
              f"{new_master}); largest gap between results {gap:.2f} s; {len(entries)} results, "
              f"{processed} frames processed; sink: {sink}; status replies during it: "
              f"{sorted(set(replies))}")
        assert gap < GAP_BOUND
        assert frame_ids == sorted(set(frame_ids)), "a frame was written twice or out of order"
        assert {epoch for _, _, epoch in entries} == {1}
        # every frame handed to the sink is in the stream or counted: dropped (queue full, error) or lost
        accounted = sink["dropped"] + sink["lost"] + sink["queued"] + sink["retrying"]
        assert processed == len(entries) + accounted, (processed, len(entries), sink)
        assert len(missing) <= accounted, (missing, sink)
        assert metrics["replayed"] == sink["replayed"]
        for log in stack.log_dir.glob("*.log"):
            text = log.read_text(errors="replace")
            assert PASSWORD not in text and SENTINEL_PASSWORD not in text, f"a password in {log.name}"
