"""Detection offset and detections merge against hand-computed boxes on a black 768x576 frame: pixels and
percent, clipping to the image, the union box and its lowest confidence, new detection ids, the image lineage
kept, and the manifest's fields and aliases."""

from typing import Any

import numpy as np
import pytest
import supervision as sv

from services.core.errors import InvalidPayloadError
from services.worker.workflows import values
from tests.worker.workflows.transformations_support import Step, as_frame, found, step_of

FRAME = as_frame(np.zeros((576, 768, 3), dtype=np.uint8))
BOXES = [(100, 100, 200, 300, 0.9, "person"), (5, 560, 760, 575, 0.8, "car")]


def boxes_step(block: str, **fields: Any) -> Step:
    """A step of ``block`` on the detector's predictions."""
    return step_of({"type": f"roboflow_core/{block}@v1", "name": "boxes", "predictions": "$steps.detect.predictions",
                    **fields})


def offset(**fields: Any) -> Step:
    return boxes_step("detection_offset", **fields)


def merge(**fields: Any) -> Step:
    return boxes_step("detections_merge", **fields)


def result_of(step: Step, detections: sv.Detections) -> sv.Detections:
    result = step.run(predictions=detections)["predictions"]
    assert isinstance(result, sv.Detections)
    return result


def test_pixels_grow_each_side_by_half_the_offset_clipped_to_the_image() -> None:
    detections = found(FRAME, BOXES)
    result = result_of(offset(offset_width=20, offset_height=11), detections)
    # 20 px wide: 10 a side; 11 px high: 5 a side (offset // 2); the second box meets the frame's edges
    assert result.xyxy.tolist() == [[90, 95, 210, 305], [0, 555, 768, 576]]
    assert result.confidence.tolist() == pytest.approx([0.9, 0.8])
    assert result.data[values.CLASS_NAME].tolist() == ["person", "car"]
    new_ids = set(result.data[values.DETECTION_ID].tolist())
    assert len(new_ids) == 2 and not new_ids & set(detections.data[values.DETECTION_ID].tolist())
    assert result.data[values.PARENT_ID].tolist() == [FRAME.parent_id] * 2  # still on the frame (see the module)
    assert detections.xyxy.tolist()[0] == [100, 100, 200, 300]  # the input is untouched


def test_percent_is_of_the_image_side_half_on_each_side() -> None:
    result = result_of(offset(offset_x=10, offset_y=10, units="Percent (%)"), found(FRAME, BOXES[:1]))
    # int(768 * 10 / 200) = 38 px left and right, int(576 * 10 / 200) = 28 px up and down
    assert result.xyxy.tolist() == [[62, 72, 238, 328]]


def test_no_detections_give_no_detections() -> None:
    empty = found(FRAME, [])
    assert len(result_of(offset(offset_width=10, offset_height=10), empty)) == 0


@pytest.mark.parametrize(("fields", "expected"), [
    ({"offset_width": 0, "offset_height": 5}, "a positive integer"),
    ({"offset_width": 5}, "'workflow.steps[1].offset_height' is required"),
    ({"offset_width": 5, "offset_height": 5, "units": "Inches"}, "is not one of 'Percent (%)', 'Pixels'"),
])
def test_the_manifest_s_fields_are_checked_at_init(fields: dict[str, Any], expected: str) -> None:
    with pytest.raises(InvalidPayloadError) as caught:
        offset(**fields)
    assert expected in str(caught.value)


# ----------------------------------------------------------------------------- detections merge


def test_merge_is_one_box_around_all_with_the_lowest_confidence() -> None:
    detections = found(FRAME, [(100, 100, 200, 300, 0.9, "person"), (150, 50, 400, 250, 0.4, "car"),
                               (300, 280, 350, 320, 0.7, "dog")])
    result = result_of(merge(), detections)
    assert result.xyxy.tolist() == [[100, 50, 400, 320]]
    assert result.confidence.tolist() == pytest.approx([0.4]) and result.class_id.tolist() == [0]
    assert result.data[values.CLASS_NAME].tolist() == ["merged_detection"]
    assert result.data[values.DETECTION_ID][0] not in detections.data[values.DETECTION_ID].tolist()
    assert result.data[values.PARENT_ID].tolist() == [FRAME.parent_id]  # on the frame, as its detections were
    assert result_of(merge(class_name="crowd"), detections).data[values.CLASS_NAME].tolist() == ["crowd"]


def test_merging_nothing_gives_nothing_with_the_image_size() -> None:
    result = result_of(merge(), found(FRAME, []))
    assert len(result) == 0 and result.metadata[values.IMAGE_SIZE] == (576, 768)
