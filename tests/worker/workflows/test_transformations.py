"""Crops, the image slicer and detections stitch on real vtest.avi frames."""

from collections.abc import Callable

import numpy as np
import pytest
import supervision as sv

from services.core.workflows.compiler import compile_workflow
from services.worker.detection.detector import DetectionParams, Detector
from services.worker.models.repository import ModelSpec
from services.worker.workflows import values
from services.worker.workflows.blocks import REGISTRY
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.transforms.crops import colour_bgr
from services.worker.workflows.blocks.transforms.slicer import slice_offsets
from services.worker.workflows.executor import WorkflowExecutor
from services.worker.workflows.values import WorkflowImage, detections_on, to_root_coordinates
from tests.core.workflows.transformations_definitions import CROP_AND_STITCH, SAHI
from tests.worker.workflows.transformations_support import AtOnce, as_frame, found, step_of

Frames = Callable[[str, int], np.ndarray]


@pytest.fixture
def frame(video_frame: Frames) -> WorkflowImage:
    return as_frame(video_frame("vtest.avi", 100), 100)


def dynamic_crop(**fields: object) -> dict[str, object]:
    return {"type": "roboflow_core/dynamic_crop@v1", "name": "crop", "images": "$inputs.image",
            "predictions": "$steps.detect.predictions", **fields}


def static_crop(kind: str, **fields: object) -> dict[str, object]:
    return {"type": kind, "name": "crop", "images": "$inputs.image", **fields}


def slicer(version: int, **fields: object) -> dict[str, object]:
    return {"type": f"roboflow_core/image_slicer@v{version}", "name": "slicer", "image": "$inputs.image", **fields}


# ------------------------------------------------------------------------------------- dynamic crop


def test_dynamic_crop_pixels_ids_and_lineage(frame: WorkflowImage) -> None:
    detections = found(frame, [(10.4, 20.6, 110.2, 220.7, 0.9, "person"), (700, 500, 800, 600, 0.8, "car"),
                               (-50, -50, -10, -10, 0.7, "dog")])
    crops = step_of(dynamic_crop()).run(images=frame, predictions=detections)
    assert len(crops) == 3
    first, clipped, outside = crops
    assert np.array_equal(first["crops"].image, frame.image[21:221, 10:110])
    assert first["crops"].parent_id == detections.data[values.DETECTION_ID][0]
    assert (first["crops"].origin.offset_x, first["crops"].origin.offset_y) == (10, 21)
    assert (first["crops"].root_origin.parent_width, first["crops"].root_origin.parent_height) == (768, 576)
    assert np.array_equal(clipped["crops"].image, frame.image[500:576, 700:768])
    assert outside == {"crops": None, "predictions": None}


def test_dynamic_crop_prediction_is_in_its_crop(frame: WorkflowImage) -> None:
    detections = found(frame, [(10.4, 20.6, 110.2, 220.7, 0.9, "person"), (300, 100, 360, 260, 0.5, "car")])
    crops = step_of(dynamic_crop()).run(images=frame, predictions=detections)
    own = crops[1]["predictions"]
    assert len(own) == 1 and own.data[values.CLASS_NAME].tolist() == ["car"]
    assert np.allclose(own.xyxy, [[0, 0, 60, 160]])
    assert own.data[values.PARENT_ID][0] == crops[1]["crops"].parent_id
    assert own.data[values.ROOT_PARENT_COORDINATES][0].tolist() == [300, 100]
    assert own.data[values.DETECTION_ID][0] == detections.data[values.DETECTION_ID][1]
    assert np.allclose(to_root_coordinates(own).xyxy, detections.xyxy[1:2])
    assert np.allclose(detections.xyxy[1], [300, 100, 360, 260])  # the input is left alone


def test_nested_crop_adds_offsets(frame: WorkflowImage) -> None:
    step = step_of(dynamic_crop())
    outer = step.run(images=frame, predictions=found(frame, [(100, 50, 400, 350, 0.9, "person")]))[0]["crops"]
    inner = step.run(images=outer, predictions=found(outer, [(20, 30, 70, 90, 0.9, "dog")]))[0]["crops"]
    assert (inner.origin.offset_x, inner.origin.offset_y) == (20, 30)
    assert (inner.root_origin.offset_x, inner.root_origin.offset_y) == (120, 80)
    assert np.array_equal(inner.image, frame.image[80:140, 120:170])


