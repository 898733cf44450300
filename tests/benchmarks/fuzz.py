"""Fuzzing the TCP endpoint at scale: 100k+ hostile frames from several concurrent clients against a manager
process, while a watchdog client asks ``list_pipelines`` every 100 ms; then a coverage-guided atheris run of
the framing and parser in-process (when atheris is installed).

Real processes: redis-server, `python -m services.manager` with no worker (a valid INIT is refused for lack of
one, which is fine: nothing is dispatched). The clients are processes of their own (the generators cost CPU),
each running tests/fuzz/generators.py with its own seed: pipelined batches of 1-20 frames on a persistent
connection (its first request asks ``keep_alive``), one frame per connection, garbage byte streams with a
half-close, and oversize frames. Every reply must be a valid envelope; a reply missing after 15 s counts as
a hang.

Usage: ``python -m tests.benchmarks.fuzz [--output docs/benchmarks.md] [--frames 100000] [--clients 6]
[--atheris-runs 300000]``
"""

import argparse
import collections
import json
import multiprocessing
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import psutil

from services.core.framing import FrameDecoder, encode_frame
from tests.benchmarks.report import stamp, write_section
from tests.fuzz.generators import decode_reply, envelope_problems, frame_body, garbage_stream
from tests.support.redis_server import running_redis
from tests.support.stack import running_stack

REPLY_TIMEOUT = 15.0
CAP = 1024 * 1024  # the manager's default MANAGER_MAX_FRAME_SIZE
# No per-connection rate limit (the fuzz clients pipeline as fast as they can) and no connection cap.
MANAGER_ENV = {"MANAGER_MAX_REQUESTS_PER_SECOND": "0", "MANAGER_MAX_CONNECTIONS": "0", "MANAGER_LOG_LEVEL": "WARNING"}


class Tally:
    def __init__(self) -> None:
        self.frames = 0
        self.replies: collections.Counter[str] = collections.Counter()
        self.invalid: list[str] = []
        self.hangs = 0
        self.connections = 0
        self.early_closes = 0
        self.internal: list[str] = []  # internal_error replies: a fault of ours, not the client's
        self.last_request = b""

    def check(self, body: bytes) -> None:
        try:
            reply = decode_reply(body)
            problems = envelope_problems(reply)
        except ValueError as exc:
            reply, problems = None, [f"undecodable reply: {exc}"]
        if problems:
            self.invalid.append(f"{problems}: {body[:300]!r}")
            return
        response = reply["response"]
        if response.get("error_type") == "internal_error" and len(self.internal) < 5:
            self.internal.append(f"{body[:400]!r} for request {self.last_request[:300]!r}")
        self.replies[response["status"] if response["status"] == "success" else response["error_type"]] += 1


def _receive(sock: socket.socket, decoder: FrameDecoder, pending: list[bytes], count: int) -> list[bytes] | None:
    """``count`` reply frames; None when the server closed first."""
    while len(pending) < count:
        data = sock.recv(65536)
        if not data:
            return None
        pending.extend(decoder.feed(data))
    replies, pending[:] = pending[:count], pending[count:]
    return replies


def _connect(port: int, tally: Tally) -> socket.socket:
    tally.connections += 1
    return socket.create_connection(("127.0.0.1", port), timeout=REPLY_TIMEOUT)


KEEP_ALIVE = encode_frame(json.dumps({"type": "list_pipelines", "keep_alive": True}).encode())


def _persistent(port: int, tally: Tally) -> tuple[socket.socket, FrameDecoder, list[bytes]]:
    """A connection the manager keeps open after each reply: its first request asks for that."""
    sock, decoder, pending = _connect(port, tally), FrameDecoder(64 * CAP), []
    sock.sendall(KEEP_ALIVE)
    if _receive(sock, decoder, pending, 1) is None:
        raise ConnectionError("the manager closed a new connection before its first reply")
    return sock, decoder, pending


