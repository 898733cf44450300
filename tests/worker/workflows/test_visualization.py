"""The detections visualizations on a real frame: each draws exactly what supervision's annotator
configured the same way draws, only around the boxes, on a copy unless copy_image is false."""

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import supervision as sv

from services.core.workflows.catalogue.visualization import BLOCKS as SPECS
from services.worker.workflows.blocks import REGISTRY
from services.worker.workflows.blocks.visualization import BLOCKS as VISUALIZATIONS
from tests.worker.workflows.visualization_support import (
    BOXES,
    Step,
    changed,
    detections,
    inside,
    workflow_image,
)

PALETTE, CLASS = sv.ColorPalette.DEFAULT, sv.ColorLookup.CLASS
DRAWN_ABOVE = 360  # every block here draws above this row for BOXES (the lowest box ends at 305)


@pytest.fixture
def frame(video_frame: Callable[[str, int], np.ndarray]) -> np.ndarray:
    return video_frame("vtest.avi", 10)


def _masked(found: sv.Detections, shape: tuple[int, ...]) -> sv.Detections:
    """The detections with elliptic masks inside their boxes (what a segmentation model gives)."""
    masks = np.zeros((len(found), *shape[:2]), dtype=bool)
    rows, columns = np.ogrid[: shape[0], : shape[1]]
    for mask, (x1, y1, x2, y2) in zip(masks, found.xyxy.tolist(), strict=True):
        cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
        mask[((columns - cx) / rx) ** 2 + ((rows - cy) / ry) ** 2 <= 1] = True
    return replace(found, mask=masks)


# (block type, its fields, supervision's annotator configured alike, margin of the drawing around the boxes)
CASES: list[tuple[str, dict[str, Any], Callable[[], Any], int | None]] = [
    ("roboflow_core/bounding_box_visualization@v1", {},
     lambda: sv.BoxAnnotator(color=PALETTE, color_lookup=CLASS, thickness=2), 2),
    ("BoundingBoxVisualization", {"thickness": 3, "roundness": 0.5},
     lambda: sv.RoundBoxAnnotator(color=PALETTE, color_lookup=CLASS, thickness=3, roundness=0.5), 3),
    ("roboflow_core/corner_visualization@v1", {},
     lambda: sv.BoxCornerAnnotator(color=PALETTE, color_lookup=CLASS, thickness=4, corner_length=15), 4),
    ("roboflow_core/dot_visualization@v1", {},
     lambda: sv.DotAnnotator(color=PALETTE, color_lookup=CLASS, position=sv.Position.CENTER, radius=4), 0),
    ("roboflow_core/color_visualization@v1", {},
     lambda: sv.ColorAnnotator(color=PALETTE, color_lookup=CLASS, opacity=0.5), 0),
    ("roboflow_core/blur_visualization@v1", {}, lambda: sv.BlurAnnotator(kernel_size=15), 0),
    ("PixelateVisualization", {"pixel_size": 8}, lambda: sv.PixelateAnnotator(pixel_size=8), 0),
    ("roboflow_core/ellipse_visualization@v1", {},
     lambda: sv.EllipseAnnotator(color=PALETTE, color_lookup=CLASS, thickness=2, start_angle=-45, end_angle=235),
     None),
    ("roboflow_core/circle_visualization@v1", {},
     lambda: sv.CircleAnnotator(color=PALETTE, color_lookup=CLASS, thickness=2), None),
    ("roboflow_core/triangle_visualization@v1", {},
     lambda: sv.TriangleAnnotator(color=PALETTE, color_lookup=CLASS, position=sv.Position.TOP_CENTER, base=10,
                                  height=10), None),
    ("roboflow_core/crop_visualization@v1", {},
     lambda: sv.CropAnnotator(position=sv.Position.TOP_CENTER, scale_factor=2.0, border_color=PALETTE,
                              border_thickness=2, border_color_lookup=CLASS), None),
]


