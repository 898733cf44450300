"""Classical computer vision blocks (OpenCV, no model): image operations and measurements, with the
reference's names, fields and defaults (``classical_cv/<block>/v*.py``)."""

from collections.abc import Callable
from typing import Any

from services.core.workflows import kinds
from services.core.workflows.blocks import (
    REQUIRED,
    BlockSpec,
    Field,
    image_field,
    is_int,
    is_number,
    register_literals,
)
from services.core.workflows.catalogue.geometry import ANCHORS

# ---------------------------------------------------------------- image operations (worker: blocks/cv/images.py,
# background.py, deskew.py): each takes an image and gives one in its place, 3-channel BGR like every image here.

_IMAGE_LITERALS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "cv_pixel_value": (lambda v: is_int(v) and 0 <= v <= 255, "an integer between 0 and 255"),
    "cv_line_thickness": (lambda v: is_int(v) and -1 <= v <= 32767, "an integer from -1 (filled) to 32767"),
    "cv_clip_limit": (lambda v: is_int(v) and 0 <= v <= 50, "an integer between 0 and 50"),
    "cv_contrast_multiplier": (lambda v: is_number(v) and 0.1 <= v <= 5.0, "a number between 0.1 and 5.0"),
}
register_literals(_IMAGE_LITERALS)

THRESHOLD_TYPES = ("binary", "binary_inv", "trunc", "tozero", "tozero_inv", "adaptive_mean", "adaptive_gaussian",
                   "otsu")
BLUR_TYPES = ("average", "gaussian", "median", "bilateral")
MORPHOLOGY_OPERATIONS = ("Erosion", "Dilation", "Opening", "Closing", "Gradient", "Top Hat", "Black Hat")
OPENING_THEN_CLOSING = "Opening then Closing"  # v2 only
EQUALIZATION_TYPES = ("Contrast Stretching", "Histogram Equalization", "Adaptive Equalization")
TARGET_ORIENTATIONS = ("vertical", "horizontal", "either")  # auto_rotate_on_edges: what the dominant edges become
_IMAGE_OUTPUT: dict[str, tuple[str, ...]] = {"image": (kinds.IMAGE,)}


def _image_operation(name: str, *fields: Field, outputs: dict[str, tuple[str, ...]] = _IMAGE_OUTPUT) -> BlockSpec:
    return BlockSpec(names=(name,), family="classical_cv", fields=(image_field(), *fields),
                     outputs=outputs)


def _choice(name: str, default: str, choices: tuple[str, ...]) -> Field:
    return Field(name, kinds=(kinds.STRING,), literal="str", default=default, choices=choices)


def _integer(name: str, default: Any, literal: str = "positive_int") -> Field:
    return Field(name, kinds=(kinds.INTEGER,), literal=literal, default=default)


def _morphology(version: int, default: str, operations: tuple[str, ...]) -> BlockSpec:
    return _image_operation(f"roboflow_core/morphological_transformation@v{version}", _integer("kernel_size", 5),
                            _choice("operation", default, operations))