def test_dynamic_crop_of_nothing_and_without_ids(frame: WorkflowImage) -> None:
    step = step_of(dynamic_crop())
    assert step.run(images=frame, predictions=found(frame, [])) == []
    anonymous = sv.Detections(xyxy=np.array([[0, 0, 10, 10]], dtype=np.float32))
    with pytest.raises(ValueError, match="detection ids"):
        step.run(images=frame, predictions=anonymous)


def test_mask_opacity_paints_the_background(frame: WorkflowImage) -> None:
    detections = found(frame, [(100, 100, 200, 200, 0.9, "person")])
    mask = np.zeros((1, 576, 768), dtype=bool)
    mask[0, 120:180, 130:170] = True
    detections.mask = mask
    opaque = step_of(dynamic_crop(mask_opacity=1.0, background_color="#00ff00")).run(
        images=frame, predictions=detections)[0]
    crop = opaque["crops"].image
    assert np.array_equal(crop[20:80, 30:70], frame.image[120:180, 130:170])
    assert (crop[:20] == (0, 255, 0)).all() and (crop[:, :30] == (0, 255, 0)).all()
    assert opaque["predictions"].mask.shape == (1, 100, 100)
    half = step_of(dynamic_crop(mask_opacity=0.5, background_color=[255, 0, 0])).run(
        images=frame, predictions=detections)[0]["crops"].image
    expected = np.round(0.5 * np.array([0, 0, 255]) + 0.5 * frame.image[100, 100].astype(float))
    assert np.abs(half[0, 0].astype(float) - expected).max() <= 1
    untouched = step_of(dynamic_crop()).run(images=frame, predictions=detections)[0]["crops"].image
    assert np.array_equal(untouched, frame.image[100:200, 100:200])


@pytest.mark.parametrize(("given", "bgr"), [("#ff8000", (0, 128, 255)), ("#f80", (0, 136, 255)),
                                            ("(255, 128, 0)", (0, 128, 255)), ([255, 128, 0], (0, 128, 255)),
                                            (sv.Color(255, 128, 0), (0, 128, 255))])
def test_colours_as_the_reference_reads_them(given: object, bgr: tuple[int, int, int]) -> None:
    assert colour_bgr(given) == bgr


@pytest.mark.parametrize("bad", ["red", "(1, 2)", [1, 2, 300], 7])
def test_bad_colours_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="colour"):
        colour_bgr(bad)


# ------------------------------------------------------------------------------------- static crops


def test_absolute_static_crop(frame: WorkflowImage) -> None:
    crop = step_of(static_crop("AbsoluteStaticCrop", x_center=100, y_center=150, width=50, height=61)).run(
        images=frame)["crops"]
    # x: 100 - 25 = 75 .. 125; y: round(119.5) = 120 (Python rounds half to even, as the reference) .. 181
    assert np.array_equal(crop.image, frame.image[120:181, 75:125])
    assert crop.parent_id.startswith("absolute_static_crop.")
    assert (crop.origin.offset_x, crop.origin.offset_y) == (75, 120)


def test_static_crops_clip_and_miss(frame: WorkflowImage) -> None:
    border = step_of(static_crop("roboflow_core/absolute_static_crop@v1", x_center=10, y_center=570, width=100,
                                 height=40)).run(images=frame)["crops"]
    assert np.array_equal(border.image, frame.image[550:576, 0:60])
    missing = step_of(static_crop("AbsoluteStaticCrop", x_center=5000, y_center=10, width=10, height=10))
    assert missing.run(images=frame) == {"crops": None}


@pytest.mark.parametrize("kind", ["RelativeStaticCrop", "roboflow_core/relative_statoic_crop@v1",
                                  "roboflow_core/relative_static_crop@v1"])
