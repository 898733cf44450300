"""The classical CV measurement blocks on synthetic images whose answers are known: colours, camera focus,
template matching, SIFT, distances, sizes and nearest neighbours (each step compiled from its definition)."""

from typing import Any

import cv2
import numpy as np
import pytest
import supervision as sv

from services.core.workflows.compiler import compile_workflow
from services.worker.workflows.blocks import REGISTRY
from services.worker.workflows.serialization import serialise
from services.worker.workflows.values import WorkflowImage
from tests.worker.workflows.transformations_support import as_frame, definition, detector, environment
from tests.worker.workflows.video_steps import boxes, resolved

SIFT_STEP = {"type": "roboflow_core/sift@v1", "name": "sift", "image": "$inputs.image"}


class Runner:
    """One compiled step's block (after ``before`` steps, by default a detector called ``detect``), run with
    values for its selector fields."""

    def __init__(self, step: dict[str, Any], *before: dict[str, Any]) -> None:
        plan = compile_workflow(definition(*(before or (detector("detect"),)), step))
        self.step = plan.step(step["name"])
        self.block = REGISTRY[self.step.type](self.step, environment())

    def __call__(self, **values: Any) -> dict[str, Any]:
        outputs = self.block.run(**resolved(self.step, **values))
        assert isinstance(outputs, dict)
        return outputs


def run(block: str, *before: dict[str, Any], values: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return Runner({"type": f"roboflow_core/{block}", "name": "step", **fields}, *before)(**values)


def textured(seed: int = 0, size: tuple[int, int] = (240, 320)) -> np.ndarray:
    """Random filled rectangles and circles on grey: many corners and blobs for SIFT and matching."""
    random = np.random.default_rng(seed)
    pixels = np.full((*size, 3), 128, dtype=np.uint8)
    for _ in range(60):
        colour = tuple(int(c) for c in random.integers(0, 256, 3))
        x, y = int(random.integers(0, size[1])), int(random.integers(0, size[0]))
        if random.random() < 0.5:
            width, height = int(random.integers(5, 40)), int(random.integers(5, 40))
            cv2.rectangle(pixels, (x, y), (x + width, y + height), colour, -1)
        else:
            cv2.circle(pixels, (x, y), int(random.integers(3, 20)), colour, -1)
    return pixels


def noise(seed: int, size: tuple[int, int]) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


# ----------------------------------------------------------------------------------------------- colours


def two_colours() -> np.ndarray:
    """100 x 100: 70 % BGR (40, 200, 10) on top, 30 % blue below."""
    pixels = np.zeros((100, 100, 3), dtype=np.uint8)
    pixels[:70] = (40, 200, 10)
    pixels[70:] = (255, 0, 0)
    return pixels


@pytest.mark.parametrize("fields", [{}, {"target_size": 10, "color_clusters": 2}, {"max_iterations": 1}])
def test_the_dominant_colour_is_the_largest_patch_s_in_rgb(fields: dict[str, Any]) -> None:
    out = run("dominant_color@v1", values={"image": as_frame(two_colours())}, image="$inputs.image", **fields)
    assert out == {"rgb_color": (10, 200, 40)}


def test_the_dominant_colour_of_a_noisy_patch_is_its_mean_and_the_same_every_time() -> None:
    random = np.random.default_rng(3)
    pixels = np.clip(random.normal((60, 120, 180), 4, (80, 80, 3)), 0, 255).astype(np.uint8)
    pixels[:20] = (0, 0, 0)  # a quarter black
    first = run("dominant_color@v1", values={"image": as_frame(pixels)}, image="$inputs.image")["rgb_color"]
    again = run("dominant_color@v1", values={"image": as_frame(pixels)}, image="$inputs.image")["rgb_color"]
    assert first == again
    assert all(abs(a - b) <= 3 for a, b in zip(first, (180, 120, 60), strict=True)), first


def coloured_patches() -> np.ndarray:
    """Black 40 x 30 with a 6 x 5 patch of RGB (200, 100, 50) and a 2 x 2 patch of RGB (205, 95, 50)."""
    pixels = np.zeros((30, 40, 3), dtype=np.uint8)
    pixels[2:7, 3:9] = (50, 100, 200)
    pixels[20:22, 30:32] = (50, 95, 205)
    return pixels


@pytest.mark.parametrize(("colour", "tolerance", "count"), [
    ("#c86432", 10, 34), ("#c86432", 4, 30), ("(200, 100, 50)", 0, 30), ([205, 95, 50], 0, 4),
    ("#000", 0, 1200 - 34), ("#c86432", 255, 1200),
])
def test_pixels_of_a_colour_within_the_tolerance_are_counted(colour: Any, tolerance: int, count: int) -> None:
    out = run("pixel_color_count@v1", values={"image": as_frame(coloured_patches())}, image="$inputs.image",
              target_color=colour, tolerance=tolerance)
    assert out == {"matching_pixels_count": count}


def test_the_dominant_colour_feeds_the_pixel_count() -> None:
    dominant = {"type": "roboflow_core/dominant_color@v1", "name": "dominant", "image": "$inputs.image"}
    frame = as_frame(two_colours())
    colour = Runner(dominant)(image=frame)["rgb_color"]
    out = run("pixel_color_count@v1", dominant, values={"image": frame, "target_color": colour}, image="$inputs.image",
              target_color="$steps.dominant.rgb_color")
    assert out == {"matching_pixels_count": 7000}
    assert run("pixel_color_count@v1", values={"image": frame}, image="$inputs.image",
               target_color="#c86432")["matching_pixels_count"] == 0


# ------------------------------------------------------------------------------------------ camera focus


def sharp_and_blurred() -> tuple[np.ndarray, np.ndarray]:
    sharp = textured(1)
    return sharp, cv2.GaussianBlur(sharp, (9, 9), 3)


def brenner_by_hand(pixels: np.ndarray) -> float:
    """Brenner's measure written out: the larger of the steps two pixels right and two down (negatives and
    steps off the image counted as 0), squared, averaged."""
    gray = cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY).astype(np.int64)
    padded = np.pad(gray, ((0, 2), (0, 2)), mode="edge")
    right = padded[:-2, 2:] - gray
    down = padded[2:, :-2] - gray
    right[:, -2:] = 0
    down[-2:, :] = 0
    return float((np.maximum(np.maximum(right, down), 0) ** 2).mean())