_IMAGE_OPERATIONS: tuple[BlockSpec, ...] = (
    _image_operation("roboflow_core/convert_grayscale@v1"),
    _image_operation("roboflow_core/image_blur@v1", _choice("blur_type", "gaussian", BLUR_TYPES),
                     _integer("kernel_size", 5)),
    _image_operation("roboflow_core/threshold@v1", _choice("threshold_type", "binary", THRESHOLD_TYPES),
                     _integer("thresh_value", REQUIRED, "cv_pixel_value"),
                     _integer("max_value", 255, "cv_pixel_value")),
    _morphology(1, "Closing", MORPHOLOGY_OPERATIONS),
    _morphology(2, OPENING_THEN_CLOSING, (*MORPHOLOGY_OPERATIONS[:4], OPENING_THEN_CLOSING,
                                          *MORPHOLOGY_OPERATIONS[4:])),
    _image_operation("roboflow_core/contrast_equalization@v1",
                     _choice("equalization_type", "Histogram Equalization", EQUALIZATION_TYPES)),
    _image_operation(  # literals only, as the reference's manifest
        "roboflow_core/contrast_enhancement@v1",
        Field("clip_limit", literal="cv_clip_limit", default=0),
        Field("contrast_multiplier", literal="cv_contrast_multiplier", default=1.0),
        Field("normalize_brightness", literal="bool", default=False),
    ),
    _image_operation(  # external contours of the non-zero pixels, drawn on the image, and counted
        "roboflow_core/contours_detection@v1", _integer("line_thickness", 3, "cv_line_thickness"),
        outputs={"image": (kinds.IMAGE,), "contours": (kinds.CONTOURS,), "hierarchy": (kinds.NUMPY_ARRAY,),
                 "number_contours": (kinds.INTEGER,)},
    ),
    # A source's moving pixels (MOG2, state per source): the foreground mask as an image.
    _image_operation("roboflow_core/background_subtraction@v1", _integer("threshold", 16), _integer("history", 30)),
    # Deskew: turned so that the dominant straight edges are vertical / horizontal, and the angle it took.
    _image_operation(
        "roboflow_core/auto_rotate_on_edges@v1", _choice("target_orientation", "vertical", TARGET_ORIENTATIONS),
        Field("skip_below_degrees", kinds=(kinds.FLOAT,), literal="number", default=0.4),
        Field("max_correction_degrees", kinds=(kinds.FLOAT,), literal="number", default=90.0),
        _integer("internal_resolution", 1000),
        outputs={"image": (kinds.IMAGE,), "angle": (kinds.FLOAT,)},
    ),
)

# ---------------------------------------------------------------- measurements (worker: blocks/cv/measurements.py,
# focus.py, features.py, areas.py): colours, camera focus, template matching, SIFT, distances, sizes, nearest
# neighbours, areas.


def is_reference_dimensions(value: Any) -> bool:
    """size_measurement's reference_dimensions: 'width,height' or [width, height], both numbers > 0."""
    if isinstance(value, str):
        try:
            numbers: Any = [float(part) for part in value.split(",")]
        except ValueError:
            return False
    elif isinstance(value, list | tuple) and all(is_number(v) for v in value):
        numbers = value
    else:
        return False
    return len(numbers) == 2 and all(n > 0 for n in numbers)


_MEASUREMENT_LITERALS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "cv_measure_clusters": (lambda v: is_int(v) and 1 <= v <= 10, "an integer between 1 and 10"),
    "cv_measure_iterations": (lambda v: is_int(v) and 1 <= v <= 500, "an integer between 1 and 500"),
    "cv_measure_target_size": (lambda v: is_int(v) and 1 <= v <= 250, "an integer between 1 and 250"),
    "cv_measure_percent": (lambda v: is_number(v) and 0 <= v <= 100, "a number between 0 and 100"),
    "cv_measure_reference_dimensions": (is_reference_dimensions,
                                        "'width,height' or [width, height], both numbers > 0"),
}
register_literals(_MEASUREMENT_LITERALS)

_BOXES = (kinds.OBJECT_DETECTION, kinds.INSTANCE_SEGMENTATION)
GRID_OVERLAYS = ("None", "2x2", "3x3", "4x4", "5x5")
SIFT_MATCHERS = ("FlannBasedMatcher", "BFMatcher")
# detections_nearest_neighbor's points: a box anchor (not the centre of mass) or a named keypoint.
NEIGHBOUR_POINTS = (*(a for a in ANCHORS if a != "CENTER_OF_MASS"), "KEYPOINT")
_DETECTIONS_OUTPUT = (kinds.OBJECT_DETECTION, kinds.INSTANCE_SEGMENTATION, kinds.KEYPOINT_DETECTION)


def _measurement(name: str, *fields: Field, outputs: dict[str, tuple[str, ...]]) -> BlockSpec:
    return BlockSpec(names=(name,), family="classical_cv", fields=fields, outputs=outputs)


