"""identify_changes@v1 and identify_outliers@v1: short sequences worked out by hand (each strategy's running
statistics, warm-up, thresholds), long ones of real frames' mean colours against the statistics written out here
in plain Python, and a definition that feeds them a frame's dominant colour run by the executor per source."""

import dataclasses
import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np
import pytest

from services.core.workflows.compiler import compile_workflow
from services.worker.workflows.blocks import REGISTRY
from services.worker.workflows.executor import WorkflowExecutor
from services.worker.workflows.values import VideoMetadata, WorkflowImage
from tests.worker.workflows.transformations_support import environment

Frames = Callable[[str, int], np.ndarray]
EMA, SMA, WINDOW = "Exponential Moving Average (EMA)", "Simple Moving Average (SMA)", "Sliding Window"
COLOUR = {"type": "roboflow_core/dominant_color@v1", "name": "colour", "image": "$inputs.image"}
VECTOR = {"type": "roboflow_core/property_definition@v1", "name": "vector", "data": "$steps.colour.rgb_color",
          "operations": []}


def definition(*steps: dict[str, Any], outputs: dict[str, str] | None = None) -> dict[str, Any]:
    return {"version": "1.0", "inputs": [{"type": "WorkflowImage", "name": "image"}],
            "steps": [COLOUR, VECTOR, *steps],
            "outputs": [{"type": "JsonField", "name": name, "selector": selector}
                        for name, selector in (outputs or {}).items()]}


def block(block_type: str, **fields: Any) -> Any:
    """The compiled step's block; ``run(embedding, **runtime)`` with the step's literal fields."""
    step = {"type": f"roboflow_core/{block_type}@v1", "name": "step", "embedding": "$steps.vector.output", **fields}
    compiled = compile_workflow(definition(step)).step("step")
    instance = REGISTRY[compiled.type](compiled, environment())
    literals = {name: value for name, value in compiled.params.items() if name != "embedding"}
    return lambda embedding: instance.run(embedding=embedding, **literals)


