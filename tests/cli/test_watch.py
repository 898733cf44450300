"""``vsim watch``: following a pipeline's Redis Stream live, on the real stack."""

import itertools
import json
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.support import BIKES, VTEST, LineReader, python_m_vsim, start, subprocess_env, terminate, vsim
from tests.support.pipelines import write_clip
from tests.support.stack import ROOT, Stack
from tests.support.streams import free_port

TABLE_LINE = re.compile(r"\d\d:\d\d:\d\d\.\d{3} src 0 # +(?P<frame>\d+)  (nothing|\d+ \w+(, \d+ [\w ]+)*)")


@pytest.fixture(scope="module")
def pipeline(stack: Stack) -> Iterator[str]:
    """A file paced to a few fps, its results kept (buffer of 500) for the whole module."""
    pipeline_id = start(stack, "--video", VTEST, "--max-fps", "4", "--results-buffer-size", "500")
    yield pipeline_id
    terminate(stack, pipeline_id)


def _watch_process(stack: Stack, *argv: object) -> subprocess.Popen[str]:
    return subprocess.Popen(python_m_vsim("watch", *argv, "--redis-url", stack.redis_url), cwd=ROOT,
                            env=subprocess_env(stack), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_watch_follows_new_results_live_until_the_pipeline_is_terminated(stack: Stack) -> None:
    pipeline_id = start(stack, "--video", VTEST, "--max-fps", "4")
    with _watch_process(stack, pipeline_id, "--format", "jsonl") as watch:
        assert watch.stdout is not None and watch.stderr is not None
        reader = LineReader(watch.stdout)
        first = [reader.next(timeout=30) for _ in range(3)]
        # these results arrived while the pipeline runs: it is still listed and nobody has terminated it
        assert watch.poll() is None
        assert pipeline_id in vsim("--port", stack.port, "list").lines
        terminate(stack, pipeline_id)
        rest = reader.rest()
        assert watch.wait(timeout=20) == 0
        stderr = watch.stderr.read()
    assert f"pipeline {pipeline_id} is TERMINATED" in stderr and "Traceback" not in stderr
    entries = [json.loads(line) for line in [*first, *rest] if line is not None]
    assert len(entries) >= 3
    assert {e["pipeline_id"] for e in entries} == {pipeline_id}
    assert {e["epoch"] for e in entries} == {1}  # the first (and only) task that ran it
    frame_ids = [e["frames_metadata"][0]["frame_id"] for e in entries]
    assert all(a < b for a, b in itertools.pairwise(frame_ids)), frame_ids
    ids = [tuple(int(part) for part in e["id"].split("-")) for e in entries]
    assert ids == sorted(set(ids))
    persons = [p for e in entries for p in e["outputs"][0]["predictions"]["predictions"] if p["class"] == "person"]
    assert persons, entries[0]
    assert entries[0]["outputs"][0]["predictions"]["image"] == {"width": 768, "height": 576}


def test_watch_count_and_table_format_without_consuming(stack: Stack, pipeline: str) -> None:
    result = vsim("watch", pipeline, "--redis-url", stack.redis_url, "--from-start", "--count", "4",
                  "--format", "table")
    assert result.code == 0, result
    assert len(result.lines) == 4  # one source: one line per result
    frames = [int(m["frame"]) for line in result.lines if (m := TABLE_LINE.fullmatch(line))]
    assert len(frames) == 4, result.out
    assert frames == sorted(frames) and frames[0] == 1  # from the start of the buffer

    # watch did not move the manager's cursor: CONSUME_RESULT still returns the first results
    consumed = json.loads(vsim("--port", stack.port, "consume", pipeline, "--max", "4").out)
    assert [e["frames_metadata"][0]["frame_id"] for e in consumed["entries"]] == frames

    excluded = vsim("watch", pipeline, "--redis-url", stack.redis_url, "--from-start", "--count", "2",
                    "--exclude", "predictions")
    assert excluded.code == 0
    assert [json.loads(line)["outputs"][0] for line in excluded.lines] == [{}, {}]


def test_watch_stops_after_its_timeout_without_results(stack: Stack) -> None:
    # a live camera that does not answer: the pipeline runs (reconnecting) and writes no result
    pipeline_id = start(stack, "--video", f"http://127.0.0.1:{free_port()}/live.ts")
    result = vsim("watch", pipeline_id, "--redis-url", stack.redis_url, "--timeout", "1")
    assert (result.code, result.out) == (0, "")
    assert re.fullmatch(rf"watch: no new result for 1 s; pipeline {pipeline_id} is [A-Z]+\n", result.err)
    terminate(stack, pipeline_id)


def test_watch_shows_every_result_of_a_file_that_ends(stack: Stack, tmp_path: Path) -> None:
    clip = write_clip(ROOT / BIKES, tmp_path / "clip.mp4", frames=12)
    pipeline_id = start(stack, "--video", clip)
    result = vsim("watch", pipeline_id, "--redis-url", stack.redis_url, "--from-start", "--format", "table")
    assert result.code == 0, result
    frames = [int(m["frame"]) for line in result.lines if (m := TABLE_LINE.fullmatch(line))]
    assert frames == list(range(1, 13)), result.out
    assert result.err == f"watch: pipeline {pipeline_id} is ENDED; 12 results shown\n"


def test_ctrl_c_stops_watch_cleanly(stack: Stack, pipeline: str) -> None:
    with _watch_process(stack, pipeline, "--format", "table") as watch:
        assert watch.stdout is not None and watch.stderr is not None
        reader = LineReader(watch.stdout)
        assert TABLE_LINE.fullmatch(reader.next(timeout=30) or "")
        watch.send_signal(signal.SIGINT)
        assert watch.wait(timeout=20) == 130
        assert "Traceback" not in watch.stderr.read()


def test_watch_errors(stack: Stack) -> None:
    unknown = vsim("watch", "no-such-pipeline", "--redis-url", stack.redis_url)
    assert (unknown.code, unknown.out) == (1, "")
    assert unknown.err == (f"error: not_found: pipeline no-such-pipeline does not exist in Redis at "
                           f"{stack.redis_url}\n")

    url = f"redis://:redis-password@127.0.0.1:{free_port()}/0"
    down = vsim("--timeout", "1", "watch", "any", "--redis-url", url)
    assert (down.code, down.out) == (3, "")
    assert down.err.startswith("error: Redis at redis://***:***@127.0.0.1:") and "unreachable" in down.err
    assert "redis-password" not in down.err and len(down.err.splitlines()) == 1

    bad = vsim("watch", "any", "--redis-url", "http://not-redis")
    assert bad.code == 2 and bad.err.startswith("error: --redis-url: unsupported scheme 'http'")