def tenengrad_by_opencv(pixels: np.ndarray) -> np.ndarray:
    gray = cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY)
    gx, gy = cv2.Sobel(gray, cv2.CV_64F, 1, 0, ksize=3), cv2.Sobel(gray, cv2.CV_64F, 0, 1, ksize=3)
    return np.asarray(gx ** 2 + gy ** 2)


def test_camera_focus_v1_is_brenner_s_measure_and_a_sharp_picture_scores_higher() -> None:
    sharp, blurred = sharp_and_blurred()
    outputs = [run("camera_focus@v1", values={"image": as_frame(p)}, images="$inputs.image") for p in (sharp, blurred)]
    values = [o["focus_measure"] for o in outputs]
    assert values == pytest.approx([brenner_by_hand(sharp), brenner_by_hand(blurred)], rel=1e-12)
    assert values[0] > 5 * values[1] > 0
    frame = as_frame(sharp)
    image: WorkflowImage = run("camera_focus@v1", values={"image": frame}, image="$inputs.image")["image"]
    assert image.image.shape == sharp.shape and image.image.dtype == np.uint8
    assert (image.parent_id, image.origin, image.video) == (frame.parent_id, frame.origin, frame.video)
    body = image.image[60:]  # below the written value: the map itself, grey, its sharpest pixel 255
    assert np.array_equal(body[..., 0], body[..., 2]) and body.max() == 255