def _fuzz_client(port: int, seed: int, frames: int, results: "Queue[dict[str, Any]]") -> None:
    rng, tally = random.Random(seed), Tally()
    sock, decoder, pending = _persistent(port, tally)
    while tally.frames < frames:
        roll = rng.random()
        try:
            if roll < 0.6:  # a pipelined batch on the persistent connection
                batch = [frame_body(rng, ["no-such-pipeline"]) for _ in range(rng.randint(1, 20))]
                sock.sendall(b"".join(encode_frame(body) for body in batch))
                tally.frames += len(batch)
                replies = _receive(sock, decoder, pending, len(batch))
                if replies is None:
                    tally.invalid.append("server closed a connection with requests unanswered")
                    sock, decoder, pending = _persistent(port, tally)
                    continue
                for request, body in zip(batch, replies, strict=True):
                    tally.last_request = request
                    tally.check(body)
            elif roll < 0.9:  # one frame on its own connection, as the reference client does
                with _connect(port, tally) as single:
                    tally.last_request = frame_body(rng)
                    single.sendall(encode_frame(tally.last_request))
                    tally.frames += 1
                    replies = _receive(single, FrameDecoder(64 * CAP), [], 1)
                    if replies is None:
                        tally.invalid.append("server closed a connection without a reply")
                    else:
                        tally.check(replies[0])
            else:  # garbage, or an oversize frame, then a half-close: read whatever comes until EOF
                with _connect(port, tally) as single:
                    data = garbage_stream(rng) if roll < 0.98 else encode_frame(b" " * (CAP + 1))
                    tally.frames += 1
                    single_decoder, got = FrameDecoder(64 * CAP), []
                    try:  # the server may close (after its invalid_payload reply) before reading it all
                        single.sendall(data)
                        single.shutdown(socket.SHUT_WR)
                        while chunk := single.recv(65536):
                            got.extend(single_decoder.feed(chunk))
                    except (ConnectionError, OSError) as exc:
                        if isinstance(exc, TimeoutError):
                            raise
                        tally.early_closes += 1  # TCP resets a socket closed with unread input
                    for body in got:
                        tally.check(body)
        except TimeoutError:
            tally.hangs += 1
            sock.close()
            sock, decoder, pending = _persistent(port, tally)
        except ConnectionError as exc:  # a reset by the server is a crash of that connection's handling
            tally.invalid.append(f"connection error: {exc!r}")
            sock.close()
            sock, decoder, pending = _persistent(port, tally)
    sock.close()
    results.put({"frames": tally.frames, "replies": dict(tally.replies), "invalid": tally.invalid[:20],
                 "invalid_count": len(tally.invalid), "hangs": tally.hangs, "connections": tally.connections,
                 "early_closes": tally.early_closes, "internal": tally.internal})


