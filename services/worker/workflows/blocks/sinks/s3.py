"""``roboflow_core/s3_sink@v1``: uploads a workflow's text (CSV, JSON, plain) or images to an S3 bucket.

As the reference: ``separate_files`` uploads each content as a new object,
``<s3_prefix>/<file_name_prefix>_<YYYY_MM_DD_HH_MM_SS_micro>.<file_type>`` (``s3_prefix`` and
``file_name_prefix`` without their trailing ``/``; no ``s3_prefix``: the name alone), as ``text/csv``,
``application/json`` or ``text/plain``. ``append_log`` keeps one object per block (per video source): each
entry is added to a buffer in memory and the whole buffer is uploaded again under the same key on every
frame, so that every frame's credentials and permissions are checked; after ``max_entries_per_file``
entries the next one starts a new object. In an append log, JSON content is written on one line (the
object is ``.jsonl``, ``application/x-ndjson``; content that is not JSON is ``error_status`` "Invalid JSON
content" and nothing is uploaded), a CSV content's first line (its header) is dropped except on an
object's first entry, and a newline ends every entry. A failed upload is retried three times after 1, 2
and 4 s when the store is busy or failing (5xx, 429, ``SlowDown``, a connection that failed); it is
``error_status: true`` with S3's error code and message. Unlike the reference, a store that is down does not
hold every frame for its retries: once an upload has failed after them, the next frames' uploads are not tried
for ``DOWN_BACKOFF_S`` (each is ``error_status``, saying when the store is tried again; an append log keeps
their entries, uploaded with the next one that goes through), so a live pipeline loses at most one frame's
worth of waits (at most four requests of ``S3_TIMEOUT_S`` and 7 s) per back-off. Uploads run inline: there is
no cooldown, ``fire_and_forget`` or ``disable_sink`` in the manifest (the reference's engine can disable every sink at
once; this one has no such switch).

The endpoint is the operator's, under the sinks' outbound-network policy (``s3_request``); a host that
policy refuses fails the step (as the webhook's), a refusal when connecting is ``error_status``. The access
key id, secret key and session token are registered as secrets: messages, logs and status never carry them.

Unlike the reference: an image (``content`` from a visualisation, the input frame) is uploaded as one JPEG
object, ``<prefix>_<stamp>.jpg`` (``image/jpeg``), whatever ``file_type`` says (in ``append_log`` it fails the
step: an image is not a log entry); there is no default credential chain (the catalogue refuses a step
without keys, one a selector leaves empty is ``error_status``); ``aws_session_token`` signs with temporary
credentials; a refusal (4xx but 429) is not retried; a new object is also started when the bucket, prefix,
name or type changes; a CSV entry left empty once its header is dropped adds no blank line; two objects
made within the same microsecond get ``_1``, ``_2``, ... before their extension instead of one replacing the
other.
"""

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from services.core.networks import DestinationRefusedError
from services.core.workflows.catalogue.sinks import S3_CREDENTIALS, is_missing
from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.sinks import credentials, inputs
from services.worker.workflows.blocks.sinks.images import jpeg_bytes
from services.worker.workflows.blocks.sinks.notification import check_destination, describe
from services.worker.workflows.blocks.sinks.s3_request import ObjectStore, S3Error, check_bucket, check_key
from services.worker.workflows.blocks.sinks.sigv4 import Credentials
from services.worker.workflows.values import WorkflowImage

log = logging.getLogger(__name__)

FILE_TYPES = ("csv", "json", "txt")
OUTPUT_MODES = ("append_log", "separate_files")
CONTENT_TYPES = {"csv": "text/csv", "json": "application/json", "jsonl": "application/x-ndjson",
                 "txt": "text/plain", "jpg": "image/jpeg"}
SECRET_FIELDS = (*S3_CREDENTIALS, "aws_session_token")
RETRY_DELAYS_S = (1.0, 2.0, 4.0)  # the reference's: three more tries, each waiting twice the one before
DOWN_BACKOFF_S = 30.0  # after an upload failed for a busy or unreachable store: no upload tried for this long
MISSING_CREDENTIALS = "S3 sink requires aws_access_key_id and aws_secret_access_key"


def _result(error: bool, message: str) -> dict[str, Any]:
    return {"error_status": error, "message": message}


@dataclass(frozen=True, slots=True)
class _Destination:
    bucket: str
    prefix: str
    name: str
    extension: str


@dataclass(slots=True)
class _Log:
    """An append log's object: where it goes, its key and its entries so far (each ending with a newline)."""

    destination: _Destination
    key: str
    entries: list[str] = field(default_factory=list)


