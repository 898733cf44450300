"""Framing: encoding, and reassembly of frames from reads split or merged anywhere."""

import json
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.core.errors import InvalidPayloadError
from services.core.framing import FrameDecoder, FrameTooLargeError, encode_frame, encode_message


def test_encode_frame_prefixes_the_big_endian_length() -> None:
    assert encode_frame(b"abc") == b"\x00\x00\x00\x03abc"
    assert encode_frame(b"x" * 258)[:4] == b"\x00\x00\x01\x02"


def test_encode_message_serialises_like_the_reference() -> None:
    reply = {"request_id": "r", "response": {"status": "success", "name": "żółw"}, "pipeline_id": None}

    frame = encode_message(reply)

    body = json.dumps(reply).encode("utf-8")
    assert frame == len(body).to_bytes(4, "big") + body
    assert b'"request_id": "r", "response"' in frame  # default separators
    assert b"\\u017c" in frame  # ensure_ascii, as json.dumps does by default


def test_one_frame_in_one_read() -> None:
    assert FrameDecoder(1024).feed(encode_frame(b'{"type": "list_pipelines"}')) == [
        b'{"type": "list_pipelines"}'
    ]


def test_one_whole_frame_in_a_bytearray_read_comes_out_as_bytes() -> None:
    # A read holding exactly one frame skips the buffer; its body is still bytes (hashable, as the parser needs).
    body = FrameDecoder(1024).feed(bytearray(encode_frame(b'{"type": "status"}')))[0]
    assert type(body) is bytes and body == b'{"type": "status"}'


@pytest.mark.parametrize("cut", range(1, 4 + 5))
def test_a_frame_split_at_every_byte_offset(cut: int) -> None:
    frame = encode_frame(b"hello")
    decoder = FrameDecoder(1024)

    first = decoder.feed(frame[:cut])

    assert first == []
    assert decoder.pending == cut
    assert decoder.feed(frame[cut:]) == [b"hello"]
    assert decoder.pending == 0


def test_a_header_fed_one_byte_at_a_time() -> None:
    decoder = FrameDecoder(1024)
    frame = encode_frame(b"{}")

    results = [decoder.feed(frame[i : i + 1]) for i in range(len(frame))]

    assert results == [[]] * (len(frame) - 1) + [[b"{}"]]


def test_several_frames_in_one_read_with_a_partial_tail() -> None:
    decoder = FrameDecoder(1024)
    data = encode_frame(b"one") + encode_frame(b"two") + encode_frame(b"three")[:6]

    assert decoder.feed(data) == [b"one", b"two"]
    assert decoder.pending == 6
    assert decoder.feed(encode_frame(b"three")[6:]) == [b"three"]


def test_zero_length_frame_is_an_empty_body() -> None:
    decoder = FrameDecoder(1024)

    assert decoder.feed(encode_frame(b"") + encode_frame(b"x")) == [b"", b"x"]


def test_a_frame_of_exactly_the_cap_is_accepted() -> None:
    assert FrameDecoder(5).feed(encode_frame(b"12345")) == [b"12345"]


def test_an_oversize_header_is_refused_before_its_body_arrives() -> None:
    decoder = FrameDecoder(max_frame_size=100)

    with pytest.raises(FrameTooLargeError) as caught:
        decoder.feed((101).to_bytes(4, "big"))

    assert isinstance(caught.value, InvalidPayloadError)
    assert caught.value.error_type == "invalid_payload"
    assert (caught.value.size, caught.value.cap) == (101, 100)
    assert "101" in str(caught.value) and "100" in str(caught.value)
    assert decoder.pending == 0


def test_the_decoder_is_unusable_after_an_oversize_frame() -> None:
    decoder = FrameDecoder(max_frame_size=4)
    with pytest.raises(FrameTooLargeError):
        decoder.feed(encode_frame(b"too long"))

    with pytest.raises(FrameTooLargeError):
        decoder.feed(encode_frame(b"ok"))


def test_a_huge_announced_size_is_refused_at_once() -> None:
    with pytest.raises(FrameTooLargeError):
        FrameDecoder(1024).feed(b"\xff\xff\xff\xff")


def test_an_invalid_cap_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="max_frame_size"):
        FrameDecoder(-1)


@given(
    bodies=st.lists(st.binary(max_size=300), max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=20),
)
def test_any_chunking_yields_the_same_frames(bodies: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(body) for body in bodies)
    points = sorted({min(cut, len(stream)) for cut in cuts} | {0, len(stream)})
    decoder = FrameDecoder(300)

    decoded = [frame for a, b in pairwise(points) for frame in decoder.feed(stream[a:b])]

    assert decoded == bodies
    assert decoder.pending == 0
