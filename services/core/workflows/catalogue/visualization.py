"""Visualization blocks: drawing predictions, zones and model comparisons on the image.

Every visualization takes ``image`` (alias ``images``) and ``copy_image`` (default true) and outputs
``image``; "predictions" visualizations also take ``predictions``; "colorable" ones add the
``color_palette`` / ``palette_size`` / ``custom_colors`` / ``color_axis`` options. Fields, defaults
and legacy names follow the reference's manifests (``core_steps/visualizations/<block>/v<n>.py``).
grid_visualization (``images`` only) and text_display (``image`` only, no ``images`` alias) have their own fields.
"""

from collections.abc import Callable, Mapping
from typing import Any

from services.core.errors import InvalidPayloadError
from services.core.workflows import kinds
from services.core.workflows.blocks import BlockSpec, Field, image_field, is_int, is_number, register_literals
from services.core.workflows.query_language import validate_operations_map

FAMILY = "visualization"
TEXT_DISPLAY = "roboflow_core/text_display@v1"
GRID = "roboflow_core/grid_visualization@v1"

# The manifest's palettes; a string selector may name any "Matplotlib <colormap>" at run time.
COLOR_PALETTES = (
    "DEFAULT", "CUSTOM", "ROBOFLOW",
    "Matplotlib Viridis", "Matplotlib Plasma", "Matplotlib Inferno", "Matplotlib Magma", "Matplotlib Cividis",
    "Matplotlib Pastel1", "Matplotlib Pastel2", "Matplotlib Paired", "Matplotlib Accent", "Matplotlib Dark2",
    "Matplotlib Set1", "Matplotlib Set2", "Matplotlib Set3",
    "Matplotlib Tab10", "Matplotlib Tab20", "Matplotlib Tab20b", "Matplotlib Tab20c",
)
COLOR_AXES = ("INDEX", "CLASS", "TRACK")
POSITIONS = ("CENTER", "CENTER_LEFT", "CENTER_RIGHT", "TOP_CENTER", "TOP_LEFT", "TOP_RIGHT",
             "BOTTOM_LEFT", "BOTTOM_CENTER", "BOTTOM_RIGHT", "CENTER_OF_MASS")
# Every anchor but the centre of mass (the heatmap's and classification_label's manifests).
EDGE_POSITIONS = tuple(position for position in POSITIONS if position != "CENTER_OF_MASS")
CLASSIFICATION_TEXTS = ("Class", "Confidence", "Class and Confidence")
TEXT_ANCHORS = ("center", "top_left", "top_center", "top_right", "bottom_left", "bottom_center", "bottom_right",
                "center_left", "center_right")
TEXT_ALIGNMENTS = ("left", "center", "right")
POSITION_MODES = ("absolute", "relative")
FONT_SCALE_RANGE = (0.1, 10.0)  # text_display's manifest bounds
FONT_THICKNESS_RANGE = (1, 10)
MAX_GRID_SIDE = 8192  # pixels: a grid's width or height (not bounded by the reference; a guard on memory)
LABEL_TEXTS = ("Class", "Confidence", "Class and Confidence", "Index", "Dimensions", "Area", "Area (mask)",
               "Area (converted)", "Tracker Id", "Time In Zone")
TEXT_SIZE_MODES = ("Manual", "Automatic")

_PREDICTION_KINDS = (*kinds.DETECTIONS, kinds.RLE_INSTANCE_SEGMENTATION)
_SEGMENTATION_KINDS = (kinds.INSTANCE_SEGMENTATION, kinds.RLE_INSTANCE_SEGMENTATION)
_OUTPUTS: dict[str, tuple[str, ...]] = {"image": (kinds.IMAGE,)}


def _int(name: str, default: int, literal: str = "non_negative_int") -> Field:
    return Field(name, kinds=(kinds.INTEGER,), literal=literal, default=default)


def _float(name: str, default: float, literal: str = "positive_number") -> Field:
    return Field(name, kinds=(kinds.FLOAT,), literal=literal, default=default)


def _unit(name: str, default: float) -> Field:
    return Field(name, kinds=(kinds.FLOAT_ZERO_TO_ONE,), literal="unit", default=default)


def _text(name: str, default: str, choices: tuple[str, ...] = ()) -> Field:
    return Field(name, kinds=(kinds.STRING,), literal="str", default=default, choices=choices)


def _position(default: str, name: str = "position") -> Field:
    return _text(name, default, POSITIONS)


_BASE = (
    image_field("image", ("images",)),
    Field("copy_image", kinds=(kinds.BOOLEAN,), literal="bool", default=True),
)
_PREDICTIONS = Field("predictions", kinds=_PREDICTION_KINDS, literal=None)
_COLORABLE = (
    _text("color_palette", "DEFAULT", COLOR_PALETTES),
    _int("palette_size", 10, "positive_int"),
    Field("custom_colors", kinds=(kinds.LIST_OF_VALUES,), literal="str_list", default=[]),
    _text("color_axis", "CLASS", COLOR_AXES),
)


