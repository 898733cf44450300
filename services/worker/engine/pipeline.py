"""One pipeline: its video sources, a round processor (a detector or a workflow) and the sinks, wired with threads.

Theory of operation::

    source-0 ─┐               prepared (1)         inferred (K+1)
    source-1 ─┼─> collector ─────────────> inference xK ─────────────> post ──> BufferedSink(redis)
    source-N ─┘   (one frame per source,  (session.run    (reorder, finish: └─> BufferedSink(udp)
                   processor.prepare:      only: the       NMS, the rest of
                   letterbox, stack)       processor's     a workflow)
                                           infer)

Each source decodes on its own thread into its bounded buffer (strategies applied there). What a
round's frames go through is a :class:`RoundProcessor` (one detection model, or a whole workflow).
The collector takes one frame per source per round, numbers the round and pre-processes it; the K
inference threads do nothing but ``session.run`` (which releases the GIL), so decoding, pre- and
post-processing of neighbouring rounds overlap with it. With K > 1 rounds finish out of order; the
post stage puts them back in sequence before anything reaches a sink. On CPU, K single-threaded
runs beat one K-threaded run: no barrier between intra-op threads for a helper thread to stall,
and no synchronisation overhead (docs/benchmarks.md). Every queue is bounded: with WAIT/LAZY
sources a slow model back-pressures all the way to the decoder and no frame is lost; the sinks are the one place that
drops instead of blocking (counted), so a broken sink never stalls inference.

Processing modes (per pipeline, the same for every source): ``every_frame`` is WAIT/LAZY, so the
back-pressure above reaches the decoder and nothing is dropped (a live camera then falls behind
real time); ``freshest`` is DROP_OLDEST/EAGER, each round takes the newest frame. With
``max_staleness`` the pipeline never runs inference on a frame older than that (age: now minus the
frame's monotonic ``decoded_at``). The rule is checked twice: by the collector once a round is
collected (a frame may have waited for the round's other sources), and by the inference thread
right before ``processor.infer``, the last moment, since a prepared round can wait in the queue
behind slow inference. There a round whose frames are all stale is emptied; it still travels to
the post stage, which skips it, so round order holds. A round that lost only some of its frames
(several sources) is prepared again from the fresh ones on the inference thread (``prepare`` keeps
no state) and checked again, as preparing took time; each pass removes a frame, so this ends.
Slicing a prepared batch instead would make every processor expose its layout, for a case that
only mixed sources reach. The last check's time is the round's inference start (its latency's
decoding part), so that part never exceeds ``max_staleness``. Every frame dropped by the rule
counts as ``stale`` in its source's drop counters (STATUS, ``vsim_frames_dropped``). With the
worker's shared inference service, a round can also wait in the service's queue: the round's
deadline travels with the request (``staleness``) and a round the service refuses as stale goes
through the same check again here. Better still, such a pipeline takes a turn at the service
before it collects a round (``take_turn``, when its processor can): the frames are picked once the
service has room for them, so they are fresh when a runner takes them and none goes stale waiting.

Waiting costs nothing: a stage thread with nothing to do sleeps on its queue (``_Channel``) until an
item, room or the end comes, and the collector on its sources' buffers (several sources: one event
every buffer sets when a frame arrives or the source ends), so a paused or starved pipeline's
threads do not wake to look at a flag (``make bench``, "Waiting pipelines").

A pipeline ends by itself when every source has finished (files ended) and the queues are drained;
``terminate`` ends it from any state within its timeout. ``mute`` keeps sources decoding but
discards their frames, so no new results appear until ``resume``.
"""

import collections
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from services.core.states import StreamState
from services.infra.os_threads import name_os_thread
from services.worker.engine import events
from services.worker.engine.events import StatusUpdate
from services.worker.engine.frames import VideoFrame
from services.worker.engine.metrics import metrics_section
from services.worker.engine.results import RoundResult, SourceResult
from services.worker.engine.sinks import ResultSink
from services.worker.engine.sinks.buffered import BufferedSink
from services.worker.engine.source import SourceConfig, VideoSource
from services.worker.engine.staleness import StaleFrameError, round_scope
from services.worker.engine.watchdog import FrameLatency, Watchdog

