"""Generators of hostile TCP input, shared by the fuzz tests (driven by hypothesis) and the fuzz benchmark
(driven by a seeded ``random.Random`` for 100k+ frames): frame bodies of every request type, valid-ish and
invalid, plus raw byte streams, and the checker every reply must pass.

Every generator takes a ``random.Random``; the tests hand them hypothesis' ``st.randoms()`` so a failing
case is reproducible from hypothesis' seed. Bodies stay under the manager's default frame cap (1 MiB):
oversize frames are a case of their own (the connection is closed after the reply).
"""

import json
import random
import uuid
from typing import Any

from services.core.errors import ERROR_TYPES
from services.core.framing import encode_frame
from services.core.messages import REQUEST_TYPES
from tools.payloads import newer_init

KNOWN_ERROR_TYPES = frozenset(ERROR_TYPES)
ENVELOPE_KEYS = ("request_id", "response", "pipeline_id")
PIPELINE_REQUESTS = ("mute", "resume", "status", "terminate", "consume_result")
FIELD_NAMES = ("type", "pipeline_id", "excluded_fields", "max_entries", "token", "model_id", "video_reference",
               "sink_configuration", "video_configuration", "processing_configuration", "api_key", "max_fps",
               "device", "consumption_timeout", "webrtc_offer", "", "\u0000", "TYPE", "tÿpe")
WEIRD_STRINGS = ("", " ", "\u0000", "\ud800", "\udfff", "\U0001f600", "é" * 3, "../../etc/passwd", "*", "?",
                 "\r\n", "pipeline:*", "{}", "null", "LIST_PIPELINES", "Status", "init ", "x" * 5000,
                 "rtsp://user:secret@camera/stream", "%s%n", "\\", '"', "\x7f")
HUGE_NUMBERS = ("1e400", "-1e400", "1" * 5000, "-" + "9" * 4400, "1.7976931348623157e309", "NaN", "Infinity",
                "-Infinity", "4294967296", "-0", "0.0000000000000000000000001", "18446744073709551616")


