"""background_color, classification_label, grid and text_display on a real frame: where each draws and
where it must not, copy_image, and the run-time values they refuse."""

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import pytest
import supervision as sv

from services.core.workflows.compiler import compile_workflow
from services.worker.workflows.blocks import REGISTRY
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.executor import WorkflowExecutor
from services.worker.workflows.values import Classification, WorkflowImage
from tests.worker.workflows.visualization_support import (
    BOXES,
    InlineBackground,
    NoModels,
    Step,
    changed,
    detections,
    workflow_image,
)

BACKGROUND = "roboflow_core/background_color_visualization@v1"
CLASSIFICATION_LABEL = "roboflow_core/classification_label_visualization@v1"
GRID = "roboflow_core/grid_visualization@v1"
TEXT = "roboflow_core/text_display@v1"
MAGENTA = (255, 0, 255)  # BGR
HEIGHT, WIDTH = 576, 768
FONT = cv2.FONT_HERSHEY_SIMPLEX


@pytest.fixture
def frame(video_frame: Callable[[str, int], np.ndarray]) -> np.ndarray:
    return video_frame("vtest.avi", 10)


def _in_boxes(boxes: np.ndarray) -> np.ndarray:
    area = np.zeros((HEIGHT, WIDTH), dtype=bool)
    for x1, y1, x2, y2 in boxes.astype(int).tolist():
        area[y1:y2, x1:x2] = True
    return area


def _bounds(area: np.ndarray) -> tuple[int, int, int, int]:
    """The smallest box holding ``area``'s pixels: x_min, y_min, x_max, y_max (inclusive)."""
    rows, columns = np.nonzero(area)
    return int(columns.min()), int(rows.min()), int(columns.max()), int(rows.max())


# ----------------------------------------------------------------------------- background_color


def test_background_color_blends_everything_outside_the_boxes(frame: np.ndarray) -> None:
    image = workflow_image(frame)
    boxes = BOXES[:3]
    drawn = Step(BACKGROUND, color="rgb(255, 0, 255)", opacity=0.6)(image=image, predictions=detections(image, boxes))
    kept = _in_boxes(boxes)
    np.testing.assert_array_equal(drawn.image[kept], frame[kept])
    painted = cv2.addWeighted(frame, 0.4, np.full_like(frame, MAGENTA), 0.6, 0.0)
    np.testing.assert_array_equal(drawn.image[~kept], painted[~kept])
    assert changed(frame, drawn.image)[~kept].mean() > 0.99
    assert not changed(frame, image.image).any()  # copy_image (default): the input is as it was


def test_background_color_defaults_to_black_at_half_opacity_and_paints_all_without_detections(
        frame: np.ndarray) -> None:
    image = workflow_image(frame)
    drawn = Step(BACKGROUND)(image=image, predictions=detections(image, BOXES[:0]))
    np.testing.assert_array_equal(drawn.image, cv2.addWeighted(frame, 0.5, np.zeros_like(frame), 0.5, 0.0))


def test_background_color_without_copy_draws_on_the_input(frame: np.ndarray) -> None:
    image = workflow_image(frame.copy())
    drawn = Step(BACKGROUND, copy_image=False, opacity=1.0)(image=image, predictions=detections(image, BOXES[:2]))
    assert drawn.image is image.image
    assert (image.image[5, 5] == 0).all() and (image.image[~_in_boxes(BOXES[:2])] == 0).all()


@pytest.mark.parametrize(("fields", "expected"), [
    ({"opacity": 1.5}, "opacity must be a number between 0 and 1"),
    ({"color": "purple-ish"}, "invalid colour 'purple-ish'"),
])
def test_background_color_refuses_bad_run_time_values(frame: np.ndarray, fields: dict[str, Any], expected: str
                                                     ) -> None:
    image = workflow_image(frame)
    step = Step(BACKGROUND)
    with pytest.raises(ValueError, match=expected):
        step(image=image, predictions=detections(image), **fields)


# ----------------------------------------------------------------------------- classification_label