log = logging.getLogger(__name__)

POLL = 0.05  # how often the collector, waiting for one source's frame of a round, looks at the stop flag (seconds)
# The longest a collector waits for the first frame of a round before it looks at its loop's conditions again.
# Every end it waits for wakes it at once (a frame, a source's buffer closing, terminate): this only bounds a miss.
WAIT = 1.0
DROP_STALE = "stale"  # a frame older than max_staleness, dropped by the pipeline (see the module docstring)


class RoundProcessor(Protocol):
    """What the pipeline does with a round's frames, in three stages (see the module docstring).

    ``prepare`` runs on the collector thread (and again on an inference thread for a round that lost
    stale frames: it must keep no state), ``infer`` on the inference threads (concurrently for
    different rounds: it must keep no state either), ``finish`` on the post thread, once per round in
    round order (state across frames belongs there). ``finish`` returns one output per frame.
    """

    def prepare(self, frames: Sequence[VideoFrame]) -> Any: ...

    def infer(self, prepared: Any) -> Any: ...

    def finish(self, frames: Sequence[VideoFrame], prepared: Any, inferred: Any) -> list[dict[str, Any]]: ...

    def close(self, timeout: float) -> None:
        """The pipeline ended: let go of what the processor holds (background deliveries, ...)."""

    # Optional: ``take_turn() -> object | None``, called by the collector of a pipeline with
    # ``max_staleness`` before it picks a round's frames (the inference service's turn; see below).


