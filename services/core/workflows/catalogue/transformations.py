"""Transformation and fusion blocks: crops (dynamic, absolute, relative), the image slicer (v1, v2), image
preprocessing (resize, rotate, flip), detection offset, detections merge, perspective correction, detections
stitch, dimension collapse, detections classes replacement and detections consensus, stitch OCR detections (v1,
v2), bounding_rect and geotag_detection, and the fusion blocks buffer, frame_delay, detections_difference,
overlap_analysis, detections_list_rollup and image_stack, and the imaging blocks camera calibration, stitch images
and the QR code generator, with the reference's names, aliases and defaults.

Dynamic crop and the slicer output one item per crop/slice (dimensionality +1); stitch, dimension collapse
and classes replacement take the whole list of per-slice or per-crop results at once (a ``batch`` field),
so they run back at their image's level.
"""

import re
from collections.abc import Callable
from typing import Any

from services.core.workflows import kinds
from services.core.workflows.blocks import (
    BlockSpec,
    Field,
    detections_field,
    image_field,
    is_int,
    is_points,
    register_literals,
)
from services.core.workflows.catalogue.geometry import ANCHORS

_HEX = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
_TUPLE = re.compile(r"\(\s*\d{1,3}\s*,\s*\d{1,3}\s*,\s*\d{1,3}\s*\)")


def is_colour(value: Any) -> bool:
    """'#rgb', '#rrggbb', '(r, g, b)' or [r, g, b] with components 0..255 (the reference's forms)."""
    if isinstance(value, str):
        if _HEX.fullmatch(value):
            return True
        return bool(_TUPLE.fullmatch(value)) and all(int(c) <= 255 for c in value.strip("() ").split(","))
    return isinstance(value, list | tuple) and len(value) == 3 and all(is_int(c) and 0 <= c <= 255 for c in value)