class S3Sink:
    # How a retry waits (a test replaces it so as not to wait).
    pause: Callable[[float], None] = staticmethod(time.sleep)

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        self._env = env
        self._log: _Log | None = None
        self._last_stamp = ""
        self._repeats = 0
        self._down_until = 0.0  # the store failed every try of an upload: none is tried before this (env clock)
        self._register(*(step.params.get(name) for name in SECRET_FIELDS))

    def run(self, *, content: Any, file_type: Any, output_mode: Any, bucket_name: Any, s3_prefix: Any,
            file_name_prefix: Any, max_entries_per_file: Any, aws_access_key_id: Any, aws_secret_access_key: Any,
            aws_region: Any, aws_session_token: Any) -> dict[str, Any]:
        self._register(aws_access_key_id, aws_secret_access_key, aws_session_token)
        kind = _choice(file_type, "file_type", FILE_TYPES)
        mode = _choice(output_mode, "output_mode", OUTPUT_MODES)
        bucket = check_bucket(inputs.as_str(bucket_name, "bucket_name"))
        prefix = inputs.as_str(s3_prefix, "s3_prefix")
        name = inputs.as_str(file_name_prefix, "file_name_prefix")
        region = None if is_missing(aws_region) else inputs.as_str(aws_region, "aws_region")
        store = ObjectStore.of(self._env.sinks, region)
        if is_missing(aws_access_key_id) or is_missing(aws_secret_access_key):
            return _result(True, MISSING_CREDENTIALS)
        keys = Credentials(inputs.as_str(aws_access_key_id, "aws_access_key_id"),
                           inputs.as_str(aws_secret_access_key, "aws_secret_access_key"),
                           None if is_missing(aws_session_token) else inputs.as_str(aws_session_token,
                                                                                    "aws_session_token"))
        check_destination(store.host, store.port, self._env.sinks)
        if isinstance(content, WorkflowImage):
            if mode == "append_log":
                raise ValueError("content is an image, which cannot be appended to a log: set output_mode to "
                                 "separate_files to upload each image as a JPEG object")
            return self._upload(store, keys, bucket, self._new_key(_Destination(bucket, prefix, name, "jpg")),
                                jpeg_bytes(content))
        if not isinstance(content, str):
            raise ValueError(f"content must be a string or an image, got {type(content).__name__}")
        if mode == "separate_files":
            key = self._new_key(_Destination(bucket, prefix, name, kind))
            return self._upload(store, keys, bucket, key, content.encode("utf-8"))
        limit = inputs.as_int(max_entries_per_file, "max_entries_per_file", 1)
        return self._append(store, keys, _Destination(bucket, prefix, name, "jsonl" if kind == "json" else kind),
                            content, limit)

    def _append(self, store: ObjectStore, keys: Credentials, destination: _Destination, text: str,
                limit: int) -> dict[str, Any]:
        if destination.extension == "jsonl":
            try:
                text = json.dumps(json.loads(text))
            except ValueError as error:
                log.warning("s3 sink got content that is not JSON: %s", error)
                return _result(True, "Invalid JSON content")
        current = self._log
        if current is None or current.destination != destination or len(current.entries) >= limit:
            current = self._log = _Log(destination, self._new_key(destination))
        elif destination.extension == "csv":
            text = "\n".join(text.split("\n")[1:])
        current.entries.append(_line(text) if text.strip() else "")
        return self._upload(store, keys, destination.bucket, current.key, "".join(current.entries).encode("utf-8"))

    def _new_key(self, destination: _Destination) -> str:
        stamp = datetime.fromtimestamp(self._env.clock()).strftime("%Y_%m_%d_%H_%M_%S_%f")
        self._repeats = self._repeats + 1 if stamp == self._last_stamp else 0
        self._last_stamp = stamp
        suffix = f"_{self._repeats}" if self._repeats else ""
        file_name = f"{destination.name.rstrip('/')}_{stamp}{suffix}.{destination.extension}"
        prefix = destination.prefix.rstrip("/") if destination.prefix else ""
        return check_key(f"{prefix}/{file_name}" if destination.prefix else file_name)

    def _upload(self, store: ObjectStore, keys: Credentials, bucket: str, key: str, body: bytes) -> dict[str, Any]:
        where = f"s3://{bucket}/{key}"
        content_type = CONTENT_TYPES[key.rsplit(".", 1)[1]]
        wait = self._down_until - self._env.clock()
        if wait > 0:
            return _result(True, f"Not uploaded to {where}: the S3 endpoint {store.endpoint} failed the last upload; "
                                 f"it is tried again in {wait:.0f} s")
        failure = ""
        unavailable = False  # the last try failed because the store was busy or out of reach
        for attempt, delay in enumerate((0.0, *RETRY_DELAYS_S)):
            if attempt:
                log.warning("s3 sink retries the upload to %s in %g s (attempt %d of %d): %s", where, delay,
                            attempt + 1, len(RETRY_DELAYS_S) + 1, failure)
                self.pause(delay)
            try:
                store.put(self._env.sinks, keys, bucket, key, body, content_type, self._env.clock())
                return _result(False, f"Data saved successfully to {where}")
            except S3Error as error:
                failure = credentials.redact(self._env, str(error))
                unavailable = error.retryable
                if not error.retryable:
                    break
            except DestinationRefusedError as error:  # the connection's own check: trying again cannot help
                failure = credentials.redact(self._env, f"Could not connect to the S3 endpoint: {error}")
                break
            except httpx.HTTPError as error:
                failure = credentials.redact(self._env, f"Could not reach the S3 endpoint {store.endpoint}: "
                                                        f"{describe(error)}")
                unavailable = True
        if unavailable:
            self._down_until = self._env.clock() + DOWN_BACKOFF_S
        log.warning("s3 sink could not upload to %s: %s", where, failure)
        return _result(True, failure)

    def _register(self, *values: Any) -> None:
        """Registers credentials given as strings: a step's literals, or a run's resolved values (a ``$steps``
        selector the block was built with is not one yet)."""
        credentials.register(self._env, [value for value in values
                                         if isinstance(value, str) and not value.startswith("$steps.")])


def _choice(value: Any, field_name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{field_name} must be one of {', '.join(choices)}, got {value!r}")
    return str(value)


def _line(text: str) -> str:
    return text if text.endswith("\n") else f"{text}\n"
