"""Fuzzing the TCP framing and request parsing (a small sample; tests/benchmarks/fuzz.py runs 100k+ frames).

(a) FrameDecoder against a reference model: any frames, split anywhere, reassemble exactly; a header over
the cap fails the stream for good. (b) Hostile frame bodies sent to a real in-process manager over real
sockets, several per connection and one per connection: every reply is a valid envelope, nothing is left
behind, and another client is still answered afterwards.
"""

import contextlib
import random
import socket
from collections.abc import Iterator

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.core import keys
from services.core.framing import HEADER_SIZE, FrameDecoder, FrameTooLargeError, encode_frame
from tests.fuzz.generators import decode_reply, dumps, envelope_problems, frame_body, garbage_stream, init_payload
from tests.manager.conftest import RunningManager
from tests.manager.fakes import Client, FakeWorker, call, register_worker

SERVER_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                                   HealthCheck.too_slow])
bodies = st.lists(st.binary(max_size=300), max_size=8)


def _split(data: bytes, cuts: list[int]) -> Iterator[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    start = 0
    for point in [*points, len(data)]:
        yield data[start:point]
        start = point


def _reference(stream: bytes, cap: int) -> tuple[list[bytes], bool]:
    """The frames a correct decoder finds in ``stream``, and whether a header exceeds ``cap``."""
    frames, offset = [], 0
    while len(stream) - offset >= HEADER_SIZE:
        size = int.from_bytes(stream[offset:offset + HEADER_SIZE], "big")
        if size > cap:
            return frames, True
        if len(stream) - offset - HEADER_SIZE < size:
            break
        frames.append(stream[offset + HEADER_SIZE:offset + HEADER_SIZE + size])
        offset += HEADER_SIZE + size
    return frames, False


@settings(max_examples=600, deadline=None)
@given(bodies, st.lists(st.integers(min_value=0), max_size=20))
def test_decoder_reassembles_any_split(frames: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(body) for body in frames)
    decoder, out, fed = FrameDecoder(1024), [], 0
    for chunk in _split(stream, cuts):
        out += decoder.feed(chunk)
        fed += len(chunk)
        assert decoder.pending == fed - sum(HEADER_SIZE + len(body) for body in out)
    assert out == frames
    assert decoder.pending == 0


@settings(max_examples=600, deadline=None)
@given(st.binary(max_size=400), st.lists(st.integers(min_value=0), max_size=20), st.integers(0, 300))
def test_decoder_matches_the_reference_on_any_bytes(stream: bytes, cuts: list[int], cap: int) -> None:
    expected, too_large = _reference(stream, cap)
    decoder, out, failed = FrameDecoder(cap), [], False
    for chunk in _split(stream, cuts):
        try:
            out += decoder.feed(chunk)
        except FrameTooLargeError as exc:
            assert exc.cap == cap and exc.size > cap
            failed = True
            break
    assert failed == too_large
    assert out == expected[:len(out)]  # frames completed in the failing read are discarded with it
    if failed:
        assert decoder.pending == 0
        with pytest.raises(FrameTooLargeError):
            decoder.feed(b"")  # the stream cannot be resynchronised: every later call fails
    else:
        assert out == expected


def _check(replies: list[bytes], expected: int) -> None:
    assert len(replies) == expected
    for body in replies:
        reply = decode_reply(body)
        assert envelope_problems(reply) == [], reply
        assert reply["response"].get("error_type") != "internal_error", reply  # every fault here is the client's


def _receive_all(client: Client, count: int) -> list[bytes]:
    return [client.receive_raw() for _ in range(count)]


def _assert_still_serving(manager: RunningManager) -> None:
    reply = call(manager.port, {"type": "list_pipelines"})
    assert reply["response"] == {"status": "success", "pipelines": []}


def _assert_nothing_left(client: redis.Redis) -> None:
    assert [key for key in client.scan_iter(keys.pipeline_record("*"))] == []


@SERVER_SETTINGS
@given(st.lists(st.randoms(use_true_random=False), min_size=1, max_size=12))
def test_manager_answers_every_hostile_frame_on_one_connection(manager: RunningManager, redis_client: redis.Redis,
                                                               rngs: list[random.Random]) -> None:
    bodies = [frame_body(rng, ["no-such-pipeline"]) for rng in rngs]
    with Client(manager.port) as client:
        client.send_raw(b"".join(encode_frame(body) for body in bodies))  # pipelined in one write
        _check(_receive_all(client, len(bodies)), len(bodies))
    _assert_nothing_left(redis_client)


@SERVER_SETTINGS
@given(st.randoms(use_true_random=False))
def test_manager_answers_a_hostile_frame_per_connection(manager: RunningManager, redis_client: redis.Redis,
                                                        rng: random.Random) -> None:
    body = frame_body(rng)
    with Client(manager.port) as client:
        client.send_body(body)
        _check([client.receive_raw()], 1)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.randoms(use_true_random=False))