def test_a_flat_picture_has_no_focus_and_a_black_map_with_the_value_written() -> None:
    out = run("camera_focus@v1", values={"image": as_frame(np.full((60, 200, 3), 90, np.uint8))},
              image="$inputs.image")
    assert out["focus_measure"] == 0.0
    assert out["image"].image[40:].max() == 0 and out["image"].image[:40].max() == 255  # "Focus value: 0.00"


def test_camera_focus_v2_is_the_tenengrad_measure_overall_and_per_box() -> None:
    sharp, blurred = sharp_and_blurred()
    mixed = blurred.copy()
    mixed[:, :160] = sharp[:, :160]
    expected = tenengrad_by_opencv(mixed)
    detections = boxes([[0, 0, 160, 240], [160, 0, 320, 240], [10.7, 20.2, 50.9, 60.5], [400, 0, 450, 50]],
                       on=as_frame(mixed))
    out = run("camera_focus@v2", values={"image": as_frame(mixed), "detections": detections}, image="$inputs.image",
              detections="$steps.detect.predictions")
    assert out["focus_measure"] == pytest.approx(float(expected.mean()), rel=1e-5)
    sharp_half, blurred_half, small, outside = out["bbox_focus_measures"]
    assert sharp_half == pytest.approx(float(expected[:, :160].mean()), rel=1e-5)
    assert blurred_half == pytest.approx(float(expected[:, 160:].mean()), rel=1e-5)
    assert small == pytest.approx(float(expected[20:60, 10:50].mean()), rel=1e-5)  # truncated to whole pixels
    assert outside is None and sharp_half > 3 * blurred_half
    without = run("camera_focus@v2", values={"image": as_frame(mixed)}, image="$inputs.image")
    assert without["bbox_focus_measures"] == []


def focus_v2_image(pixels: np.ndarray, **aids: Any) -> np.ndarray:
    off = {"show_zebra_warnings": False, "grid_overlay": "None", "show_hud": False, "show_focus_peaking": False,
           "show_center_marker": False}
    image: WorkflowImage = run("camera_focus@v2", values={"image": as_frame(pixels)}, image="$inputs.image",
                               **{**off, **aids})["image"]
    assert image.image.shape == pixels.shape and image.image.dtype == np.uint8
    return image.image


def test_camera_focus_v2_without_aids_gives_its_input_image() -> None:
    frame = as_frame(textured())
    off = {"show_zebra_warnings": False, "grid_overlay": "None", "show_hud": False, "show_focus_peaking": False,
           "show_center_marker": False}
    assert run("camera_focus@v2", values={"image": frame}, image="$inputs.image", **off)["image"] is frame


def test_zebra_stripes_tint_the_under_and_over_exposed_stripes_only() -> None:
    pixels = np.zeros((32, 64, 3), dtype=np.uint8)
    pixels[:, 32:] = 255
    drawn = focus_v2_image(pixels, show_zebra_warnings=True)
    assert drawn[0, 0].tolist() == [127, 0, 0]  # dark, on a stripe ((x + y) // 8 even): half blue
    assert drawn[0, 8].tolist() == [0, 0, 0]  # between stripes
    assert drawn[0, 48].tolist() == [127, 127, 255]  # bright, on a stripe: half red
    assert drawn[0, 40].tolist() == [255, 255, 255]
    middle = np.full((32, 64, 3), 128, np.uint8)
    assert np.array_equal(focus_v2_image(middle, show_zebra_warnings=True), middle)


def test_focus_peaking_greens_the_sharp_edge_only() -> None:
    pixels = np.full((40, 40, 3), 100, dtype=np.uint8)
    pixels[:, 20:] = 200
    drawn = focus_v2_image(pixels, show_focus_peaking=True)
    assert drawn[10, 20].tolist() == [80, 233, 80]  # 200 * 0.4 + (0, 255, 0) * 0.6, truncated
    assert drawn[10, 19].tolist() == [40, 193, 40]
    assert drawn[10, 5].tolist() == [100, 100, 100] and drawn[10, 35].tolist() == [200, 200, 200]


