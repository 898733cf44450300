"""Published definitions with query-language blocks, run frame by frame by the executor (scripted detector)."""

import csv
import io
from collections.abc import Mapping
from typing import Any

import supervision as sv

from services.core.workflows import compile_workflow
from services.worker.workflows.blocks import REGISTRY
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.executor import WorkflowExecutor
from services.worker.workflows.values import WorkflowImage
from tests.worker.workflows.query_values import AtOnce, FakeClock, boxes, frame, published

# Per frame number: (class, confidence, box width, box height) of what the detector finds.
SCRIPT: dict[int, list[tuple[str, float, int, int]]] = {
    1: [("person", 0.9, 50, 60)],
    2: [("person", 0.9, 50, 60)],
    3: [("car", 0.8, 120, 100), ("person", 0.7, 50, 60)],
    4: [],
    5: [("car", 0.6, 30, 30)],
    6: [("car", 0.6, 30, 30)],
}


class ScriptedDetector:
    def detect(self, model_id: str, image: WorkflowImage, params: Mapping[str, Any]) -> sv.Detections:
        rows = SCRIPT[image.video.frame_number]
        return boxes([(10 * i, 10 * i, 10 * i + w, 10 * i + h, c, n) for i, (n, c, w, h) in enumerate(rows)], image)

    def classify(self, model_id: str, image: Any, confidence: float) -> Any:
        raise AssertionError("no classifier in these workflows")


def run(definition: dict[str, Any], **parameters: Any) -> list[tuple[dict[str, Any], list[Any]]]:
    plan = compile_workflow(definition, parameters=parameters)
    executor = WorkflowExecutor(plan, REGISTRY, BlockEnvironment(0, ScriptedDetector(), AtOnce(), clock=FakeClock()))
    return [executor.run(frame(number=number)) for number in sorted(SCRIPT)]


def test_delta_filter_gates_the_csv_formatter_to_frames_where_the_count_changes() -> None:
    definition = published("workflow_with_delta_filter")
    definition["steps"] = [step for step in definition["steps"] if step["name"] != "reports_sink"]
    results = run(definition)
    assert all(errors == [] for _, errors in results)
    rows = [None if out["csv"] is None else next(csv.DictReader(io.StringIO(out["csv"])))["Class Name"]
            for out, _ in results]
    assert rows == ["['person']", None, "['car', 'person']", "[]", "['car']", None]


def test_data_aggregation_outputs_only_when_the_interval_closes() -> None:
    definition = published("workflow_with_data_aggregation")
    definition["steps"][1]["interval"] = 3
    outputs = [out["aggregation_results"] for out, _ in run(definition)]
    assert [output["number_of_predictions_sum"] for output in outputs] == [None, None, 4, None, None, 2]
    assert outputs[2]["predicted_classes_values_counts"] == {"person": 3, "car": 1}
    assert outputs[5]["predicted_classes_values_counts"] == {"car": 2}


def test_filtering_keeps_large_cars_and_a_step_error_is_reported_on_its_frame() -> None:
    results = run(published("filtering_workflow"), model_id="m", classes=["car"])
    kept = [[p["class"] for p in out["result"]["predictions"]["predictions"]] for out, _ in results]
    assert kept == [[], [], ["car"], [], [], []]  # 120 x 100 >= 2 % of 768 x 576; 30 x 30 is not
    broken = published("filtering_workflow")
    broken["steps"][1]["operations"].append({"type": "DetectionsPropertyExtract", "property_name": "tracker_id"})
    failed = run(broken, model_id="m", classes=["car"])
    assert failed[2][0] == {"result": None}
    assert [error.as_dict()["step"] for error in failed[2][1]] == ["filtering"]
    assert "the detections carry no tracker_id" in failed[2][1][0].as_dict()["error_message"]