@pytest.mark.parametrize(("block_type", "fields", "expected", "margin"), CASES, ids=[c[0] for c in CASES])
def test_draws_what_supervision_draws_around_the_boxes_only(
    frame: np.ndarray, block_type: str, fields: dict[str, Any], expected: Callable[[], Any], margin: int | None
) -> None:
    image = workflow_image(frame)
    original = frame.copy()
    found = detections(image)
    drawn = Step(block_type, **fields)(image=image, predictions=found)

    np.testing.assert_array_equal(drawn.image, expected().annotate(scene=frame.copy(), detections=found))
    np.testing.assert_array_equal(frame, original)  # copy_image: the input is left as it was
    difference = changed(original, drawn.image)
    for box in BOXES:  # something at each box
        assert (difference & inside(box[None], frame.shape, 100 if margin is None else margin)).sum() > 20
    assert not difference[DRAWN_ABOVE:].any()
    if margin is not None:
        assert not (difference & ~inside(BOXES, frame.shape, margin)).any()


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_halo_glows_around_masks_and_around_boxes_without_masks(frame: np.ndarray, version: str) -> None:
    image = workflow_image(frame)
    # Halo's manifest takes segmentation predictions only; a wildcard selector feeds it here.
    step = Step(f"roboflow_core/halo_visualization@{version}", predictions="$steps.detect.*")
    expected = sv.HaloAnnotator(color=PALETTE, color_lookup=CLASS, opacity=0.8, kernel_size=40)

    masked = _masked(detections(image), frame.shape)
    drawn = step(image=image, predictions=masked)
    np.testing.assert_array_equal(drawn.image, expected.annotate(scene=frame.copy(), detections=masked))

    boxes_only = detections(image)
    drawn = step(image=image, predictions=boxes_only)
    boxes_as_masks = replace(boxes_only, mask=_box_masks(frame))
    np.testing.assert_array_equal(drawn.image, expected.annotate(scene=frame.copy(), detections=boxes_as_masks))
    difference = changed(frame, drawn.image)
    assert difference.sum() > 500
    assert not (difference & _box_masks(frame).any(axis=0)).any()  # around the boxes, not on them
    assert not (difference & ~inside(BOXES, frame.shape, 20)).any()  # the blur kernel is 40 wide


def _box_masks(frame: np.ndarray) -> np.ndarray:
    masks = np.zeros((len(BOXES), *frame.shape[:2]), dtype=bool)
    for mask, (x1, y1, x2, y2) in zip(masks, BOXES.astype(int).tolist(), strict=True):
        mask[y1:y2, x1:x2] = True
    return masks


def test_label_writes_the_text_option_on_bands_of_the_class_colour(frame: np.ndarray) -> None:
    image = workflow_image(frame)
    found = detections(image)
    drawn = Step("roboflow_core/label_visualization@v1", text="Class and Confidence")(image=image, predictions=found)
    expected = sv.LabelAnnotator(color=PALETTE, color_lookup=CLASS, text_position=sv.Position.TOP_LEFT,
                                 text_color=sv.Color.WHITE, text_scale=1.0, text_thickness=1, text_padding=10)
    assert found.confidence is not None
    labels = [f"{name} {confidence:.2f}" for name, confidence in zip(found.data["class_name"],
                                                                      found.confidence.tolist(), strict=True)]
    np.testing.assert_array_equal(drawn.image, expected.annotate(frame.copy(), found, labels=labels))
    assert not changed(frame, drawn.image)[DRAWN_ABOVE:].any()


def test_label_v2_automatic_size_scales_the_text_with_the_image(frame: np.ndarray) -> None:
    image = workflow_image(frame)
    found = detections(image)
    drawn = Step("roboflow_core/label_visualization@v2", text_size_mode="Automatic", text_scale=1.5)(
        image=image, predictions=found)
    # 1.5 at 1080p; the frame's shorter side is 576 pixels.
    expected = sv.LabelAnnotator(color=PALETTE, color_lookup=CLASS, text_scale=1.5 * 576 / 1080)
    labels = list(found.data["class_name"])
    np.testing.assert_array_equal(drawn.image, expected.annotate(frame.copy(), found, labels=labels))
    manual = Step("roboflow_core/label_visualization@v2", text_scale=1.5)(image=image, predictions=found)
    assert not np.array_equal(manual.image, drawn.image)


def test_copy_image_false_draws_on_the_input_itself(frame: np.ndarray) -> None:
    image = workflow_image(frame)
    found = detections(image)
    copied = Step("roboflow_core/bounding_box_visualization@v1")(image=image, predictions=found)
    assert not np.shares_memory(copied.image, image.image) and not changed(frame, image.image).any()

    original = frame.copy()
    in_place = Step("roboflow_core/bounding_box_visualization@v1", copy_image=False)(image=image, predictions=found)
    assert in_place.image is image.image  # the reference's warning: readers of the input see the boxes
    np.testing.assert_array_equal(in_place.image, copied.image)
    assert changed(original, frame).any()


def test_the_output_keeps_the_input_lineage(frame: np.ndarray) -> None:
    image = workflow_image(frame, frame_number=7)
    crop = image.crop(100, 50, 500, 400)
    drawn = Step("roboflow_core/dot_visualization@v1")(image=crop, predictions=detections(crop, BOXES[:2] - 60))
    assert (drawn.parent_id, drawn.origin, drawn.root_origin, drawn.video) == (
        crop.parent_id, crop.origin, crop.root_origin, crop.video)
    assert drawn.image.shape == crop.image.shape


# background_color paints all the image when there is no detection; classification_label draws classifications.
@pytest.mark.parametrize("spec", [spec for spec in SPECS if spec.field("predictions") is not None
                                  and spec.name not in ("roboflow_core/background_color_visualization@v1",
                                                        "roboflow_core/classification_label_visualization@v1")],
                         ids=lambda spec: spec.name)
