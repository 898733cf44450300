"""The runner against a real redis-server, the real default model and real video: claim, build,
replies, results, control over pub/sub, reconciliation, consumption timeout, fencing."""

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from services.core import keys
from services.core.control import Command
from services.core.plan import PipelineSpec
from services.core.records import DesiredState, PipelineRecord, PipelineState
from services.core.results import decode_entry, encode_entry, entry_epoch
from services.worker import runner
from services.worker.models.repository import ModelSpec
from services.worker.settings import WorkerSettings
from tests.support.pipelines import (
    create_record,
    last_result_id,
    new_reply_list,
    pop_reply,
    read_record,
    record_state,
    send_command,
    wait_for,
    write_clip,
)
from tests.support.redis_server import RedisServer, running_redis
from tests.support.streams import http_live_stream
from tests.support.waiting import settled
from tests.worker.conftest import MEDIA, MODELS

CLIP_FRAMES = 12
HOST = "celery@test"


@dataclass
class Run:
    record: PipelineRecord
    reply_to: str
    future: "Future[PipelineState | None]"
    shutdown: threading.Event

    def result(self, timeout: float) -> PipelineState | None:
        return self.future.result(timeout)


StartRun = Callable[..., Run]


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first frames of vtest.avi: a real video that ends within a second or two."""
    return write_clip(MEDIA / "vtest.avi", tmp_path_factory.mktemp("clips") / "vtest-short.mp4", CLIP_FRAMES)


@pytest.fixture
def settings(redis_server: RedisServer, default_model: ModelSpec) -> WorkerSettings:
    return WorkerSettings(redis_url=redis_server.url, model_repository=MODELS)


@pytest.fixture
def start_run(redis_client: redis.Redis, settings: WorkerSettings) -> Iterator[StartRun]:
    """Factory: runs ``runner.run`` on a thread for a fresh record; every run is stopped afterwards."""
    pool = ThreadPoolExecutor(max_workers=4)
    runs: list[Run] = []

    def start(spec: PipelineSpec, record: PipelineRecord | None = None, epoch: int | None = None,
              client_settings: WorkerSettings | None = None) -> Run:
        record = record or create_record(redis_client)
        used = client_settings or settings
        client = redis.Redis.from_url(used.redis_url, socket_timeout=2, socket_connect_timeout=1)
        reply_to, shutdown = new_reply_list(), threading.Event()
        future = pool.submit(runner.run, record.pipeline_id, epoch or record.epoch, spec, reply_to, client,
                             used, HOST, shutdown)
        future.add_done_callback(lambda _: client.close())
        runs.append(Run(record, reply_to, future, shutdown))
        return runs[-1]

    yield start
    for run in runs:
        run.shutdown.set()
    pool.shutdown(wait=True, cancel_futures=True)


def spec_for(*references: str | int, **fields: Any) -> PipelineSpec:
    return PipelineSpec(video_references=list(references), model_id="yolov3-tiny/coco-416", **fields)


def report_of(client: redis.Redis, pipeline_id: str) -> dict[str, Any]:
    raw = client.get(keys.pipeline_report(pipeline_id))
    assert raw is not None
    return json.loads(raw)


# ----------------------------------------------------------------------------- a file, start to end


def test_file_pipeline_replies_streams_results_and_ends(
    start_run: StartRun, redis_client: redis.Redis, clip: Path
) -> None:
    run = start_run(spec_for(str(clip)))

    assert pop_reply(redis_client, run.reply_to, timeout=20) == {"status": "success"}
    assert run.result(timeout=30) is PipelineState.ENDED

    pipeline_id = run.record.pipeline_id
    record = read_record(redis_client, pipeline_id)
    assert (record.state, record.last_error) == (PipelineState.ENDED, "")
    assert record.owner.startswith(f"{HOST}:")
    assert redis_client.exists(keys.pipeline_heartbeat(pipeline_id)) == 0
    entries = redis_client.xrange(keys.results_stream(pipeline_id))
    assert len(entries) == CLIP_FRAMES
    outputs, metadata = decode_entry(entries[-1][1])
    assert metadata[0]["frame_id"] == CLIP_FRAMES and metadata[0]["source_id"] == 0
    assert outputs[0]["image"] == {"width": 768, "height": 576}
    assert "person" in {prediction["class"] for prediction in outputs[0]["predictions"]}
    report = report_of(redis_client, pipeline_id)
    assert report["pipeline_id"] == pipeline_id and report["state"] == "ENDED"
    assert report["epoch"] == 1 and report["owner"] == record.owner
    assert report["sources_metadata"][0]["state"] == "ENDED"


def test_a_restarted_file_pipeline_resumes_after_the_last_result_written(
    start_run: StartRun, redis_client: redis.Redis, clip: Path
) -> None:
    record = create_record(redis_client, epoch=2, restarts=1)
    stream = keys.results_stream(record.pipeline_id)
    # What the lost epoch-1 task had written: frames 1..5 of the clip.
    for frame_id in range(1, 6):
        metadata = [{"frame_timestamp": "2026-11-30T00:00:00+00:00", "frame_id": frame_id, "source_id": 0}]
        redis_client.xadd(stream, {**encode_entry([None], metadata), "epoch": "1"})

    run = start_run(spec_for(str(clip)), record=record)

    assert run.result(timeout=30) is PipelineState.ENDED
    written = [(entry_epoch(fields), decode_entry(fields)[1][0]["frame_id"])
               for _, fields in redis_client.xrange(stream)]
    assert written == [(1, n) for n in range(1, 6)] + [(2, n) for n in range(6, CLIP_FRAMES + 1)]


def test_a_restarted_file_pipeline_whose_files_were_all_written_just_ends(
    start_run: StartRun, redis_client: redis.Redis, clip: Path
) -> None:
    record = create_record(redis_client, epoch=2, restarts=1)
    stream = keys.results_stream(record.pipeline_id)
    metadata = [{"frame_timestamp": "2026-11-30T00:00:00+00:00", "frame_id": CLIP_FRAMES, "source_id": 0}]
    redis_client.xadd(stream, {**encode_entry([None], metadata), "epoch": "1"})

    run = start_run(spec_for(str(clip)), record=record)

    assert run.result(timeout=30) is PipelineState.ENDED
    assert redis_client.xlen(stream) == 1  # nothing processed twice


# ----------------------------------------------------------------------------- claim


@pytest.mark.parametrize(
    ("fields", "epoch"),
    [
        ({"epoch": 2}, 1),  # a newer dispatch exists
        ({"state": PipelineState.ENDED}, 1),  # already over
        ({"desired_state": DesiredState.TERMINATED}, 1),  # terminated before it started
    ],
    ids=["older-epoch", "final-state", "terminate-requested"],
)
def test_stale_dispatch_writes_nothing(
    start_run: StartRun, redis_client: redis.Redis, clip: Path, fields: dict[str, Any], epoch: int
) -> None:
    record = create_record(redis_client, **fields)
    before = redis_client.hgetall(keys.pipeline_record(record.pipeline_id))

    run = start_run(spec_for(str(clip)), record=record, epoch=epoch)

    assert run.result(timeout=10) is None
    assert redis_client.hgetall(keys.pipeline_record(record.pipeline_id)) == before
    replies = [key for key in redis_client.keys("*") if key.startswith(keys.reply_list("").encode())]
    assert sorted(set(redis_client.keys("*")) - set(replies)) == [keys.pipeline_record(record.pipeline_id).encode()]
    if fields.get("desired_state") is DesiredState.TERMINATED:
        # The INIT waiting for this task hears at once that its pipeline was terminated first.
        (reply,) = replies
        answer = json.loads(redis_client.lindex(reply, 0))  # type: ignore[arg-type]
        assert answer["response"]["status"] == "failure" and "terminated before it started" in str(answer)
        assert 0 < redis_client.ttl(reply) <= keys.REPLY_TTL
    else:
        assert replies == []  # a stale or duplicate delivery answers nothing


def test_missing_record_writes_nothing(start_run: StartRun, redis_client: redis.Redis, clip: Path) -> None:
    run = start_run(spec_for(str(clip)), record=PipelineRecord(pipeline_id="ghost"))

    assert run.result(timeout=10) is None
    assert redis_client.keys("*") == []


def test_second_task_of_a_claimed_epoch_is_stale(
    start_run: StartRun, redis_client: redis.Redis, clip: Path
) -> None:
    first = start_run(spec_for(str(MEDIA / "vtest.avi"), max_fps=5))
    assert pop_reply(redis_client, first.reply_to, timeout=20) == {"status": "success"}

    duplicate = start_run(spec_for(str(clip)), record=first.record)

    assert duplicate.result(timeout=10) is None
    assert pop_reply(redis_client, duplicate.reply_to, timeout=0.5) is None
    assert read_record(redis_client, first.record.pipeline_id).state is PipelineState.RUNNING


# ----------------------------------------------------------------------------- build failures


@pytest.mark.parametrize(
    ("fields", "error_type", "mentions"),
    [
        ({"model_id": "nope/1"}, "not_found", "nope/1"),
        ({"video_references": ["data/media/missing-s3cret.mp4"], "api_key": "s3cret"}, "not_found",
         "missing-***.mp4"),
        ({"video_source_properties": {"no_such_property": 1}}, "invalid_payload", "no_such_property"),
    ],
    ids=["unknown-model", "missing-file", "bad-source-property"],
)
def test_build_failure_records_failed_and_replies_failure(
    start_run: StartRun, redis_client: redis.Redis, clip: Path, fields: dict[str, Any], error_type: str,
    mentions: str,
) -> None:
    payload = {"video_references": [str(clip)], "model_id": "yolov3-tiny/coco-416", **fields}

    run = start_run(PipelineSpec.model_validate(payload))

    assert run.result(timeout=20) is PipelineState.FAILED
    assert 0 < redis_client.ttl(run.reply_to) <= keys.REPLY_TTL
    response = pop_reply(redis_client, run.reply_to, timeout=1)
    assert response is not None
    assert (response["status"], response["error_type"]) == ("failure", error_type)
    record = read_record(redis_client, run.record.pipeline_id)
    assert record.state is PipelineState.FAILED
    assert mentions in record.last_error and mentions in response["error_message"]
    assert "s3cret" not in record.last_error and "s3cret" not in json.dumps(response)
    assert redis_client.exists(keys.results_stream(run.record.pipeline_id)) == 0
    assert redis_client.exists(keys.pipeline_heartbeat(run.record.pipeline_id)) == 0


# ----------------------------------------------------------------------------- control


@pytest.fixture(scope="module")
def live_stream() -> Iterator[str]:
    """An endless real-time HTTP stream of vtest.avi (10 fps)."""
    with http_live_stream(MEDIA / "vtest.avi") as url:
        yield url


def test_control_commands_over_pubsub(start_run: StartRun, redis_client: redis.Redis, live_stream: str) -> None:
    run = start_run(spec_for(live_stream))
    pipeline_id, epoch = run.record.pipeline_id, run.record.epoch
    assert pop_reply(redis_client, run.reply_to, timeout=20) == {"status": "success"}
    wait_for(lambda: last_result_id(redis_client, pipeline_id), timeout=10)
    wait_for(lambda: record_state(redis_client, pipeline_id) is PipelineState.RUNNING, timeout=3)

    assert send_command(redis_client, pipeline_id, epoch, Command.MUTE, desired=DesiredState.MUTED) == {
        "status": "success"}
    wait_for(lambda: record_state(redis_client, pipeline_id) is PipelineState.MUTED, timeout=2)
    # rounds already past the sources drain into the stream, then nothing more (the source runs at 10 fps)
    muted_at = settled(lambda: last_result_id(redis_client, pipeline_id), quiet=1.5, timeout=20)

    assert send_command(redis_client, pipeline_id, epoch, Command.RESUME, desired=DesiredState.RUNNING) == {
        "status": "success"}
    wait_for(lambda: last_result_id(redis_client, pipeline_id) != muted_at, timeout=5)
    wait_for(lambda: record_state(redis_client, pipeline_id) is PipelineState.RUNNING, timeout=2)

    status = send_command(redis_client, pipeline_id, epoch, Command.STATUS)
    assert status is not None and status["status"] == "success"
    report = status["report"]
    assert (report["pipeline_id"], report["state"], report["epoch"]) == (pipeline_id, "RUNNING", epoch)
    assert report["sources_metadata"][0]["source_reference"] == live_stream
    assert report["sources_metadata"][0]["source_properties"]["width"] == 768

    # Garbage and commands for another epoch are ignored: no reply, the pipeline runs on.
    redis_client.publish(keys.pipeline_control_channel(pipeline_id), b"not json")
    assert send_command(redis_client, pipeline_id, epoch + 1, Command.TERMINATE, timeout=0.5) is None

    started = time.monotonic()
    assert send_command(redis_client, pipeline_id, epoch, Command.TERMINATE,
                        desired=DesiredState.TERMINATED) == {"status": "success"}
    assert time.monotonic() - started < 2.5
    assert record_state(redis_client, pipeline_id) is PipelineState.TERMINATED
    assert run.result(timeout=2) is PipelineState.TERMINATED
    assert redis_client.exists(keys.pipeline_heartbeat(pipeline_id)) == 0


def test_lost_messages_are_recovered_by_reconciliation(
    start_run: StartRun, redis_client: redis.Redis, live_stream: str
) -> None:
    run = start_run(spec_for(live_stream))
    pipeline_id, record_key = run.record.pipeline_id, keys.pipeline_record(run.record.pipeline_id)
    assert pop_reply(redis_client, run.reply_to, timeout=20) == {"status": "success"}

    redis_client.hset(record_key, "desired_state", DesiredState.MUTED.value)  # and no PUBLISH
    wait_for(lambda: record_state(redis_client, pipeline_id) is PipelineState.MUTED, timeout=2.5)

    redis_client.hset(record_key, "desired_state", DesiredState.TERMINATED.value)
    assert run.result(timeout=5) is PipelineState.TERMINATED
    assert read_record(redis_client, pipeline_id).last_error == ""


# ----------------------------------------------------------------------------- ending by itself


def test_consumption_timeout_terminates_the_pipeline(start_run: StartRun, redis_client: redis.Redis) -> None:
    run = start_run(spec_for(str(MEDIA / "vtest.avi"), max_fps=5, consumption_timeout=1.0))
    pipeline_id = run.record.pipeline_id
    assert pop_reply(redis_client, run.reply_to, timeout=20) == {"status": "success"}

    consumed_until = time.monotonic() + 2.5  # a consumer keeps it alive...
    while time.monotonic() < consumed_until:
        redis_client.hset(keys.pipeline_consumed(pipeline_id), "last_non_empty", time.time())
        time.sleep(0.2)
    assert not run.future.done()

    assert run.result(timeout=4) is PipelineState.TERMINATED  # ...until it stops consuming
    record = read_record(redis_client, pipeline_id)
    assert record.state is PipelineState.TERMINATED
    assert record.last_error.startswith("consumption_timeout")


def test_a_newer_epoch_fences_the_old_task_out(start_run: StartRun, redis_client: redis.Redis) -> None:
    run = start_run(spec_for(str(MEDIA / "vtest.avi"), max_fps=5))
    pipeline_id = run.record.pipeline_id
    assert pop_reply(redis_client, run.reply_to, timeout=20) == {"status": "success"}
    wait_for(lambda: record_state(redis_client, pipeline_id) is PipelineState.RUNNING, timeout=3)

    # The manager re-dispatched: epoch 2, pending, nobody's heartbeat.
    takeover = {"epoch": "2", "state": PipelineState.PENDING.value, "owner": "", "updated_at": "1"}
    redis_client.hset(keys.pipeline_record(pipeline_id), mapping=takeover)
    redis_client.delete(keys.pipeline_heartbeat(pipeline_id), keys.pipeline_report(pipeline_id))

    assert run.result(timeout=5) is None
    stopped_at = last_result_id(redis_client, pipeline_id)
    time.sleep(1.5)
    fields = {k.decode(): v.decode() for k, v in
              redis_client.hgetall(keys.pipeline_record(pipeline_id)).items()}
    assert {name: fields[name] for name in takeover} == takeover
    assert redis_client.exists(keys.pipeline_heartbeat(pipeline_id), keys.pipeline_report(pipeline_id)) == 0
    assert last_result_id(redis_client, pipeline_id) == stopped_at


def test_pipeline_runs_through_a_redis_outage(start_run: StartRun, settings: WorkerSettings) -> None:
    with running_redis() as server:
        own_settings = settings.model_copy(update={"redis_url": server.url})
        client = redis.Redis.from_url(server.url)
        try:
            run = start_run(spec_for(str(MEDIA / "vtest.avi"), max_fps=5),
                            record=create_record(client), client_settings=own_settings)
            pipeline_id = run.record.pipeline_id
            assert pop_reply(client, run.reply_to, timeout=20) == {"status": "success"}
            wait_for(lambda: client.exists(keys.pipeline_heartbeat(pipeline_id)), timeout=3)
            record = read_record(client, pipeline_id)

            server.stop()
            time.sleep(2.5)
            assert not run.future.done()
            server.start()
            # Without persistence the restarted Redis is empty: the task puts its record back itself.
            wait_for(lambda: client.exists(keys.pipeline_heartbeat(pipeline_id)), timeout=5)
            restored = read_record(client, pipeline_id)
            assert (restored.epoch, restored.owner, restored.created_at) == (1, record.owner, record.created_at)
            wait_for(lambda: last_result_id(client, pipeline_id), timeout=5)
            channel = keys.pipeline_control_channel(pipeline_id)
            wait_for(lambda: client.pubsub_numsub(channel)[0][1], timeout=6)  # listener is back
            assert send_command(client, pipeline_id, 1, Command.TERMINATE,
                                desired=DesiredState.TERMINATED) == {"status": "success"}
            assert run.result(timeout=5) is PipelineState.TERMINATED
        finally:
            client.close()


def test_a_source_that_cannot_be_read_fails_the_pipeline(
    start_run: StartRun, redis_client: redis.Redis, tmp_path: Path
) -> None:
    not_a_video = tmp_path / "notes.mp4"
    not_a_video.write_text("this is not a video")
    run = start_run(spec_for(str(not_a_video)))

    assert pop_reply(redis_client, run.reply_to, timeout=20) == {"status": "success"}  # it did start
    assert run.result(timeout=10) is PipelineState.FAILED
    record = read_record(redis_client, run.record.pipeline_id)
    assert record.state is PipelineState.FAILED
    assert record.last_error.startswith("source 0: ")
    assert report_of(redis_client, run.record.pipeline_id)["state"] == "FAILED"