def test_relative_static_crop(frame: WorkflowImage, kind: str) -> None:
    crop = step_of(static_crop(kind, x_center=0.5, y_center=0.5, width=0.5, height=0.25)).run(images=frame)["crops"]
    assert np.array_equal(crop.image, frame.image[216:360, 192:576])
    assert crop.parent_id.startswith("relative_static_crop.")


# ------------------------------------------------------------------------------------- slicer


@pytest.mark.parametrize(("resolution", "tile", "ratio"), [
    ((768, 576), (320, 320), (0.2, 0.2)), ((1920, 1080), (640, 640), (0.2, 0.2)),
    ((1000, 1000), (333, 250), (0.1, 0.3)), ((500, 300), (640, 640), (0.2, 0.2)), ((640, 640), (640, 640), (0.5, 0.5)),
])
def test_v2_offsets_match_supervision(resolution: tuple[int, int], tile: tuple[int, int],
                                      ratio: tuple[float, float]) -> None:
    overlap = (int(ratio[0] * min(tile[0], resolution[0])), int(ratio[1] * min(tile[1], resolution[1])))
    expected = sv.InferenceSlicer._generate_offset(resolution, tile, overlap)
    assert slice_offsets(resolution, tile, ratio, pushed=True).tolist() == np.asarray(expected).tolist()


def test_v1_offsets_let_the_last_tiles_run_short() -> None:
    offsets = slice_offsets((768, 576), (320, 320), (0.2, 0.2), pushed=False).tolist()
    assert offsets == [[0, 0, 320, 320], [256, 0, 576, 320], [512, 0, 768, 320],
                       [0, 256, 320, 576], [256, 256, 576, 576], [512, 256, 768, 576],
                       [0, 512, 320, 576], [256, 512, 576, 576], [512, 512, 768, 576]]


def test_v2_without_overlap_still_keeps_tiles_full_size() -> None:
    # supervision's slicer lets the last tile run short when the stride is the tile; v2 pushes it back in.
    offsets = slice_offsets((768, 576), (320, 320), (0.0, 0.0), pushed=True).tolist()
    assert offsets == [[0, 0, 320, 320], [320, 0, 640, 320], [448, 0, 768, 320],
                       [0, 256, 320, 576], [320, 256, 640, 576], [448, 256, 768, 576]]


@pytest.mark.parametrize("version", [1, 2])
def test_slices_are_the_frame_regions(frame: WorkflowImage, version: int) -> None:
    slices = step_of(slicer(version, slice_width=320, slice_height=320)).run(image=frame)
    expected = slice_offsets((768, 576), (320, 320), (0.2, 0.2), pushed=version == 2).tolist()
    assert len(slices) == len(expected) == (9 if version == 1 else 6)
    for item, (x1, y1, x2, y2) in zip(slices, expected, strict=True):
        tile = item["slices"]
        assert np.array_equal(tile.image, frame.image[y1:y2, x1:x2])
        assert (tile.root_origin.offset_x, tile.root_origin.offset_y) == (x1, y1)
        assert tile.parent_id.startswith("image_slicer.") and tile.video == frame.video


def test_slicer_defaults_and_bad_ratio(frame: WorkflowImage) -> None:
    step = step_of(slicer(2))
    assert [s["slices"].image.shape[:2] for s in step.run(image=frame)] == [(576, 640), (576, 640)]
    with pytest.raises(ValueError, match="overlap_ratio_width must be >= 0 and < 1"):
        step.run(image=frame, overlap_ratio_width=1.0)


# ------------------------------------------------------------------------------------- stitch


def stitch(**fields: object) -> dict[str, object]:
    return {"type": "roboflow_core/detections_stitch@v1", "name": "stitch", "reference_image": "$inputs.image",
            "predictions": "$steps.detect.predictions", **fields}


# Boxes on the 768x576 frame, none wider than the 64 px overlap of 320 px tiles, so each lies whole in at
# least one tile; several lie in two or four tiles (the overlaps around x 256..320, y 256..320).
TRUTH = [(20, 30, 60, 90, 0.9, "person"), (262, 40, 300, 100, 0.8, "car"), (270, 270, 310, 310, 0.7, "dog"),
         (600, 500, 650, 560, 0.6, "person"), (500, 262, 540, 300, 0.5, "car")]