def _predictions_block(names: tuple[str, ...], *fields: Field) -> BlockSpec:
    return BlockSpec(names=names, family=FAMILY, fields=(*_BASE, _PREDICTIONS, *fields), outputs=_OUTPUTS)


def _colorable(names: tuple[str, ...], *fields: Field, predictions: Field = _PREDICTIONS) -> BlockSpec:
    return BlockSpec(names=names, family=FAMILY, fields=(*_BASE, predictions, *_COLORABLE, *fields),
                     outputs=_OUTPUTS)


_LABEL_FIELDS = (
    _text("text", "Class", LABEL_TEXTS),
    _position("TOP_LEFT", "text_position"),
    _text("text_color", "WHITE"),
)
_LABEL_STYLE = (
    _float("text_scale", 1.0),
    _int("text_thickness", 1),
    _int("text_padding", 10),
    _int("border_radius", 0),
)
# Halo's manifest asks for segmentation; without masks the boxes are the halo's shapes.
_HALO_PREDICTIONS = Field("predictions", kinds=_SEGMENTATION_KINDS, literal=None)
_HALO_FIELDS = (
    _unit("opacity", 0.8),
    _int("kernel_size", 40, "positive_int"),
)
_ZONE = Field("zone", kinds=(kinds.LIST_OF_VALUES,), literal="list")
_ZONE_COLOR = _text("color", "#5bb573")

register_literals({
    "text_display_font_scale": (lambda v: is_number(v) and FONT_SCALE_RANGE[0] <= v <= FONT_SCALE_RANGE[1],
                                f"a number from {FONT_SCALE_RANGE[0]} to {FONT_SCALE_RANGE[1]}"),
    "text_display_font_thickness": (lambda v: is_int(v) and FONT_THICKNESS_RANGE[0] <= v <= FONT_THICKNESS_RANGE[1],
                                    f"an integer from {FONT_THICKNESS_RANGE[0]} to {FONT_THICKNESS_RANGE[1]}"),
    "grid_side": (lambda v: is_int(v) and 0 < v <= MAX_GRID_SIDE, f"an integer from 1 to {MAX_GRID_SIDE} (pixels)"),
})


def _check_grid_images(params: Mapping[str, Any], path: str) -> None:
    """grid_visualization's ``images``: one selector, or a non-empty list of selectors (images or lists of them)."""
    images = params["images"]
    if isinstance(images, str):
        return
    if not isinstance(images, list) or not images:
        raise InvalidPayloadError(f"field '{path}.images' must be a selector or a non-empty list of selectors")
    for index, item in enumerate(images):
        if not (isinstance(item, str) and item.startswith("$")):
            raise InvalidPayloadError(f"field '{path}.images[{index}]': expected a selector of an image or a list "
                                      f"of images, got {item!r}")


_TEXT_DISPLAY_FIELDS = (
    image_field("image", ()),
    Field("text", literal="str"),  # with {{ $parameters.<name> }} placeholders
    Field("text_parameters", literal="dict", default={}, nested=True),  # name -> selector or literal
    Field("text_parameters_operations", literal="dict", default={}),
    _text("text_color", "WHITE"),
    _text("background_color", "BLACK"),  # or "transparent"
    _unit("background_opacity", 1.0),
    Field("font_scale", kinds=(kinds.FLOAT,), literal="text_display_font_scale", default=1.0),
    Field("font_thickness", kinds=(kinds.INTEGER,), literal="text_display_font_thickness", default=2),
    _int("padding", 10),
    _text("text_align", "left", TEXT_ALIGNMENTS),
    _int("border_radius", 0),
    _text("position_mode", "relative", POSITION_MODES),
    _int("position_x", 0, "int"),
    _int("position_y", 0, "int"),
    _text("anchor", "top_left", TEXT_ANCHORS),
    _int("offset_x", 10, "int"),
    _int("offset_y", 10, "int"),
    _BASE[1],  # copy_image
)

