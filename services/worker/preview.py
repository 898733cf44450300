"""The dashboard's preview of a pipeline: its latest frame, boxes and labels drawn, as a small JPEG in Redis.

Theory of operation
-------------------
The pipeline's post thread hands every round to :meth:`PreviewPublisher.observe`, which costs one
clock read: only when a preview is due (every ``interval`` seconds) does it keep a reference to
the round's frames and predictions, in a one-slot mailbox that a newer round simply replaces.
Its own low-priority thread does the work, never the inference path. It first asks Redis whether
anyone is watching (``keys.pipeline_preview_watched``, set by the HTTP API for
``PREVIEW_WATCH_TTL`` seconds each time it serves the preview or lists the pipeline on the
dashboard): unwatched, the round is only remembered (one EXISTS a second, nothing drawn). Watched, it
downscales a copy of each
source's latest frame to at most ``max_width`` pixels wide, draw the boxes and class labels on it
with the annotators of the workflow visualization blocks (their configuration functions, the
preview's own style), tile the sources of a multi-source pipeline into one grid, encode a JPEG (quality
``quality``) and store it at ``keys.pipeline_preview`` with a TTL. When the thread is still busy a
due round is not queued behind it; at most one preview per ``interval`` is ever published.

The write is fenced like every other write of the task: a Lua script stores the preview only while
the pipeline's record carries this task's epoch and owner. A superseded task stops publishing at
once; a missing record (Redis restarted without its data; the task restores it) skips one preview.
Nothing here can stop the pipeline: any failure is logged once and the next preview is tried.
"""

import base64
import functools
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np
import redis
import supervision as sv

from services.core import keys
from services.core.fencing import fence_lua
from services.core.results import detections_in, image_in
from services.infra.os_threads import name_os_thread
from services.worker.engine.frames import VideoFrame
from services.worker.engine.results import RoundResult
from services.worker.workflows.blocks.visualization.annotators import box_annotator, label_annotator
from services.worker.workflows.blocks.visualization.colours import colours
from services.worker.workflows.blocks.visualization.labels import label_texts
from services.worker.workflows.blocks.visualization.predictions import detections_from_predictions

log = logging.getLogger(__name__)

MAX_WIDTH = 480  # pixels, of the whole preview (a multi-source grid shares it)
QUALITY = 70  # JPEG quality
CLOSE_TIMEOUT = 0.5  # seconds the pipeline's end waits for the preview thread (it finishes on its own)

# KEYS: record, preview. ARGV: epoch, owner, jpeg, ttl. 1 written, 0 fenced out, -1 record missing.
_FENCED_SET = fence_lua("-1", "0") + """
redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4])
return 1
"""

# KEYS: record, preview. ARGV: epoch, owner. Removes our preview when the pipeline ends.
_FENCED_DEL = fence_lua("0", "0") + """
return redis.call('DEL', KEYS[2])
"""

OWNED, FENCED, MISSING = 1, 0, -1

# BGR colours for the classes, cycled by class id (Tableau 10).
PALETTE: tuple[tuple[int, int, int], ...] = (
    (180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148),
    (75, 86, 140), (194, 119, 227), (127, 127, 127), (34, 189, 188), (207, 190, 23),
)
_TEXT_SCALE = 0.4
_TEXT_PADDING = 3
_BACKGROUND = (24, 24, 24)


@dataclass(frozen=True, slots=True)
class PreviewStats:
    taken: int  # rounds taken for a preview (at most one per interval)
    published: int
    unwatched: int  # due previews not drawn: nobody was watching
    skipped: int  # due previews not published: fenced, record missing, Redis errors
    last_bytes: int
    last_ms: float  # drawing + encoding of the last preview, milliseconds
    mean_ms: float


