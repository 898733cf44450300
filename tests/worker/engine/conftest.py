"""Fixtures for the engine tests: sample videos, an event recorder, fake captures, a source factory."""

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from services.core.states import StreamState
from services.worker.engine.capture import Capture, CaptureOptions, SourceConnectionError
from services.worker.engine.events import SOURCE_STATE_UPDATE, StatusUpdate
from services.worker.engine.frames import VideoFrame
from services.worker.engine.pipeline import InferencePipeline
from services.worker.engine.reconnect import BackoffPolicy
from services.worker.engine.source import SourceConfig, VideoSource
from tests.support.waiting import wait_until

MEDIA = Path(__file__).resolve().parents[3] / "data" / "media"
VTEST_FRAMES = 795

# Quick reconnects so tests see several attempts within a second or two.
FAST_BACKOFF = BackoffPolicy(initial=0.05, factor=2.0, cap=0.3, reset_after=1.0)


class Recorder:
    """A StatusHandler that keeps every update; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._updates: list[StatusUpdate] = []

    def __call__(self, update: StatusUpdate) -> None:
        with self._lock:
            self._updates.append(update)

    @property
    def updates(self) -> list[StatusUpdate]:
        with self._lock:
            return list(self._updates)

    def of_type(self, event_type: str) -> list[StatusUpdate]:
        return [u for u in self.updates if u.event_type == event_type]

    def states(self) -> list[str]:
        return [u.payload["new_state"] for u in self.of_type(SOURCE_STATE_UPDATE)]


class FakeCapture:
    """An opened capture of ``frames`` tiny frames (None: endless), ``grab_delay`` apart."""

    def __init__(self, frames: int | None = None, grab_delay: float = 0.0, fps: float = 100.0) -> None:
        self.frames = frames
        self.grab_delay = grab_delay
        self.fps = fps
        self.grabbed = 0
        self.retrieved = 0
        self.released = threading.Event()

    def isOpened(self) -> bool:
        return not self.released.is_set()

    def grab(self) -> bool:
        if self.released.is_set() or (self.frames is not None and self.grabbed >= self.frames):
            return False
        if self.grab_delay:
            time.sleep(self.grab_delay)
        self.grabbed += 1
        return True

    def retrieve(self) -> tuple[bool, np.ndarray | None]:
        self.retrieved += 1
        return True, np.full((4, 4, 3), self.grabbed % 256, dtype=np.uint8)

    def read(self) -> tuple[bool, np.ndarray | None]:
        return self.retrieve() if self.grab() else (False, None)

    def get(self, prop_id: int) -> float:
        values = {cv2.CAP_PROP_FRAME_WIDTH: 4.0, cv2.CAP_PROP_FRAME_HEIGHT: 4.0, cv2.CAP_PROP_FPS: self.fps}
        if prop_id == cv2.CAP_PROP_FRAME_COUNT:
            return float(self.frames or -1)
        return values.get(prop_id, 0.0)

    def release(self) -> None:
        self.released.set()


class FakeOpener:
    """Hands out scripted captures (or raises scripted errors) in order; the last one repeats."""

    def __init__(self, *script: FakeCapture | Exception, gate: threading.Event | None = None) -> None:
        self.script = list(script)
        self.gate = gate
        self.calls = 0

    def __call__(self, reference: str | int, options: CaptureOptions) -> Capture:
        if self.gate is not None:
            self.gate.wait(10)  # simulates a blocking open inside OpenCV
        item = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        if isinstance(item, Exception):
            raise item
        return item


def refused(reference: str = "rtsp://127.0.0.1:9/x") -> SourceConnectionError:
    return SourceConnectionError(f"cannot open video source {reference}")


def wait_for_state(source: VideoSource, state: StreamState, timeout: float = 10.0) -> None:
    wait_until(lambda: source.state is state, timeout, message=lambda: f"still {source.state}, wanted {state}")


@pytest.fixture
def vtest() -> Path:
    path = MEDIA / "vtest.avi"
    assert path.exists(), f"sample video missing: {path}"
    return path


@pytest.fixture
def bikes() -> Path:
    path = MEDIA / "bikes.mp4"
    assert path.exists(), f"sample video missing: {path}"
    return path


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def make_source(recorder: Recorder) -> Iterator[Callable[..., VideoSource]]:
    """``make_source(reference, **config)`` -> an unstarted VideoSource, terminated at teardown."""
    made: list[VideoSource] = []

    def factory(
        reference: str | int | Path, opener: Any = None, source_id: int = 0, **config: Any
    ) -> VideoSource:
        config.setdefault("backoff", FAST_BACKOFF)
        config.setdefault("open_timeout", 2.0)
        config.setdefault("read_timeout", 2.0)
        kwargs = {"opener": opener} if opener is not None else {}
        ref = str(reference) if isinstance(reference, Path) else reference
        source = VideoSource(ref, source_id, SourceConfig(**config), recorder, **kwargs)
        made.append(source)
        return source

    yield factory
    for source in made:
        source.terminate(timeout=2.0)


@pytest.fixture
def running() -> Iterator[list[InferencePipeline]]:
    """Pipelines a test started; terminated whatever the test's outcome."""
    pipelines: list[InferencePipeline] = []
    yield pipelines
    for pipeline in pipelines:
        pipeline.terminate()


def read_until(source: VideoSource, count: int, timeout: float = 15.0) -> list[VideoFrame]:
    """``count`` frames read from ``source`` (AssertionError, with its state, if they did not come in time)."""
    frames: list[VideoFrame] = []
    deadline = time.monotonic() + timeout
    while len(frames) < count and time.monotonic() < deadline:
        frame = source.read(timeout=0.2)
        if frame is not None:
            frames.append(frame)
    assert len(frames) >= count, f"got {len(frames)} of {count} frames; state {source.state}"
    return frames