def is_overlap_ratio(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0.0 <= value < 1.0


def is_required_objects(value: Any) -> bool:
    """A positive integer, or class name -> positive integer (null is the field's default)."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_int(v) and v > 0 for k, v in value.items())
    return is_int(value) and value > 0


def _side(origin: Any, towards: Any, point: Any) -> float:
    """> 0 or < 0 by the side of the line origin -> towards that ``point`` lies on, 0 on it."""
    return float((towards[0] - origin[0]) * (point[1] - origin[1]) - (towards[1] - origin[1]) * (point[0] - origin[0]))


def _crossing(a: Any, b: Any, c: Any, d: Any) -> bool:
    """Whether the segments ab and cd cross at a point inside both."""
    return _side(a, b, c) * _side(a, b, d) < 0 and _side(c, d, a) * _side(c, d, b) < 0


def is_convex_quadrilateral(value: Any) -> bool:
    """Four points, in any order, that are the corners of a convex quadrilateral (no three on a line, none
    inside the others' triangle): the only shape a perspective transform maps onto a rectangle."""
    if not (is_points(value) and len(value) == 4):
        return False
    a, b, c, d = value
    return _crossing(a, c, b, d) or _crossing(a, b, c, d) or _crossing(a, d, b, c)  # two of them are diagonals


def is_perspective_polygons(value: Any) -> bool:
    """perspective_correction's polygon: a convex quadrilateral, or a list of polygons whose quadrilaterals
    (at least one) are convex; the block uses the largest of those, as the reference (other polygons are ignored)."""
    if is_points(value):
        return is_convex_quadrilateral(value)
    if not (isinstance(value, list | tuple) and all(is_points(polygon) for polygon in value)):
        return False
    quadrilaterals = [polygon for polygon in value if len(polygon) == 4]
    return bool(quadrilaterals) and all(is_convex_quadrilateral(polygon) for polygon in quadrilaterals)


def is_rotation(value: Any) -> bool:
    return is_int(value) and -360 <= value <= 360


# The most values buffer keeps and the most frames frame_delay looks back (the reference's bound for frame_delay):
# every one may be a whole frame, so a stream's history stays within a few hundred frames.
MAX_HISTORY = 256


def is_history_length(value: Any) -> bool:
    return is_int(value) and 1 <= value <= MAX_HISTORY


def is_frame_offset(value: Any) -> bool:
    return is_int(value) and -MAX_HISTORY <= value <= 0


def is_optional_scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


# Literal checks only this family needs, registered when the catalogue is imported.
_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "colour": (is_colour, "a colour: '#rgb', '#rrggbb', '(r, g, b)' or [r, g, b]"),
    "overlap_ratio": (is_overlap_ratio, "a number >= 0 and < 1"),
    "rotation": (is_rotation, "an integer between -360 and 360"),
    "required_objects": (is_required_objects, "a positive integer or an object of class name -> positive integer"),
    "history_length": (is_history_length, f"an integer between 1 and {MAX_HISTORY}"),
    "frame_offset": (is_frame_offset, f"an integer between -{MAX_HISTORY} and 0 (frames into the past)"),
    "optional_scalar": (is_optional_scalar, "a boolean, a number, a string or null"),
    "matches_per_descriptor": (lambda v: is_int(v) and v >= 2, "an integer >= 2 (Lowe's ratio test compares the "
                               "two best matches)"),
    "perspective_polygons": (is_perspective_polygons, "a convex quadrilateral [[x, y], ...] (4 points), or a list of "
                             "polygons whose 4-point ones (at least one) are convex"),
}
register_literals(_CHECKS)

_IMAGES = image_field("images", ("image",))
_SEGMENTS = (kinds.OBJECT_DETECTION, kinds.INSTANCE_SEGMENTATION)
_AGGREGATION = ("average", "max", "min")
# Which points of the detections perspective_correction extends its polygon to contain: none (""), a box's four
# corners ("ALL"), or one anchor.
PERSPECTIVE_ANCHORS = ("", "ALL", *ANCHORS)
# stitch_ocr_detections: how character (or word) detections are read, and v2's ways of grouping them.
READING_DIRECTIONS = ("left_to_right", "right_to_left", "vertical_top_to_bottom", "vertical_bottom_to_top", "auto")
STITCHING_ALGORITHMS = ("tolerance", "otsu", "collimate")
CONFIDENCE_STRATEGIES = ("max", "mean", "min")  # detections_list_rollup: a merged group's confidence


def _static_crop(names: tuple[str, ...], kind: str, literal: str) -> BlockSpec:
    return BlockSpec(
        names=names,
        family="transformations",
        fields=(_IMAGES, *(Field(name, kinds=(kind,), literal=literal)
                           for name in ("x_center", "y_center", "width", "height"))),
        outputs={"crops": (kinds.IMAGE,)},
    )


_IMAGE_PREPROCESSING = BlockSpec(  # resize, rotate or flip an image (a camera mounted on its side)
    names=("roboflow_core/image_preprocessing@v1",),
    family="transformations",
    fields=(
        image_field("image", ("images",)),
        Field("task_type", literal="str", choices=("resize", "rotate", "flip")),
        Field("width", kinds=(kinds.INTEGER,), literal="positive_int", default=640),
        Field("height", kinds=(kinds.INTEGER,), literal="positive_int", default=640),
        Field("rotation_degrees", kinds=(kinds.INTEGER,), literal="rotation", default=90),
        Field("flip_type", kinds=(kinds.STRING,), literal="str", default="vertical",
              choices=("vertical", "horizontal", "both")),
    ),
    outputs={"image": (kinds.IMAGE,)},
)


def _coefficient(name: str, literal: str = "number") -> Field:
    return Field(name, kinds=(kinds.FLOAT,), literal=literal)


_CAMERA_CALIBRATION = BlockSpec(  # lens distortion removed with the camera's intrinsics and distortion coefficients
    names=("roboflow_core/camera-calibration@v1",),
    family="transformations",
    fields=(
        image_field("image", ("images",)),
        *(_coefficient(name, "positive_number") for name in ("fx", "fy")),
        *(_coefficient(name) for name in ("cx", "cy", "k1", "k2", "k3", "p1", "p2")),
        Field("use_fisheye_model", kinds=(kinds.BOOLEAN,), literal="bool", default=False),
    ),
    outputs={"calibrated_image": (kinds.IMAGE,)},
)
_STITCH_IMAGES = BlockSpec(  # two overlapping images as one (a homography from their matched features)
    names=("roboflow_core/stitch_images@v1",),
    family="transformations",
    fields=(
        image_field("image1", ()),
        image_field("image2", ()),
        Field("max_allowed_reprojection_error", kinds=(kinds.FLOAT_ZERO_TO_ONE, kinds.FLOAT),
              literal="positive_number", default=3),
        Field("count_of_best_matches_per_query_descriptor", kinds=(kinds.INTEGER,), literal="matches_per_descriptor",
              default=2),
    ),
    outputs={"stitched_image": (kinds.IMAGE,)},
)
QR_ERROR_CORRECTION = (
    "Low (~7% word recovery / highest data capacity)",
    "Medium (~15% word recovery)",
    "Quartile (~25% word recovery)",
    "High (~30% word recovery / lowest data capacity)",
)
_QR_CODE_GENERATOR = BlockSpec(  # a QR code image of a text (a URL, an id): no input image
    names=("roboflow_core/qr_code_generator@v1", "QRCodeGenerator"),
    family="transformations",
    fields=(
        Field("text", kinds=(kinds.STRING,), literal="str"),
        Field("error_correct", literal="str", default="Medium (~15% word recovery)", choices=QR_ERROR_CORRECTION),
        Field("border", kinds=(kinds.INTEGER,), literal="non_negative_int", default=4),
        Field("fill_color", kinds=(kinds.STRING,), literal="str", default="BLACK"),
        Field("back_color", kinds=(kinds.STRING,), literal="str", default="WHITE"),
    ),
    outputs={"qr_code": (kinds.IMAGE,)},
)


def _image_slicer(version: int) -> BlockSpec:
    return BlockSpec(
        names=(f"roboflow_core/image_slicer@v{version}",),
        family="transformations",
        fields=(
            image_field("image", ("images",)),
            Field("slice_width", kinds=(kinds.INTEGER,), literal="positive_int", default=640),
            Field("slice_height", kinds=(kinds.INTEGER,), literal="positive_int", default=640),
            Field("overlap_ratio_width", kinds=(kinds.FLOAT_ZERO_TO_ONE,), literal="overlap_ratio", default=0.2),
            Field("overlap_ratio_height", kinds=(kinds.FLOAT_ZERO_TO_ONE,), literal="overlap_ratio", default=0.2),
        ),
        outputs={"slices": (kinds.IMAGE,)},
        dimensionality=1,
    )


def _stitch_ocr_detections(version: int) -> BlockSpec:
    """Character (or word) detections read as one text (v2: by tolerance, Otsu's word gaps or collimation)."""
    v2 = (
        Field("otsu_threshold_multiplier", kinds=(kinds.FLOAT,), literal="number", default=1.0),
        Field("collimate_tolerance", kinds=(kinds.INTEGER,), literal="int", default=10),
    ) if version == 2 else ()
    return BlockSpec(
        names=(f"roboflow_core/stitch_ocr_detections@v{version}",),
        family="transformations",
        fields=(
            *((Field("stitching_algorithm", literal="str", choices=STITCHING_ALGORITHMS),) if version == 2 else ()),
            Field("predictions", kinds=(kinds.OBJECT_DETECTION,), literal=None),
            Field("reading_direction", literal="str", choices=READING_DIRECTIONS),
            Field("tolerance", kinds=(kinds.INTEGER,), literal="positive_int", default=10),
            Field("delimiter", kinds=(kinds.STRING,), literal="str", default=""),
            *v2,
        ),
        outputs={"ocr_text": (kinds.STRING,)},
    )


_DETECTIONS_LIST_ROLLUP = BlockSpec(  # a second model's detections on each crop, back in the parent image, merged
    names=("roboflow_core/detections_list_rollup@v1", "DetectionsListRollUp"),
    family="transformations",
    fields=(
        detections_field("parent_detection"),
        Field("child_detections", kinds=(kinds.LIST_OF_VALUES,), literal=None),
        Field("confidence_strategy", kinds=(kinds.LIST_OF_VALUES,), literal="str", default="max",
              choices=CONFIDENCE_STRATEGIES),
        Field("overlap_threshold", kinds=(kinds.FLOAT_ZERO_TO_ONE,), literal="unit", default=0.0),
        Field("keypoint_merge_threshold", kinds=(kinds.FLOAT,), literal="non_negative_number", default=10.0),
    ),
    outputs={"rolled_up_detections": kinds.DETECTIONS, "crop_zones": (kinds.LIST_OF_VALUES,)},
)


# image_stack@v1: the most frames it keeps, and the largest frame it stores (a larger one is scaled down to fit).
MAX_STACK_SIZE = 64
MAX_STACK_WIDTH, MAX_STACK_HEIGHT = 1920, 1080
MIN_STACK_RESOLUTION = 64
register_literals({
    "image_stack_size": (lambda v: is_int(v) and 1 <= v <= MAX_STACK_SIZE,
                         f"an integer between 1 and {MAX_STACK_SIZE}"),
    "image_stack_width": (lambda v: is_int(v) and MIN_STACK_RESOLUTION <= v <= MAX_STACK_WIDTH,
                          f"an integer between {MIN_STACK_RESOLUTION} and {MAX_STACK_WIDTH}"),
    "image_stack_height": (lambda v: is_int(v) and MIN_STACK_RESOLUTION <= v <= MAX_STACK_HEIGHT,
                           f"an integer between {MIN_STACK_RESOLUTION} and {MAX_STACK_HEIGHT}"),
})

_IMAGE_STACK = BlockSpec(  # the last frames of this source as JPEG bytes, newest first (e.g. for a VLM)
    names=("roboflow_core/image_stack@v1",),
    family="transformations",
    fields=(
        image_field("image", ()),
        Field("stack_size", kinds=(kinds.INTEGER,), literal="image_stack_size", default=10),
        Field("resolution_width", kinds=(kinds.INTEGER,), literal="image_stack_width", default=MAX_STACK_WIDTH),
        Field("resolution_height", kinds=(kinds.INTEGER,), literal="image_stack_height", default=MAX_STACK_HEIGHT),
        Field("clear", kinds=(kinds.BOOLEAN,), literal="bool", default=False),
    ),
    outputs={"frames": (kinds.LIST_OF_VALUES,), "frames_count": (kinds.INTEGER,)},
)
_BOUNDING_RECT = BlockSpec(  # each mask's minimum-area rotated rectangle, as the detection's mask and box
    names=("roboflow_core/bounding_rect@v1",),
    family="transformations",
    fields=(Field("predictions", kinds=(kinds.INSTANCE_SEGMENTATION,), literal=None),),
    outputs={"detections_with_rect": (kinds.INSTANCE_SEGMENTATION,)},
)
_GEOTAG_DETECTION = BlockSpec(  # each box centre projected to latitude / longitude under a nadir camera
    names=("roboflow_core/geotag_detection@v1",),
    family="transformations",
    fields=(
        image_field("image", ()),
        Field("predictions", kinds=_SEGMENTS, literal=None),
        Field("latitude", kinds=(kinds.FLOAT,), literal="number"),
        Field("longitude", kinds=(kinds.FLOAT,), literal="number"),
        Field("altitude", kinds=(kinds.FLOAT,), literal="number"),
        Field("horizontal_fov", kinds=(kinds.FLOAT,), literal="number", default=73.7),
        Field("heading", kinds=(kinds.FLOAT,), literal="number", default=0.0),
    ),
    outputs={"geo_detections": (kinds.LIST_OF_VALUES,), "geojson": (kinds.DICTIONARY,)},
)


def _aggregation(name: str, default: str, choices: tuple[str, ...] = _AGGREGATION) -> Field:
    return Field(name, literal="str", default=default, choices=choices)


BLOCKS = (
    BlockSpec(
        names=("roboflow_core/dynamic_crop@v1", "DynamicCrop", "Crop"),
        family="transformations",
        fields=(
            _IMAGES,
            detections_field("predictions", ("detections",)),
            Field("mask_opacity", kinds=(kinds.FLOAT_ZERO_TO_ONE,), literal="unit", default=0.0),
            Field("background_color", kinds=(kinds.STRING, kinds.RGB_COLOR), literal="colour", default=(0, 0, 0)),
        ),
        outputs={"crops": (kinds.IMAGE,), "predictions": kinds.DETECTIONS},
        dimensionality=1,
    ),
    _static_crop(("roboflow_core/absolute_static_crop@v1", "AbsoluteStaticCrop"), kinds.INTEGER, "positive_int"),
    # The reference's manifest spells its canonical name "relative_statoic_crop"; both spellings are accepted.
    _static_crop(("roboflow_core/relative_static_crop@v1", "roboflow_core/relative_statoic_crop@v1",
                  "RelativeStaticCrop"), kinds.FLOAT_ZERO_TO_ONE, "unit"),
    _image_slicer(1),
    _image_slicer(2),
    _IMAGE_PREPROCESSING,
    BlockSpec(
        names=("roboflow_core/detections_stitch@v1",),
        family="transformations",
        fields=(
            Field("reference_image", kinds=(kinds.IMAGE,), literal=None),
            detections_field("predictions", batch=True),
            Field("overlap_filtering_strategy", kinds=(kinds.STRING,), literal="str", default="nms",
                  choices=("none", "nms", "nmm")),
            Field("iou_threshold", kinds=(kinds.FLOAT_ZERO_TO_ONE,), literal="unit", default=0.3),
        ),
        outputs={"predictions": _SEGMENTS},
    ),
    BlockSpec(  # padding around each box (e.g. before a dynamic crop)
        names=("roboflow_core/detection_offset@v1", "DetectionOffset"),
        family="transformations",
        fields=(
            detections_field("predictions"),
            Field("offset_width", kinds=(kinds.INTEGER,), literal="positive_int", aliases=("offset_x",)),
            Field("offset_height", kinds=(kinds.INTEGER,), literal="positive_int", aliases=("offset_y",)),
            Field("units", literal="str", default="Pixels", choices=("Percent (%)", "Pixels")),
        ),
        outputs={"predictions": kinds.DETECTIONS},
    ),
    BlockSpec(  # one box around all of an image's detections
        names=("roboflow_core/detections_merge@v1",),
        family="transformations",
        fields=(detections_field("predictions"),
                Field("class_name", literal="str", default="merged_detection")),
        outputs={"predictions": (kinds.OBJECT_DETECTION,)},
    ),
    BlockSpec(  # a plane seen at an angle (a road's 4 corners) to a rectangle (25 x 250 metres), e.g. for velocity
        names=("roboflow_core/perspective_correction@v1", "PerspectiveCorrection"),
        family="transformations",
        fields=(
            _IMAGES,
            Field("predictions", kinds=_SEGMENTS, literal=None, default=None),
            Field("perspective_polygons", kinds=(kinds.LIST_OF_VALUES,), literal="perspective_polygons"),
            Field("transformed_rect_width", kinds=(kinds.INTEGER,), literal="positive_int", default=1000),
            Field("transformed_rect_height", kinds=(kinds.INTEGER,), literal="positive_int", default=1000),
            Field("extend_perspective_polygon_by_detections_anchor", kinds=(kinds.STRING,), literal="str", default="",
                  choices=PERSPECTIVE_ANCHORS),
            Field("warp_image", kinds=(kinds.BOOLEAN,), literal="bool", default=False),
        ),
        outputs={"corrected_coordinates": _SEGMENTS, "warped_image": (kinds.IMAGE,),
                 "extended_transformed_rect_width": (kinds.INTEGER,),
                 "extended_transformed_rect_height": (kinds.INTEGER,)},
    ),
    BlockSpec(  # e.g. every crop's classification or OCR text of a frame, as one list
        names=("roboflow_core/dimension_collapse@v1", "DimensionCollapse"),
        family="transformations",
        fields=(Field("data", kinds=(kinds.WILDCARD,), literal=None, batch=True),),
        outputs={"output": (kinds.LIST_OF_VALUES,)},
    ),
    BlockSpec(
        names=("roboflow_core/detections_classes_replacement@v1", "DetectionsClassesReplacement"),
        family="transformations",
        fields=(
            detections_field("object_detection_predictions"),
            Field("classification_predictions", kinds=(kinds.CLASSIFICATION, kinds.LIST_OF_VALUES, kinds.STRING),
                  literal=None, batch=True),
            Field("fallback_class_name", kinds=(kinds.STRING,), literal="optional_str", default=None),
            Field("fallback_class_id", kinds=(kinds.INTEGER,), literal="optional_int", default=None),
        ),
        outputs={"predictions": kinds.DETECTIONS},
        accepts_empty=True,  # no classification at all (the classifier's step did not run): no detections
    ),
    BlockSpec(
        names=("roboflow_core/detections_consensus@v1", "DetectionsConsensus"),
        family="transformations",
        fields=(
            Field("predictions_batches", kinds=kinds.DETECTIONS, literal="list", nested=True,
                  aliases=("predictions",)),
            Field("required_votes", kinds=(kinds.INTEGER,), literal="positive_int"),
            Field("class_aware", kinds=(kinds.BOOLEAN,), literal="bool", default=True),
            Field("iou_threshold", kinds=(kinds.FLOAT_ZERO_TO_ONE,), literal="unit", default=0.3),
            Field("confidence", kinds=(kinds.FLOAT_ZERO_TO_ONE,), literal="unit", default=0.0),
            Field("classes_to_consider", kinds=(kinds.LIST_OF_VALUES,), literal="str_list", default=None),
            Field("required_objects", kinds=(kinds.INTEGER, kinds.DICTIONARY), literal="required_objects",
                  default=None),
            _aggregation("presence_confidence_aggregation", "max"),
            _aggregation("detections_merge_confidence_aggregation", "average"),
            _aggregation("detections_merge_coordinates_aggregation", "average"),
            _aggregation("detections_merge_mask_aggregation", "union", ("intersection", "union", "max", "min")),
        ),
        outputs={
            "predictions": _SEGMENTS,
            "object_present": (kinds.BOOLEAN, kinds.DICTIONARY),
            "presence_confidence": (kinds.FLOAT_ZERO_TO_ONE, kinds.DICTIONARY),
        },
    ),
    BlockSpec(  # the last ``length`` values of a selector on this source, newest first
        names=("roboflow_core/buffer@v1", "Buffer"),
        family="transformations",
        fields=(
            Field("data", kinds=(kinds.WILDCARD, kinds.LIST_OF_VALUES, kinds.IMAGE), literal=None),
            Field("length", literal="history_length"),
            Field("pad", literal="bool", default=False),
        ),
        outputs={"output": (kinds.LIST_OF_VALUES,)},
    ),
    BlockSpec(  # a value as it was ``-offset`` frames ago on this source
        names=("roboflow_core/frame_delay@v1", "FrameDelay", "roboflow_core/time_travel@v1", "TimeTravel"),
        family="transformations",
        fields=(
            image_field("image", ()),
            Field("data", kinds=(kinds.WILDCARD, kinds.LIST_OF_VALUES, kinds.IMAGE, *kinds.DETECTIONS), literal=None),
            Field("offset", kinds=(kinds.INTEGER,), literal="frame_offset"),
            Field("default_value", literal="optional_scalar", default=None),
        ),
        outputs={"output": (kinds.WILDCARD,), "is_available": (kinds.BOOLEAN,),
                 "reference_frame_number": (kinds.INTEGER,)},
    ),
    BlockSpec(  # before / after: which detections were removed, persisted, or are new (one-to-one matching)
        names=("roboflow_core/detections_difference@v1", "DetectionsDifference"),
        family="transformations",
        fields=(
            Field("reference_predictions", kinds=(kinds.OBJECT_DETECTION,), literal=None),
            Field("candidate_predictions", kinds=(kinds.OBJECT_DETECTION,), literal=None),
            Field("spatial_weight", kinds=(kinds.FLOAT_ZERO_TO_ONE,), literal="unit", default=0.4),
            Field("class_mismatch_penalty", kinds=(kinds.FLOAT,), literal="non_negative_number", default=0.15),
            Field("reject_cost", kinds=(kinds.FLOAT,), literal="non_negative_number", default=0.75),
            Field("class_strict", kinds=(kinds.BOOLEAN,), literal="bool", default=False),
            Field("min_removed_to_verify", kinds=(kinds.INTEGER,), literal="positive_int", default=1),
        ),
        outputs={"removed_detections": (kinds.OBJECT_DETECTION,), "persisted_detections": (kinds.OBJECT_DETECTION,),
                 "new_detections": (kinds.OBJECT_DETECTION,), "removed_count": (kinds.INTEGER,),
                 "new_count": (kinds.INTEGER,), "verified": (kinds.BOOLEAN,)},
    ),
    BlockSpec(  # each (reference, candidate) pair whose intersection covers min_overlap of the reference's box
        names=("roboflow_core/overlap_analysis@v1", "OverlapAnalysis"),
        family="transformations",
        fields=(
            Field("reference_predictions", kinds=_SEGMENTS, literal=None),
            Field("candidate_predictions", kinds=_SEGMENTS, literal=None),
            Field("min_overlap", kinds=(kinds.FLOAT_ZERO_TO_ONE,), literal="unit", default=0.1),
        ),
        outputs={"overlaps": (kinds.DETECTIONS_OVERLAPS,)},
    ),
    _CAMERA_CALIBRATION,
    _STITCH_IMAGES,
    _QR_CODE_GENERATOR,
    _stitch_ocr_detections(1),
    _stitch_ocr_detections(2),
    _DETECTIONS_LIST_ROLLUP,
    _IMAGE_STACK,
    _BOUNDING_RECT,
    _GEOTAG_DETECTION,
)