def test_no_detections_leave_the_image_as_it_was(frame: np.ndarray, spec: Any) -> None:
    image = workflow_image(frame)
    fields: dict[str, Any] = {"predictions": "$steps.detect.*"} if "halo" in spec.name else {}
    drawn = Step(spec.name, **fields)(image=image, predictions=detections(image, BOXES[:0], tracker_ids=[]))
    np.testing.assert_array_equal(drawn.image, frame)
    assert drawn.image is not image.image


# ----------------------------------------------------------------------------- colours


def test_custom_colours_by_class(frame: np.ndarray) -> None:
    image = workflow_image(frame)
    found = detections(image)
    drawn = Step("roboflow_core/bounding_box_visualization@v1", color_palette="CUSTOM",
                 custom_colors=["#FF0000", "rgb(0, 255, 0)", "bgr(255, 0, 0)"])(image=image, predictions=found)
    palette = sv.ColorPalette([sv.Color(255, 0, 0), sv.Color(0, 255, 0), sv.Color(0, 0, 255)])
    expected = sv.BoxAnnotator(color=palette, color_lookup=CLASS, thickness=2)
    np.testing.assert_array_equal(drawn.image, expected.annotate(frame.copy(), found))
    assert found.class_id is not None
    for (x1, y1, _, _), class_id in zip(BOXES.astype(int).tolist(), found.class_id.tolist(), strict=True):
        assert tuple(drawn.image[y1 + 20, x1]) == palette.by_idx(class_id).as_bgr()


@pytest.mark.parametrize(("name", "palette"), [
    ("Matplotlib Viridis", lambda: sv.ColorPalette.from_matplotlib("viridis", 5)),
    ("Matplotlib Set1", lambda: sv.ColorPalette.from_matplotlib("Set1", 5)),
    ("ROBOFLOW", lambda: sv.ColorPalette.ROBOFLOW),
])
def test_palettes_by_index(frame: np.ndarray, name: str, palette: Callable[[], sv.ColorPalette]) -> None:
    image = workflow_image(frame)
    found = detections(image)
    drawn = Step("roboflow_core/corner_visualization@v1", color_palette=name, palette_size=5,
                 color_axis="INDEX")(image=image, predictions=found)
    expected = sv.BoxCornerAnnotator(color=palette(), color_lookup=sv.ColorLookup.INDEX, thickness=4)
    np.testing.assert_array_equal(drawn.image, expected.annotate(frame.copy(), found))


def test_track_colours_need_tracker_ids(frame: np.ndarray) -> None:
    image = workflow_image(frame)
    step = Step("roboflow_core/bounding_box_visualization@v1", color_axis="TRACK")
    with pytest.raises(ValueError, match="TRACK needs tracked predictions"):
        step(image=image, predictions=detections(image))
    tracked = detections(image, tracker_ids=[7] * 10)
    drawn = step(image=image, predictions=tracked)  # one track: one colour for every box
    expected = sv.BoxAnnotator(color=PALETTE, color_lookup=sv.ColorLookup.TRACK, thickness=2)
    np.testing.assert_array_equal(drawn.image, expected.annotate(frame.copy(), tracked))


def test_a_bad_colour_from_a_selector_fails_the_step_with_its_formats(frame: np.ndarray) -> None:
    image = workflow_image(frame)
    step = Step("roboflow_core/label_visualization@v1")
    with pytest.raises(ValueError, match=r"invalid colour 'pink': expected #RRGGBB, rgb\(R, G, B\)"):
        step(image=image, predictions=detections(image), text_color="pink")
    with pytest.raises(ValueError, match="unknown Matplotlib palette 'Nope'"):
        step(image=image, predictions=detections(image), color_palette="Matplotlib Nope")
    with pytest.raises(ValueError, match="CUSTOM needs at least one colour"):
        step(image=image, predictions=detections(image), color_palette="CUSTOM")


def test_center_of_mass_without_masks_is_the_box_centre(frame: np.ndarray) -> None:
    image = workflow_image(frame)
    found = detections(image)
    of_mass = Step("roboflow_core/dot_visualization@v1", position="CENTER_OF_MASS")(image=image, predictions=found)
    centre = Step("roboflow_core/dot_visualization@v1", position="CENTER")(image=image, predictions=found)
    np.testing.assert_array_equal(of_mass.image, centre.image)


def test_every_catalogue_entry_has_an_implementation() -> None:
    assert all(spec.name in REGISTRY for spec in SPECS)
    assert set(VISUALIZATIONS) == {spec.name for spec in SPECS}


def test_an_annotator_is_built_once_per_configuration(frame: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[int] = []
    original = sv.BoxAnnotator.__init__

    def counting(self: sv.BoxAnnotator, *args: Any, **kwargs: Any) -> None:
        built.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(sv.BoxAnnotator, "__init__", counting)
    image = workflow_image(frame)
    step = Step("roboflow_core/bounding_box_visualization@v1")
    for _ in range(5):
        step(image=image, predictions=detections(image))
    assert len(built) == 1
    step(image=image, predictions=detections(image), thickness=5)  # a selector-fed option changed
    assert len(built) == 2
