"""A bounded, thread-safe buffer between one decode thread (producer) and its consumer.

Filling strategies decide what happens to a new item when the buffer is full:

- ``WAIT``: the producer blocks until there is space or the buffer is closed.
- ``DROP_OLDEST``: the oldest buffered item is evicted (reason ``buffer_full``).
- ``DROP_LATEST``: the new item is discarded (reason ``buffer_full``).
- ``ADAPTIVE_DROP_OLDEST`` / ``ADAPTIVE_DROP_LATEST``: as the plain variants when full, and in
  addition, adaptive rule: when the buffer is MORE THAN HALF full and, over the last
  ``rate_window`` seconds, the consumer took fewer items than the producer offered, the oldest
  item (resp. the new one) is dropped (reason ``adaptive``). The buffer then hovers at half full
  instead of running full, which halves the latency a slow consumer sees.

Consumption strategies: ``LAZY`` takes the oldest item; ``EAGER`` takes the newest and drops the
older ones (reason ``eager_skip``). Every drop is counted by reason; callers add their own
reasons (``max_fps``, ``muted``) with :meth:`FrameBuffer.count_drop`.
"""

import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Generic, TypeVar

from services.core.states import BufferConsumptionStrategy, BufferFillingStrategy

T = TypeVar("T")

DROP_BUFFER_FULL = "buffer_full"
DROP_ADAPTIVE = "adaptive"
DROP_EAGER_SKIP = "eager_skip"

_RATE_SAMPLES = 1024  # bounds the rate bookkeeping whatever the frame rate


class _RateMeter:
    """Events per second over a sliding window of monotonic timestamps."""

    def __init__(self, window: float) -> None:
        self._window = window
        self._stamps: deque[float] = deque(maxlen=_RATE_SAMPLES)

    def tick(self, now: float) -> None:
        self._stamps.append(now)

    def rate(self, now: float) -> float:
        while self._stamps and now - self._stamps[0] > self._window:
            self._stamps.popleft()
        return len(self._stamps) / self._window


class FrameBuffer(Generic[T]):
    def __init__(
        self,
        maxsize: int,
        filling: BufferFillingStrategy,
        consumption: BufferConsumptionStrategy,
        *,
        rate_window: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if maxsize < 1:
            raise ValueError("buffer size must be >= 1")
        self._maxsize = maxsize
        self._filling = filling
        self._consumption = consumption
        self._clock = clock
        self._items: deque[T] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._dropped: Counter[str] = Counter()
        self._offered = _RateMeter(rate_window)
        self._taken = _RateMeter(rate_window)
        self._wakers: list[threading.Event] = []

    @property
    def maxsize(self) -> int:
        return self._maxsize

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed

    def put(self, item: T) -> bool:
        """Offers ``item``; False when it was discarded or the buffer is closed."""
        with self._cond:
            if self._closed:
                return False
            now = self._clock()
            self._offered.tick(now)
            if self._filling.is_adaptive and self._consumer_lags(now):
                return self._drop_for_room(item, DROP_ADAPTIVE)
            if len(self._items) < self._maxsize:
                return self._append(item)
            if self._filling is BufferFillingStrategy.WAIT:
                return self._wait_for_room(item)
            return self._drop_for_room(item, DROP_BUFFER_FULL)

    def get(self, timeout: float) -> T | None:
        """The next item by the consumption strategy; None on timeout or once closed and empty."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._items:
                remaining = deadline - time.monotonic()
                if self._closed or remaining <= 0:
                    return None
                self._cond.wait(remaining)  # an item, close() and clear() notify: no polling
            if self._consumption is BufferConsumptionStrategy.EAGER and len(self._items) > 1:
                self._dropped[DROP_EAGER_SKIP] += len(self._items) - 1
                item = self._items.pop()
                self._items.clear()
            else:
                item = self._items.popleft()
            self._taken.tick(self._clock())
            self._cond.notify_all()
            return item

    def close(self) -> None:
        """Refuses further items and wakes every waiter; buffered items can still be taken."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            self._wake()

    def wake_on_change(self, event: threading.Event) -> None:
        """Sets ``event`` whenever an item arrives or the buffer closes (a consumer of several buffers
        waits on one event instead of polling each)."""
        with self._cond:
            self._wakers.append(event)
            if self._items or self._closed:
                event.set()

    def clear(self, reason: str) -> int:
        """Discards every buffered item, counting them under ``reason``."""
        with self._cond:
            count = len(self._items)
            self._items.clear()
            if count:
                self._dropped[reason] += count
            self._cond.notify_all()
            return count

    def count_drop(self, reason: str, count: int = 1) -> None:
        with self._cond:
            self._dropped[reason] += count

    def dropped(self) -> dict[str, int]:
        with self._cond:
            return dict(self._dropped)

    def _consumer_lags(self, now: float) -> bool:
        if len(self._items) * 2 <= self._maxsize:
            return False
        return self._taken.rate(now) < self._offered.rate(now)

    def _append(self, item: T) -> bool:
        self._items.append(item)
        self._cond.notify_all()
        self._wake()
        return True

    def _wake(self) -> None:
        for event in self._wakers:
            event.set()

    def _drop_for_room(self, item: T, reason: str) -> bool:
        self._dropped[reason] += 1
        if self._filling in (BufferFillingStrategy.DROP_LATEST, BufferFillingStrategy.ADAPTIVE_DROP_LATEST):
            return False
        if len(self._items) >= self._maxsize or reason == DROP_ADAPTIVE:
            self._items.popleft()
        return self._append(item)

    def _wait_for_room(self, item: T) -> bool:
        while len(self._items) >= self._maxsize:
            if self._closed:
                return False
            self._cond.wait()  # a get, close() and clear() notify
        if self._closed:
            return False
        return self._append(item)