class RoundObserver(Protocol):
    """Sees every emitted round with its frames, on the post thread (e.g. the dashboard's preview).

    ``observe`` must return at once (take a reference and hand the work to another thread);
    ``close`` is called when the pipeline's sinks close. A failing observer never stops the pipeline.
    """

    def observe(self, frames: Sequence[VideoFrame], result: RoundResult) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    video_references: tuple[str | int, ...]
    source: SourceConfig = field(default_factory=SourceConfig)
    # Once a round has its first frame, how long to wait for the other sources (None: wait for
    # every running source).
    batch_collection_timeout: float | None = None
    sink_queue_size: int = 256
    # Rounds in session.run at once (each thread runs one); see the module docstring.
    inference_workers: int = 1
    # source id -> frames a previous run of this pipeline already processed (files resume after them).
    resume_after: Mapping[int, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Round:
    seq: int
    frames: list[VideoFrame]
    prepared: Any
    started: float = 0.0
    finished: float = 0.0
    inferred: Any = None
    failed: bool = False  # a failed inference: the round is skipped, in order
    turn: object | None = None  # the processor's turn at the inference service, for this round's request


_END = object()  # sentinel travelling down the queues when every source has finished


class InferencePipeline:
    def __init__(
        self,
        config: PipelineConfig,
        processor: RoundProcessor,
        sinks: Sequence[ResultSink],
        on_update: Callable[[StatusUpdate], None] | None = None,
        source_factory: Callable[..., VideoSource] = VideoSource,
        observers: Sequence[RoundObserver] = (),
        watchdog: Watchdog | None = None,
    ) -> None:
        if not config.video_references:
            raise ValueError("a pipeline needs at least one video reference")
        if config.inference_workers < 1:
            raise ValueError("inference_workers must be at least 1")
        self._config = config
        self._processor = processor
        # Live pipelines that bound staleness pick each round's frames only once the inference
        # service has room for them (when the processor can take turns): the freshest frame then.
        self._takes_turns = config.source.max_staleness is not None and hasattr(processor, "take_turn")
        self._extra_handler = on_update
        self.watchdog = watchdog or Watchdog(len(config.video_references))
        self._sources = [
            source_factory(reference, source_id, config.source, self._on_update,
                           **({"skip_frames": config.resume_after[source_id]}
                              if config.resume_after.get(source_id) else {}))
            for source_id, reference in enumerate(config.video_references)
        ]
        self._sinks = [BufferedSink(sink, self._on_update, capacity=config.sink_queue_size) for sink in sinks]
        self._observers = tuple(observers)
        workers = config.inference_workers
        # One prepared round ahead of the K inference threads keeps them fed (preparing takes a fraction of a
        # run); every round more is a frame and its canvas held for nothing (memory per pipeline).
        self._prepared = _Channel(maxsize=1)
        self._inferred = _Channel(maxsize=workers + 1)
        self._next_seq = 0
        self._stop = threading.Event()
        self._arrival = threading.Event()  # a frame (or a source's end) came: the multi-source collector's wake-up
        for source in self._sources:
            source.wake_on_change(self._arrival)
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._state = StreamState.NOT_STARTED
        self._threads = [
            threading.Thread(target=self._guard(self._collect), name="collector", daemon=True),
            *(threading.Thread(target=self._guard(self._infer), name=f"inference-{index}", daemon=True)
              for index in range(workers)),
            threading.Thread(target=self._guard(self._post), name="post", daemon=True),
        ]

    # ----------------------------------------------------------------- control (any thread)

    @property
    def state(self) -> StreamState:
        return self._state

    @property
    def sources(self) -> Sequence[VideoSource]:
        return tuple(self._sources)

    def start(self) -> None:
        self._set_state(StreamState.INITIALISING)
        for source in self._sources:
            source.start()
        for thread in self._threads:
            thread.start()
        with self._lock:
            if not self._done.is_set():  # every source may already have failed
                self._state = StreamState.RUNNING
        self._on_update(StatusUpdate(events.INFERENCE_THREAD_STARTED, events.CONTEXT_PIPELINE))

    def mute(self) -> None:
        with self._lock:
            if self._state is not StreamState.RUNNING:
                return
            for source in self._sources:
                source.mute()
        self._set_state(StreamState.MUTED)

    def resume(self) -> None:
        with self._lock:
            if self._state is not StreamState.MUTED:
                return
            for source in self._sources:
                source.resume()
        self._set_state(StreamState.RUNNING)

    def terminate(self, timeout: float = 2.0) -> None:
        """Stop everything; returns within about ``timeout`` seconds from any state. Idempotent."""
        deadline = time.monotonic() + timeout
        if self._state.is_final:
            return
        self._set_state(StreamState.TERMINATING)
        self._halt()
        self._terminate_sources(timeout * 0.5)
        for thread in self._threads:
            if thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic() - 0.2))
        self._close_sinks(max(0.1, deadline - time.monotonic()))
        self._finish(StreamState.ENDED)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the pipeline has ended (by itself or terminated); False on timeout."""
        return self._done.wait(timeout)

    def status_report(self) -> dict[str, Any]:
        """The reference's status report, plus a few fields of ours (state, counters, sinks)."""
        return {
            "video_source_status_updates": self.watchdog.status_updates(),
            "latency_reports": self.watchdog.latency_reports(),
            "inference_throughput": self.watchdog.throughput(),
            "sources_metadata": [source.metadata() for source in self._sources],
            "state": self._state.value,
            "frames_processed": self.watchdog.frames_processed,
            "inference_errors": self.watchdog.inference_errors,
            "workflow_errors": self.watchdog.step_errors(),
            "sinks": [_sink_report(sink) for sink in self._sinks],
            "metrics": self.metrics_report(),
        }

    def metrics_report(self) -> dict[str, Any]:
        """Cumulative numbers since the start, for Prometheus (schema: ``services.core.metrics``)."""
        return metrics_section(self.watchdog.histograms(), [source.stats() for source in self._sources],
                               [sink.stats() for sink in self._sinks], self.watchdog.inference_errors,
                               self.watchdog.step_errors())

    # ----------------------------------------------------------------- stages

    def _collect(self) -> None:
        turn = None
        while not self._stop.is_set():
            if turn is None and self._takes_turns:
                turn = self._take_turn()
            frames = self._collect_round()
            if frames is None:
                for _ in range(self._config.inference_workers):  # one END per inference thread
                    self._put(self._prepared, _END)
                return
            frames = self._fresh(frames, time.monotonic())
            if frames:
                item = self._prepare(frames)
                item.turn, turn = turn, None
                self._put(self._prepared, item)

    def _take_turn(self) -> object | None:
        """The processor's turn at the inference service; None (the round goes without one) if none came."""
        try:
            turn: object | None = self._processor.take_turn()  # type: ignore[attr-defined]
            return turn
        except Exception as exc:  # the service is busy or restarting: deadlines still hold
            log.debug("no inference turn: %s: %s", type(exc).__name__, exc)
            return None

    def _collect_round(self) -> list[VideoFrame] | None:
        """One frame per source that has one; [] when nothing came yet; None when all finished."""
        live = [source for source in self._sources if not source.finished]
        if not live:
            return None
        first = self._first_frame(live)
        if first is None:
            return []
        frames = [first]
        timeout = self._config.batch_collection_timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        for source in live:
            if source.source_id == first.source_id:
                continue
            frame = self._frame_from(source, deadline)
            if frame is not None:
                frames.append(frame)
        return frames

    def _first_frame(self, live: list[VideoSource]) -> VideoFrame | None:
        """The first frame any live source has, waiting for one (no polling: the sources wake the collector)."""
        if len(live) == 1:
            return live[0].read(timeout=WAIT)
        self._arrival.clear()  # before looking: a frame arriving after the look sets it again
        for source in live:
            frame = source.read(timeout=0)
            if frame is not None:
                return frame
        self._arrival.wait(WAIT)
        return None

    def _frame_from(self, source: VideoSource, deadline: float | None) -> VideoFrame | None:
        """Wait for the source's frame until the deadline, or while it is running (no deadline)."""
        while not self._stop.is_set() and not source.finished:
            remaining = POLL if deadline is None else min(POLL, deadline - time.monotonic())
            if remaining <= 0:
                return source.read(timeout=0)
            frame = source.read(timeout=remaining)
            if frame is not None:
                return frame
            if deadline is None and source.state is not StreamState.RUNNING:
                return None  # offline or muted: don't hold the other sources hostage
        return None

    def _prepare(self, frames: list[VideoFrame]) -> _Round:
        seq, self._next_seq = self._next_seq, self._next_seq + 1
        return _Round(seq=seq, frames=frames, prepared=self._processor.prepare(frames))

    def _infer(self) -> None:
        while (item := self._get(self._prepared)) is not None:
            if item is _END:
                self._put(self._inferred, _END)
                return
            assert isinstance(item, _Round)
            if self._still_fresh(item):
                self._run(item)
            self._put(self._inferred, item)  # failed and emptied rounds too: post must not wait for their seq

    def _run(self, item: _Round) -> None:
        while True:
            try:
                with round_scope(self._deadline(item), item.turn):
                    item.inferred = self._processor.infer(item.prepared)
            except StaleFrameError:  # it waited past max_staleness behind other pipelines' batches
                if self._still_fresh(item):  # counts the stale frames; a multi-source round may keep some
                    continue
            except Exception as exc:  # a bad frame or model error loses this round, not the pipeline
                item.failed = True
                self._inference_failed(exc)
            break
        item.finished = time.monotonic()

    def _deadline(self, item: _Round) -> float | None:
        limit = self._config.source.max_staleness
        return None if limit is None else min(frame.decoded_at for frame in item.frames) + limit

    def _still_fresh(self, item: _Round) -> bool:
        """Drops the round's stale frames right before inference (preparing the rest again); False if none is left.

        Sets ``item.started`` to the moment of the last check, which inference follows at once.
        """
        while True:
            now = time.monotonic()
            fresh = self._fresh(item.frames, now)
            if len(fresh) == len(item.frames):
                item.started = now
                return True
            item.frames = fresh
            if not fresh:
                return False
            item.prepared = self._processor.prepare(fresh)

    def _fresh(self, frames: list[VideoFrame], now: float) -> list[VideoFrame]:
        """The frames no older than max_staleness at ``now``; the others are counted as ``stale`` drops."""
        limit = self._config.source.max_staleness
        if limit is None:
            return frames
        fresh: list[VideoFrame] = []
        for frame in frames:
            if now - frame.decoded_at <= limit:
                fresh.append(frame)
            else:
                self._sources[frame.source_id].count_drop(DROP_STALE)
        return fresh

    def _post(self) -> None:
        waiting: dict[int, _Round] = {}  # rounds that finished before an earlier one
        expected, ends = 0, 0
        while (item := self._get(self._inferred)) is not None:
            if item is _END:
                ends += 1
                if ends == self._config.inference_workers:
                    self._on_all_sources_finished()
                    return
                continue
            assert isinstance(item, _Round)
            waiting[item.seq] = item
            while expected in waiting:
                self._emit(waiting.pop(expected))
                expected += 1

    def _emit(self, item: _Round) -> None:
        if item.failed or not item.frames:  # not item.frames: every frame was stale
            return
        try:
            result = self._round_result(item)
        except Exception as exc:
            self._inference_failed(exc)
            return
        for sink in self._sinks:
            sink.submit(result)
        for observer in self._observers:
            try:
                observer.observe(item.frames, result)
            except Exception:
                log.exception("round observer %s failed", type(observer).__name__)
        self._record(item)

    def _round_result(self, item: _Round) -> RoundResult:
        outputs = self._processor.finish(item.frames, item.prepared, item.inferred)
        slots: list[SourceResult | None] = [None] * len(self._sources)
        for frame, output in zip(item.frames, outputs, strict=True):
            slots[frame.source_id] = SourceResult(
                frame.source_id, frame.frame_id, frame.frame_timestamp, frame.decoded_at, output
            )
        item.finished = time.monotonic()
        return RoundResult(tuple(slots))

    def _record(self, item: _Round) -> None:
        handed = time.monotonic()
        for frame in item.frames:
            latency = FrameLatency(
                decoding=item.started - frame.decoded_at,
                inference=item.finished - item.started,
                e2e=handed - frame.decoded_at,
            )
            self.watchdog.on_frame(frame.source_id, latency)
        self.watchdog.on_round(len(item.frames), handed)

    # ----------------------------------------------------------------- plumbing

    def _on_update(self, update: StatusUpdate) -> None:
        self.watchdog.on_update(update)
        if self._extra_handler is not None:
            self._extra_handler(update)

    def _set_state(self, state: StreamState) -> None:
        with self._lock:
            previous, self._state = self._state, state
        if previous is not state:
            log.info("pipeline state %s -> %s", previous.value, state.value)

    def _inference_failed(self, exc: Exception) -> None:
        self.watchdog.on_inference_error()
        log.warning("inference round failed: %s: %s", type(exc).__name__, exc)
        self._on_update(StatusUpdate(
            events.INFERENCE_ERROR, events.CONTEXT_PIPELINE, severity=logging.ERROR,
            payload={"error_type": type(exc).__name__, "error_message": str(exc)},
        ))

    def _on_all_sources_finished(self) -> None:
        self._close_sinks(timeout=5.0)
        errors = [source for source in self._sources if source.state is StreamState.ERROR]
        self._finish(StreamState.ERROR if len(errors) == len(self._sources) else StreamState.ENDED)

    def _finish(self, state: StreamState) -> None:
        with self._lock:
            if self._done.is_set():
                return
            self._state = state
            self._done.set()
        self._on_update(StatusUpdate(events.INFERENCE_THREAD_FINISHED, events.CONTEXT_PIPELINE))
        log.info("pipeline finished: %s", state.value)

    def _terminate_sources(self, timeout: float) -> None:
        stoppers = [threading.Thread(target=source.terminate, args=(timeout,), daemon=True)
                    for source in self._sources]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join(timeout + 0.1)

    def _close_sinks(self, timeout: float) -> None:
        for sink in self._sinks:
            sink.close(timeout / max(1, len(self._sinks)))
        try:
            self._processor.close(timeout)
        except Exception:
            log.exception("round processor %s failed to close", type(self._processor).__name__)
        for observer in self._observers:
            try:
                observer.close()
            except Exception:
                log.exception("round observer %s failed to close", type(observer).__name__)

    def _put(self, target: "_Channel", item: object) -> None:
        if not self._stop.is_set():
            target.put(item)

    def _get(self, source: "_Channel") -> object | None:
        return None if self._stop.is_set() else source.get()

    def _halt(self) -> None:
        """Stops every stage: the flag for the loops, and closed queues wake the threads blocked on them."""
        self._stop.set()
        self._prepared.close()
        self._inferred.close()

    def _guard(self, stage: Callable[[], None]) -> Callable[[], None]:
        """Run a stage; a crash is reported and ends the pipeline in ERROR instead of hanging it.

        The pipeline is over at once (ERROR, ``wait`` returns); then its sources stop and its sinks
        deliver what they hold and close, as on terminate (which a finished pipeline ignores): a pool
        process runs the next pipeline after this one, so nothing of this one may go on decoding.
        """

        def run() -> None:
            name_os_thread()
            try:
                stage()
            except Exception as exc:
                log.exception("pipeline stage %s crashed", threading.current_thread().name)
                self._inference_failed(exc)
                self._halt()
                self._finish(StreamState.ERROR)
                self._terminate_sources(1.0)
                self._close_sinks(2.0)

        return run


