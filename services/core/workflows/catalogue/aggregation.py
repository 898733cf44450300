"""data_aggregator@v1: statistics of workflow values over an interval of time or runs.

Its outputs depend on its parameters: one per ``<data name>_<mode>`` (:func:`aggregator_outputs`).
``CHECKS``: the checks of its literal fields, ``(block, field) -> check(value, path)``.
"""

from collections.abc import Callable, Mapping
from typing import Any

from services.core.errors import InvalidPayloadError
from services.core.workflows import kinds
from services.core.workflows.blocks import BlockSpec, Field
from services.core.workflows.query_language import validate_operations_map

DATA_AGGREGATOR = "roboflow_core/data_aggregator@v1"
AGGREGATION_MODES = ("sum", "avg", "max", "min", "count", "distinct", "count_distinct", "values_counts",
                     "values_difference")
INTERVAL_UNITS = ("seconds", "minutes", "hours", "runs")


def aggregator_outputs(params: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """The outputs of a data_aggregator step with these (compiled) params, with their kinds."""
    modes = params.get("aggregation_mode") or {}
    outputs: dict[str, tuple[str, ...]] = {}
    for name in params.get("data") or {}:
        for mode in modes.get(name, []):
            if mode == "distinct":
                outputs[f"{name}_{mode}"] = (kinds.LIST_OF_VALUES,)
            elif mode == "values_counts":
                outputs[f"{name}_{mode}"] = (kinds.DICTIONARY,)
            else:
                outputs[f"{name}_{mode}"] = (kinds.FLOAT, kinds.INTEGER)
    return outputs


def check_aggregation_modes(value: Any, path: str) -> None:
    if not isinstance(value, dict):
        raise InvalidPayloadError(f"field '{path}' must be an object of name -> list of aggregation modes")
    for name, modes in value.items():
        if not isinstance(modes, list):
            raise InvalidPayloadError(f"field '{path}.{name}' must be a list of aggregation modes")
        for index, mode in enumerate(modes):
            if mode not in AGGREGATION_MODES:
                raise InvalidPayloadError(
                    f"field '{path}.{name}[{index}]': {mode!r} is not one of {', '.join(map(repr, AGGREGATION_MODES))}"
                )


BLOCKS = (
    BlockSpec(
        names=(DATA_AGGREGATOR,),
        family="analytics",
        fields=(
            Field("data", kinds=(kinds.WILDCARD,), literal="dict", nested=True),
            Field("data_operations", literal="dict", default={}),
            Field("aggregation_mode", literal="dict"),
            Field("interval_unit", literal="str", default="seconds", choices=INTERVAL_UNITS),
            Field("interval", literal="positive_int"),
        ),
        dynamic_outputs=aggregator_outputs,
    ),
)

CHECKS: dict[tuple[str, str], Callable[[Any, str], None]] = {
    (DATA_AGGREGATOR, "data_operations"): validate_operations_map,
    (DATA_AGGREGATOR, "aggregation_mode"): check_aggregation_modes,
}
