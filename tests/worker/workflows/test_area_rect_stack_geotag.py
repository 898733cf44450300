"""mask_area_measurement, bounding_rect, image_stack and geotag_detection on real frames of vtest.avi (each step
compiled from its definition): areas against OpenCV's connected-component pixel counts, minimum-area rectangles
against OpenCV's on the masks' pixels and a drawn rotated rectangle of known sides, the stack's layout, sizes and
JPEGs, and ground positions worked out here from the camera's geometry."""

import base64
import math
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import pytest
import supervision as sv

from services.core.workflows.compiler import compile_workflow
from services.worker.workflows.blocks import REGISTRY
from services.worker.workflows.serialization import serialise
from services.worker.workflows.values import AREA_CONVERTED, AREA_PX, WorkflowImage
from tests.worker.workflows.transformations_support import as_frame, definition, detector, environment, found
from tests.worker.workflows.video_steps import resolved

Frames = Callable[[str, int], np.ndarray]
FILTER = {"type": "roboflow_core/detections_filter@v1", "name": "kept", "predictions": "$steps.detect.predictions",
          "operations": []}


class Runner:
    """One compiled step's block (after a detector ``detect`` and a filter ``kept``), run with values for its
    selector fields."""

    def __init__(self, step: dict[str, Any]) -> None:
        plan = compile_workflow(definition(detector("detect"), FILTER, step))
        self.step = plan.step(step["name"])
        self.block = REGISTRY[self.step.type](self.step, environment())

    def __call__(self, **values: Any) -> dict[str, Any]:
        outputs = self.block.run(**resolved(self.step, **values))
        assert isinstance(outputs, dict)
        return outputs