def _flag(name: str, default: bool) -> Field:  # a literal only, as the reference's manifest
    return Field(name, literal="bool", default=default)


def _sift_comparison_v1() -> BlockSpec:
    return _measurement(
        "roboflow_core/sift_comparison@v1",
        Field("descriptor_1", kinds=(kinds.NUMPY_ARRAY,), literal=None),
        Field("descriptor_2", kinds=(kinds.NUMPY_ARRAY,), literal=None),
        _integer("good_matches_threshold", 50),
        # The reference's selector takes an integer; a float is what a ratio is.
        Field("ratio_threshold", kinds=(kinds.INTEGER, kinds.FLOAT), literal="positive_number", default=0.7),
        outputs={"good_matches_count": (kinds.INTEGER,), "images_match": (kinds.BOOLEAN,)},
    )


def _sift_comparison_v2() -> BlockSpec:
    image_or_descriptors = (kinds.IMAGE, kinds.NUMPY_ARRAY)
    return _measurement(
        "roboflow_core/sift_comparison@v2",
        Field("input_1", kinds=image_or_descriptors, literal=None),
        Field("input_2", kinds=image_or_descriptors, literal=None),
        _integer("good_matches_threshold", 50),
        Field("ratio_threshold", kinds=(kinds.FLOAT_ZERO_TO_ONE,), literal="positive_number", default=0.7),
        _choice("matcher", "FlannBasedMatcher", SIFT_MATCHERS),
        Field("visualize", kinds=(kinds.BOOLEAN,), literal="bool", default=False),
        outputs={"images_match": (kinds.BOOLEAN,), "good_matches_count": (kinds.INTEGER,),
                 "keypoints_1": (kinds.IMAGE_KEYPOINTS,), "descriptors_1": (kinds.NUMPY_ARRAY,),
                 "keypoints_2": (kinds.IMAGE_KEYPOINTS,), "descriptors_2": (kinds.NUMPY_ARRAY,),
                 "visualization_1": (kinds.IMAGE,), "visualization_2": (kinds.IMAGE,),
                 "visualization_matches": (kinds.IMAGE,)},
    )


def _distance_measurement() -> BlockSpec:
    return _measurement(
        "roboflow_core/distance_measurement@v1",
        Field("predictions", kinds=_BOXES, literal=None),
        Field("object_1_class_name", literal="str"),
        Field("object_2_class_name", literal="str"),
        Field("reference_axis", literal="str", choices=("horizontal", "vertical")),
        Field("calibration_method", literal="str", choices=("reference object", "pixel to centimeter")),
        Field("reference_object_class_name", kinds=(kinds.STRING,), literal="str", default="reference-object"),
        Field("reference_width", kinds=(kinds.FLOAT,), literal="positive_number", default=2.5),
        Field("reference_height", kinds=(kinds.FLOAT,), literal="positive_number", default=2.5),
        Field("pixel_ratio", kinds=(kinds.FLOAT,), literal="positive_number", default=100),
        # As the reference's kinds; distance_cm is a float unless it is 0.
        outputs={"distance_cm": (kinds.INTEGER,), "distance_pixel": (kinds.INTEGER,)},
    )


def _nearest_neighbour() -> BlockSpec:
    def point(name: str) -> Field:
        return _choice(name, "CENTER", NEIGHBOUR_POINTS)

    return _measurement(
        "roboflow_core/detections_nearest_neighbor@v1",
        Field("query_predictions", kinds=kinds.DETECTIONS, literal=None),
        Field("target_predictions", kinds=kinds.DETECTIONS, literal=None),
        point("query_point"),
        point("target_point"),
        Field("query_keypoint_name", kinds=(kinds.STRING,), literal="optional_str", default=None),
        Field("target_keypoint_name", kinds=(kinds.STRING,), literal="optional_str", default=None),
        _integer("max_distance", None, "non_negative_int"),
        outputs={name: _DETECTIONS_OUTPUT
                 for name in ("query_predictions", "matched_query_detections", "matched_target_detections")},
    )