def detect_on_tile(tile: WorkflowImage) -> sv.Detections:
    """A synthetic detector: every true box lying whole in the tile, in the tile's pixels."""
    x0, y0 = tile.root_origin.offset_x, tile.root_origin.offset_y
    inside = [(x1 - x0, y1 - y0, x2 - x0, y2 - y0, c, n) for x1, y1, x2, y2, c, n in TRUTH
              if x1 >= x0 and y1 >= y0 and x2 <= x0 + tile.width and y2 <= y0 + tile.height]
    return found(tile, inside)


def tiles_of(frame: WorkflowImage, version: int = 1) -> list[WorkflowImage]:
    return [s["slices"] for s in step_of(slicer(version, slice_width=320, slice_height=320)).run(image=frame)]


def rows(detections: sv.Detections) -> list[tuple[float, ...]]:
    return sorted((*np.round(box, 3).tolist(), name) for box, name in
                  zip(detections.xyxy, detections.data[values.CLASS_NAME], strict=True))


@pytest.mark.parametrize("version", [1, 2])
def test_stitched_slices_match_the_whole_image(frame: WorkflowImage, version: int) -> None:
    per_tile = [detect_on_tile(tile) for tile in tiles_of(frame, version)]
    assert sum(len(d) for d in per_tile) > len(TRUTH)  # the overlaps saw some boxes twice or more
    stitched = step_of(stitch()).run(reference_image=frame, predictions=per_tile)["predictions"]
    assert rows(stitched) == rows(found(frame, TRUTH))
    assert set(stitched.data[values.PARENT_ID]) == {frame.parent_id}
    assert stitched.data[values.IMAGE_DIMENSIONS].tolist() == [[576, 768]] * len(TRUTH)
    assert not stitched.data[values.ROOT_PARENT_COORDINATES].any()
    assert stitched.metadata[values.IMAGE_SIZE] == (576, 768)


def test_stitch_without_filtering_keeps_duplicates(frame: WorkflowImage) -> None:
    per_tile = [detect_on_tile(tile) for tile in tiles_of(frame)]
    kept = step_of(stitch(overlap_filtering_strategy="none")).run(reference_image=frame, predictions=per_tile)
    assert len(kept["predictions"]) == sum(len(d) for d in per_tile)
    assert set(rows(kept["predictions"])) == set(rows(found(frame, TRUTH)))


def test_nmm_merges_what_nms_drops(frame: WorkflowImage) -> None:
    left, right = tiles_of(frame)[:2]  # x 0..320 and 256..576
    parts = [found(left, [(250, 10, 310, 70, 0.9, "car")]), found(right, [(4, 10, 74, 70, 0.6, "car")])]
    nms = step_of(stitch()).run(reference_image=frame, predictions=parts)["predictions"]
    assert np.allclose(nms.xyxy, [[250, 10, 310, 70]])
    nmm = step_of(stitch(overlap_filtering_strategy="nmm")).run(reference_image=frame, predictions=parts)
    assert np.allclose(nmm["predictions"].xyxy, [[250, 10, 330, 70]])


def test_stitch_onto_a_crop_uses_the_crop_pixels(frame: WorkflowImage) -> None:
    crop = frame.crop(100, 50, 700, 550, crop_id="crop")
    tiles = [s["slices"] for s in step_of(slicer(1, slice_width=320, slice_height=320)).run(image=crop)]
    parts = [found(tiles[-1], [(10, 20, 30, 40, 0.9, "dog")])]
    stitched = step_of(stitch()).run(reference_image=crop, predictions=parts)["predictions"]
    x0, y0 = tiles[-1].origin.offset_x, tiles[-1].origin.offset_y
    assert np.allclose(stitched.xyxy, [[x0 + 10, y0 + 20, x0 + 30, y0 + 40]])
    assert stitched.data[values.PARENT_ID].tolist() == ["crop"]
    assert np.allclose(to_root_coordinates(stitched).xyxy, [[x0 + 110, y0 + 70, x0 + 130, y0 + 90]])