def test_the_centre_cross_grid_and_hud_are_drawn_where_they_belong() -> None:
    pixels = np.zeros((90, 120, 3), dtype=np.uint8)
    cross = focus_v2_image(pixels, show_center_marker=True)
    assert cross[45, 60].tolist() == [255, 255, 255] and cross[45, 60 + 9].tolist() == [0, 0, 0]
    grid = focus_v2_image(pixels, grid_overlay="3x3")
    assert grid[10, 40].tolist() == grid[30, 10].tolist() == [128, 128, 128] and grid[10, 10].max() == 0
    big = np.zeros((720, 960, 3), dtype=np.uint8)
    hud = focus_v2_image(big, show_hud=True)
    assert hud[:150, :250].max() > 0 and hud[400:].max() == 0  # a panel top-left, nothing elsewhere


# ---------------------------------------------------------------------------------------- template matching


def test_a_pasted_template_is_found_where_it_was_pasted() -> None:
    template = noise(1, (15, 20))
    pixels = noise(2, (120, 160))
    pixels[30:45, 50:70] = template
    pixels[80:95, 100:120] = template
    frame = as_frame(pixels)
    out = run("template_matching@v1", values={"image": frame, "template": as_frame(template)},
              image="$inputs.image", template="$inputs.image")
    matches: sv.Detections = out["predictions"]
    assert out["number_of_matches"] == 2
    assert sorted(matches.xyxy.tolist()) == [[50, 30, 70, 45], [100, 80, 120, 95]]
    assert matches.confidence.tolist() == [1.0, 1.0] and matches.class_id.tolist() == [0, 0]
    assert matches.data["class_name"].tolist() == ["template_match"] * 2
    assert set(matches.data["parent_id"]) == {frame.parent_id}
    assert serialise(matches)["image"] == {"width": 160, "height": 120}


def test_matches_overlapping_are_reduced_by_nms_unless_it_is_off() -> None:
    flat = np.full((60, 80, 3), 50, np.uint8)
    flat[20:40, 30:50] = 200
    template = flat[15:45, 25:55].copy()  # the bright square with a dark margin: near matches 1 px off too
    values = {"image": as_frame(flat), "template": as_frame(template)}
    kept = run("template_matching@v1", values=values, image="$inputs.image", template="$inputs.image",
               matching_threshold=0.5)
    every = run("template_matching@v1", values=values, image="$inputs.image", template="$inputs.image",
                matching_threshold=0.5, apply_nms=False)
    assert every["number_of_matches"] > 5 * kept["number_of_matches"] > 0
    assert [25, 15, 55, 45] in every["predictions"].xyxy.tolist()
    overlaps = sv.box_iou_batch(kept["predictions"].xyxy, kept["predictions"].xyxy)
    assert overlaps[~np.eye(len(overlaps), dtype=bool)].max() <= 0.5  # no two kept boxes overlap by more


def test_no_match_gives_empty_predictions_with_the_image_size() -> None:
    out = run("template_matching@v1", values={"image": as_frame(noise(3, (50, 60))), "template": as_frame(
        noise(4, (10, 10)))}, image="$inputs.image", template="$inputs.image")
    assert out["number_of_matches"] == 0 and len(out["predictions"]) == 0
    assert serialise(out["predictions"]) == {"image": {"width": 60, "height": 50}, "predictions": []}
    with pytest.raises(ValueError, match=r"template \(20 x 20\) is larger than the image"):
        run("template_matching@v1", values={"image": as_frame(noise(3, (10, 10))), "template": as_frame(
            noise(4, (20, 20)))}, image="$inputs.image", template="$inputs.image")


# ------------------------------------------------------------------------------------------------------ SIFT


def shifted(pixels: np.ndarray, dx: int = 15, dy: int = 10) -> np.ndarray:
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(pixels, matrix, (pixels.shape[1], pixels.shape[0]), borderValue=(128, 128, 128))


