"""Detection ids: random version-4 UUIDs, one read of the OS's random source per frame."""

import os
import uuid
from typing import Any

from services.worker.detection import detections
from services.worker.detection.detections import detection_ids


def test_ids_are_distinct_version_4_uuids() -> None:
    ids = detection_ids(2000)
    assert len(set(ids)) == 2000
    for text in ids[:50]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122
    assert detection_ids(0) == [] and detection_ids(-1) == []


def test_one_read_of_the_random_source_per_call(monkeypatch: Any) -> None:
    reads: list[int] = []
    urandom = os.urandom

    def counting(size: int) -> bytes:
        reads.append(size)
        return urandom(size)

    monkeypatch.setattr(detections.os, "urandom", counting)
    assert len(detection_ids(7)) == 7
    assert reads == [16 * 7]