BLOCKS: tuple[BlockSpec, ...] = (
    _colorable(("roboflow_core/bounding_box_visualization@v1", "BoundingBoxVisualization"),
               _int("thickness", 2), _unit("roundness", 0.0)),
    _colorable(("roboflow_core/label_visualization@v1", "LabelVisualization"), *_LABEL_FIELDS, *_LABEL_STYLE),
    _colorable(("roboflow_core/label_visualization@v2",), *_LABEL_FIELDS,
               _text("text_size_mode", "Manual", TEXT_SIZE_MODES), *_LABEL_STYLE),
    _predictions_block(("roboflow_core/blur_visualization@v1", "BlurVisualization"),
                       _int("kernel_size", 15, "positive_int")),
    _predictions_block(("roboflow_core/pixelate_visualization@v1", "PixelateVisualization"),
                       _int("pixel_size", 20, "positive_int")),
    _colorable(("roboflow_core/trace_visualization@v1",), _position("CENTER"),
               _int("trace_length", 30, "positive_int"), _int("thickness", 1, "positive_int")),
    _colorable(("roboflow_core/dot_visualization@v1", "DotVisualization"), _position("CENTER"),
               _int("radius", 4), _int("outline_thickness", 0)),
    _colorable(("roboflow_core/ellipse_visualization@v1", "EllipseVisualization"), _int("thickness", 2),
               _int("start_angle", -45, "int"), _int("end_angle", 235, "int")),
    _colorable(("roboflow_core/halo_visualization@v1", "HaloVisualization"), *_HALO_FIELDS,
               predictions=_HALO_PREDICTIONS),
    _colorable(("roboflow_core/halo_visualization@v2",), *_HALO_FIELDS, predictions=_HALO_PREDICTIONS),
    _colorable(("roboflow_core/corner_visualization@v1", "CornerVisualization"), _int("thickness", 4),
               _int("corner_length", 15)),
    _colorable(("roboflow_core/triangle_visualization@v1", "TriangleVisualization"), _position("TOP_CENTER"),
               _int("base", 10), _int("height", 10), _int("outline_thickness", 0)),
    _colorable(("roboflow_core/circle_visualization@v1", "CircleVisualization"), _int("thickness", 2)),
    _colorable(("roboflow_core/color_visualization@v1", "ColorVisualization"), _unit("opacity", 0.5)),
    _colorable(("roboflow_core/crop_visualization@v1", "CropVisualization"), _position("TOP_CENTER"),
               _float("scale_factor", 2.0), _int("border_thickness", 2)),
    _predictions_block(  # heat accumulated over the frames (per video source), hot where detections keep moving
        ("roboflow_core/heatmap_visualization@v1", "HeatmapVisualization"),
        Field("metadata", kinds=(kinds.VIDEO_METADATA,), literal=None, default=None),
        _text("position", "BOTTOM_CENTER", EDGE_POSITIONS), _unit("opacity", 0.2),
        _int("radius", 40, "positive_int"), _int("kernel_size", 25, "positive_int"), _int("top_hue", 0),
        _int("low_hue", 125), Field("ignore_stationary", kinds=(kinds.BOOLEAN,), literal="bool", default=True),
        _int("motion_threshold", 25)),
    BlockSpec(
        names=("roboflow_core/line_counter_visualization@v1",),
        family=FAMILY,
        fields=(*_BASE, _ZONE, _ZONE_COLOR, _int("thickness", 2), _int("text_thickness", 1),
                _float("text_scale", 1.0), _int("count_in", 0, "int"), _int("count_out", 0, "int"),
                _unit("opacity", 0.3)),
        outputs=_OUTPUTS,
    ),
    BlockSpec(
        names=("roboflow_core/polygon_zone_visualization@v1",),
        family=FAMILY,
        fields=(*_BASE, _ZONE, _ZONE_COLOR, _unit("opacity", 0.3)),
        outputs=_OUTPUTS,
    ),
    BlockSpec(  # path_deviation_analytics' reference path, drawn as an open polyline
        names=("roboflow_core/reference_path_visualization@v1",),
        family=FAMILY,
        fields=(*_BASE, Field("reference_path", kinds=(kinds.LIST_OF_VALUES,), literal="reference_path"),
                _ZONE_COLOR, _int("thickness", 2, "positive_int")),
        outputs=_OUTPUTS,
    ),
    BlockSpec(
        names=("roboflow_core/model_comparison_visualization@v1",),
        family=FAMILY,
        fields=(*_BASE, Field("predictions_a", kinds=_PREDICTION_KINDS, literal=None), _text("color_a", "GREEN"),
                Field("predictions_b", kinds=_PREDICTION_KINDS, literal=None), _text("color_b", "RED"),
                _text("background_color", "BLACK"), _unit("opacity", 0.7)),
        outputs=_OUTPUTS,
    ),
    _colorable(  # the top class of a classification of the whole image, at an edge or the centre of the image
        ("roboflow_core/classification_label_visualization@v1",),
        _text("text", "Class", CLASSIFICATION_TEXTS), _text("text_position", "TOP_LEFT", EDGE_POSITIONS),
        _text("text_color", "WHITE"), *_LABEL_STYLE,
        predictions=Field("predictions", kinds=(kinds.CLASSIFICATION,), literal=None),
    ),
    _predictions_block(  # everything outside the detections' boxes (or masks) painted ``color`` at ``opacity``
        ("roboflow_core/background_color_visualization@v1", "BackgroundColorVisualization"),
        _text("color", "BLACK"), _unit("opacity", 0.5)),
    BlockSpec(  # the images (and lists of images) tiled into one canvas, a square grid of cells
        names=(GRID,),
        family=FAMILY,
        fields=(Field("images", kinds=(kinds.IMAGE, kinds.LIST_OF_VALUES), literal=None, nested=True),
                Field("width", kinds=(kinds.INTEGER,), literal="grid_side", default=2560),
                Field("height", kinds=(kinds.INTEGER,), literal="grid_side", default=1440)),
        outputs=_OUTPUTS,
        check=_check_grid_images,
    ),
    BlockSpec(names=(TEXT_DISPLAY,), family=FAMILY, fields=_TEXT_DISPLAY_FIELDS, outputs=_OUTPUTS),
)

CHECKS: dict[tuple[str, str], Callable[[Any, str], None]] = {
    (TEXT_DISPLAY, "text_parameters_operations"): validate_operations_map,
}
