"""The streams benchmark's split of a pipeline's CPU by stage, on samples made up for the purpose."""

import pytest

from tests.benchmarks.streams import STAGES, Findings, Result, stage_cpu

WORKER, SERVICE, PIPELINE = 100, 200, 300


def _sample(at: float, scale: float) -> tuple[float, dict[tuple[int, int], tuple[str, float]]]:
    threads = {
        (WORKER, WORKER): ("python", 5.0),  # the worker's main process: the rest
        (SERVICE, SERVICE): ("python", 1.0),
        (SERVICE, 201): ("runner-0", 10.0),
        (SERVICE, 202): ("runner-1", 10.0),
        (SERVICE, 203): ("connection", 1.0),
        (PIPELINE, PIPELINE): ("python", 2.0),  # a pipeline's main thread: the rest, not its decoder
        (PIPELINE, 301): ("source-0", 3.0),
        (PIPELINE, 302): ("python", 1.0),  # FFmpeg's thread: decode
        (PIPELINE, 303): ("collector", 2.0),
        (PIPELINE, 304): ("inference-0", 0.5),
        (PIPELINE, 305): ("post", 2.0),
        (PIPELINE, 306): ("sink-redis_stre", 1.0),
        (PIPELINE, 307): ("preview-1234567", 0.5),
    }
    return at, {key: (name, cpu * scale) for key, (name, cpu) in threads.items()}


def test_each_thread_counts_for_its_stage_per_result_of_the_window() -> None:
    samples = [_sample(t, t) for t in (0.5, 1.0, 2.0, 3.0, 4.0, 4.6)]
    samples[-1][1][(PIPELINE, 308)] = ("source-1", 99.0)  # appeared after the window began: left out
    results = [Result(written=0.5 + i / 100, latency=0.0) for i in range(500)]  # 100 fps from 0.5 s to 5.49 s
    stages = stage_cpu(samples, [results], SERVICE)
    # window: first sample >= first result + 1 s (2.0), last sample <= last result - 0.5 s (4.6): 2.6 s
    assert stages["seconds"] == pytest.approx(2.6) and stages["frames"] == 260
    per_cpu_second = 1000 * 2.6 / 260  # ms per result for a thread whose CPU grows 1 s per second
    expected = {"model runs": 20, "decode": 4, "prepare": 2, "post": 2, "hand-off to the service": 1.5,
                "sinks": 1, "the rest": 5 + 1 + 2 + 0.5}
    assert list(stages["ms"]) == [stage for stage, _ in STAGES]
    assert stages["ms"] == pytest.approx({stage: cpu * per_cpu_second for stage, cpu in expected.items()})


def test_without_the_service_a_pipelines_inference_threads_are_its_model_runs() -> None:
    samples = [_sample(t, t) for t in (0.0, 2.0, 3.0)]
    for _, threads in samples:
        for key in [key for key in threads if key[0] == SERVICE]:
            del threads[key]
    results = [Result(written=i / 100, latency=0.0) for i in range(400)]
    stages = stage_cpu(samples, [results], None)
    assert stages["ms"]["model runs"] == pytest.approx(0.5 * 1000 / 100)
    assert stages["ms"]["hand-off to the service"] == 0


def test_no_verdict_on_the_ratio_goal_when_the_limit_moved_during_the_run() -> None:
    steady = Findings(grid={"cells": [{"fps": 70.0, "batch": 1}, {"fps": 60.0, "batch": 2}]}, limit_after={"fps": 68.0})
    assert steady.limit() == 69.0 and steady.drift() == pytest.approx(2 / 70)
    assert steady.ratio_verdict(0.96, {}) == "met" and steady.ratio_verdict(0.90, {}) == "**NOT met**"
    drifted = Findings(grid={"cells": [{"fps": 71.7, "batch": 1}]}, limit_after={"fps": 55.7})
    unjudged = "not judged (the limit moved 22% around it)"
    assert drifted.ratio_verdict(1.02, {}) == drifted.ratio_verdict(0.5, {}) == unjudged
    assert Findings(grid={"cells": [{"fps": 50.0, "batch": 1}]}).drift() == 0.0  # not re-measured yet


def test_a_run_with_its_own_bracket_is_judged_against_the_limit_around_it() -> None:
    drifted = Findings(grid={"cells": [{"fps": 71.7, "batch": 1}]}, limit_after={"fps": 55.7})
    steady_run = {"limit": (60.0, 62.0)}  # the host was slow but steady around this run
    assert drifted.run_limit(steady_run) == 61.0
    assert drifted.ratio_verdict(58.5 / 61.0, steady_run) == "met"
    assert drifted.ratio_verdict(55.0 / 61.0, steady_run) == "**NOT met**"
    moving_run = {"limit": (70.0, 60.0)}
    assert drifted.ratio_verdict(1.0, moving_run) == "not judged (the limit moved 14% around it)"
    assert drifted.run_limit({}) == drifted.limit()  # no bracket: the whole run's limit


def test_a_run_too_short_for_a_steady_window_has_no_split() -> None:
    samples = [_sample(t, t) for t in (0.0, 0.5, 1.0)]
    results = [Result(written=0.2 + i / 100, latency=0.0) for i in range(100)]  # 0.2 s to 1.19 s
    assert stage_cpu(samples, [results], SERVICE) is None


def test_with_several_pipelines_the_window_is_when_all_of_them_run_and_counts_all_their_results() -> None:
    samples = [_sample(t, t) for t in (1.0, 2.0, 2.5, 3.0, 4.0, 5.0)]
    early = [Result(written=0.0 + i / 50, latency=0.0) for i in range(230)]  # 50 fps, 0.0 s to 4.58 s
    late = [Result(written=1.5 + i / 50, latency=0.0) for i in range(250)]  # 50 fps, 1.5 s to 6.48 s
    stages = stage_cpu(samples, [early, late], SERVICE)
    # window: first sample >= 1.5 + 1 s (2.5), last sample <= 4.58 - 0.5 s (4.0): 1.5 s, 75 results each
    assert stages["seconds"] == pytest.approx(1.5) and stages["frames"] == 150
    assert stages["ms"]["model runs"] == pytest.approx(20 * 1000 * 1.5 / 150)
