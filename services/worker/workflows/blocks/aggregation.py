"""data_aggregator@v1: aggregates named values over an interval, outputs ``<name>_<mode>`` when it closes.

Every output is None until the interval closes (``runs``: every N-th run; time units: wall clock
since the block started or last closed its interval), then the aggregates of the values seen since,
and the state starts afresh. ``count``, ``distinct``, ``count_distinct`` and ``values_counts`` take
each element of a list value; the others need numbers.
"""

from collections.abc import Hashable
from typing import Any

from services.core.workflows.catalogue.aggregation import DATA_AGGREGATOR
from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment, BlockFactory
from services.worker.workflows.blocks.formatters import transformed

SECONDS_PER_UNIT = {"seconds": 1, "minutes": 60, "hours": 3600}


class _State:
    """The aggregate of one value under one mode."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.total: Any = 0
        self.count = 0
        self.low: Any = None
        self.high: Any = None
        self.counts: dict[Hashable, int] = {}

    def add(self, value: Any) -> None:
        if self.mode in ("sum", "avg", "min", "max", "values_difference"):
            self._number(value)
        elif self.mode == "count":
            self.count += len(value) if hasattr(value, "__len__") else 1
        else:
            # values_counts expands lists only; distinct and count_distinct also sets and tuples (as the reference)
            expands = (list,) if self.mode == "values_counts" else (list, set, tuple)
            for item in value if isinstance(value, expands) else [value]:
                if not isinstance(item, Hashable):
                    raise ValueError(f"{self.mode} cannot count a {type(item).__name__} value")
                self.counts[item] = self.counts.get(item, 0) + 1

    def _number(self, value: Any) -> None:
        try:
            self.total = self.total + value
            self.low = value if self.low is None else min(self.low, value)
            self.high = value if self.high is None else max(self.high, value)
        except TypeError as exc:
            raise ValueError(f"{self.mode} needs numbers, got {type(value).__name__}") from exc
        self.count += 1

    def result(self) -> Any:
        if self.mode == "sum":
            return self.total
        if self.mode == "avg":
            return self.total / self.count if self.count else None
        if self.mode in ("min", "max"):
            return self.low if self.mode == "min" else self.high
        if self.mode == "values_difference":
            return None if self.low is None else self.high - self.low
        if self.mode == "count":
            return self.count
        if self.mode == "distinct":
            return list(self.counts)
        if self.mode == "count_distinct":
            return len(self.counts)
        return dict(self.counts)  # values_counts


class DataAggregator:
    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        self._clock = env.clock
        self._started = env.clock()
        self._runs = 0
        self._states: dict[str, _State] = {}

    def run(self, data: dict[str, Any], data_operations: dict[str, list[dict[str, Any]]],
            aggregation_mode: dict[str, list[str]], interval_unit: str, interval: int) -> dict[str, Any]:
        self._runs += 1
        for name, value in transformed(data, data_operations).items():
            for mode in aggregation_mode.get(name, []):
                self._states.setdefault(f"{name}_{mode}", _State(mode)).add(value)
        outputs = {f"{name}_{mode}": mode for name in data for mode in aggregation_mode.get(name, [])}
        if not self._closes(interval_unit, interval):
            return dict.fromkeys(outputs)
        result = {key: self._states.get(key, _State(mode)).result() for key, mode in outputs.items()}
        self._states, self._runs, self._started = {}, 0, self._clock()
        return result

    def _closes(self, unit: str, interval: int) -> bool:
        if unit == "runs":
            return self._runs >= interval
        return self._clock() - self._started >= interval * SECONDS_PER_UNIT[unit]


BLOCKS: dict[str, BlockFactory] = {DATA_AGGREGATOR: DataAggregator}