def annotate(image: np.ndarray, prediction: Mapping[str, Any], max_width: int = MAX_WIDTH,
             label: str | None = None) -> np.ndarray:
    """A downscaled copy of ``image`` (BGR) with the prediction's boxes and ``class conf`` labels.

    ``prediction`` is one source's output: the reference prediction format (box centre and size in
    source pixels), or a workflow's outputs. A workflow that outputs an image (e.g. its annotated
    frame) is shown as it drew it; otherwise the detections found in its outputs are drawn. The boxes
    are scaled with the image, so the drawing works on the small copy and never touches ``image``.
    ``label`` (e.g. the source id) is written in the top-left corner.
    """
    drawn = _image_output(prediction)
    if drawn is not None:
        image, prediction = drawn, {}
    height, width = image.shape[:2]
    scale = min(1.0, max_width / width) if width > 0 else 1.0
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    canvas: np.ndarray = cv2.resize(image, size, interpolation=cv2.INTER_AREA) if scale < 1.0 else image.copy()
    detections = detections_from_predictions(detections_in(prediction) or [], scale)
    if len(detections):
        boxes, labels = _annotators()
        boxes.annotate(canvas, detections)
        texts = [_ascii(text) for text in label_texts(detections, "Class and Confidence")]
        labels.annotate(canvas, _labels_inside(detections, texts, canvas.shape[1]), labels=texts)
    if label:
        _draw_caption(canvas, label)
    return canvas


def _image_output(output: Mapping[str, Any]) -> np.ndarray | None:
    encoded = image_in(output)
    if encoded is None:
        return None
    decoded = cv2.imdecode(np.frombuffer(base64.b64decode(encoded), np.uint8), cv2.IMREAD_COLOR)
    return decoded if decoded is not None and decoded.size else None


