"""path_deviation_analytics v1/v2: the discrete Fréchet distance of each track's path to a reference path."""

from typing import Any

import numpy as np
import pytest
import supervision as sv

from services.worker.workflows.blocks.video.path_deviation import frechet_row
from services.worker.workflows.values import PATH_DEVIATION
from tests.worker.workflows.video_steps import StepRunner, box_at, boxes, image, video

REFERENCE = [[100, 100], [200, 100], [300, 100], [400, 100]]


def frechet(path: np.ndarray, reference: np.ndarray) -> float:
    """The textbook discrete Fréchet distance (Eiter and Mannila), over the whole coupling matrix."""
    n, m = len(path), len(reference)
    distance = np.linalg.norm(path[:, None, :] - reference[None, :, :], axis=2)
    table = np.full((n, m), np.inf)
    for i in range(n):
        for j in range(m):
            if i == 0 and j == 0:
                reach = 0.0
            else:
                options = [table[i - 1, j] if i else np.inf, table[i, j - 1] if j else np.inf,
                           table[i - 1, j - 1] if i and j else np.inf]
                reach = min(options)
            table[i, j] = max(distance[i, j], reach)
    return float(table[-1, -1])


def deviation_step(version: str, **fields: Any) -> dict[str, Any]:
    source = {"metadata": "$inputs.video_metadata"} if version == "v1" else {"image": "$inputs.image"}
    return {"type": f"roboflow_core/path_deviation_analytics@{version}", "name": "deviation",
            "detections": "$steps.track.tracked_detections", "reference_path": REFERENCE, **source, **fields}


def run(runner: StepRunner, version: str, frame: int, detections: sv.Detections) -> sv.Detections:
    source = {"metadata": video(frame)} if version == "v1" else {"image": image(frame)}
    result: sv.Detections = runner(detections=detections, **source)["path_deviation_detections"]
    return result


def test_incremental_rows_agree_with_the_whole_matrix() -> None:
    rng = np.random.default_rng(11)
    for _ in range(20):
        path = rng.uniform(0, 500, size=(int(rng.integers(1, 30)), 2))
        reference = rng.uniform(0, 500, size=(int(rng.integers(1, 8)), 2))
        row = None
        for i in range(len(path)):
            row = frechet_row(row, path[i], reference)
            assert row[-1] == pytest.approx(frechet(path[: i + 1], reference))


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_each_track_gets_its_paths_distance(version: str) -> None:
    """v1 works too (the reference's v1 fails on every frame)."""
    runner = StepRunner(deviation_step(version))
    paths: dict[int, list[list[float]]] = {1: [], 2: []}
    for frame in range(12):
        centres = {1: [100 + 30 * frame, 100.0], 2: [100 + 30 * frame, 140 + 3 * frame]}
        detections = boxes([box_at(*centres[1]), box_at(*centres[2])], [0.9, 0.8], tracker_id=[1, 2])
        result = run(runner, version, frame, detections)
        for tracker_id, value in zip(result.tracker_id.tolist(), result.data[PATH_DEVIATION], strict=True):
            paths[tracker_id].append(centres[tracker_id])
            assert value == pytest.approx(frechet(np.array(paths[tracker_id]), np.array(REFERENCE, float)))
    # Track 1 walks the reference line in 30 px steps: its x=250 point is 50 px from the nearest vertex.
    assert result.data[PATH_DEVIATION].tolist()[0] == pytest.approx(50.0)


def test_on_the_reference_path_the_deviation_is_zero() -> None:
    runner = StepRunner(deviation_step("v2"))
    for frame, (x, y) in enumerate(REFERENCE):
        result = run(runner, "v2", frame, boxes([box_at(x, y)], tracker_id=[5]))
    assert result.data[PATH_DEVIATION].tolist() == [0.0]
    assert "detection_id" in result.data


def test_the_anchor_is_the_triggering_anchor() -> None:
    runner = StepRunner(deviation_step("v2", triggering_anchor="BOTTOM_CENTER"))
    result = run(runner, "v2", 0, boxes([box_at(100, 80)], tracker_id=[1]))  # bottom centre = (100, 100)
    assert result.data[PATH_DEVIATION].tolist() == [pytest.approx(300.0)]  # to the path's end (400, 100)


def test_a_new_reference_path_restarts_the_distances() -> None:
    runner = StepRunner(deviation_step("v2"))
    run(runner, "v2", 0, boxes([box_at(100, 500)], tracker_id=[1]))
    result = runner.block.run(image=image(1), detections=boxes([box_at(100, 100)], tracker_id=[1]),
                              triggering_anchor="CENTER", reference_path=[[100, 100]])
    assert result["path_deviation_detections"].data[PATH_DEVIATION].tolist() == [0.0]


def test_input_is_not_modified_and_untracked_is_an_error() -> None:
    runner = StepRunner(deviation_step("v2"))
    detections = boxes([box_at(100, 100)], tracker_id=[1])
    run(runner, "v2", 0, detections)
    assert PATH_DEVIATION not in detections.data
    with pytest.raises(ValueError, match="tracker_id"):
        run(runner, "v2", 1, boxes([box_at(100, 100)]))
    assert len(run(runner, "v2", 2, boxes([], []))) == 0
