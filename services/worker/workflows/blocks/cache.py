"""``roboflow_core/cache_set@v1`` and ``roboflow_core/cache_get@v1``: a key-value cache the steps of one workflow
share on one video source.

The reference keeps one cache per video identifier in its process, shared by every workflow that process runs;
here each pipeline's source has its own (in ``BlockEnvironment.shared``), so two pipelines never see each other's
values. cache_set stores its value and passes it through; cache_get gives the value stored under its key, or
``false`` when there is none (the reference's answer). Steps run in dependency order: a cache_get that does not
read the cache_set's output runs before or after it as the definition orders them (before: it gives the previous
frame's value).

The cache keeps at most :data:`MAX_ENTRIES` keys per source, forgetting the least recently used first, so keys
made from a stream's values (a tracker id, a timestamp) cannot grow a pipeline's memory without limit.
"""

from collections import OrderedDict
from typing import Any

from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment

MAX_ENTRIES = 256
MISSING = False  # what cache_get gives for a key nothing was stored under (the reference's)


class BoundedCache:
    """Key -> value, least recently used forgotten first beyond ``capacity`` keys."""

    def __init__(self, capacity: int = MAX_ENTRIES) -> None:
        self._capacity = capacity
        self._values: OrderedDict[str, Any] = OrderedDict()

    def __len__(self) -> int:
        return len(self._values)

    def set(self, key: str, value: Any) -> None:
        self._values[key] = value
        self._values.move_to_end(key)
        while len(self._values) > self._capacity:
            self._values.popitem(last=False)

    def get(self, key: str, default: Any = None) -> Any:
        if key not in self._values:
            return default
        self._values.move_to_end(key)
        return self._values[key]


def source_cache(env: BlockEnvironment) -> BoundedCache:
    """The cache of this workflow on this source (made by the first cache step built)."""
    cache = env.shared.setdefault("cache", BoundedCache())
    assert isinstance(cache, BoundedCache)
    return cache


def _key(key: Any) -> str:
    if not isinstance(key, str):  # a selector may give anything
        raise ValueError(f"key must be a string, got {type(key).__name__}")
    return key


class CacheSet:
    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        self._cache = source_cache(env)

    def run(self, image: Any, key: Any, value: Any) -> dict[str, Any]:
        del image  # the reference's namespace; here the source's own cache is the namespace
        self._cache.set(_key(key), value)
        return {"output": value}


class CacheGet:
    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        self._cache = source_cache(env)

    def run(self, image: Any, key: Any) -> dict[str, Any]:
        del image
        return {"output": self._cache.get(_key(key), MISSING)}
