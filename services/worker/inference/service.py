"""The per-device inference service: every model loaded once, the frames of all pipelines batched together.

One service process runs beside each worker (``services.worker.inference.process`` starts and
restarts it); the worker's pipelines send it their prepared batches over a Unix socket
(``server``) and get the raw model output back, in their own order since each inference thread of
a pipeline waits for its own request. Pre- and post-processing stay in the pipelines' processes, so
they scale with the pipelines; the service does nothing but ``session.run`` and, for detectors, the
last step of pre-processing: pipelines send their letterboxed uint8 canvases (a quarter of the
float tensor's bytes, in their queues, their shared buffers and on the wire), and the runner turns
the batch into the model's float tensor in one pass.

Batching is greedy, not timed: ``runners`` threads run the models; a runner that comes free takes
everything waiting for the model whose oldest request is oldest, up to ``max_batch`` frames, and
no more than its share when other runners are idle too (two requests and two idle runners: one
each, so a lone pipeline keeps every runner busy instead of one runner batching its rounds). Under
light load a request runs at once (no collection window to wait out); under heavy load requests
pile up while the runners are busy, so batches grow by themselves, exactly as far as the load
needs. A slow or dead camera never holds a batch back: a batch is made of what has arrived. With
more than one runner more than one batch is in flight (on CPU, single-threaded runs side by side
beat one multi-threaded run: docs/benchmarks.md).

A request may carry a deadline (a live pipeline's ``max_staleness``): a runner answers a request
whose deadline passed while it waited instead of running it, so no runner time goes to frames the
pipeline would throw away, and the pipeline takes a fresher frame.

Live pipelines (``freshest`` with ``max_staleness``) take turns (:meth:`InferenceService.take_turn`):
they pick and prepare their next frame only once the service has room for it, so the frame is as
fresh as it can be when a runner takes it, and no work goes to frames that would go stale waiting.

Live-only load runs one batch at a time on every core (``latency_loader``; on CPU with the automatic
sizing). Single-threaded runs side by side process the most frames, but each run then takes as
long as the model needs on one core, and a live frame's age is its wait plus that run. While every
request of the last ``LIVE_MODE_HOLD`` seconds carried a deadline (only live pipelines are asking),
the runners take turns: one batch at a time, on a second session of the model with one thread per
core, and one turn at a time for the live pipelines, as a worker sized with
``WORKER_INFERENCE_RUNNERS=1`` would. The first request without a deadline (a file, a pipeline
without ``max_staleness``) brings back the runs side by side at once. A model's second session is
loaded when its first live pipeline asks, on a thread of its own (never a runner's), and the runs
stay side by side until it is ready: a worker that never serves a live pipeline does not hold it
(about 77 MiB for yolov3-tiny). The figures (16 live streams
on 2 cores: a lower e2e p99 for fewer frames processed) are in docs/inference-service.md, "Sizing".

Isolation: every request is checked against its model's input (dtype, channels, size) before it
joins a batch, so one pipeline's bad tensor cannot fail another's frames; should a batch still
fail, its requests run again one by one and only the failing one gets the error. A model loads on
the thread of the connection that asked for it, never on a runner, so a cold load does not stall
the running pipelines. Different models share the runners.
"""

import logging
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from services.infra.os_threads import name_os_thread
from services.worker.detection.detector import ModelRunner
from services.worker.detection.letterbox import as_tensor, is_canvas
from services.worker.models.repository import TASK_DETECTION, ModelRepository, ModelSpec

log = logging.getLogger(__name__)

MAX_FRAMES_PER_REQUEST = 64
TURN_TTL = 1.0  # seconds a turn is held for its request; then it lapses (its pipeline died, or dropped the round)
LIVE_MODE_HOLD = 2.0  # seconds without a request lacking a deadline before live-only load runs one batch at a time
RECENT_BATCHES = 4096  # the latest batches' run times, which stats() summarises over its window (batch_ms)
Loader = Callable[[ModelSpec], ModelRunner]