def render(tiles: Sequence[np.ndarray], max_width: int = MAX_WIDTH, quality: int = QUALITY) -> bytes:
    """One JPEG of the annotated ``tiles``: the image itself for one, else a grid ``max_width`` wide."""
    if not tiles:
        raise ValueError("nothing to render")
    if len(tiles) == 1:
        image = tiles[0]
    else:
        columns = math.ceil(math.sqrt(len(tiles)))
        cell_width = max(1, max_width // columns)
        cells = [_fit_width(tile, cell_width) for tile in tiles]
        cell_height = max(cell.shape[0] for cell in cells)
        padded = [_pad(cell, cell_width, cell_height) for cell in cells]
        padded += [_pad(None, cell_width, cell_height)] * (-len(padded) % columns)
        rows = [np.hstack(padded[i:i + columns]) for i in range(0, len(padded), columns)]
        image = np.vstack(rows)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return encoded.tobytes()


class PreviewPublisher:
    """Publishes a pipeline's preview at most once per ``interval`` seconds; see the module docstring.

    A round observer of the pipeline (``observe`` on the post thread, ``close`` when the pipeline ends).
    """

    def __init__(self, client: redis.Redis, pipeline_id: str, epoch: int, owner: str, interval: float = 1.0,
                 max_width: int = MAX_WIDTH, quality: int = QUALITY, ttl: int = keys.PREVIEW_TTL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if interval <= 0:
            raise ValueError("the preview interval must be positive (0 disables previews: build no publisher)")
        self.pipeline_id = pipeline_id
        self._client = client
        self._keys = [keys.pipeline_record(pipeline_id), keys.pipeline_preview(pipeline_id)]
        self._watched = keys.pipeline_preview_watched(pipeline_id)
        self._epoch = epoch
        self._owner = owner
        self._interval = interval
        self._max_width = max_width
        self._quality = quality
        self._ttl = max(ttl, math.ceil(3 * interval))
        self._clock = clock
        self._set = client.register_script(_FENCED_SET)
        self._delete = client.register_script(_FENCED_DEL)
        self._cond = threading.Condition()
        self._pending: tuple[Sequence[VideoFrame], RoundResult] | None = None
        self._closing = False
        self._fenced = False
        self._due = 0.0  # time.monotonic() from which the next round is taken
        self._latest: dict[int, tuple[np.ndarray, Mapping[str, Any]]] = {}  # per source; publisher thread only
        self._taken = self._published = self._unwatched = self._skipped = self._last_bytes = 0
        self._last_ms = self._total_ms = 0.0
        self._failing = False
        # Started by the first due round, so a pipeline that never runs leaves no thread behind.
        self._thread = threading.Thread(target=self._run, name=f"preview-{pipeline_id}", daemon=True)

    # ----------------------------------------------------------------- the pipeline's post thread

    def observe(self, frames: Sequence[VideoFrame], result: RoundResult) -> None:
        """Takes the round when a preview is due (a reference, no copy); otherwise returns at once."""
        now = self._clock()
        if now < self._due or self._fenced:
            return
        self._due = now + self._interval
        with self._cond:
            if self._closing:
                return
            self._taken += 1
            self._pending = (frames, result)  # replaces a due round the thread has not taken yet
            self._cond.notify()
            if not self._thread.is_alive() and self._thread.ident is None:
                self._thread.start()

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Stops the thread, which removes our preview as it goes (fenced: never another task's).

        Waits at most ``timeout``: a thread stuck on an unreachable Redis finishes by itself later.
        """
        with self._cond:
            self._closing = True
            self._pending = None
            self._cond.notify()
        if self._thread.ident is not None:
            self._thread.join(timeout)

    def stats(self) -> PreviewStats:
        with self._cond:
            mean = self._total_ms / self._published if self._published else 0.0
            return PreviewStats(self._taken, self._published, self._unwatched, self._skipped, self._last_bytes,
                                self._last_ms, mean)

    # ----------------------------------------------------------------- the publisher thread

    def _run(self) -> None:
        name_os_thread()
        self._publish_until_closed()
        if not self._fenced:
            try:
                self._delete(keys=self._keys, args=[self._epoch, self._owner])
            except redis.RedisError as exc:  # it expires by itself
                log.debug("pipeline %s: preview not removed: %s", self.pipeline_id, exc)

    def _publish_until_closed(self) -> None:
        while (item := self._next()) is not None:
            frames, result = item
            try:
                self._remember(frames, result)
                if not self._client.exists(self._watched):
                    self._count(unwatched=True)
                    continue
                jpeg, spent_ms = self._render()
                written = self._write(jpeg)
            except Exception as exc:  # never the pipeline's problem: log once per failing spell
                self._count(skipped=True)
                if not self._failing:
                    log.warning("pipeline %s: preview not published: %s: %s", self.pipeline_id,
                                type(exc).__name__, exc)
                self._failing = True
                continue
            if self._failing:
                log.info("pipeline %s: previews published again", self.pipeline_id)
            self._failing = False
            self._count(skipped=not written, size=len(jpeg), spent_ms=spent_ms)
            if self._fenced:
                return

    def _next(self) -> tuple[Sequence[VideoFrame], RoundResult] | None:
        with self._cond:
            while self._pending is None and not self._closing:
                self._cond.wait()
            item, self._pending = self._pending, None
            return None if self._closing else item

    def _remember(self, frames: Sequence[VideoFrame], result: RoundResult) -> None:
        """Each source's latest frame and prediction, the tiles of the next preview."""
        for frame in frames:
            slot = result.slots[frame.source_id] if frame.source_id < len(result.slots) else None
            if slot is not None:
                self._latest[frame.source_id] = (frame.image, slot.prediction)

    def _render(self) -> tuple[bytes, float]:
        started = time.perf_counter()
        sources = sorted(self._latest)
        columns = math.ceil(math.sqrt(len(sources)))
        tile_width = self._max_width // columns
        labels = len(sources) > 1
        tiles = [annotate(image, prediction, tile_width, f"source {source_id}" if labels else None)
                 for source_id, (image, prediction) in ((s, self._latest[s]) for s in sources)]
        jpeg = render(tiles, self._max_width, self._quality)
        return jpeg, (time.perf_counter() - started) * 1000

    def _write(self, jpeg: bytes) -> bool:
        outcome = int(self._set(keys=self._keys, args=[self._epoch, self._owner, jpeg, self._ttl]))
        if outcome == FENCED:
            log.info("pipeline %s: another task owns the pipeline; previews stop", self.pipeline_id)
            self._fenced = True
        return outcome == OWNED

    def _count(self, skipped: bool = False, unwatched: bool = False, size: int = 0, spent_ms: float = 0.0) -> None:
        with self._cond:
            if unwatched:
                self._unwatched += 1
                return
            if skipped:
                self._skipped += 1
                return
            self._published += 1
            self._last_bytes, self._last_ms = size, spent_ms
            self._total_ms += spent_ms
        log.debug("pipeline %s: preview %d published (%d bytes, %.1f ms)", self.pipeline_id, self._published,
                  size, spent_ms)


@functools.cache
def _annotators() -> tuple[sv.BoxAnnotator | sv.RoundBoxAnnotator, sv.LabelAnnotator]:
    """The preview's style, built once: a bounding_box_visualization and a label_visualization would
    draw the same with a CUSTOM palette of :data:`PALETTE` by CLASS, thickness 2, and labels at
    TOP_LEFT of scale 0.4, padding 3."""
    by_class = colours("CUSTOM", len(PALETTE), [_hex(bgr) for bgr in PALETTE], "CLASS")
    return (box_annotator(by_class, thickness=2, roundness=0.0),
            label_annotator(by_class, text_position="TOP_LEFT", text_color="WHITE", text_scale=_TEXT_SCALE,
                            text_thickness=1, text_padding=_TEXT_PADDING, border_radius=0))


def _labels_inside(detections: sv.Detections, texts: Sequence[str], width: int) -> sv.Detections:
    """Where to anchor the labels so that they stay in the frame: a box at the top edge gets its label
    just inside its top, one at the right edge a label moved left (supervision's smart positioning
    does more, at several times the cost of the whole preview)."""
    anchors = detections.xyxy.copy()
    for index, text in enumerate(texts):
        (text_width, text_height), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, _TEXT_SCALE, 1)
        anchors[index, 0] = max(0, min(anchors[index, 0], width - text_width - 2 * _TEXT_PADDING))
        anchors[index, 1] = max(anchors[index, 1], text_height + 2 * _TEXT_PADDING)
    return replace(detections, xyxy=anchors)


def _draw_caption(canvas: np.ndarray, text: str) -> None:
    """``text`` in white on a dark band in the top-left corner."""
    text = _ascii(text)
    (width, height), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, _TEXT_SCALE, 1)
    # draw_text centres the text on the anchor; this anchor puts the band's corner at (0, 0).
    anchor = sv.Point(width // 2 + _TEXT_PADDING, height - height // 2 + _TEXT_PADDING)
    sv.draw_text(canvas, text, anchor, text_color=sv.Color.WHITE, text_scale=_TEXT_SCALE,
                 text_padding=_TEXT_PADDING, background_color=sv.Color.from_bgr_tuple(_BACKGROUND))


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode()  # Hershey fonts draw ASCII only


def _hex(bgr: tuple[int, int, int]) -> str:
    blue, green, red = bgr
    return f"#{red:02x}{green:02x}{blue:02x}"


def _fit_width(image: np.ndarray, width: int) -> np.ndarray:
    if image.shape[1] == width:
        return image
    height = max(1, round(image.shape[0] * width / image.shape[1]))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def _pad(image: np.ndarray | None, width: int, height: int) -> np.ndarray:
    cell = np.full((height, width, 3), _BACKGROUND, dtype=np.uint8)
    if image is not None:
        cell[: image.shape[0], : image.shape[1]] = image
    return cell
