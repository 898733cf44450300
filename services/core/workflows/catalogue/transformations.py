"""Transformation and fusion blocks: crops (dynamic, absolute, relative), the image slicer (v1, v2),
detection offset, detections merge, detections stitch, dimension collapse, detections classes replacement
and detections consensus, with the reference's names, aliases and defaults.

Dynamic crop and the slicer output one item per crop/slice (dimensionality +1); stitch, dimension collapse
and classes replacement take the whole list of per-slice or per-crop results at once (a ``batch`` field),
so they run back at their image's level.
"""

import re
from collections.abc import Callable
from typing import Any

from services.core.workflows import kinds
from services.core.workflows.blocks import BlockSpec, Field, detections_field, image_field, is_int, register_literals

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


# Literal checks only this family needs, registered when the catalogue is imported.
_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "colour": (is_colour, "a colour: '#rgb', '#rrggbb', '(r, g, b)' or [r, g, b]"),
    "overlap_ratio": (is_overlap_ratio, "a number >= 0 and < 1"),
    "required_objects": (is_required_objects, "a positive integer or an object of class name -> positive integer"),
}
register_literals(_CHECKS)

_IMAGES = image_field("images", ("image",))
_SEGMENTS = (kinds.OBJECT_DETECTION, kinds.INSTANCE_SEGMENTATION)
_AGGREGATION = ("average", "max", "min")


def _static_crop(names: tuple[str, ...], kind: str, literal: str) -> BlockSpec:
    return BlockSpec(
        names=names,
        family="transformations",
        fields=(_IMAGES, *(Field(name, kinds=(kind,), literal=literal)
                           for name in ("x_center", "y_center", "width", "height"))),
        outputs={"crops": (kinds.IMAGE,)},
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
)