def test_sift_gives_keypoints_descriptors_and_the_keypoints_drawn_on_grey() -> None:
    pixels = textured()
    before = pixels.copy()
    out = run("sift@v1", values={"image": as_frame(pixels)}, image="$inputs.image")
    expected, _ = cv2.SIFT.create().detectAndCompute(cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY), None)
    descriptors = out["descriptors"]
    assert descriptors.dtype == np.float32 and descriptors.shape == (len(expected), 128) and len(expected) > 50
    first = out["keypoints"][0]
    assert set(first) == {"pt", "size", "angle", "response", "octave", "class_id"}
    assert first["pt"] == pytest.approx(expected[0].pt) and first["size"] == pytest.approx(expected[0].size)
    drawn = out["image"].image
    assert drawn.shape == pixels.shape and np.array_equal(pixels, before)  # the input is left alone
    gray = cv2.cvtColor(cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    assert 0 < np.mean(np.any(drawn != gray, axis=2)) < 0.5  # grey, with circles


def test_sift_of_a_blank_image_gives_no_keypoints_and_an_empty_descriptor_array() -> None:
    out = run("sift@v1", values={"image": as_frame(np.zeros((50, 50, 3), np.uint8))}, image="$inputs.image")
    assert out["keypoints"] == [] and out["descriptors"].shape == (0, 128)


def descriptors_of(pixels: np.ndarray) -> np.ndarray:
    descriptors: np.ndarray = Runner(SIFT_STEP)(image=as_frame(pixels))["descriptors"]
    return descriptors


def test_sift_comparison_v1_matches_a_shifted_copy_and_not_noise() -> None:
    pixels = textured()
    original, moved = descriptors_of(pixels), descriptors_of(shifted(pixels))
    other = descriptors_of(noise(5, (240, 320)))
    step = {"type": "roboflow_core/sift_comparison@v1", "name": "compare", "descriptor_1": "$steps.sift.descriptors",
            "descriptor_2": "$steps.sift.descriptors"}
    compare = Runner(step, SIFT_STEP)
    same = compare(descriptor_1=original, descriptor_2=moved)
    assert same["images_match"] is True and same["good_matches_count"] >= 0.5 * len(original)
    different = compare(descriptor_1=original, descriptor_2=other)
    assert different["images_match"] is False and different["good_matches_count"] < 10
    assert compare(descriptor_1=original, descriptor_2=np.zeros((0, 128), np.float32)) == {
        "good_matches_count": 0, "images_match": False}


def test_sift_comparison_v2_takes_images_draws_the_matches_and_takes_descriptors_too() -> None:
    pixels = textured()
    first, second = as_frame(pixels), as_frame(shifted(pixels), number=2)
    step = {"type": "roboflow_core/sift_comparison@v2", "name": "compare", "input_1": "$inputs.image",
            "input_2": "$inputs.image", "matcher": "BFMatcher", "visualize": True}
    out = Runner(step)(input_1=first, input_2=second)
    assert out["images_match"] is True and out["good_matches_count"] >= 50
    assert len(out["keypoints_1"]) == len(out["descriptors_1"]) and out["descriptors_2"].shape[1] == 128
    assert out["visualization_1"].image.shape == pixels.shape and out["visualization_2"].video == second.video
    matches: WorkflowImage = out["visualization_matches"]
    assert matches.image.shape == (240, 640, 3) and matches.parent_id == first.parent_id
    step = {**step, "input_2": "$steps.sift.descriptors", "matcher": "FlannBasedMatcher"}
    from_descriptors = Runner(step, SIFT_STEP)(input_1=first, input_2=descriptors_of(noise(5, (240, 320))))
    assert from_descriptors["images_match"] is False and from_descriptors["keypoints_2"] is None
    assert from_descriptors["visualization_2"] is None and from_descriptors["visualization_matches"] is None


# ------------------------------------------------------------------------------------------------ distances


def objects() -> sv.Detections:
    """A car and a dog 60 px apart across (overlapping down), a 20 x 40 px reference (2 x 4 cm: 10 px/cm)."""
    return boxes([[10, 10, 50, 50], [110.4, 20, 150, 60], [200, 200, 220, 240]], confidence=[0.9, 0.8, 0.7],
                 class_names=["car", "dog", "reference-object"])


def distance(predictions: sv.Detections, **fields: Any) -> dict[str, Any]:
    return run("distance_measurement@v1", values={"predictions": predictions}, predictions="$steps.detect.predictions",
               **{"object_1_class_name": "car", "object_2_class_name": "dog", "reference_axis": "horizontal",
                  "calibration_method": "reference object", "reference_width": 2, "reference_height": 4, **fields})


def test_the_gap_between_two_boxes_in_pixels_and_centimetres() -> None:
    assert distance(objects()) == {"distance_cm": 6.0, "distance_pixel": 60}
    assert distance(objects(), object_1_class_name="dog", object_2_class_name="car") == {
        "distance_cm": 6.0, "distance_pixel": 60}
    assert distance(objects(), calibration_method="pixel to centimeter", pixel_ratio=20) == {
        "distance_cm": 3.0, "distance_pixel": 60}
    assert distance(objects(), reference_width=4, reference_height=8) == {"distance_cm": 12.0, "distance_pixel": 60}
    assert distance(objects(), reference_axis="vertical") == {"distance_cm": 0, "distance_pixel": 0}  # side by side


def test_overlapping_or_touching_boxes_are_0_apart() -> None:
    touching = boxes([[10, 10, 50, 50], [50, 60, 90, 100]], class_names=["car", "dog"])
    assert distance(touching, calibration_method="pixel to centimeter") == {"distance_cm": 0, "distance_pixel": 0}
    below = boxes([[10, 10, 50, 50], [60, 90, 90, 100]], class_names=["car", "dog"])
    assert distance(below, reference_axis="vertical", calibration_method="pixel to centimeter") == {
        "distance_cm": 0.4, "distance_pixel": 40}


def test_two_people_are_measured_with_their_two_most_confident_boxes() -> None:
    people = boxes([[0, 0, 10, 10], [100, 0, 110, 10], [30, 0, 40, 10]], confidence=[0.9, 0.3, 0.8])
    assert distance(people, object_1_class_name="person", object_2_class_name="person",
                    calibration_method="pixel to centimeter", pixel_ratio=10) == {"distance_cm": 2.0,
                                                                                  "distance_pixel": 20}


def test_a_missing_object_or_reference_fails_the_step() -> None:
    with pytest.raises(ValueError, match="class 'car' or 'cat' not found"):
        distance(objects(), object_2_class_name="cat")
    with pytest.raises(ValueError, match="reference class 'ruler' not found"):
        distance(objects(), reference_object_class_name="ruler")


# ---------------------------------------------------------------------------------------------------- sizes


def sizes(objects_: sv.Detections, reference: Any, dimensions: Any) -> Any:
    selector = "$steps.detect.predictions"
    values = {"object_predictions": objects_}
    if isinstance(reference, sv.Detections):
        values["reference_predictions"] = reference
    return run("size_measurement@v1", values=values, object_predictions=selector,
               reference_predictions=selector if isinstance(reference, sv.Detections) else reference,
               reference_dimensions=dimensions)["dimensions"]


def test_sizes_in_the_reference_object_s_units() -> None:
    things = boxes([[0, 0, 100, 40], [10, 10, 30, 90]])
    reference = boxes([[0, 0, 40, 40], [200, 200, 250, 225]], confidence=[0.5, 0.9])  # the 50 x 25 one is surer
    expected = [{"width": 10.0, "height": 4.0, "longer": 10.0, "shorter": 4.0},
                {"width": 2.0, "height": 8.0, "longer": 8.0, "shorter": 2.0}]
    assert sizes(things, reference, "5,2.5") == expected
    assert sizes(things, reference, [5, 2.5]) == expected
    polygon = [[0, 0], [50, 0], [50, 25], [0, 25]]
    assert sizes(things, polygon, [5, 2.5]) == [pytest.approx(size) for size in expected]
    assert sizes(things, boxes([]), "5,2.5") is None
    assert sizes(things, [[0, 0], [50, 0], [100, 0]], "5,2.5") is None  # a polygon with no area


def test_a_masked_object_is_measured_along_its_own_sides() -> None:
    mask = np.zeros((200, 200), dtype=np.uint8)
    corners = cv2.boxPoints(((100.0, 100.0), (80.0, 30.0), 25.0))
    cv2.fillPoly(mask, [np.round(corners).astype(np.int32)], 1)
    masked = sv.Detections(xyxy=np.array([[50, 60, 150, 140]], np.float32), mask=mask[None].astype(bool),
                           confidence=np.array([0.9], np.float32), class_id=np.array([0]))
    [size] = sizes(masked, boxes([[0, 0, 10, 10]]), "1,1")  # 10 px per unit
    assert size["width"] == pytest.approx(8.0, abs=0.3) and size["height"] == pytest.approx(3.0, abs=0.3)


# --------------------------------------------------------------------------------------- nearest neighbours


def neighbours(query: sv.Detections, target: sv.Detections, **fields: Any) -> dict[str, Any]:
    return run("detections_nearest_neighbor@v1", values={"query_predictions": query, "target_predictions": target},
               query_predictions="$steps.detect.predictions", target_predictions="$steps.detect.predictions", **fields)


def centred(*centres: tuple[float, float]) -> sv.Detections:
    return boxes([[x - 5, y - 5, x + 5, y + 5] for x, y in centres], confidence=[0.9 - 0.1 * i for i in
                                                                                 range(len(centres))])


def test_each_detection_s_nearest_other_in_the_same_set() -> None:
    people = centred((0, 0), (30, 40), (130, 40))
    out = neighbours(people, people)
    measured = out["query_predictions"]
    assert measured.data["nearest_target_distance"].tolist() == [50.0, 50.0, 100.0]
    ids = people.data["detection_id"]
    assert out["matched_query_detections"].data["detection_id"].tolist() == list(ids)
    assert out["matched_target_detections"].data["detection_id"].tolist() == [ids[1], ids[0], ids[1]]
    assert "nearest_target_distance" not in people.data  # the input is left alone
    assert [p["nearest_target_distance"] for p in serialise(measured)["predictions"]] == [50.0, 50.0, 100.0]


def test_far_targets_are_left_out_and_near_ties_all_match() -> None:
    query = centred((0, 0), (500, 500))
    targets = centred((10, 0), (0, 10.5), (40, 0))
    out = neighbours(query, targets, max_distance=20)
    assert out["query_predictions"].data["nearest_target_distance"].tolist() == [10.0, None]
    assert len(out["matched_query_detections"]) == 2  # (0, 0) twice: 10 and 10.5 px are within 1 px
    assert out["matched_target_detections"].xyxy[:, :2].tolist() == [[5, -5], [-5, 5.5]]
    corners = neighbours(query, targets, query_point="TOP_LEFT", target_point="BOTTOM_RIGHT")
    assert corners["query_predictions"].data["nearest_target_distance"].tolist() == pytest.approx(
        [float(np.hypot(20, 10)), float(np.hypot(450, 490))])


def test_keypoint_anchors_need_keypoints() -> None:
    people = centred((0, 0), (10, 0))
    with pytest.raises(ValueError, match="query_keypoint_name must be given"):
        neighbours(people, people, query_point="KEYPOINT")
    with pytest.raises(ValueError, match="KEYPOINT anchors need keypoint detection predictions"):
        neighbours(people, people, query_point="KEYPOINT", query_keypoint_name="nose")
    people.data["keypoints_xy"] = np.array([[[1, 1], [2, 2]], [[20, 1], [30, 2]]], dtype=np.float32)
    people.data["keypoints_class_name"] = np.array([["nose", "eye"], ["eye", "nose"]], dtype=object)
    out = neighbours(people, people, query_point="KEYPOINT", query_keypoint_name="nose", target_point="KEYPOINT",
                     target_keypoint_name="nose")
    assert out["query_predictions"].data["nearest_target_distance"].tolist() == pytest.approx([np.hypot(29, 1)] * 2)
