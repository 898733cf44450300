"""string_template and current_time, compiled from definitions as users write them, run on frames (fake clock)."""

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfoNotFoundError

import pytest

from services.core.workflows import compile_workflow
from services.core.workflows.string_templates import TemplateError
from services.worker.workflows.blocks import REGISTRY, formatters
from services.worker.workflows.operations import QueryLanguageError
from tests.worker.workflows.query_values import FakeClock, boxes, environment, resolved, scene

DETECTIONS = "$steps.model.predictions"
SUMMER_NOON_UTC = datetime(2026, 7, 1, 12, 0, 0, tzinfo=UTC).timestamp()
WINTER_NOON_UTC = datetime(2026, 1, 15, 12, 0, 0, tzinfo=UTC).timestamp()


def workflow(*steps: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"},
                   {"type": "WorkflowParameter", "name": "site", "default_value": "Gate 3"},
                   {"type": "WorkflowParameter", "name": "zone", "default_value": "Europe/Berlin"}],
        "steps": [{"type": "roboflow_core/roboflow_object_detection_model@v2", "name": "model",
                   "images": "$inputs.image", "model_id": "m"}, *steps],
        "outputs": [],
    }


def build(step: dict[str, Any], clock: FakeClock | None = None, **parameters: Any) -> tuple[Any, Any]:
    planned = compile_workflow(workflow({"name": "step", **step}), parameters=parameters).step("step")
    return REGISTRY[planned.type](planned, environment(clock)), planned


# ---------------------------------------------------------------------------- string_template


def test_string_template_fills_several_variables_after_their_operations() -> None:
    block, step = build({
        "type": "roboflow_core/string_template@v1",
        "template": "{site}: {count} objects ({names}), best {best:.2f}, {flag}",
        "data": {"site": "$inputs.site", "count": DETECTIONS, "names": DETECTIONS, "best": DETECTIONS, "flag": True},
        "data_operations": {
            "count": [{"type": "SequenceLength"}],
            "names": [{"type": "DetectionsPropertyExtract", "property_name": "class_name"},
                      {"type": "SequenceJoin", "separator": "+"}],
            "best": [{"type": "DetectionsPropertyExtract", "property_name": "confidence"},
                     {"type": "NumericSequenceAggregate", "function": "max"}],
        },
    })
    assert step.params["data"]["site"] == "Gate 3"  # the parameter, substituted at INIT
    assert block.run(**resolved(step, {DETECTIONS: scene()})) == {
        "output": "Gate 3: 3 objects (person+car+person), best 0.90, True"}
    assert block.run(**resolved(step, {DETECTIONS: boxes([(0, 0, 5, 5, 0.25, "car")])})) == {
        "output": "Gate 3: 1 objects (car), best 0.25, True"}


def test_string_template_literal_braces_nested_specs_and_unused_variables() -> None:
    block, step = build({
        "type": "roboflow_core/string_template@v1",
        "template": 'Answer in JSON: {{"class": "{label}", "score": "{score:>{width}}"}}',
        "data": {"label": "person", "score": 7, "width": 4, "unused": "never read"},
    })
    assert step.params["data_operations"] == {}
    assert block.run(**resolved(step, {})) == {"output": 'Answer in JSON: {"class": "person", "score": "   7"}'}


def test_string_template_without_placeholders_gives_the_template() -> None:
    block, step = build({"type": "roboflow_core/string_template@v1", "template": "static prompt"})
    assert block.run(**resolved(step, {})) == {"output": "static prompt"}


@pytest.mark.parametrize(("template", "data", "message"), [
    ("Hello {name}", {}, r"the template reads \['name'\], which data does not declare"),
    ("Hello {}", {"name": "x"}, "positional placeholders"),
    ("Hello {0}", {"name": "x"}, "positional placeholders"),
    ("{name.__class__}", {"name": "x"}, "attribute or index access"),
    ("{names[0]}", {"names": ["x"]}, "attribute or index access"),
    ("{x:{y.__class__}}", {"x": 1, "y": 2}, "attribute or index access"),
    ("Hello {name", {"name": "x"}, "cannot parse the template"),
    ("{value:{width}}", {"value": "x", "width": 1_000_000_000}, "more than the largest width or precision"),
    ("{value:.99999f}", {"value": 1.5}, "more than the largest width or precision"),
    ("{value:d}", {"value": "text"}, "cannot render the template: Unknown format code 'd'"),
    ("{value}{value}", {"value": "x" * 600_000}, "the rendered template has 1200000 characters"),
])
def test_string_template_fed_by_a_step_fails_that_frame_when_it_cannot_render(
        template: str, data: dict[str, Any], message: str) -> None:
    block, _ = build({"type": "roboflow_core/string_template@v1", "template": "$steps.model.*"})
    with pytest.raises(TemplateError, match=message):
        block.run(template=template, data=data, data_operations={})