def components(frame: np.ndarray, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The ``count`` largest bright regions of the frame (Otsu, 8-connected) but the floor: (mask, stats row)."""
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    binary = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[1]
    _, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    order = np.argsort(-stats[1:, cv2.CC_STAT_AREA])[1:count + 1] + 1  # the largest is the floor itself
    return [(labels == label, stats[label]) for label in order]


def segmented(image: WorkflowImage, masks: list[np.ndarray]) -> sv.Detections:
    """Detections of the masks (boxes their bounds), most confident first as given."""
    rows = []
    for index, mask in enumerate(masks):
        ys, xs = np.nonzero(mask)
        rows.append((float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1),
                     0.9 - 0.1 * index, "person"))
    detections = found(image, rows)
    detections.mask = np.array(masks, dtype=bool)
    return detections


# ----------------------------------------------------------------------------------------- mask_area_measurement


def test_mask_areas_are_the_masks_pixel_counts_holes_left_out(video_frame: Frames) -> None:
    frame = video_frame("vtest.avi", 0)
    image = as_frame(frame)
    regions = components(frame, 4)
    detections = segmented(image, [mask for mask, _ in regions])
    block = Runner({"type": "roboflow_core/mask_area_measurement@v1", "name": "area",
                    "predictions": "$steps.kept.predictions", "pixels_per_unit": 130.0})

    measured = block(predictions=detections)["predictions"]

    expected = [float(stats[cv2.CC_STAT_AREA]) for _, stats in regions]
    assert measured.data[AREA_PX].tolist() == expected
    assert measured.data[AREA_CONVERTED] == pytest.approx(np.array(expected) / 16900)
    # A region with holes measures fewer pixels than its outline encloses.
    filled = [cv2.contourArea(max(cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                                   cv2.CHAIN_APPROX_NONE)[0], key=cv2.contourArea))
              for mask, _ in regions]
    assert any(area < outline for area, outline in zip(expected, filled, strict=True))
    assert AREA_PX not in detections.data  # the input is left as it was
    [first, *_] = serialise(measured)["predictions"]
    assert (first["area_px"], first["area_converted"]) == (expected[0], pytest.approx(expected[0] / 16900))


def test_boxes_measure_width_times_height_and_an_empty_mask_falls_back_to_its_box(video_frame: Frames) -> None:
    image = as_frame(video_frame("vtest.avi", 10))
    boxes = found(image, [(10.5, 20, 60, 100, 0.9, "person"), (300, 200, 333.25, 290.5, 0.8, "car")])
    block = Runner({"type": "roboflow_core/mask_area_measurement@v1", "name": "area",
                    "predictions": "$steps.kept.predictions"})

    areas = block(predictions=boxes)["predictions"]
    assert areas.data[AREA_PX].tolist() == [49.5 * 80, 33.25 * 90.5]
    assert areas.data[AREA_CONVERTED].tolist() == areas.data[AREA_PX].tolist()  # pixels_per_unit 1

    masked = boxes[np.arange(2)]
    masks = np.zeros((2, image.height, image.width), dtype=bool)
    masks[1, 210:220, 305:325] = True
    masked.mask = masks
    assert block(predictions=masked)["predictions"].data[AREA_PX].tolist() == [49.5 * 80, 200.0]

    negative = Runner({"type": "roboflow_core/mask_area_measurement@v1", "name": "area",
                       "predictions": "$steps.kept.predictions", "pixels_per_unit": -2})
    assert negative(predictions=boxes)["predictions"].data[AREA_CONVERTED].tolist() == [49.5 * 80, 33.25 * 90.5]
    assert len(block(predictions=boxes[np.arange(0)])["predictions"].data[AREA_PX]) == 0


# ------------------------------------------------------------------------------------------------ bounding_rect

RECT = {"type": "roboflow_core/bounding_rect@v1", "name": "rect", "predictions": "$steps.kept.predictions"}


def test_a_rotated_rectangle_drawn_on_a_frame_comes_back_with_its_sides_and_corners(video_frame: Frames) -> None:
    image = as_frame(video_frame("vtest.avi", 0))
    theta = math.radians(30)
    along, across = np.array([math.cos(theta), math.sin(theta)]), np.array([-math.sin(theta), math.cos(theta)])
    centre = np.array([400.0, 300.0])
    corners = np.array([centre + sx * 100 * along + sy * 40 * across for sx, sy in ((-1, -1), (1, -1), (1, 1),
                                                                                   (-1, 1))])
    mask = np.zeros((image.height, image.width), dtype=np.uint8)
    cv2.fillPoly(mask, [np.round(corners).astype(np.int32)], 1)

    result = Runner(RECT)(predictions=segmented(image, [mask.astype(bool)]))["detections_with_rect"]

    assert sorted([float(result.data["width"][0]), float(result.data["height"][0])]) == [
        pytest.approx(80, abs=2), pytest.approx(200, abs=2)]
    assert float(result.data["angle"][0]) % 90 == pytest.approx(30, abs=1.5)
    rect = result.data["rect"][0]
    for corner in corners:  # each drawn corner has a found corner within 2 px
        assert np.min(np.hypot(*(rect - corner).T)) < 2.5
    assert rect.dtype == np.float64 and np.array_equal(rect, np.round(rect))  # whole pixels
    assert result.xyxy[0].tolist() == [rect[:, 0].min(), rect[:, 1].min(), rect[:, 0].max(), rect[:, 1].max()]
    assert int(result.mask[0].sum()) == pytest.approx(int(mask.sum()), rel=0.03)  # the filled rectangle
    [item] = serialise(result)["predictions"]  # as the reference: the rectangle's own sides replace the box's
    assert (item["width"], item["height"], item["angle"]) == (
        float(result.data["width"][0]), float(result.data["height"][0]), float(result.data["angle"][0]))
    assert item["rect"] == rect.tolist() and item["x"] == pytest.approx(float(result.xyxy[0][[0, 2]].mean()))


def test_real_regions_rectangles_are_opencv_s_minimum_area_rectangles_of_their_pixels(video_frame: Frames) -> None:
    frame = video_frame("vtest.avi", 0)
    image = as_frame(frame)
    regions = components(frame, 4)
    detections = segmented(image, [mask for mask, _ in regions])

    result = Runner(RECT)(predictions=detections)["detections_with_rect"]

    assert len(result) == 4 and result.data["detection_id"].tolist() == detections.data["detection_id"].tolist()
    for index, (mask, stats) in enumerate(regions):
        rectangle = cv2.minAreaRect(cv2.findNonZero(mask.astype(np.uint8)))
        (_, _), (width, height), angle = rectangle
        assert result.data["rect"][index].tolist() == np.trunc(cv2.boxPoints(rectangle)).tolist()  # truncated
        assert (result.data["width"][index], result.data["height"][index], result.data["angle"][index]) == (
            pytest.approx(width, abs=1e-3), pytest.approx(height, abs=1e-3), pytest.approx(angle, abs=1e-3))
        assert width * height <= stats[cv2.CC_STAT_WIDTH] * stats[cv2.CC_STAT_HEIGHT] + 1e-6
        polygon = result.data["rect"][index].astype(np.float32)
        ys, xs = np.nonzero(mask)
        inside = [cv2.pointPolygonTest(polygon, (float(x), float(y)), True) for x, y in zip(xs, ys, strict=True)]
        assert min(inside) >= -1.5  # every pixel of the region within the (truncated) rectangle
        assert result.mask[index].sum() >= 0.9 * mask.sum()


def test_detections_without_masks_or_with_an_empty_one_fail_the_step(video_frame: Frames) -> None:
    image = as_frame(video_frame("vtest.avi", 0))
    boxes = found(image, [(10, 20, 60, 100, 0.9, "person")])
    with pytest.raises(ValueError, match="have no masks"):
        Runner(RECT)(predictions=boxes)
    boxes.mask = np.zeros((1, image.height, image.width), dtype=bool)
    with pytest.raises(ValueError, match="has no outline"):
        Runner(RECT)(predictions=boxes)
    empty = boxes[np.arange(0)]
    assert len(Runner(RECT)(predictions=empty)["detections_with_rect"]) == 0


# -------------------------------------------------------------------------------------------------- image_stack

STACK = {"type": "roboflow_core/image_stack@v1", "name": "stack", "image": "$inputs.image", "stack_size": 3}


def decoded(blob: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR)


def test_the_stack_holds_the_last_frames_newest_first_as_jpegs(video_frame: Frames) -> None:
    frames = [video_frame("vtest.avi", index * 10) for index in range(5)]
    block = Runner(STACK)

    counts = []
    for number, frame in enumerate(frames):
        outputs = block(image=as_frame(frame, number))
        counts.append(outputs["frames_count"])
    assert counts == [1, 2, 3, 3, 3]
    stacked = [decoded(blob) for blob in outputs["frames"]]
    assert [blob[:2] for blob in outputs["frames"]] == [b"\xff\xd8"] * 3
    for blob, expected in zip(outputs["frames"], frames[:1:-1], strict=True):  # frames 4, 3, 2
        assert blob == cv2.imencode(".jpg", expected, [cv2.IMWRITE_JPEG_QUALITY, 75])[1].tobytes()
    errors = [[np.abs(image.astype(int) - frame).mean() for frame in frames] for image in stacked]
    assert [int(np.argmin(row)) for row in errors] == [4, 3, 2] and max(min(row) for row in errors) < 3
    assert serialise(outputs)["frames"][0] == base64.b64encode(outputs["frames"][0]).decode()


def test_frames_are_scaled_down_to_fit_and_clear_empties_the_stack(video_frame: Frames) -> None:
    frame = video_frame("vtest.avi", 30)  # 768 x 576
    half = Runner({**STACK, "resolution_width": 384})
    assert decoded(half(image=as_frame(frame))["frames"][0]).shape == (288, 384, 3)
    tall = Runner({**STACK, "resolution_width": 1000, "resolution_height": 225})  # 225 / 576 = 0.390625
    [blob] = tall(image=as_frame(frame))["frames"]
    assert decoded(blob).shape == (225, 300, 3)
    assert blob == cv2.imencode(".jpg", cv2.resize(frame, (300, 225), interpolation=cv2.INTER_AREA),
                                [cv2.IMWRITE_JPEG_QUALITY, 75])[1].tobytes()

    cleared = Runner({**STACK, "clear": "$steps.kept.*"})  # any selector: its value decides
    for number in range(3):
        assert cleared(image=as_frame(frame, number), clear=False)["frames_count"] == number + 1
    assert cleared(image=as_frame(frame, 3), clear=True)["frames_count"] == 1


def test_a_stack_size_from_a_selector_is_clamped_and_a_smaller_one_keeps_the_newest(video_frame: Frames) -> None:
    frames = [video_frame("vtest.avi", index * 25) for index in range(7)]
    block = Runner({**STACK, "stack_size": "$steps.kept.*"})
    for number in range(5):
        block(image=as_frame(frames[number], number), stack_size=5)
    shrunk = block(image=as_frame(frames[5], 5), stack_size=2)["frames"]
    assert [int(np.argmin([np.abs(decoded(blob).astype(int) - frame).mean() for frame in frames]))
            for blob in shrunk] == [5, 4]
    assert block(image=as_frame(frames[6], 6), stack_size=0)["frames_count"] == 1  # clamped to 1
    assert block(image=as_frame(frames[6], 7), stack_size=1000)["frames_count"] == 2  # clamped to 64
    with pytest.raises(ValueError, match="stack_size must be an integer"):
        block(image=as_frame(frames[6], 8), stack_size=2.5)


# --------------------------------------------------------------------------------------------- geotag_detection

LATITUDE, LONGITUDE = 47.428681, -105.279125
GEOTAG = {"type": "roboflow_core/geotag_detection@v1", "name": "geo", "image": "$inputs.image",
          "predictions": "$steps.kept.predictions", "latitude": LATITUDE, "longitude": LONGITUDE, "altitude": 100.0,
          "horizontal_fov": 90.0}


def expected_position(x: float, y: float, heading: float) -> tuple[float, float]:
    """A 768 x 576 frame 200 m wide (100 m up, 90° field of view), so 150 m tall: metres right and up of the
    centre, turned from the image's axes onto east and north by the heading, in degrees."""
    right, up = (x - 384) / 768 * 200, (288 - y) / 576 * 150
    turn = math.radians(heading)
    east, north = np.array([[math.cos(turn), math.sin(turn)], [-math.sin(turn), math.cos(turn)]]) @ [right, up]
    return LATITUDE + north / 111320, LONGITUDE + east / (111320 * math.cos(math.radians(LATITUDE)))


@pytest.mark.parametrize("heading", [0.0, 90.0, 225.0])
def test_box_centres_land_where_the_camera_geometry_puts_them(video_frame: Frames, heading: float) -> None:
    image = as_frame(video_frame("vtest.avi", 0))
    rows = [(374, 278, 394, 298, 0.91234567, "person"),  # the image centre: the camera's own position
            (748, 268, 768, 308, 0.8, "car"),  # at the right edge's middle: to the image's right
            (0, 0, 30, 40, 0.7, "dog")]
    block = Runner({**GEOTAG, "heading": heading})

    outputs = block(image=image, predictions=found(image, rows))

    records = outputs["geo_detections"]
    assert [(r["class"], r["confidence"], r["pixel_x"], r["pixel_y"], r["width"], r["height"]) for r in records] == [
        ("person", 0.9123, 384.0, 288.0, 20.0, 20.0), ("car", 0.8, 758.0, 288.0, 20.0, 40.0),
        ("dog", 0.7, 15.0, 20.0, 30.0, 40.0)]
    assert (records[0]["lat"], records[0]["lon"]) == (LATITUDE, LONGITUDE)
    for record, (x1, y1, x2, y2, *_) in zip(records, rows, strict=True):
        lat, lon = expected_position((x1 + x2) / 2, (y1 + y2) / 2, heading)
        assert (record["lat"], record["lon"]) == (pytest.approx(lat, abs=1e-7), pytest.approx(lon, abs=1e-7))
        assert record["lat"] == round(record["lat"], 7) and record["lon"] == round(record["lon"], 7)
    north = (records[1]["lat"] - LATITUDE) * 111320  # the car, centred 374 px right of the centre: 97.4 m away
    east = (records[1]["lon"] - LONGITUDE) * 111320 * math.cos(math.radians(LATITUDE))
    assert math.hypot(north, east) == pytest.approx(374 / 768 * 200, abs=0.05)
    assert math.degrees(math.atan2(east, north)) % 360 == pytest.approx((heading + 90) % 360, abs=0.01)
    assert outputs["geojson"] == {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [r["lon"], r["lat"]]},
         "properties": {"class": r["class"], "confidence": r["confidence"]}} for r in records]}


def test_no_altitude_puts_everything_at_the_camera_and_bare_boxes_are_unknown(video_frame: Frames) -> None:
    image = as_frame(video_frame("vtest.avi", 0))
    bare = sv.Detections(xyxy=np.array([[0, 0, 10, 10], [700, 500, 760, 570]], dtype=np.float32))
    block = Runner({**GEOTAG, "altitude": 0})
    records = block(image=image, predictions=bare)["geo_detections"]
    assert [(r["class"], r["confidence"], r["lat"], r["lon"]) for r in records] == [
        ("unknown", 0.0, LATITUDE, LONGITUDE)] * 2
    assert block(image=image, predictions=bare[np.arange(0)]) == {
        "geo_detections": [], "geojson": {"type": "FeatureCollection", "features": []}}