def json_value(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON value (lone surrogates and non-BMP characters included in strings)."""
    kind = rng.randrange(9 if depth < 4 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice((0, 1, -1, 2**31, 2**63, -(2**64), 10**30, rng.randrange(-10**6, 10**6)))
    if kind == 3:
        return rng.choice((0.0, -0.5, 1e308, 5e-324, rng.uniform(-1e6, 1e6)))
    if kind in (4, 5):
        return text(rng)
    if kind == 6:
        return [json_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {text(rng, 12): json_value(rng, depth + 1) for _ in range(rng.randrange(4))}


def text(rng: random.Random, max_len: int = 40) -> str:
    if rng.random() < 0.3:
        return rng.choice(WEIRD_STRINGS)
    alphabet = "abcxyz_-:/. 0123456789é\u0000\ud800\U0001f600\"\\"
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(max_len)))


def _field_value(rng: random.Random, name: str, known: list[str]) -> Any:
    """A valid-ish value for ``name`` most of the time, else any JSON value."""
    if rng.random() < 0.3:
        return json_value(rng)
    if name == "pipeline_id":
        return rng.choice(known) if known and rng.random() < 0.5 else rng.choice((str(uuid.uuid4()), text(rng)))
    if name == "excluded_fields":
        return [text(rng, 10) for _ in range(rng.randrange(3))]
    if name == "max_entries":
        return rng.choice((1, 0, -1, 1000, 1001, 2**40, 1.5, "2", True))
    return text(rng)


def request_object(rng: random.Random, known: list[str] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    """An object shaped like a request: a known (or near-miss) type, its fields valid, wrong or missing,
    random extra keys. ``known``: pipeline ids that exist (status/terminate on them are exercised too)."""
    roll = rng.random()
    if roll < 0.75:
        request_type: Any = rng.choice(REQUEST_TYPES)
    elif roll < 0.9:
        request_type = rng.choice(("LIST_PIPELINES", "Status", "pause", "init ", "", "webRTC", "kill"))
    else:
        request_type = json_value(rng)
    if request_type in ("init", "webrtc") and rng.random() < 0.7:
        obj = init_payload(rng)
        obj["type"] = request_type
        return obj
    obj: dict[str, Any] = {}
    fields = ["pipeline_id", "excluded_fields", "max_entries", "token"] if request_type in PIPELINE_REQUESTS else []
    for name in fields:
        if rng.random() < 0.85:
            obj[name] = _field_value(rng, name, list(known))
    for _ in range(rng.choice((0, 0, 1, 3))):
        obj[rng.choice(FIELD_NAMES) if rng.random() < 0.5 else text(rng, 10)] = json_value(rng)
    if rng.random() < 0.95:
        obj["type"] = request_type
    if "token" in obj and rng.random() < 0.8:
        del obj["token"]  # no auth configured: a token is ignored, keep most requests plain
    return obj


def _mutate(rng: random.Random, value: Any, depth: int = 0) -> Any:
    """``value`` with one random change somewhere inside (a key dropped, a value replaced or retyped)."""
    if isinstance(value, dict) and value and depth < 6 and rng.random() < 0.75:
        key = rng.choice(list(value))
        out = dict(value)
        action = rng.random()
        if action < 0.2:
            del out[key]
        elif action < 0.3:
            out[text(rng, 10)] = json_value(rng)
        else:
            out[key] = _mutate(rng, value[key], depth + 1)
        return out
    if isinstance(value, list) and value and depth < 6 and rng.random() < 0.75:
        out_list = list(value)
        index = rng.randrange(len(out_list))
        out_list[index] = _mutate(rng, out_list[index], depth + 1)
        return out_list
    return json_value(rng)


OLDER_INIT: dict[str, Any] = {
    "model_id": "yolov3-tiny/coco-416", "video_reference": "data/media/vtest.avi",
    "sink_configuration": {"type": "udp_sink", "host": "127.0.0.1", "port": 9999}, "max_fps": 5,
    "model_configuration": {"type": "object-detection", "confidence": 0.5, "iou_threshold": 0.5,
                            "max_candidates": 300, "max_detections": 100, "class_agnostic_nms": False},
    "video_source_properties": {"frame_width": 640}, "source_buffer_filling_strategy": "drop_oldest",
    "source_buffer_consumption_strategy": "eager", "api_key": "secret-key",
}


def init_payload(rng: random.Random) -> dict[str, Any]:
    """An INIT payload of either generation, valid or with a few mutations."""
    base = dict(OLDER_INIT) if rng.random() < 0.4 else newer_init("data/media/vtest.avi", max_fps=1)
    base.pop("type", None)
    for _ in range(rng.choice((0, 1, 1, 2, 3))):
        base = _mutate(rng, base)
    return base if isinstance(base, dict) else {"video_reference": base}


def dumps(obj: Any) -> bytes:
    """``obj`` as UTF-8 JSON; lone surrogates travel escaped (``ensure_ascii``), as any JSON library may send."""
    return json.dumps(obj, ensure_ascii=True, allow_nan=True).encode("utf-8")


def _raw_text_body(rng: random.Random) -> bytes:
    """Bodies no encoder would make: duplicated keys, huge/NaN numbers, deep nesting, broken JSON."""
    kind = rng.randrange(8)
    if kind == 0:  # duplicated keys: the last wins in json.loads
        first, second = rng.choice(REQUEST_TYPES), rng.choice(REQUEST_TYPES)
        number = rng.randrange(9)
        return f'{{"type": "{first}", "pipeline_id": "a", "type": "{second}", "pipeline_id": {number}}}'.encode()
    if kind == 1:  # a huge / non-finite number in any field
        field = rng.choice(("pipeline_id", "max_entries", "max_fps", "excluded_fields", "type"))
        return f'{{"type": "{rng.choice(REQUEST_TYPES)}", "{field}": {rng.choice(HUGE_NUMBERS)}}}'.encode()
    if kind == 2:  # deep nesting, closed or not
        depth = rng.choice((50, 999, 1000, 5000, 100_000))
        opener, closer = rng.choice((("[", "]"), ('{"a":', "}")))
        inner = opener * depth + "1" + closer * (depth if rng.random() < 0.7 else rng.randrange(depth))
        return f'{{"type": "{rng.choice(REQUEST_TYPES)}", "pipeline_id": "p", "x": {inner}}}'.encode()
    if kind == 3:  # truncated valid JSON
        body = dumps(request_object(rng))
        return body[: rng.randrange(len(body))]
    if kind == 4:  # invalid UTF-8 inside an otherwise valid request
        bad = rng.choice((b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\x80"))
        return b'{"type": "status", "pipeline_id": "' + bad + b'"}'
    if kind == 5:  # random bytes
        return rng.randbytes(rng.randrange(1, 200))
    if kind == 6:  # a BOM, whitespace, trailing garbage
        body = dumps(request_object(rng))
        return rng.choice((b"\xef\xbb\xbf" + body, b" \n\t" + body + b" \n", body + b"garbage", body + body))
    return rng.choice((b"", b"null", b"[]", b"{}", b'"init"', b"0", b"true", b"{", b"}", b"\x00"))


def frame_body(rng: random.Random, known: list[str] = ()) -> bytes:  # type: ignore[assignment]
    """One hostile frame body (never over the 1 MiB cap)."""
    roll = rng.random()
    if roll < 0.55:
        return dumps(request_object(rng, known))
    if roll < 0.65:
        return dumps(json_value(rng))
    if roll < 0.72:
        return dumps({text(rng, 12): json_value(rng) for _ in range(rng.randrange(6))})
    return _raw_text_body(rng)


def garbage_stream(rng: random.Random) -> bytes:
    """A byte stream that is not (only) well-formed frames: headers with random lengths, short bodies."""
    parts: list[bytes] = []
    for _ in range(rng.randrange(1, 5)):
        roll = rng.random()
        if roll < 0.5:
            parts.append(encode_frame(frame_body(rng)))
        elif roll < 0.8:
            parts.append(rng.randbytes(rng.randrange(1, 64)))
        else:  # a header announcing more (or much more) than follows
            parts.append(rng.choice((10, 2**20, 2**32 - 1, 2**20 + 1)).to_bytes(4, "big") + rng.randbytes(8))
    return b"".join(parts)


def envelope_problems(reply: Any) -> list[str]:
    """Why ``reply`` (a decoded reply frame) is not a valid envelope; empty when it is."""
    if not isinstance(reply, dict):
        return [f"reply is not an object: {type(reply).__name__}"]
    problems = []
    if tuple(reply) != ENVELOPE_KEYS:
        problems.append(f"envelope keys {list(reply)}")
    request_id = reply.get("request_id")
    try:
        uuid.UUID(str(request_id))
    except ValueError:
        problems.append(f"request_id {request_id!r} is not a uuid")
    if not isinstance(reply.get("pipeline_id"), str | None):
        problems.append(f"pipeline_id {reply.get('pipeline_id')!r}")
    response = reply.get("response")
    if not isinstance(response, dict):
        return [*problems, f"response is not an object: {response!r}"]
    status = response.get("status")
    if status == "failure":
        if response.get("error_type") not in KNOWN_ERROR_TYPES:
            problems.append(f"unknown error_type {response.get('error_type')!r}")
    elif status != "success":
        problems.append(f"response.status {status!r}")
    return problems


def decode_reply(body: bytes) -> Any:
    """A reply frame's JSON (replies must be strict UTF-8 JSON)."""
    return json.loads(body.decode("utf-8"))