def test_string_template_refuses_a_template_that_is_not_a_string_and_failing_operations() -> None:
    block, step = build({"type": "roboflow_core/string_template@v1", "template": "{n}", "data": {"n": DETECTIONS},
                         "data_operations": {"n": [{"type": "StringToUpperCase"}]}})
    with pytest.raises(ValueError, match="template must be a string, got int"):
        block.run(template=42, data={}, data_operations={})
    with pytest.raises(QueryLanguageError, match=r"operations\[0\] \(StringToUpperCase\): expected a string"):
        block.run(**resolved(step, {DETECTIONS: scene()}))


# ---------------------------------------------------------------------------- current_time


@pytest.mark.parametrize(("timezone", "now", "iso", "date", "time"), [
    ("UTC", SUMMER_NOON_UTC, "2026-07-01T12:00:00+00:00", "2026-07-01", "12:00:00"),
    ("Europe/Berlin", SUMMER_NOON_UTC, "2026-07-01T14:00:00+02:00", "2026-07-01", "14:00:00"),  # CEST
    ("Europe/Berlin", WINTER_NOON_UTC, "2026-01-15T13:00:00+01:00", "2026-01-15", "13:00:00"),  # CET
    ("Asia/Kathmandu", SUMMER_NOON_UTC, "2026-07-01T17:45:00+05:45", "2026-07-01", "17:45:00"),
    ("Pacific/Kiritimati", SUMMER_NOON_UTC, "2026-07-02T02:00:00+14:00", "2026-07-02", "02:00:00"),  # next day
    ("Etc/GMT+12", SUMMER_NOON_UTC, "2026-07-01T00:00:00-12:00", "2026-07-01", "00:00:00"),
])
def test_current_time_in_a_named_timezone(timezone: str, now: float, iso: str, date: str, time: str) -> None:
    block, step = build({"type": "roboflow_core/current_time@v1", "timezone": timezone}, FakeClock(now))
    result = block.run(**resolved(step, {}))
    assert (result["iso_string"], result["date"], result["time"]) == (iso, date, time)
    assert result["timestamp"] == datetime.fromtimestamp(now, tz=UTC)  # the same instant, only shown elsewhere
    assert result["timestamp"].utcoffset() == datetime.fromisoformat(iso).utcoffset()


def test_current_time_defaults_to_utc_and_reads_the_clock_on_every_frame() -> None:
    clock = FakeClock(SUMMER_NOON_UTC)
    block, step = build({"type": "roboflow_core/current_time@v1"}, clock)
    assert step.params == {"timezone": "UTC"}
    times = []
    for _ in range(3):
        times.append(block.run(**resolved(step, {}))["time"])
        clock.advance(61.5)
    assert times == ["12:00:00", "12:01:01", "12:02:03"]


def test_current_time_from_a_parameter_and_a_timezone_fed_by_a_step() -> None:
    block, step = build({"type": "roboflow_core/current_time@v1", "timezone": "$inputs.zone"},
                        FakeClock(SUMMER_NOON_UTC), zone="America/New_York")
    assert step.params == {"timezone": "America/New_York"}
    assert block.run(**resolved(step, {}))["iso_string"] == "2026-07-01T08:00:00-04:00"
    assert block.run(timezone="Asia/Tokyo")["time"] == "21:00:00"
    for bad in ("Mars/Olympus_Mons", "Europe/Paris", None, 3):  # Paris is real, but not a curated zone
        with pytest.raises(ValueError, match="is not one of the supported timezones"):
            block.run(timezone=bad)


def test_current_time_explains_missing_timezone_data(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_data(name: str) -> None:
        raise ZoneInfoNotFoundError(name)

    monkeypatch.setattr(formatters, "ZoneInfo", no_data)
    block, _ = build({"type": "roboflow_core/current_time@v1"})
    with pytest.raises(ValueError, match="no time zone data for it on this worker"):
        block.run(timezone="UTC")

