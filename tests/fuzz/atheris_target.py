"""Coverage-guided fuzzing (atheris/libFuzzer) of the framing and the request parser, in-process.

The input is cut into chunks (its first byte picks the chunk size) fed to a FrameDecoder with a small
cap; every complete frame goes through ``parse_request``. The only exceptions allowed are the protocol's
own (FrameTooLargeError / InvalidPayloadError, both ``invalid_payload``); anything else is a crash that
libFuzzer reports with the input that caused it.

Usage: ``python -m tests.fuzz.atheris_target -runs=100000 [-max_len=4096]`` (run by tests/benchmarks/fuzz.py).
"""

import contextlib
import sys

import atheris

with atheris.instrument_imports(include=["services.core"]):
    from services.core.errors import InvalidPayloadError
    from services.core.framing import FrameDecoder, FrameTooLargeError
    from services.core.messages import parse_request


def test_one_input(data: bytes) -> None:
    if not data:
        return
    step = data[0] % 16 + 1
    decoder = FrameDecoder(4096)
    stream = data[1:]
    for start in range(0, len(stream), step):
        try:
            frames = decoder.feed(stream[start:start + step])
        except FrameTooLargeError:
            return
        for body in frames:
            with contextlib.suppress(InvalidPayloadError):
                parse_request(body)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