def phi(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


# ------------------------------------------------------------------------------------------- identify_changes

# Unit vectors (given at other lengths: only their direction counts): east, east, north, north.
SEQUENCE = [[3.0, 0.0], [0.5, 0.0], [0.0, 2.0], [0.0, 7.0]]


def test_simple_moving_average_by_hand() -> None:
    run = block("identify_changes", strategy=SMA)
    first, second, third, fourth = (run(embedding) for embedding in SEQUENCE)

    for warming in (first, second):  # nothing to compare with yet: no similarity, or a single one
        assert (warming["percentile"], warming["z_score"], warming["is_outlier"], warming["warming_up"]) == (
            0.5, 0.0, False, True)
        assert (warming["average"], warming["std"]) == ([1.0, 0.0], [0.0, 0.0])
    # Similarities 1 then 0: their running mean weighs 0 by 1/3 (the reference's count: 3 embeddings so far),
    # 2/3; M2 = (0 - 1)(0 - 2/3) = 2/3; sample variance over count - 1 = 2: 1/3.
    z = (0 - 2 / 3) / math.sqrt(1 / 3)
    assert third["z_score"] == pytest.approx(z) and third["percentile"] == pytest.approx(1 - phi(z))
    assert (third["is_outlier"], third["warming_up"]) == (False, True)  # 0.876 but still warming up
    assert third["average"] == pytest.approx([2 / 3, 1 / 3])
    assert third["std"] == pytest.approx([math.sqrt(1 / 3)] * 2)  # Welford's M2 = (-1)(-2/3) per dimension, / 2
    # North against the average (2/3, 1/3): cosine 1/sqrt(5).
    similarity = 1 / math.sqrt(5)
    delta = similarity - 2 / 3
    mean = 2 / 3 + delta / 4
    deviation = math.sqrt((2 / 3 + delta * (similarity - mean)) / 3)
    z = (similarity - mean) / deviation
    assert fourth["z_score"] == pytest.approx(z) and fourth["percentile"] == pytest.approx(1 - phi(z))
    assert (fourth["is_outlier"], fourth["warming_up"]) == (False, False)
    assert fourth["average"] == pytest.approx([0.5, 0.5])


def test_exponential_moving_average_by_hand_and_the_threshold_on_both_sides() -> None:
    outputs = [run_output for run in [block("identify_changes", smoothing_factor=0.5, warmup=2)]
               for run_output in (run(embedding) for embedding in SEQUENCE)]
    # Third: similarity 0 after 1: mean 0.5, variance 0.5 * 0.25 = 0.125: z = -sqrt(2), 0.921 >= 1 - 0.2 / 2.
    assert outputs[2]["z_score"] == pytest.approx(-math.sqrt(2))
    assert outputs[2]["percentile"] == pytest.approx(phi(math.sqrt(2)))
    assert (outputs[2]["is_outlier"], outputs[2]["warming_up"]) == (True, False)
    assert outputs[2]["average"] == pytest.approx([0.5, 0.5]) and outputs[2]["std"] == pytest.approx(
        [math.sqrt(0.125)] * 2)
    # Fourth: similarity 1/sqrt(2) to (0.5, 0.5); mean 0.5·0.5 + 0.5·s; variance 0.5·0.125 + 0.5·(s - mean)².
    similarity = 1 / math.sqrt(2)
    mean = 0.25 + 0.5 * similarity
    z = (similarity - mean) / math.sqrt(0.0625 + 0.5 * (similarity - mean) ** 2)
    assert outputs[3]["z_score"] == pytest.approx(z) and outputs[3]["percentile"] == pytest.approx(1 - phi(z))
    assert outputs[3]["is_outlier"] is False  # 0.345: between 0.1 and 0.9
    wide = block("identify_changes", smoothing_factor=0.5, warmup=2, threshold_percentile=0.8)
    assert [wide(embedding)["is_outlier"] for embedding in SEQUENCE] == [False, False, True, True]  # <= 0.4


def test_sliding_window_by_hand_the_first_value_only_sets_the_average() -> None:
    run = block("identify_changes", strategy=WINDOW, window_size=2)
    outputs = [run(embedding) for embedding in SEQUENCE]
    # Similarities: 1 (sets the mean), then 0 alone in the window: no deviation yet.
    assert (outputs[2]["z_score"], outputs[2]["percentile"]) == (0.0, 0.5)
    assert outputs[2]["average"] == [0.5, 0.5] and outputs[2]["std"] == [0.5, 0.5]  # east (2nd) and north
    # Then [0, 1/sqrt(2)]: mean and population deviation both 1/(2 sqrt(2)): z = 1.
    assert outputs[3]["z_score"] == pytest.approx(1.0) and outputs[3]["percentile"] == pytest.approx(1 - phi(1))
    assert outputs[3]["average"] == [0.0, 1.0] and outputs[3]["std"] == [0.0, 0.0]  # the last two, both north


def test_changes_refuse_an_embedding_of_another_length_and_keep_their_statistics() -> None:
    run = block("identify_changes")
    run([1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="has 2 values, the earlier ones 3"):
        run([1.0, 0.0])
    with pytest.raises(ValueError, match="list of numbers"):
        run("cat")
    assert run([0.0, 0.0, 5.0])["average"] == pytest.approx([0.9, 0.0, 0.1])  # EMA 0.1 of east then up
    assert run([0.0, 0.0, 0.0])["z_score"] == 0.0  # a zero vector's similarity is 0 (the reference: NaN)


def test_a_null_smoothing_factor_from_a_parameter_fails_the_average_that_needs_it_only() -> None:
    step = {"type": "roboflow_core/identify_changes@v1", "name": "step", "embedding": "$steps.vector.output",
            "smoothing_factor": "$inputs.alpha", "window_size": "$inputs.alpha"}
    averages = {EMA: [None] * 4, SMA: [[1.0, 0.0], [1.0, 0.0], [2 / 3, 1 / 3], [0.5, 0.5]],
                WINDOW: [[1.0, 0.0], [1.0, 0.0], [0.5, 0.5], [1 / 3, 2 / 3]]}
    for strategy, expected in averages.items():
        written = definition({**step, "strategy": strategy})
        written["inputs"].append({"type": "WorkflowParameter", "name": "alpha"})
        compiled = compile_workflow(written, parameters={"alpha": None}).step("step")
        instance = REGISTRY[compiled.type](compiled, environment())
        literals = {name: value for name, value in compiled.params.items() if name != "embedding"}
        assert (literals["smoothing_factor"], literals["window_size"]) == (None, None)
        results = []
        for embedding in SEQUENCE:
            try:
                results.append(instance.run(embedding=embedding, **literals)["average"])
            except ValueError as error:
                assert "needs a smoothing_factor" in str(error)
                results.append(None)
        # Without a bound the sliding window is every embedding but the first (it only set the average).
        assert results == [None if average is None else pytest.approx(average) for average in expected]


# ------------------------------------------------------------------------------------------ identify_outliers


def test_outliers_by_hand() -> None:
    run = block("identify_outliers")  # threshold 0.05, warmup 3, window 32
    assert run([2.0, 0.0]) == {"is_outlier": False, "percentile": 0.5, "warming_up": True}
    assert run([1.0, 0.0]) == {"is_outlier": False, "percentile": 0.5, "warming_up": True}
    # Window east, east, north: mean direction (2, 1)/sqrt(5); alignments 2/sqrt(5) twice and 1/sqrt(5): north
    # has none below it.
    assert run([0.0, 9.0]) == {"is_outlier": True, "percentile": 0.0, "warming_up": False}
    # East again: mean direction (3, 1)/sqrt(10); alignments 3/sqrt(10) x 3 and 1/sqrt(10): one of four below.
    assert run([1.0, 0.0]) == {"is_outlier": False, "percentile": 0.25, "warming_up": False}


def test_the_window_keeps_the_last_embeddings() -> None:
    run = block("identify_outliers", window_size=3, threshold_percentile=0.3)
    assert [run(embedding)["warming_up"] for embedding in ([1.0, 0.0], [0.0, 1.0])] == [True, True]
    # East, north, east: mean direction (2, 1)/sqrt(5): north's alignment is below east's: 1/3.
    assert run([4.0, 0.0]) == {"is_outlier": False, "percentile": pytest.approx(1 / 3), "warming_up": False}
    # The first east left the window: north, east, west; mean direction north: alignments 1, 0, 0: none below.
    assert run([-1.0, 0.0]) == {"is_outlier": True, "percentile": 0.0, "warming_up": False}

    pair = block("identify_outliers", window_size=2, warmup=1, threshold_percentile=0.3)
    # One embedding: its own direction, alignment 1, none below.
    assert pair([1.0, 0.0]) == {"is_outlier": True, "percentile": 0.0, "warming_up": False}
    # East and west cancel out: the embedding's own direction (west); east's alignment -1 is below: 1/2.
    assert pair([-3.0, 0.0]) == {"is_outlier": False, "percentile": 0.5, "warming_up": False}


def running_outliers(embeddings: list[np.ndarray], threshold: float, warmup: int, window: int
                     ) -> list[tuple[bool, float]]:
    """identify_outliers' statistics written out: the window's mean direction, where this embedding's alignment
    ranks among the window's."""
    seen: list[list[float]] = []
    results = []
    for count, embedding in enumerate(embeddings, 1):
        length = math.sqrt(sum(v * v for v in embedding))
        unit = [v / length for v in embedding]
        seen = [*seen, unit][-window:]
        if count < warmup:
            results.append((False, 0.5))
            continue
        mean = [sum(column) / len(seen) for column in zip(*seen, strict=True)]
        norm = math.sqrt(sum(v * v for v in mean))
        direction = [v / norm for v in mean]
        alignments = [sum(a * b for a, b in zip(e, direction, strict=True)) for e in seen]
        below = sum(1 for a in alignments if a < alignments[-1]) / len(alignments)
        results.append((below < threshold or below > 1 - threshold, below))
    return results


def mean_colours(video_frame: Frames, count: int) -> list[np.ndarray]:
    """Frames 0, 3, 6, ... of vtest.avi as their mean B, G, R; the last one inverted (a scene that changed)."""
    frames = [video_frame("vtest.avi", index * 3) for index in range(count)]
    frames[-1] = 255 - frames[-1]
    return [frame.reshape(-1, 3).mean(axis=0) for frame in frames]


def test_outliers_over_real_frames_are_the_statistics_written_out(video_frame: Frames) -> None:
    embeddings = mean_colours(video_frame, 40)
    run = block("identify_outliers", window_size=16)

    results = [run(embedding.tolist()) for embedding in embeddings]

    expected = running_outliers(embeddings, 0.05, 3, 16)
    assert [(r["is_outlier"], r["percentile"]) for r in results] == [
        (flag, pytest.approx(percentile)) for flag, percentile in expected]
    assert results[-1]["is_outlier"] and results[-1]["percentile"] == 0.0  # the inverted frame

    # window_size null (a parameter's): every embedding so far.
    step = {"type": "roboflow_core/identify_outliers@v1", "name": "step", "embedding": "$steps.vector.output",
            "window_size": "$inputs.window"}
    written = definition(step)
    written["inputs"].append({"type": "WorkflowParameter", "name": "window"})
    compiled = compile_workflow(written, parameters={"window": None}).step("step")
    unbounded = REGISTRY[compiled.type](compiled, environment())
    literals = {name: value for name, value in compiled.params.items() if name != "embedding"}
    assert [unbounded.run(embedding=embedding.tolist(), **literals)["percentile"] for embedding in embeddings] == [
        pytest.approx(percentile) for _, percentile in running_outliers(embeddings, 0.05, 3, len(embeddings))]


def running_changes(embeddings: list[np.ndarray], strategy: str, alpha: float, window: int, warmup: int,
                    threshold: float) -> list[tuple[bool, float, float]]:
    """identify_changes' statistics written out in plain Python, for the similarities (the embeddings' own
    running average is the same recurrence per dimension)."""
    average: list[float] | None = None
    variance = [0.0]
    m2: list[float] = []
    kept: list[list[float]] = []
    sims: dict[str, Any] = {"mean": None, "var": 0.0, "m2": 0.0, "std": 0.0, "window": []}
    results = []
    for count, raw in enumerate(embeddings):
        length = math.sqrt(sum(v * v for v in raw))
        unit = [v / length for v in raw]
        z, percentile = 0.0, 0.5
        if average is not None:
            cosine = sum(a * b for a, b in zip(unit, average, strict=True)) / math.sqrt(sum(a * a for a in average))
            if sims["mean"] is None:
                sims["mean"] = cosine
            elif strategy == EMA:
                sims["mean"] = (1 - alpha) * sims["mean"] + alpha * cosine
                sims["var"] = (1 - alpha) * sims["var"] + alpha * (cosine - sims["mean"]) ** 2
                sims["std"] = math.sqrt(sims["var"])
            elif strategy == SMA:
                delta = cosine - sims["mean"]
                sims["mean"] += delta / (count + 1)
                sims["m2"] += delta * (cosine - sims["mean"])
                sims["std"] = math.sqrt(sims["m2"] / count)
            else:
                sims["window"] = [*sims["window"], cosine][-window:]
                sims["mean"] = sum(sims["window"]) / len(sims["window"])
                sims["std"] = math.sqrt(sum((c - sims["mean"]) ** 2 for c in sims["window"]) / len(sims["window"]))
            if sims["std"]:
                z = (cosine - sims["mean"]) / sims["std"]
                percentile = 1 - phi(z)
        outlier = count >= warmup and (percentile <= threshold / 2 or percentile >= 1 - threshold / 2)
        results.append((outlier, percentile, z))
        if average is None:
            average, variance, m2 = unit, [0.0] * len(unit), [0.0] * len(unit)
        elif strategy == EMA:
            average = [(1 - alpha) * a + alpha * u for a, u in zip(average, unit, strict=True)]
            variance = [(1 - alpha) * v + alpha * (u - a) ** 2 for v, u, a in zip(variance, unit, average, strict=True)]
        elif strategy == SMA:
            deltas = [u - a for u, a in zip(unit, average, strict=True)]
            average = [a + d / (count + 1) for a, d in zip(average, deltas, strict=True)]
            m2 = [m + d * (u - a) for m, d, u, a in zip(m2, deltas, unit, average, strict=True)]
        else:
            kept = [*kept, unit][-window:]
            average = [sum(column) / len(kept) for column in zip(*kept, strict=True)]
    return results


@pytest.mark.parametrize("strategy", [EMA, SMA, WINDOW])
def test_changes_over_real_frames_are_the_statistics_written_out(video_frame: Frames, strategy: str) -> None:
    embeddings = mean_colours(video_frame, 30)
    run = block("identify_changes", strategy=strategy, window_size=8, smoothing_factor=0.2)

    results = [run(list(embedding)) for embedding in embeddings]

    expected = running_changes(embeddings, strategy, 0.2, 8, 3, 0.2)
    assert [(r["is_outlier"], r["percentile"], r["z_score"]) for r in results] == [
        (flag, pytest.approx(percentile, abs=1e-6), pytest.approx(z, rel=1e-5, abs=1e-6))
        for flag, percentile, z in expected]
    assert results[-1]["is_outlier"] and results[-1]["percentile"] > 0.9  # far less alike than usual: near 1
    assert [r["warming_up"] for r in results[:4]] == [True, True, True, False]


# ---------------------------------------------------------------------------------------- in a definition


def test_a_definition_feeds_them_each_frame_s_dominant_colour_per_source(video_frame: Frames) -> None:
    changes = {"type": "roboflow_core/identify_changes@v1", "name": "changes", "embedding": "$steps.vector.output",
               "warmup": 2}
    outliers = {"type": "roboflow_core/identify_outliers@v1", "name": "outliers",
                "embedding": "$steps.changes.average", "warmup": 2}
    plan = compile_workflow(definition(changes, outliers, outputs={
        "colour": "$steps.colour.rgb_color", "changes": "$steps.changes.*", "outliers": "$steps.outliers.*"}))
    sources = [WorkflowExecutor(plan, REGISTRY, dataclasses.replace(environment(), source_id=source))
               for source in (0, 1)]
    frames = [video_frame("vtest.avi", index * 5) for index in range(6)]

    seen: list[list[dict[str, Any]]] = [[], []]
    for number, frame in enumerate(frames):
        for source, executor in enumerate(sources):
            pixels = frame if source == 0 else np.ascontiguousarray(frame[:, :, ::-1])  # BGR as RGB
            outputs, errors = executor.run(WorkflowImage.frame(pixels, "image", VideoMetadata(
                f"cam{source}", number, datetime(2026, 1, 1))))
            assert errors == []
            seen[source].append(outputs)

    for outputs in seen:
        colours = [np.array(o["colour"], dtype=float) for o in outputs]
        unit = [c / np.linalg.norm(c) for c in colours]
        expected = running_changes(colours, EMA, 0.1, 10, 2, 0.2)
        assert [(o["changes"]["is_outlier"], o["changes"]["percentile"]) for o in outputs] == [
            (flag, pytest.approx(percentile, abs=1e-6)) for flag, percentile, _ in expected]
        average = unit[0]
        for colour, output in zip(unit[1:], outputs[1:], strict=True):
            average = 0.9 * average + 0.1 * colour
            assert output["changes"]["average"] == pytest.approx(average.tolist())
        assert [o["outliers"]["warming_up"] for o in outputs] == [True] + [False] * 5
    # Each source has its own statistics: the second sees the same frames' colours reversed.
    assert seen[1][0]["colour"] == seen[0][0]["colour"][::-1]
    assert seen[1][-1]["changes"]["average"] != seen[0][-1]["changes"]["average"]
