"""Flow-control blocks: continue_if, rate_limiter and delta_filter (they gate their ``next_steps``), and
switch_case (it gates the steps of its ``cases`` and ``default_next_steps``, letting one branch through).

``CHECKS``: the query-language checks of their literal fields, ``(block, field) -> check(value, path)``.
"""

from collections.abc import Callable, Mapping
from typing import Any

from services.core.errors import InvalidPayloadError
from services.core.workflows import kinds
from services.core.workflows.blocks import BlockSpec, Field, image_field, is_number, register_literals
from services.core.workflows.query_language import validate_statement

CONTINUE_IF = "roboflow_core/continue_if@v1"
RATE_LIMITER = "roboflow_core/rate_limiter@v1"
DELTA_FILTER = "roboflow_core/delta_filter@v1"
SWITCH_CASE = "roboflow_core/switch_case@v1"

register_literals({"switch_case_value": (lambda v: isinstance(v, str | bool) or is_number(v),
                                         "a string, a number or true/false")})


def _next_steps() -> Field:
    return Field("next_steps", literal=None, steps=True)


def check_switch_case(params: Mapping[str, Any], path: str) -> None:
    """The manifest's rules: a step is the target of one case (or the default) only; case keys stay
    distinct when matched ignoring case."""
    targets = [*params["cases"].values(), *params["default_next_steps"]]
    duplicated = sorted({target for target in targets if targets.count(target) > 1})
    if duplicated:
        raise InvalidPayloadError(f"field '{path}.cases': each step may be targeted at most once across cases "
                                  f"and default_next_steps; targeted more than once: {', '.join(duplicated)}")
    if params["case_insensitive"]:
        lowered = [key.lower() for key in params["cases"]]
        colliding = sorted(key for key in params["cases"] if lowered.count(key.lower()) > 1)
        if colliding:
            raise InvalidPayloadError(f"field '{path}.cases': keys {colliding} are the same when "
                                      "case_insensitive is true")


BLOCKS = (
    BlockSpec(
        names=(CONTINUE_IF, "ContinueIf"),
        family="flow",
        fields=(
            Field("condition_statement", literal="dict"),
            # operand name -> selector (or literal) the condition reads
            Field("evaluation_parameters", kinds=(kinds.WILDCARD,), literal="dict", default={}, nested=True),
            _next_steps(),
            # seconds the branch keeps running after the condition turns false (wall clock)
            Field("stop_delay", kinds=(kinds.FLOAT,), literal="non_negative_number", default=0),
        ),
        flow_control=True,
    ),
    BlockSpec(
        names=(RATE_LIMITER,),
        family="flow",
        fields=(
            Field("cooldown_seconds", literal="non_negative_number", default=1.0),
            Field("depends_on", kinds=(kinds.WILDCARD,), literal=None),
            _next_steps(),
            # when given, the cooldown runs on video time (frame number / fps) instead of the wall clock
            Field("video_reference_image", kinds=(kinds.IMAGE,), literal=None, default=None),
        ),
        flow_control=True,
    ),
    BlockSpec(
        names=(DELTA_FILTER,),
        family="flow",
        fields=(
            image_field("image", aliases=()),
            Field("value", kinds=(kinds.WILDCARD,), literal=None),
            _next_steps(),
        ),
        flow_control=True,
    ),
    BlockSpec(
        names=(SWITCH_CASE, "SwitchCase"),
        family="flow",
        fields=(
            # matched as str(value): 1.0 matches the key "1.0", true the key "True"
            Field("value", kinds=(kinds.WILDCARD,), literal="switch_case_value"),
            # case value -> the step it lets through ({"red": "$steps.on_red"})
            Field("cases", literal=None, default={}, steps=True),
            Field("case_insensitive", literal="bool", default=False),
            # the steps let through when no case matches (none: nothing is)
            Field("default_next_steps", literal=None, default=[], steps=True),
        ),
        flow_control=True,
        check=check_switch_case,
    ),
)

CHECKS: dict[tuple[str, str], Callable[[Any, str], None]] = {
    (CONTINUE_IF, "condition_statement"): validate_statement,
}