class _Channel:
    """A bounded FIFO between two stages whose blocked ends sleep until an item, room or ``close`` comes.

    No timed polling: an idle or muted pipeline's stage threads cost nothing while they wait (they
    looked at the stop flag 20 times a second each before: about 3 ms of CPU a second per pipeline).
    Each put wakes one getter and each get one putter; ``close`` (terminate, a crashed stage) wakes
    them all, after which ``put`` refuses (False) and ``get`` returns None.
    """

    def __init__(self, maxsize: int) -> None:
        self._items: collections.deque[object] = collections.deque()
        self._maxsize = maxsize
        lock = threading.Lock()
        self._not_empty = threading.Condition(lock)
        self._not_full = threading.Condition(lock)
        self._closed = False

    def put(self, item: object) -> bool:
        with self._not_full:
            while len(self._items) >= self._maxsize and not self._closed:
                self._not_full.wait()
            if self._closed:
                return False
            self._items.append(item)
            self._not_empty.notify()
            return True

    def get(self) -> object | None:
        with self._not_empty:
            while not self._items and not self._closed:
                self._not_empty.wait()
            if self._closed:
                return None
            item = self._items.popleft()
            self._not_full.notify()
            return item

    def close(self) -> None:
        with self._not_empty:
            self._closed = True
            self._not_empty.notify_all()
            self._not_full.notify_all()


def _sink_report(sink: BufferedSink) -> dict[str, Any]:
    stats = sink.stats()
    return {
        "name": stats.name,
        "delivered": stats.delivered,
        "dropped": stats.dropped_queue_full + stats.dropped_sink_error,
        "queued": stats.queued,
        "healthy": stats.healthy,
        # outages (services.worker.engine.sinks.buffered, .redis_stream): rounds held for a retry, failed
        # writes retried, rounds the server lost and the sink wrote again, rounds it lost for good
        "retrying": stats.retrying,
        "retries": stats.retries,
        "replayed": stats.replayed,
        "lost": stats.lost,
    }