def _classification(image: WorkflowImage, confidences: tuple[float, ...] = (0.1, 0.7, 0.2)) -> Classification:
    return Classification(image, ("red", "green", "blue")[:len(confidences)], np.array(confidences, np.float32),
                          "inference-1")


def _label_size(text: str, scale: float = 1.0, thickness: int = 1, padding: int = 10) -> tuple[int, int]:
    (width, height), _ = cv2.getTextSize(text, FONT, scale, thickness)
    return width + 2 * padding, height + 2 * padding


def test_classification_label_draws_the_top_class_at_the_top_left(frame: np.ndarray) -> None:
    image = workflow_image(frame)
    drawn = Step(CLASSIFICATION_LABEL)(image=image, predictions=_classification(image))
    x1, y1, x2, y2 = _bounds(changed(frame, drawn.image))
    width, height = _label_size("green")
    line = 20 + 2 * 10 + 2 * 1 + 5  # its bottom: a line (the reference's estimate) below the top edge
    assert (x1, y2) == (0, line) and abs(x2 + 1 - width) <= 1 and abs(y1 - (line - height)) <= 1, (x1, y1, x2, y2)
    band = drawn.image[y1 + 2, x1 + 2]  # inside the padding: the class's colour (class 1, the CLASS axis)
    assert tuple(band.tolist()) == sv.ColorPalette.DEFAULT.by_idx(1).as_bgr()
    assert (drawn.image[y1:y2, x1:x2] > 200).all(axis=2).any()  # white text
    assert not changed(frame, image.image).any()


def test_classification_label_shows_the_top_class_only_and_its_confidence_when_asked(frame: np.ndarray) -> None:
    image = workflow_image(frame)
    step = Step(CLASSIFICATION_LABEL)
    green = step(image=image, predictions=_classification(image)).image
    also_green = step(image=image, predictions=_classification(image, (0.3, 0.4, 0.3))).image
    blue = step(image=image, predictions=_classification(image, (0.3, 0.1, 0.6))).image
    np.testing.assert_array_equal(green, also_green)
    assert changed(green, blue).any()
    both = Step(CLASSIFICATION_LABEL, text="Class and Confidence")(image=image, predictions=_classification(image))
    x1, _, x2, _ = _bounds(changed(frame, both.image))
    assert abs(x2 + 1 - x1 - _label_size("green 0.70")[0]) <= 1
    confidence = Step(CLASSIFICATION_LABEL, text="Confidence")(image=image, predictions=_classification(image))
    x1, _, x2, _ = _bounds(changed(frame, confidence.image))
    assert abs(x2 + 1 - x1 - _label_size("0.70")[0]) <= 1


@pytest.mark.parametrize("position", ["TOP_LEFT", "TOP_CENTER", "TOP_RIGHT", "CENTER_LEFT", "CENTER", "CENTER_RIGHT",
                                      "BOTTOM_LEFT", "BOTTOM_CENTER", "BOTTOM_RIGHT"])