def test_stitch_of_nothing_and_of_unplaced_detections(frame: WorkflowImage) -> None:
    step = step_of(stitch())
    nothing = step.run(reference_image=frame, predictions=[None, found(tiles_of(frame)[0], [])])["predictions"]
    assert len(nothing) == 0 and nothing.metadata[values.IMAGE_SIZE] == (576, 768)
    bare = sv.Detections(xyxy=np.array([[0, 0, 5, 5]], dtype=np.float32), confidence=np.array([0.5]),
                         class_id=np.array([0]))
    with pytest.raises(ValueError, match="parent coordinates"):
        step.run(reference_image=frame, predictions=[bare])


def test_sahi_with_the_real_detector_finds_the_whole_frame_objects(default_model: ModelSpec,
                                                                   frame: WorkflowImage) -> None:
    detector = Detector(default_model, intra_op_threads=1)
    params = DetectionParams(confidence=0.3, iou_threshold=0.45)

    def detect(image: WorkflowImage) -> sv.Detections:
        result = detector.detect(image.image, params)
        return detections_on(image, result.xyxy, result.confidence, result.class_id, default_model.class_names, "i")

    tiles = [s["slices"] for s in step_of(slicer(2, slice_width=384, slice_height=384)).run(image=frame)]
    stitched = step_of(stitch()).run(reference_image=frame, predictions=[detect(t) for t in tiles])["predictions"]
    whole = detect(frame)
    assert len(whole) >= 4 and len(stitched) >= len(whole)
    assert (stitched.xyxy >= 0).all() and (stitched.xyxy[:, 2] <= 768).all() and (stitched.xyxy[:, 3] <= 576).all()
    best = sv.box_iou_batch(whole.xyxy, stitched.xyxy).max(axis=1)
    assert (best >= 0.5).sum() >= len(whole) / 2, best  # in frame pixels: the same people, found again
    same_class = stitched.data[values.CLASS_NAME][:, None] == stitched.data[values.CLASS_NAME][None, :]
    overlaps = sv.box_iou_batch(stitched.xyxy, stitched.xyxy) * same_class - np.eye(len(stitched))
    assert overlaps.max() <= 0.3  # no duplicates left by the overlapping tiles


# ------------------------------------------------------------------------------------- through the executor


class TileModels:
    """A model runner for the published definitions: "true" boxes on slices, one "dog" inside every crop."""

    def detect(self, model_id: str, image: WorkflowImage, params: object) -> sv.Detections:
        if model_id == "vehicle-registration-plates-trudk/2":
            return found(image, [(5, 5, 15, 12, 0.9, "dog")])
        if image.root_origin.offset_x or image.root_origin.offset_y or image.width < 768:
            return detect_on_tile(image)
        return found(image, [row for row in TRUTH if row[5] == "car"])

    def classify(self, model_id: str, image: WorkflowImage, confidence: float) -> object:
        raise AssertionError("no classification here")


def executor(definition: dict[str, object], **parameters: object) -> WorkflowExecutor:
    plan = compile_workflow(definition, parameters=parameters)
    return WorkflowExecutor(plan, REGISTRY, BlockEnvironment(0, TileModels(), AtOnce()))


def centres(predictions: dict[str, list[dict[str, object]]]) -> list[tuple[object, ...]]:
    return sorted((p["x"], p["y"], p["width"], p["height"], p["class"]) for p in predictions["predictions"])


def test_published_sahi_runs_in_the_executor(frame: WorkflowImage) -> None:
    outputs, errors = executor(SAHI, overlap_filtering_strategy="nms").run(frame)
    assert errors == []
    assert centres(outputs["predictions"]) == sorted(
        ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, name) for x1, y1, x2, y2, _, name in TRUTH)


def test_published_crop_stitch_consensus_runs_in_the_executor(frame: WorkflowImage) -> None:
    outputs, errors = executor(CROP_AND_STITCH).run(frame)
    assert errors == []
    cars = [row for row in TRUTH if row[5] == "car"]
    plates = [(x1 + 10, y1 + 8.5, 10, 7, "dog") for x1, y1, *_ in cars]  # crop offset + (5..15, 5..12)
    assert centres(outputs["predictions"]) == sorted(
        [((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, "car") for x1, y1, x2, y2, *_ in cars] + plates)
