"""Format versions side by side: records, task specs and worker registrations of older, current and
newer versions are read (unknown fields ignored, missing ones defaulted); a newer major is refused
with a reason naming both versions."""

import pytest

from services.core import formats
from services.core.formats import FormatError, FormatVersion
from services.core.plan import PipelineSpec, load_task_spec
from services.core.records import PipelineRecord, PipelineState
from services.core.registration import WorkerRegistration, check_format

SPEC = PipelineSpec(video_references=["rtsp://camera/stream"], model_id="yolov3-tiny/coco-416", max_fps=5)


def test_versions_parse_and_order() -> None:
    assert FormatVersion.parse(None) == FormatVersion.parse("") == formats.LEGACY == FormatVersion(1, 0)
    assert FormatVersion.parse("1.10") > FormatVersion.parse("1.9") > formats.LEGACY
    assert str(formats.RECORD) == str(formats.SPEC) == str(formats.REGISTRATION) == "1.1"
    for bad in ("1", "v1.1", "1.1.1", 1.1):
        with pytest.raises(FormatError, match=r"is not MAJOR\.MINOR"):
            FormatVersion.parse(bad)


def test_records_of_every_readable_version() -> None:
    current = PipelineRecord("p", state=PipelineState.RUNNING, epoch=3).to_hash()
    assert current["format_version"] == "1.1"
    assert PipelineRecord.from_hash(current) == PipelineRecord("p", state=PipelineState.RUNNING, epoch=3)

    older = {k: v for k, v in current.items() if k not in ("format_version", "movable", "dispatched_at")}
    read = PipelineRecord.from_hash(older)  # written before versions (and before later fields)
    assert (read.format_version, read.epoch, read.movable, read.dispatched_at) == ("1.0", 3, True, 0.0)

    newer = {**current, "format_version": "1.7", "placement": "rack-2"}  # a newer minor's extra field
    assert PipelineRecord.from_hash(newer).epoch == 3

    with pytest.raises(FormatError, match=r"pipeline record format 2.0 is newer than this release reads \(1.x"):
        PipelineRecord.from_hash({**current, "format_version": "2.0"})


def test_task_specs_of_every_readable_version() -> None:
    payload = SPEC.task_payload()
    assert payload["format_version"] == "1.1" and load_task_spec(payload) == SPEC

    older = {k: v for k, v in payload.items() if k != "format_version"}  # stored by a manager before versions
    assert load_task_spec(older) == SPEC

    newer = {**payload, "format_version": "1.4", "gpu_affinity": 2}  # a newer minor's new option
    assert load_task_spec(newer) == SPEC

    same_minor = {**payload, "gpu_affinity": 2}  # not a newer minor: an unknown field is still an error
    with pytest.raises(ValueError, match="gpu_affinity"):
        load_task_spec(same_minor)
    with pytest.raises(FormatError, match=r"pipeline spec format 3\.1 is newer"):
        load_task_spec({**payload, "format_version": "3.1"})


def test_registrations_of_every_readable_version() -> None:
    older = WorkerRegistration.model_validate_json('{"hostname": "w@h", "queues": ["pipelines.cpu"]}')
    check_format(older)
    assert (older.format_version, older.draining, older.consuming) == ("1.0", False, None)

    newer = WorkerRegistration.model_validate_json(
        '{"hostname": "w@h", "queues": [], "format_version": "1.3", "draining": true, "consuming": false, "x": 1}')
    check_format(newer)
    assert (newer.draining, newer.consuming) == (True, False)

    with pytest.raises(FormatError, match=r"worker registration of w@h format 2\.0 is newer"):
        check_format(newer.model_copy(update={"format_version": "2.0"}))