class BadRequestError(ValueError):
    """A request that does not match its model's input."""


class ServiceStoppedError(RuntimeError):
    """The service stopped before the request ran."""


class DeadlineMissedError(RuntimeError):
    """The request's deadline passed while it waited for a runner (it was not run)."""


@dataclass(slots=True)
class _Request:
    batch: np.ndarray
    enqueued: float
    deadline: float | None = None  # time.monotonic(): not run after it (the frames' max_staleness)
    done: threading.Event = field(default_factory=threading.Event)
    output: np.ndarray | None = None
    error: BaseException | None = None

    @property
    def frames(self) -> int:
        return int(self.batch.shape[0])


@dataclass(slots=True)
class _Model:
    spec: ModelSpec
    runner: ModelRunner
    latency_runner: ModelRunner | None = None  # the same model with one thread per core (live-only load)
    latency_asked: bool = False  # its load was started (by the first request or turn with a deadline)
    queue: deque[_Request] = field(default_factory=deque)
    running: int = 0  # requests taken by runners, not finished yet
    grants: dict[str, float] = field(default_factory=dict)  # turn token -> expiry (time.monotonic())
    turn_waiters: deque["_TurnWaiter"] = field(default_factory=deque)


@dataclass(slots=True)
class _TurnWaiter:
    event: threading.Event = field(default_factory=threading.Event)
    token: str | None = None


