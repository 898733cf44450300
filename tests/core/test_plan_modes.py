"""Processing modes in the init payload (our extension): ``processing_mode`` and ``max_staleness``."""

import json
from typing import Any

import pytest

from services.core.plan import compile_init, load_task_spec
from services.core.states import BufferConsumptionStrategy, BufferFillingStrategy, ProcessingMode
from tests.core.test_plan import newer_payload, refusal, seed_client_payload


def newer_with(**video: Any) -> dict[str, Any]:
    payload = newer_payload()
    payload["video_configuration"] = {**payload["video_configuration"], **video}
    return payload


def test_a_mode_names_a_pair_of_strategies() -> None:
    assert (ProcessingMode.EVERY_FRAME.filling, ProcessingMode.EVERY_FRAME.consumption) == (
        BufferFillingStrategy.WAIT, BufferConsumptionStrategy.LAZY)
    assert (ProcessingMode.FRESHEST.filling, ProcessingMode.FRESHEST.consumption) == (
        BufferFillingStrategy.DROP_OLDEST, BufferConsumptionStrategy.EAGER)
    assert ProcessingMode.of(BufferFillingStrategy.WAIT, BufferConsumptionStrategy.LAZY) is ProcessingMode.EVERY_FRAME
    assert ProcessingMode.of(BufferFillingStrategy.DROP_OLDEST, BufferConsumptionStrategy.EAGER) is (
        ProcessingMode.FRESHEST)
    assert ProcessingMode.of(BufferFillingStrategy.DROP_LATEST, BufferConsumptionStrategy.EAGER) is None


def test_unset_mode_leaves_everything_to_the_engine() -> None:
    for spec in (compile_init(seed_client_payload()), compile_init(newer_payload())):
        assert (spec.processing_mode, spec.max_staleness) == (None, None)


def test_the_flat_payload_takes_them_at_the_top_level() -> None:
    spec = compile_init({**seed_client_payload(), "processing_mode": "Freshest", "max_staleness": 0.25})

    assert (spec.processing_mode, spec.max_staleness) == (ProcessingMode.FRESHEST, 0.25)
    assert spec.source_buffer_filling_strategy is None  # the mode decides, in the engine


def test_the_newer_payload_takes_them_in_video_configuration() -> None:
    spec = compile_init(newer_with(processing_mode="every_frame"))
    assert (spec.processing_mode, spec.max_staleness) == (ProcessingMode.EVERY_FRAME, None)

    spec = compile_init(newer_with(processing_mode="freshest", max_staleness=2))
    assert (spec.processing_mode, spec.max_staleness) == (ProcessingMode.FRESHEST, 2.0)


def test_freshest_without_max_staleness_has_no_age_limit() -> None:
    spec = compile_init(newer_with(processing_mode="freshest"))

    assert (spec.processing_mode, spec.max_staleness) == (ProcessingMode.FRESHEST, None)


def test_strategies_that_agree_with_the_mode_are_accepted() -> None:
    spec = compile_init({**seed_client_payload(), "processing_mode": "every_frame",
                         "source_buffer_filling_strategy": "WAIT", "source_buffer_consumption_strategy": "lazy"})

    assert spec.processing_mode is ProcessingMode.EVERY_FRAME
    assert spec.source_buffer_filling_strategy is BufferFillingStrategy.WAIT


@pytest.mark.parametrize(
    ("change", "fields"),
    [
        ({"processing_mode": "every_frame", "source_buffer_filling_strategy": "DROP_OLDEST"},
         ("'processing_mode'", "'source_buffer_filling_strategy' 'DROP_OLDEST'")),
        ({"processing_mode": "every_frame", "source_buffer_consumption_strategy": "EAGER"},
         ("'processing_mode'", "'source_buffer_consumption_strategy' 'EAGER'")),
        ({"processing_mode": "freshest", "source_buffer_filling_strategy": "ADAPTIVE_DROP_OLDEST"},
         ("'processing_mode'", "'source_buffer_filling_strategy' 'ADAPTIVE_DROP_OLDEST'")),
        ({"processing_mode": "freshest", "source_buffer_consumption_strategy": "LAZY"},
         ("'processing_mode'", "'source_buffer_consumption_strategy' 'LAZY'")),
    ],
)
def test_a_mode_contradicting_a_strategy_is_refused_naming_both(change: dict[str, Any], fields: tuple[str, str]
                                                                ) -> None:
    message = refusal({**seed_client_payload(), **change})

    assert message.startswith("invalid init payload: field 'processing_mode':")
    assert all(field in message for field in fields), message
    assert "contradicts" in message


def test_the_newer_refusal_names_both_payload_paths() -> None:
    message = refusal(newer_with(processing_mode="freshest", source_buffer_consumption_strategy="LAZY"))

    assert "field 'video_configuration.processing_mode'" in message
    assert "field 'video_configuration.source_buffer_consumption_strategy' 'LAZY'" in message


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"processing_mode": "newest"}, "field 'processing_mode': Input should be 'every_frame' or 'freshest'"),
        ({"processing_mode": 1}, "field 'processing_mode'"),
        ({"max_staleness": 0.5}, "field 'max_staleness': needs field 'processing_mode' 'freshest' (it is not given)"),
        ({"processing_mode": "every_frame", "max_staleness": 0.5},
         "field 'max_staleness': needs field 'processing_mode' 'freshest' (it is 'every_frame')"),
        ({"processing_mode": "freshest", "max_staleness": 0}, "field 'max_staleness': Input should be greater than 0"),
        ({"processing_mode": "freshest", "max_staleness": -1}, "field 'max_staleness'"),
        ({"processing_mode": "freshest", "max_staleness": "1"}, "field 'max_staleness': Input should be a valid"),
        ({"processing_mode": "freshest", "max_staleness": True}, "field 'max_staleness': Input should be a valid"),
    ],
)
def test_flat_refusals_name_the_field(change: dict[str, Any], message: str) -> None:
    assert message in refusal({**seed_client_payload(), **change})


def test_newer_max_staleness_without_freshest_names_the_paths() -> None:
    message = refusal(newer_with(max_staleness=1))

    assert "field 'video_configuration.max_staleness': needs field 'video_configuration.processing_mode'" in message


def test_a_bad_mode_is_reported_once_not_also_against_max_staleness() -> None:
    message = refusal({**seed_client_payload(), "processing_mode": "newest", "max_staleness": 1})

    assert "field 'processing_mode'" in message and "max_staleness" not in message


def test_the_mode_round_trips_through_the_task_payload() -> None:
    spec = compile_init(newer_with(processing_mode="freshest", max_staleness=0.5))

    payload = json.loads(json.dumps(spec.task_payload()))

    assert (payload["processing_mode"], payload["max_staleness"]) == ("freshest", 0.5)
    assert load_task_spec(payload) == spec
    assert spec.redacted()["processing_mode"] == "freshest"