def test_manager_survives_garbage_streams(manager: RunningManager, rng: random.Random) -> None:
    """Random headers and bytes, then a half-close: whatever is answered is a valid envelope, and the
    connection ends (no hang waiting for a body that never comes)."""
    with Client(manager.port) as client:
        client.send_raw(garbage_stream(rng))
        # The server may have closed already (a header over the size cap is answered, then closed): the
        # half-close then finds no connection (ENOTCONN), and the replies below are read all the same.
        with contextlib.suppress(OSError):
            client.sock.shutdown(socket.SHUT_WR)
        replies = []
        while True:
            try:
                replies.append(client.receive_raw())
            except ConnectionError:
                break
        for body in replies:
            assert envelope_problems(decode_reply(body)) == []
    _assert_still_serving(manager)


DISPATCHED: list[int] = []


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.randoms(use_true_random=False))
def test_fuzzed_inits_leave_nothing_behind(manager: RunningManager, fake_worker: FakeWorker,
                                           redis_client: redis.Redis, rng: random.Random) -> None:
    """With a live (fake) worker whose tasks fail their init, a mutated INIT that compiles is dispatched
    and refused; either way no record remains."""
    register_worker(redis_client)
    fake_worker.behaviour = "fail"
    with Client(manager.port) as client:
        client.send_body(dumps({**init_payload(rng), "type": "init"}))
        reply = decode_reply(client.receive_raw())
    assert envelope_problems(reply) == [], reply
    assert reply["response"]["status"] == "failure"
    assert reply["response"]["error_type"] != "internal_error", reply
    _assert_nothing_left(redis_client)
    DISPATCHED.append(len(fake_worker.calls))


def test_some_fuzzed_inits_reached_the_worker() -> None:
    """The test above is not vacuous: some mutated INITs compiled and were dispatched (and failed)."""
    assert DISPATCHED and max(DISPATCHED) > 0


def test_manager_still_serves_after_the_fuzz(manager: RunningManager) -> None:
    for body in (b"", b"\xff", b"[" * 100_000, b'{"type": "status", "pipeline_id": ' + b"9" * 5000 + b"}"):
        with Client(manager.port) as client:
            client.send_body(body)
            _check([client.receive_raw()], 1)
    _assert_still_serving(manager)


def test_an_init_never_echoes_a_pipeline_id_of_its_own(manager: RunningManager) -> None:
    """Found by fuzzing: an INIT's extra "pipeline_id" key was echoed in the failure envelope (even as a number)."""
    for stray in (0, "someone-elses-pipeline"):
        reply = call(manager.port, {"type": "init", "pipeline_id": stray})
        assert reply["response"]["error_type"] == "invalid_payload"
        assert reply["pipeline_id"] is None


def test_an_integer_over_the_digit_limit_is_invalid_payload(manager: RunningManager) -> None:
    """Found by fuzzing: json.loads raises ValueError (not JSONDecodeError) past 4300 digits; it was internal_error."""
    with Client(manager.port) as client:
        client.send_body(b'{"type": "status", "pipeline_id": "p", "max_entries": ' + b"7" * 5000 + b"}")
        reply = client.receive()
    assert reply["response"]["error_type"] == "invalid_payload"
    assert "digits" in reply["response"]["error_message"]


def test_a_lone_surrogate_escape_is_invalid_payload(manager: RunningManager) -> None:
    """Found by the fuzz benchmark: an INIT whose video_reference held "\\ud800" was internal_error
    (UnicodeEncodeError further down)."""
    with Client(manager.port) as client:
        client.send_body(b'{"type": "init", "video_reference": "cam\\ud800", "model_id": "a/1"}')
        reply = client.receive()
    assert reply["response"]["error_type"] == "invalid_payload"
    assert reply["pipeline_id"] is None