class InferenceService:
    def __init__(self, repository: ModelRepository, loader: Loader, runners: int, max_batch: int,
                 latency_loader: Loader | None = None) -> None:
        """``latency_loader``: loads a model's session for live-only load (one batch at a time on every
        core); None keeps the runners side by side whatever the load."""
        if runners < 1 or max_batch < 1:
            raise ValueError("runners and max_batch must be at least 1")
        self._repository = repository
        self._loader = loader
        self._latency_loader = latency_loader if runners > 1 else None
        self._latency_loading = 0  # second sessions being loaded: the runs stay side by side meanwhile
        self._last_plain = -LIVE_MODE_HOLD  # time.monotonic() of the last request without a deadline
        self._in_flight = 0  # batches taken by runners, not finished yet
        self._max_batch = max_batch
        self._capacity = runners  # requests per model queued, running or granted, for turn-takers
        self._models: dict[str, _Model] = {}
        self._load_locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._cond = threading.Condition()
        self._stopping = False
        self._idle = 0  # runners waiting for work (they split the queue between them)
        self._batch_sizes: Counter[int] = Counter()
        self._batch_seconds: deque[tuple[float, float]] = deque(maxlen=RECENT_BATCHES)  # (ended, run seconds)
        self._totals = Counter[str]()
        self._runners = [threading.Thread(target=self._run_batches, name=f"runner-{index}", daemon=True)
                         for index in range(runners)]
        for thread in self._runners:
            thread.start()

    # ----------------------------------------------------------------- callers (connection threads)

    def load(self, model_id: str) -> ModelRunner:
        """The model's runner, loading it first if needed (only this caller waits; errors propagate)."""
        loaded = self._models.get(model_id)
        if loaded is not None:
            return loaded.runner
        with self._locks_guard:
            lock = self._load_locks.setdefault(model_id, threading.Lock())
        with lock:
            loaded = self._models.get(model_id)
            if loaded is None:
                started = time.monotonic()
                spec = self._repository.resolve(model_id)
                runner = self._loader(spec)
                with self._cond:
                    loaded = self._models[model_id] = _Model(spec, runner)
                log.info("model %s ready in %.2f s", model_id, time.monotonic() - started)
        return loaded.runner

    def infer(self, model_id: str, batch: np.ndarray, timeout: float | None = None,
              deadline: float | None = None, turn: str | None = None) -> np.ndarray:
        """The model's raw output for ``batch`` ([B, 3, H, W] float32, or a detector's [B, H, W, 3] uint8 canvases),
        run in some batch with other callers'.

        ``deadline`` (``time.monotonic()``): if no runner took the request by then, it is not run
        and :class:`DeadlineMissedError` is raised (the caller's frames are too old by then).
        ``turn``: the token of the caller's turn (:meth:`take_turn`), used up by this request.
        """
        self.load(model_id)
        model = self._models[model_id]
        self._check(model.spec, batch)
        if deadline is not None and not model.latency_asked:
            self._load_latency_session(model)
        request = _Request(batch, time.monotonic(), deadline)
        with self._cond:
            if self._stopping:
                raise ServiceStoppedError("the inference service is stopping")
            if turn is not None:
                model.grants.pop(turn, None)  # the turn becomes this queued request
            ends_live_only = deadline is None and self._live_only()
            if deadline is None:
                self._last_plain = request.enqueued
            model.queue.append(request)
            if ends_live_only:
                self._cond.notify_all()  # back to runs side by side: every idle runner may take work
            else:
                self._cond.notify()
        if not request.done.wait(timeout):
            raise TimeoutError(f"no result from {model_id} within {timeout} s")
        if request.error is not None:
            raise request.error
        assert request.output is not None
        return request.output

    def take_turn(self, model_id: str, timeout: float) -> str:
        """Wait for a turn to send ``model_id`` a request; its token (to send with the request).

        Live pipelines ask for a turn before they pick and prepare their next frame, so the frame is
        chosen when a runner is free instead of waiting in the queue: at most ``runners`` requests per
        model (one while the load is live-only) are queued, running or granted at once (measured with
        16 live streams on 2 cores: e2e p99 146 ms, nothing stale, against 212 ms and 99 stale frames
        with one more), and waiting pipelines get turns in the order they asked. TimeoutError if none
        came within ``timeout``.
        """
        self.load(model_id)
        model = self._models[model_id]
        if not model.latency_asked:
            self._load_latency_session(model)  # only live pipelines take turns
        waiter = _TurnWaiter()
        deadline = time.monotonic() + timeout
        with self._cond:
            model.turn_waiters.append(waiter)
            self._grant(model)
        while not waiter.event.wait(min(TURN_TTL, max(0.0, deadline - time.monotonic()))):
            with self._cond:
                if waiter.token is None and time.monotonic() >= deadline:
                    model.turn_waiters.remove(waiter)
                    raise TimeoutError(f"no turn for {model_id} within {timeout} s")
                self._grant(model)  # lapsed turns make room
        if waiter.token is None:
            raise ServiceStoppedError("the inference service stopped")
        return waiter.token

    def stats(self, window: float = 60.0) -> dict[str, Any]:
        """Counters since the start; ``batch_ms``: run times of the batches that ended in the last ``window`` s."""
        since = time.monotonic() - window
        with self._cond:
            return {
                "runners": len(self._runners),
                "models": sorted(self._models),
                "requests": self._totals["requests"],
                "frames": self._totals["frames"],
                "batches": self._totals["batches"],
                "failed_requests": self._totals["failed"],
                "missed_deadlines": self._totals["missed"],
                "turns": self._totals["turns"],
                "lapsed_turns": self._totals["lapsed_turns"],
                "batch_sizes": {str(size): count for size, count in sorted(self._batch_sizes.items())},
                "batch_ms": _percentiles([seconds for ended, seconds in list(self._batch_seconds) if ended >= since]),
                "queued": sum(len(model.queue) for model in self._models.values()),
                "live_only": self._live_only(),
                "live_sessions": sorted(m.spec.model_id for m in self._models.values() if m.latency_runner is not None),
                "live_only_batches": self._totals["live_only_batches"],
            }

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            pending = [request for model in self._models.values() for request in model.queue]
            for model in self._models.values():
                model.queue.clear()
                for waiter in model.turn_waiters:
                    waiter.event.set()  # no token: the service stopped
                model.turn_waiters.clear()
            self._cond.notify_all()
        for request in pending:
            request.error = ServiceStoppedError("the inference service stopped")
            request.done.set()
        for thread in self._runners:
            thread.join(5)

    # ----------------------------------------------------------------- runners

    def _check(self, spec: ModelSpec, batch: Any) -> None:
        """A float32 [B, 3, H, W] tensor, or a detector's uint8 [B, H, W, 3] canvases, of the model's size."""
        canvases = spec.task_type == TASK_DETECTION and isinstance(batch, np.ndarray) and is_canvas(batch)
        if not isinstance(batch, np.ndarray) or (batch.dtype != np.float32 and not canvases):
            raise BadRequestError(f"{spec.model_id}: expected a float32 tensor"
                                  + (" or uint8 canvases" if spec.task_type == TASK_DETECTION else ""))
        size = (spec.input_height, spec.input_width)
        expected = (*size, 3) if canvases else (3, *size)
        if batch.ndim != 4 or tuple(batch.shape[1:]) != expected or not 1 <= batch.shape[0] <= MAX_FRAMES_PER_REQUEST:
            raise BadRequestError(f"{spec.model_id}: expected [B, {', '.join(map(str, expected))}] with "
                                  f"1 <= B <= {MAX_FRAMES_PER_REQUEST}, got {list(batch.shape)}")

    def _live_only(self) -> bool:
        """Whether only live pipelines asked lately and their models' second sessions are ready: one batch
        at a time on every core (lock held)."""
        return (self._latency_loader is not None and not self._latency_loading
                and time.monotonic() - self._last_plain > LIVE_MODE_HOLD
                and any(model.latency_runner is not None for model in self._models.values()))

    def _load_latency_session(self, model: _Model) -> None:
        """Starts loading the model's second session on a thread of its own, once."""
        with self._cond:
            if model.latency_asked or self._latency_loader is None or self._stopping:
                return
            model.latency_asked = True
            self._latency_loading += 1
            loader = self._latency_loader
        threading.Thread(target=self._latency_load, args=(model, loader), daemon=True,
                         name=f"live-session-{model.spec.model_id}").start()

    def _latency_load(self, model: _Model, loader: Loader) -> None:
        name_os_thread()
        started = time.monotonic()
        try:
            runner: ModelRunner | None = loader(model.spec)
        except Exception as exc:  # the runs stay side by side: live pipelines work, at a higher latency
            log.warning("no live-only session for %s (%s): live load runs side by side", model.spec.model_id, exc)
            runner = None
        with self._cond:
            self._latency_loading -= 1
            if runner is None:
                self._latency_loader = None  # not tried again for another model: the host lacks the room
            else:
                model.latency_runner = runner
            self._cond.notify_all()
        if runner is not None:
            log.info("live-only session of %s ready in %.2f s", model.spec.model_id, time.monotonic() - started)

    def _may_take(self) -> bool:
        """Work is waiting, and this runner may take it (live-only: no other batch in flight)."""
        if not any(model.queue for model in self._models.values()):
            return False
        return self._in_flight == 0 or not self._live_only()

    def _run_batches(self) -> None:
        name_os_thread()
        while True:
            with self._cond:
                taken = None
                while taken is None:
                    self._idle += 1
                    while not self._stopping and not self._may_take():
                        self._cond.wait()
                    self._idle -= 1
                    if self._stopping:
                        return
                    taken = self._take()
                self._in_flight += 1
            try:
                self._run(*taken)
            finally:
                with self._cond:
                    self._in_flight -= 1
                    self._cond.notify()

    def _take(self) -> tuple[_Model, list[_Request], bool] | None:
        """The waiting requests of the model with the oldest one, up to ``max_batch`` frames and no more
        than this runner's share of them with the other idle runners, and whether they run live-only
        (one batch on every core, all of it for this runner); None when every request looked at had
        missed its deadline (answered, not run)."""
        model = min((m for m in self._models.values() if m.queue), key=lambda m: m.queue[0].enqueued)
        now = time.monotonic()
        live_only = self._live_only() and model.latency_runner is not None
        waiting = sum(request.frames for request in model.queue)
        sharing = 0 if live_only else self._idle  # idle runners split the queue
        limit = min(self._max_batch, -(-waiting // (sharing + 1)))
        requests: list[_Request] = []
        frames = 0
        while model.queue and (not requests or frames + model.queue[0].frames <= limit):
            request = model.queue.popleft()
            if request.deadline is not None and request.deadline < now:
                self._totals["missed"] += 1
                request.error = DeadlineMissedError("the frames' deadline passed in the queue")
                request.done.set()
                continue
            frames += request.frames
            requests.append(request)
        model.running += len(requests)
        if model.queue and not live_only:
            self._cond.notify()  # more waiting than this batch holds: wake another runner
        self._grant(model)  # missed deadlines made room
        return (model, requests, live_only) if requests else None

    def _grant(self, model: _Model) -> None:
        """Turns to the waiting pipelines, in order, while the model has room (lock held)."""
        now = time.monotonic()
        for token in [token for token, expiry in model.grants.items() if expiry < now]:
            del model.grants[token]
            self._totals["lapsed_turns"] += 1
        capacity = 1 if self._live_only() else self._capacity  # live-only: one batch at a time
        room = capacity - len(model.queue) - model.running - len(model.grants)
        while room > 0 and model.turn_waiters:
            waiter = model.turn_waiters.popleft()
            waiter.token = uuid.uuid4().hex
            model.grants[waiter.token] = now + TURN_TTL
            self._totals["turns"] += 1
            waiter.event.set()
            room -= 1

    def _run(self, model: _Model, requests: list[_Request], live_only: bool = False) -> None:
        try:
            batch = _stack([request.batch for request in requests])
            runner = model.latency_runner if live_only and model.latency_runner is not None else model.runner
            started = time.monotonic()
            output = runner.run(batch)  # the runner makes canvases the model's tensor
            ended = time.monotonic()
            self._batch_seconds.append((ended, ended - started))  # deque.append: atomic across runners
            if output.shape[0] != batch.shape[0]:
                raise RuntimeError(f"{model.spec.model_id}: {output.shape[0]} outputs for {batch.shape[0]} frames")
        except Exception as exc:
            if len(requests) > 1:  # find the culprit: the others must not pay for it
                for request in requests:
                    self._run(model, [request], live_only)
                return
            self._finish(model, requests, None, exc)
            return
        if live_only:
            with self._cond:
                self._totals["live_only_batches"] += 1
        self._finish(model, requests, output, None)

    def _finish(self, model: _Model, requests: list[_Request], output: np.ndarray | None,
                error: BaseException | None) -> None:
        start = 0
        for request in requests:
            if output is not None:
                request.output = output[start:start + request.frames]
                start += request.frames
            else:
                request.error = error
            request.done.set()
        with self._cond:
            model.running -= len(requests)
            self._grant(model)
            self._totals["requests"] += len(requests)
            self._totals["frames"] += sum(r.frames for r in requests)
            self._totals["batches"] += 1
            self._batch_sizes[sum(r.frames for r in requests)] += 1
            if error is not None:
                self._totals["failed"] += len(requests)
        if error is not None:
            log.warning("inference failed: %s: %s", type(error).__name__, error)


def _percentiles(seconds: list[float]) -> dict[str, float | int]:
    """Run times in ms: how many, p50, p99 (``{"count": 0}`` without any)."""
    ordered = sorted(seconds)
    if not ordered:
        return {"count": 0}
    return {"count": len(ordered), "p50": 1000 * ordered[len(ordered) // 2],
            "p99": 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]}


def _stack(batches: list[np.ndarray]) -> np.ndarray:
    """One batch of the requests' batches; canvases and tensors in one batch all become tensors."""
    if len(batches) == 1:
        return batches[0]
    if len({batch.dtype for batch in batches}) > 1:
        batches = [as_tensor(batch) for batch in batches]
    return np.concatenate(batches)