_MEASUREMENTS: tuple[BlockSpec, ...] = (
    _measurement(
        "roboflow_core/dominant_color@v1", image_field(),
        _integer("color_clusters", 4, "cv_measure_clusters"),
        _integer("max_iterations", 100, "cv_measure_iterations"),
        _integer("target_size", 100, "cv_measure_target_size"),
        outputs={"rgb_color": (kinds.RGB_COLOR,)},
    ),
    _measurement(
        "roboflow_core/pixel_color_count@v1", image_field(),
        Field("target_color", kinds=(kinds.STRING, kinds.RGB_COLOR), literal="colour"),  # transformations' check
        _integer("tolerance", 10, "non_negative_int"),
        outputs={"matching_pixels_count": (kinds.INTEGER,)},
    ),
    _measurement("roboflow_core/camera_focus@v1", image_field(),
                 outputs={"image": (kinds.IMAGE,), "focus_measure": (kinds.FLOAT,)}),
    _measurement(  # literals only but the detections, as the reference's manifest
        "roboflow_core/camera_focus@v2", image_field(),
        Field("underexposed_threshold_percent", literal="cv_measure_percent", default=3.0),
        Field("overexposed_threshold_percent", literal="cv_measure_percent", default=97.0),
        _flag("show_zebra_warnings", True),
        Field("grid_overlay", literal="str", default="3x3", choices=GRID_OVERLAYS),
        _flag("show_hud", True),
        _flag("show_focus_peaking", True),
        _flag("show_center_marker", True),
        Field("detections", kinds=_BOXES, literal=None, default=None),
        outputs={"image": (kinds.IMAGE,), "focus_measure": (kinds.FLOAT,),
                 "bbox_focus_measures": (kinds.LIST_OF_VALUES,)},
    ),
    _measurement(
        "roboflow_core/template_matching@v1", image_field(), image_field("template", ("templates",)),
        Field("matching_threshold", kinds=(kinds.FLOAT,), literal="number", default=0.8),
        Field("apply_nms", kinds=(kinds.BOOLEAN,), literal="bool", default=True),
        Field("nms_threshold", kinds=(kinds.FLOAT_ZERO_TO_ONE,), literal="unit", default=0.5),
        outputs={"predictions": (kinds.OBJECT_DETECTION,), "number_of_matches": (kinds.INTEGER,)},
    ),
    _measurement("roboflow_core/sift@v1", image_field(),
                 outputs={"image": (kinds.IMAGE,), "keypoints": (kinds.IMAGE_KEYPOINTS,),
                          "descriptors": (kinds.NUMPY_ARRAY,)}),
    _sift_comparison_v1(),
    _sift_comparison_v2(),
    _distance_measurement(),
    _measurement(
        "roboflow_core/size_measurement@v1",
        Field("object_predictions", kinds=_BOXES, literal=None),
        Field("reference_predictions", kinds=(*_BOXES, kinds.LIST_OF_VALUES), literal="points"),  # or a polygon
        Field("reference_dimensions", kinds=(kinds.STRING, kinds.LIST_OF_VALUES),
              literal="cv_measure_reference_dimensions"),
        outputs={"dimensions": (kinds.LIST_OF_VALUES,)},
    ),
    _nearest_neighbour(),
    _measurement(  # each detection's area: its mask's pixels, else its box's; and in units² by pixels_per_unit
        "roboflow_core/mask_area_measurement@v1",
        Field("predictions", kinds=_BOXES, literal=None),
        Field("pixels_per_unit", kinds=(kinds.FLOAT,), literal="number", default=1.0),
        outputs={"predictions": _BOXES},
    ),
)

BLOCKS: tuple[BlockSpec, ...] = (*_IMAGE_OPERATIONS, *_MEASUREMENTS)
