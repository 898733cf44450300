"""Flow-control blocks: continue_if, rate_limiter and delta_filter (they gate their ``next_steps``).

``CHECKS``: the query-language checks of their literal fields, ``(block, field) -> check(value, path)``.
"""

from collections.abc import Callable
from typing import Any

from services.core.workflows import kinds
from services.core.workflows.blocks import BlockSpec, Field, image_field
from services.core.workflows.query_language import validate_statement

CONTINUE_IF = "roboflow_core/continue_if@v1"
RATE_LIMITER = "roboflow_core/rate_limiter@v1"
DELTA_FILTER = "roboflow_core/delta_filter@v1"


def _next_steps() -> Field:
    return Field("next_steps", literal=None, steps=True)


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
)

CHECKS: dict[tuple[str, str], Callable[[Any, str], None]] = {
    (CONTINUE_IF, "condition_statement"): validate_statement,
}