def _watchdog(port: int, stop: Event, results: "Queue[dict[str, Any]]") -> None:
    latencies: list[float] = []
    failures: list[str] = []
    while not stop.is_set():
        started = time.perf_counter()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=REPLY_TIMEOUT) as sock:
                sock.sendall(encode_frame(json.dumps({"type": "list_pipelines"}).encode()))
                replies = _receive(sock, FrameDecoder(CAP), [], 1)
            if replies is None or decode_reply(replies[0])["response"].get("status") != "success":
                failures.append(repr(replies))
            else:
                latencies.append(time.perf_counter() - started)
        except OSError as exc:
            failures.append(repr(exc))
        stop.wait(max(0.0, 0.1 - (time.perf_counter() - started)))
    results.put({"latencies": latencies, "failures": failures[:20], "failure_count": len(failures)})


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def run_tcp(frames: int, clients: int, seed: int, log: Any) -> list[str]:
    context = multiprocessing.get_context("fork")
    results: Queue[dict[str, Any]] = context.Queue()
    watch_results: Queue[dict[str, Any]] = context.Queue()
    stop = context.Event()
    with running_redis() as server, running_stack(server.url) as stack:
        stack.start_manager(**MANAGER_ENV)
        assert stack.manager is not None
        manager = psutil.Process(stack.manager.pid)
        rss_before = manager.memory_info().rss / 2**20
        watchdog = context.Process(target=_watchdog, args=(stack.port, stop, watch_results))
        watchdog.start()
        started = time.perf_counter()
        workers = [context.Process(target=_fuzz_client, args=(stack.port, seed + index, -(-frames // clients),
                                                               results))
                   for index in range(clients)]
        for worker in workers:
            worker.start()
        tallies, rss_peak = [], rss_before
        while len(tallies) < clients:
            rss_peak = max(rss_peak, manager.memory_info().rss / 2**20)
            try:
                tallies.append(results.get(timeout=1.0))
            except Exception:  # queue.Empty
                if stack.manager.poll() is not None:
                    raise RuntimeError("the manager process died") from None
                if not any(worker.is_alive() for worker in workers) and results.empty():
                    raise RuntimeError("a fuzz client died without reporting") from None
        elapsed = time.perf_counter() - started
        stop.set()
        watch = watch_results.get(timeout=30)
        for process in [*workers, watchdog]:
            process.join(10)
        rss_after = manager.memory_info().rss / 2**20
        alive = stack.manager.poll() is None
    replies: collections.Counter[str] = collections.Counter()
    for tally in tallies:
        replies.update(tally["replies"])
    sent = sum(tally["frames"] for tally in tallies)
    invalid = sum(tally["invalid_count"] for tally in tallies)
    hangs = sum(tally["hangs"] for tally in tallies)
    samples = [sample for tally in tallies for sample in tally["invalid"]][:5]
    latencies = watch["latencies"]
    log(f"{sent} frames in {elapsed:.1f} s; replies {dict(replies)}; invalid {invalid}; hangs {hangs}; "
        f"watchdog {len(latencies)} ok, {watch['failure_count']} failed")
    for sample in samples:
        log(f"  invalid: {sample}")
    for sample in [sample for tally in tallies for sample in tally["internal"]]:
        log(f"  internal_error: {sample}")
    lines = [
        f"{sent:,} generated frames from {clients} concurrent client processes in {elapsed:.0f} s "
        f"({sent / elapsed:,.0f} frames/s; {sum(t['connections'] for t in tallies):,} connections): pipelined "
        "batches of 1-20 frames on persistent connections, one frame per connection, garbage streams and oversize "
        "frames with a half-close. Generators: `tests/fuzz/generators.py` (random JSON values; objects of every "
        "request type with valid, wrong-typed or missing fields and random extra keys; mutated INITs of both "
        "generations; invalid UTF-8, huge and non-finite numbers, deep nesting, duplicated keys, truncated "
        "JSON, random bytes). Manager: `python -m services.manager`, no worker, "
        + ", ".join(f"`{key}={value}`" for key, value in MANAGER_ENV.items()) + ".",
        "",
        "| reply | count |", "|---|---|",
        *(f"| {kind} | {count:,} |" for kind, count in sorted(replies.items(), key=lambda item: -item[1])),
        "",
        "| check | result |", "|---|---|",
        f"| invalid envelopes (must be 0) | {invalid} |",
        f"| hangs (no reply within {REPLY_TIMEOUT:g} s) | {hangs} |",
        f"| manager alive at the end (no crash) | {'yes' if alive else 'NO'} |",
        f"| garbage/oversize connections reset by the server's early close (expected TCP behaviour) | "
        f"{sum(t['early_closes'] for t in tallies)} |",
        f"| watchdog `list_pipelines` every 100 ms (own connection each) | {len(latencies)} answered, "
        f"{watch['failure_count']} failed |",
        f"| watchdog latency p50 / p99 / max ms | {1000 * statistics.median(latencies):.1f} / "
        f"{1000 * _percentile(latencies, 0.99):.1f} / {1000 * max(latencies):.1f} |" if latencies else
        "| watchdog latency | no answer |",
        f"| manager RSS before / peak / after MiB | {rss_before:.0f} / {rss_peak:.0f} / {rss_after:.0f} |",
    ]
    return lines


def run_atheris(runs: int, log: Any) -> list[str]:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return ["", "Atheris: not installed (`pip install atheris`; it needs a wheel for this platform or clang): "
                "the coverage-guided run was skipped."]
    with tempfile.TemporaryDirectory(prefix="vsim-atheris-") as corpus:
        rng = random.Random(0)
        for index in range(64):  # seeds: whole valid-ish frames, so libFuzzer starts past the header
            Path(corpus, f"seed{index}").write_bytes(b"\x03" + encode_frame(frame_body(rng))[:4096])
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "tests.fuzz.atheris_target", f"-runs={runs}", "-max_len=4096",
                               corpus], capture_output=True, text=True, timeout=3600, check=False)
        elapsed = time.perf_counter() - started
    output = done.stdout + done.stderr
    last = [line for line in output.splitlines() if line.startswith("Done ") or "cov:" in line]
    log(f"atheris rc {done.returncode}: {last[-2:] if last else output[-2000:]}")
    coverage = next((line.split("cov:")[1].split()[0] for line in reversed(last) if "cov:" in line), "?")
    verdict = "no crash" if done.returncode == 0 else f"CRASH (rc {done.returncode}): see the run's output"
    if done.returncode != 0:
        log(output[-4000:])
    return ["", f"Atheris {atheris_version()} (libFuzzer, coverage-guided, in-process: FrameDecoder fed in 1-16 byte "
            f"chunks, every frame through `parse_request`, only `invalid_payload` errors allowed): {runs:,} runs in "
            f"{elapsed:.0f} s, {coverage} coverage edges, {verdict}."]


def atheris_version() -> str:
    from importlib.metadata import version

    return version("atheris")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--atheris-runs", type=int, default=300_000, help="0 skips the atheris run")
    args = parser.parse_args()

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    lines = ["## Fuzz", "", stamp(), "", *run_tcp(args.frames, args.clients, args.seed, log)]
    if args.atheris_runs:
        lines += run_atheris(args.atheris_runs, log)
    markdown = "\n".join(lines)
    write_section(args.output, "fuzz", markdown)
    print(markdown)


if __name__ == "__main__":
    main()