def test_classification_label_positions_are_the_image_s_edges_and_middle(frame: np.ndarray, position: str) -> None:
    image = workflow_image(frame)
    drawn = Step(CLASSIFICATION_LABEL, text_position=position, text_scale=0.8, text_padding=6)(
        image=image, predictions=_classification(image))
    x1, y1, x2, y2 = _bounds(changed(frame, drawn.image))
    width, height = _label_size("green", 0.8, 1, 6)
    assert abs(x2 + 1 - x1 - width) <= 1 and abs(y2 + 1 - y1 - height) <= 2, (x1, y1, x2, y2)
    row, _, side = position.partition("_")
    expected_x = {"LEFT": 0, "RIGHT": WIDTH - width}.get(side, WIDTH // 2 - width // 2)
    assert abs(x1 - expected_x) <= 1, (x1, expected_x)
    line = 20 * 0.8 + 2 * 6 + 2 * 1 + 5
    if row == "TOP":
        assert y2 == int(line)
    elif row == "BOTTOM":
        assert y1 == int(HEIGHT - line)
    else:
        assert abs((y1 + y2) / 2 - HEIGHT / 2) <= 1


@pytest.mark.parametrize("position", ["TOP_LEFT", "BOTTOM_RIGHT", "CENTER_LEFT", "CENTER"])
def test_classification_label_stacks_every_predicted_class_of_a_multi_label_result(frame: np.ndarray,
                                                                                  position: str) -> None:
    # The reference stacks a multi-label result's predicted classes, most confident on top: blue, then red;
    # green (not predicted) is not drawn.
    image = workflow_image(frame)
    result = Classification(image, ("red", "green", "blue"), np.array([0.6, 0.8, 0.9], np.float32), "i", 0.5,
                            multi_label=True, predicted=("red", "blue"))
    drawn = Step(CLASSIFICATION_LABEL, text_position=position)(image=image, predictions=result).image
    line = 20 + 2 * 10 + 2 * 1 + 5
    height = _label_size("blue")[1]
    row, _, side = position.partition("_")
    if row == "TOP":  # each label's bottom a line further down
        tops = [line - height, 2 * line - height]
    elif row == "BOTTOM":  # the last label's top a line above the bottom edge, the first a line higher
        tops = [HEIGHT - 2 * line, HEIGHT - line]
    else:  # the two lines centred on the middle row
        tops = [round(HEIGHT / 2 - line / 2 - height / 2), round(HEIGHT / 2 + line / 2 - height / 2)]
    widest = _label_size("blue")[0]  # "blue" and "red": the middle row's lines end where the widest does
    for top, name in zip(tops, ("blue", "red"), strict=True):
        width = _label_size(name)[0]
        left = {"LEFT": widest - width if row == "CENTER" else 0, "RIGHT": WIDTH - width}.get(
            side, WIDTH // 2 - width // 2)
        band = changed(frame, drawn)[top + 3:top + height - 3, left + 2:left + width - 2]
        assert band.all(), (name, top, left)  # the label's whole band is drawn there
        colour = sv.ColorPalette.DEFAULT.by_idx(("red", "green", "blue").index(name)).as_bgr()
        assert tuple(drawn[top + 3, left + 3].tolist()) == colour, name
    labelled_rows = np.nonzero(changed(frame, drawn).any(axis=1))[0]
    assert len(labelled_rows) <= 2 * height + 2  # two labels only: green is not drawn


def test_classification_label_colours_by_index_and_without_classes_draws_nothing(frame: np.ndarray) -> None:
    image = workflow_image(frame)
    drawn = Step(CLASSIFICATION_LABEL, color_axis="INDEX", color_palette="CUSTOM", custom_colors=["#00FF00"])(
        image=image, predictions=_classification(image, (0.1, 0.2, 0.7)))
    x1, y1, _, _ = _bounds(changed(frame, drawn.image))
    assert tuple(drawn.image[y1 + 2, x1 + 2].tolist()) == (0, 255, 0)
    empty = Step(CLASSIFICATION_LABEL)(image=image, predictions=_classification(image, ()))
    np.testing.assert_array_equal(empty.image, frame)
    assert empty.image is not image.image


def test_classification_label_without_copy_draws_on_the_input(frame: np.ndarray) -> None:
    image = workflow_image(frame.copy())
    drawn = Step(CLASSIFICATION_LABEL, copy_image=False)(image=image, predictions=_classification(image))
    assert drawn.image is image.image and changed(frame, image.image).any()


@pytest.mark.parametrize(("inputs", "expected"), [
    ({"predictions": "detections"}, "must be a classification model's predictions, got Detections"),
    ({"text": "Tracker Id"}, "invalid text 'Tracker Id'"),
    ({"text_position": "CENTER_OF_MASS"}, "invalid text_position 'CENTER_OF_MASS'"),
    ({"text_color": "see-through"}, "invalid colour 'see-through'"),
])
def test_classification_label_refuses_bad_run_time_values(frame: np.ndarray, inputs: dict[str, Any],
                                                          expected: str) -> None:
    image = workflow_image(frame)
    if inputs.get("predictions") == "detections":
        inputs = {"predictions": detections(image)}
    with pytest.raises(ValueError, match=expected):
        Step(CLASSIFICATION_LABEL)(**{"image": image, "predictions": _classification(image), **inputs})


# ----------------------------------------------------------------------------- grid


def _fitted(pixels: np.ndarray, cell_width: int, cell_height: int) -> tuple[np.ndarray, int, int]:
    """The image scaled to fit a cell (aspect ratio kept) and its offset in the cell (centred)."""
    scale = min(cell_width / pixels.shape[1], cell_height / pixels.shape[0])
    size = (int(pixels.shape[1] * scale), int(pixels.shape[0] * scale))
    return (cv2.resize(pixels, size, interpolation=cv2.INTER_AREA), (cell_width - size[0]) // 2,
            (cell_height - size[1]) // 2)


def test_grid_tiles_the_images_and_the_lists_of_images_row_by_row(frame: np.ndarray) -> None:
    image = workflow_image(frame)
    crops = [image.crop(*box) for box in BOXES[:2].astype(int).tolist()]
    grid = Step(GRID, images=["$inputs.image"], width=900, height=600)(images=[image, crops, image])
    assert grid.image.shape == (600, 900, 3) and grid.parent_id == image.parent_id and grid.video == image.video
    expected = np.zeros_like(grid.image)
    for index, tile in enumerate([frame, crops[0].image, crops[1].image, frame]):  # 4 tiles: 2 x 2 cells of 450 x 300
        row, column = divmod(index, 2)
        scaled, left, top = _fitted(tile, 450, 300)
        y, x = row * 300 + top, column * 450 + left
        expected[y:y + scaled.shape[0], x:x + scaled.shape[1]] = scaled
    np.testing.assert_array_equal(grid.image, expected)
    assert (grid.image[:, :20] == 0).all()  # the frame is wider than its cell is tall: black bars beside it
    assert not changed(frame, image.image).any()


def test_grid_of_five_is_three_by_three_and_a_missing_image_leaves_its_cell_black(frame: np.ndarray) -> None:
    image = workflow_image(frame)
    grid = Step(GRID, images=["$inputs.image"], width=768, height=576)(images=[[None, image, image, image, image]])
    assert grid.parent_id == image.parent_id  # the first image there is
    cell = (slice(0, 192), slice(0, 256))
    assert not grid.image[cell].any() and grid.image[0:192, 256:512].any() and grid.image[192:384, 256:512].any()
    assert not grid.image[384:].any()  # row 3: no images


class _TwoPeople(NoModels):
    def detect(self, model_id: str, image: Any, params: Any) -> Any:
        return detections(image, BOXES[:2] if image.video.frame_number == 1 else BOXES[:0])


def test_grid_of_the_frame_and_its_crops_in_a_workflow(frame: np.ndarray) -> None:
    definition = {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [
            {"type": "roboflow_core/roboflow_object_detection_model@v2", "name": "detect", "images": "$inputs.image",
             "model_id": "coco/3"},
            {"type": "roboflow_core/dynamic_crop@v1", "name": "crops", "images": "$inputs.image",
             "predictions": "$steps.detect.predictions"},
            {"type": "roboflow_core/dimension_collapse@v1", "name": "collapse", "data": "$steps.crops.crops"},
            {"type": "roboflow_core/grid_visualization@v1", "name": "grid",
             "images": ["$inputs.image", "$steps.collapse.output"], "width": 600, "height": 400},
            {"type": "roboflow_core/grid_visualization@v1", "name": "crops_only", "images": "$steps.collapse.output"},
        ],
        "outputs": [{"type": "JsonField", "name": "grid", "selector": "$steps.grid.image"},
                    {"type": "JsonField", "name": "crops_only", "selector": "$steps.crops_only.image"}],
    }
    env = BlockEnvironment(source_id=0, models=_TwoPeople(), background=InlineBackground())
    executor = WorkflowExecutor(compile_workflow(definition), REGISTRY, env)
    outputs, errors = executor.run(workflow_image(frame, frame_number=1))
    assert errors == []
    grid = outputs["grid"].pixels  # the frame and two crops: 2 x 2 cells of 300 x 200, the last one empty
    assert grid.shape == (400, 600, 3) and grid[:200, :300].any() and grid[:200, 300:].any()
    assert grid[200:, :300].any() and not grid[200:, 300:].any()
    assert outputs["crops_only"].pixels.shape == (1440, 2560, 3)
    outputs, errors = executor.run(workflow_image(frame, frame_number=2))  # no one: the frame alone, no crops grid
    assert errors == [] and outputs["crops_only"] is None
    alone = outputs["grid"].pixels  # one cell: the frame scaled to 533 x 400, centred (33 px black each side)
    assert not alone[:, :33].any() and not alone[:, 566:].any() and alone[:, 33:566].any(axis=2).mean() > 0.9


def test_grid_of_no_image_gives_no_image(frame: np.ndarray) -> None:
    step = Step(GRID, images=["$inputs.image"])
    assert step.block.run(images=[[]], width=640, height=480) == {"image": None}


@pytest.mark.parametrize(("inputs", "expected"), [
    ({"width": 0}, "width must be an integer from 1 to 8192"),
    ({"height": 9000}, "height must be an integer from 1 to 8192"),
    ({"images": ["detections"]}, "grid_visualization tiles images, got Detections"),
])
def test_grid_refuses_bad_run_time_values(frame: np.ndarray, inputs: dict[str, Any], expected: str) -> None:
    image = workflow_image(frame)
    if inputs.get("images") == ["detections"]:
        inputs = {"images": [image, detections(image)]}
    with pytest.raises(ValueError, match=expected):
        Step(GRID, images=["$inputs.image"])(**{"images": [image], **inputs})


# ----------------------------------------------------------------------------- text_display


def _text_step(**fields: Any) -> Step:
    return Step(TEXT, text=fields.pop("text", "Hello"), **fields)


def _box_size(*lines: str, scale: float = 1.0, thickness: int = 2, padding: int = 10) -> tuple[int, int]:
    """The text box's width and height: the widest line, the lines' heights and gaps (a quarter line), padding."""
    (_, ascent), baseline = cv2.getTextSize("Ag", FONT, scale, thickness)
    advance = ascent + baseline
    width = max(cv2.getTextSize(line, FONT, scale, thickness)[0][0] for line in lines)
    return width + 2 * padding, len(lines) * advance + (len(lines) - 1) * max(1, round(0.25 * advance)) + 2 * padding


def test_text_display_fills_its_placeholders_after_their_operations(frame: np.ndarray) -> None:
    image = workflow_image(frame)
    templated = _text_step(text="people: {{ $parameters.count }} {{$parameters.missing}}",
                           text_parameters={"count": "$steps.detect.predictions"},
                           text_parameters_operations={"count": [{"type": "SequenceLength"}]})
    drawn = templated(image=image, text_parameters={"count": detections(image, BOXES[:3])})
    literal = _text_step(text="people: 3 {{$parameters.missing}}")(image=image)  # an unknown one stays as written
    np.testing.assert_array_equal(drawn.image, literal.image)
    assert changed(drawn.image, _text_step(text="people: 4 {{$parameters.missing}}")(image=image).image).any()


def test_text_display_box_at_the_top_left_with_the_defaults(frame: np.ndarray) -> None:
    image = workflow_image(frame)
    drawn = _text_step(text="Hello\nworld")(image=image)
    box_width, box_height = _box_size("Hello", "world")
    assert _bounds(changed(frame, drawn.image)) == (10, 10, 10 + box_width - 1, 10 + box_height - 1)
    box = drawn.image[10:10 + box_height, 10:10 + box_width]
    assert ((box == 0).all(axis=2) | (box > 0).all(axis=2)).all() and (box == 0).all(axis=2).mean() > 0.6
    assert (box > 200).all(axis=2).any()  # white text on black
    assert not changed(frame, image.image).any()


@pytest.mark.parametrize(("fields", "corner"), [
    ({"anchor": "bottom_right"}, (WIDTH - 1, HEIGHT - 1)),  # moved 10 px out, then back inside the image
    ({"anchor": "bottom_right", "offset_x": -20, "offset_y": -30}, (WIDTH - 21, HEIGHT - 31)),
    ({"position_mode": "absolute", "position_x": 100, "position_y": 200}, None),
    ({"anchor": "center", "offset_x": 0, "offset_y": 0}, "centre"),
])
def test_text_display_places_its_box(frame: np.ndarray, fields: dict[str, Any], corner: Any) -> None:
    image = workflow_image(frame)
    drawn = _text_step(**fields)(image=image).image
    x1, y1, x2, y2 = _bounds(changed(frame, drawn))
    assert (x2 + 1 - x1, y2 + 1 - y1) == _box_size("Hello")  # all of it, inside the image
    if "anchor" in fields:  # a selector may give an anchor in capitals (the reference's lower-cases it)
        np.testing.assert_array_equal(_text_step(**fields)(image=image, anchor=fields["anchor"].upper()).image, drawn)
    if corner is None:
        assert (x1, y1) == (100, 200)
    elif corner == "centre":
        assert abs((x1 + x2) / 2 - WIDTH / 2) <= 1 and abs((y1 + y2) / 2 - HEIGHT / 2) <= 1
    else:
        assert (x2, y2) == corner


def test_text_display_background_transparent_or_blended_and_lines_aligned(frame: np.ndarray) -> None:
    image = workflow_image(frame)
    solid = _text_step(text="a\nlonger line", text_color="RED")(image=image)
    x1, y1, x2, y2 = _bounds(changed(frame, solid.image))
    clear = _text_step(text="a\nlonger line", text_color="RED", background_color="transparent")(image=image)
    text = changed(frame, clear.image)
    assert text[y1:y2 + 1, x1:x2 + 1].mean() < 0.3 and not text[:y1].any() and not text[y2 + 1:].any()
    half = _text_step(text="a\nlonger line", text_color="RED", background_color="WHITE", background_opacity=0.5)(
        image=image)
    corner = (slice(y1, y1 + 4), slice(x1, x1 + 4))  # padding: no text there
    np.testing.assert_array_equal(half.image[corner], cv2.addWeighted(
        np.full_like(frame[corner], 255), 0.5, frame[corner], 0.5, 0.0))

    def first_line_columns(drawn: np.ndarray) -> tuple[int, int]:
        red = (drawn[y1:y1 + 40, x1:x2 + 1, 2] > 200) & (drawn[y1:y1 + 40, x1:x2 + 1, 1] < 80)
        columns = np.nonzero(red.any(axis=0))[0]
        return int(columns.min()), int(columns.max())

    left = first_line_columns(solid.image)
    right = first_line_columns(_text_step(text="a\nlonger line", text_color="RED", text_align="right")(
        image=image).image)
    assert left[0] <= 12 and right[1] >= x2 - x1 - 12 and right[0] > left[1], (left, right)


def test_text_display_without_copy_draws_on_the_input(frame: np.ndarray) -> None:
    image = workflow_image(frame.copy())
    drawn = _text_step()(image=image, copy_image=False)
    assert drawn.image is image.image and changed(frame, image.image).any()


@pytest.mark.parametrize(("inputs", "expected"), [
    ({"font_scale": 20.0}, "font_scale must be a number from 0.1 to 10.0"),
    ({"font_thickness": 0}, "font_thickness must be an integer from 1 to 10"),
    ({"anchor": "middle"}, "invalid anchor 'middle'"),
    ({"text_align": "justify"}, "invalid text_align 'justify'"),
    ({"padding": -1}, "padding must be an integer >= 0"),
    ({"background_opacity": 2.0}, "background_opacity must be a number between 0 and 1"),
    ({"background_color": "glass"}, "invalid colour 'glass'"),
    ({"text_parameters": ["count"]}, "text_parameters must be an object"),
    ({"position_mode": "absolute", "position_x": "10"}, "position_x must be an integer"),
])
def test_text_display_refuses_bad_run_time_values(frame: np.ndarray, inputs: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        _text_step()(image=workflow_image(frame), **inputs)
