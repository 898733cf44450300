"""consume_result: a cursor over the results stream that deletes nothing and counts drops."""

from typing import Any

import pytest
import redis

from services.core import keys
from services.core.results import encode_entry
from tests.manager.conftest import RunningManager
from tests.manager.fakes import call
from tests.manager.test_control import orphan_pipeline


def add(client: redis.Redis, pipeline_id: str, n: int, start: int = 0, maxlen: int | None = None) -> None:
    for frame_id in range(start, start + n):
        output = {"image": {"width": 4, "height": 3}, "predictions": [], "frame": frame_id}
        metadata = {"frame_timestamp": "2024-01-01T00:00:00", "frame_id": frame_id, "source_id": 0}
        client.xadd(keys.results_stream(pipeline_id), encode_entry([output, None], [metadata, None]),  # type: ignore[arg-type]
                    maxlen=maxlen, approximate=False)


def consume(manager: RunningManager, pipeline_id: str, **extra: Any) -> dict[str, Any]:
    reply = call(manager.port, {"type": "consume_result", "pipeline_id": pipeline_id,
                                "excluded_fields": [], **extra})
    assert reply["pipeline_id"] == pipeline_id
    return reply["response"]  # type: ignore[no-any-return]


def frames(response: dict[str, Any]) -> list[int]:
    return [entry["frames_metadata"][0]["frame_id"] for entry in response.get("entries", [response])
            if entry["frames_metadata"]]


@pytest.fixture
def pipeline_id(redis_client: redis.Redis) -> str:
    return orphan_pipeline(redis_client, state="RUNNING")


def test_empty_buffer(manager: RunningManager, pipeline_id: str) -> None:
    assert consume(manager, pipeline_id) == {"status": "success", "outputs": [], "frames_metadata": [],
                                             "dropped": 0, "remaining": 0}


def test_oldest_unread_entry_first_with_excluded_fields(
    manager: RunningManager, redis_client: redis.Redis, pipeline_id: str
) -> None:
    add(redis_client, pipeline_id, 3)

    first = consume(manager, pipeline_id, excluded_fields=["image"])
    second = consume(manager, pipeline_id)

    assert first["outputs"] == [{"predictions": [], "frame": 0}, None]
    assert first["frames_metadata"][1] is None and "entries" not in first
    assert (first["dropped"], first["remaining"]) == (0, 2)
    assert frames(second) == [1] and second["outputs"][0]["image"] == {"width": 4, "height": 3}
    assert list(first) == ["status", "outputs", "frames_metadata", "dropped", "remaining"]


def test_max_entries_returns_a_batch_oldest_first(
    manager: RunningManager, redis_client: redis.Redis, pipeline_id: str
) -> None:
    add(redis_client, pipeline_id, 4)
    consume(manager, pipeline_id)

    batch = consume(manager, pipeline_id, max_entries=10)
    after = consume(manager, pipeline_id, max_entries=10)

    assert frames(batch) == [1, 2, 3] and batch["outputs"][0]["frame"] == 1
    assert batch["remaining"] == 0
    assert after["entries"] == [] and after["outputs"] == []


def test_entries_trimmed_before_being_read_are_counted_once(
    manager: RunningManager, redis_client: redis.Redis, pipeline_id: str
) -> None:
    add(redis_client, pipeline_id, 5)
    assert frames(consume(manager, pipeline_id)) == [0]
    add(redis_client, pipeline_id, 10, start=5, maxlen=4)  # 1..10 trimmed unread, 11..14 kept

    batch = consume(manager, pipeline_id, max_entries=2)
    rest = consume(manager, pipeline_id, max_entries=10)

    assert frames(batch) == [11, 12] and batch["dropped"] == 10 and batch["remaining"] == 2
    assert frames(rest) == [13, 14] and rest["dropped"] == 0 and rest["remaining"] == 0
    cursor = redis_client.hgetall(keys.pipeline_consumed(pipeline_id))
    assert cursor[b"consumed"] == b"5" and cursor[b"dropped"] == b"10"
    assert float(cursor[b"last_non_empty"]) > 0


def test_drops_before_the_first_consume_are_counted(
    manager: RunningManager, redis_client: redis.Redis, pipeline_id: str
) -> None:
    add(redis_client, pipeline_id, 10, maxlen=3)

    response = consume(manager, pipeline_id)

    assert frames(response) == [7] and response["dropped"] == 7 and response["remaining"] == 2


def test_other_consumer_groups_still_see_every_entry(
    manager: RunningManager, redis_client: redis.Redis, pipeline_id: str
) -> None:
    stream = keys.results_stream(pipeline_id)
    add(redis_client, pipeline_id, 3)
    redis_client.xgroup_create(stream, "analytics", id="0")

    consume(manager, pipeline_id, max_entries=3)

    assert redis_client.xlen(stream) == 3
    [(_, entries)] = redis_client.xreadgroup("analytics", "c1", {stream: ">"})  # type: ignore[str-unpack]
    assert len(entries) == 3  # type: ignore[arg-type]
