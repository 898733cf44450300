"""The start-up heap frozen out of full collections (services.infra.heap)."""

import gc

from services.infra.heap import freeze_startup_heap


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_freezing_collects_start_up_garbage_first_and_keeps_later_objects_collectable() -> None:
    gc.unfreeze()
    try:
        garbage = _Cycle()
        del garbage  # unreachable, held by its cycle: only a collection frees it
        frozen = freeze_startup_heap()
        assert frozen == gc.get_freeze_count() > 1000
        assert not any(isinstance(thing, _Cycle) for thing in gc.get_objects())  # collected, not frozen
        later = _Cycle()
        del later
        assert gc.collect() >= 1  # made after the freeze: collected as before
    finally:
        gc.unfreeze()
