"""Video analytics blocks: line counter, time in zone, path deviation, velocity, detection event log, overlap,
motion detection.

Field names, defaults and outputs follow the reference's manifests (``analytics/<block>/v*.py``).
Geometry literals (lines, polygons, paths, anchors) are checked by the checks in
:mod:`services.core.workflows.catalogue.geometry`.
"""

from services.core.workflows import kinds
from services.core.workflows.blocks import BlockSpec, Field, image_field
from services.core.workflows.catalogue.geometry import ANCHORS

_BOXES: tuple[str, ...] = (kinds.OBJECT_DETECTION, kinds.INSTANCE_SEGMENTATION)
_DETECTIONS = Field("detections", kinds=_BOXES, literal=None)
_METADATA = Field("metadata", kinds=(kinds.VIDEO_METADATA,), literal=None)
_IMAGE = image_field("image", ())  # no "images" alias in these manifests


def _anchor(default: str | None = "CENTER") -> Field:
    return Field("triggering_anchor", kinds=(kinds.STRING,), literal="str" if default else "optional_str",
                 default=default, choices=ANCHORS)


def _line_segment() -> Field:
    return Field("line_segment", kinds=(kinds.LIST_OF_VALUES,), literal="line_segment")


def _zone(literal: str) -> tuple[Field, ...]:
    return (
        Field("zone", kinds=(kinds.LIST_OF_VALUES,), literal=literal),
        _anchor(),
        Field("remove_out_of_zone_detections", kinds=(kinds.BOOLEAN,), literal="bool", default=True),
        Field("reset_out_of_zone_detections", kinds=(kinds.BOOLEAN,), literal="bool", default=True),
    )


def _path() -> tuple[Field, ...]:
    return (_anchor(), Field("reference_path", kinds=(kinds.LIST_OF_VALUES,), literal="reference_path"))


_COUNTS: dict[str, tuple[str, ...]] = {"count_in": (kinds.INTEGER,), "count_out": (kinds.INTEGER,)}
_TIMED: dict[str, tuple[str, ...]] = {"timed_detections": _BOXES}
_DEVIATION: dict[str, tuple[str, ...]] = {"path_deviation_detections": _BOXES}
_WITH_KEYPOINTS: tuple[str, ...] = (kinds.KEYPOINT_DETECTION, kinds.OBJECT_DETECTION, kinds.INSTANCE_SEGMENTATION)

_LINE_COUNTERS = (
    BlockSpec(
        names=("roboflow_core/line_counter@v1",),
        family="analytics",
        fields=(_METADATA, _DETECTIONS, _line_segment(), _anchor()),
        outputs=_COUNTS,
    ),
    BlockSpec(
        names=("roboflow_core/line_counter@v2",),
        family="analytics",
        # No anchor (the default): all four box corners must change side.
        fields=(_IMAGE, _DETECTIONS, _line_segment(), _anchor(None)),
        outputs={**_COUNTS, "detections_in": _BOXES, "detections_out": _BOXES},
    ),
)

_TIME_IN_ZONE = (
    BlockSpec(
        names=("roboflow_core/time_in_zone@v1",),
        family="analytics",
        fields=(_IMAGE, _METADATA, _DETECTIONS, *_zone("zone_polygon")),
        outputs=_TIMED,
    ),
    BlockSpec(
        names=("roboflow_core/time_in_zone@v2",),
        family="analytics",
        fields=(_IMAGE, _DETECTIONS, *_zone("zone_polygon")),
        outputs=_TIMED,
    ),
    BlockSpec(
        names=("roboflow_core/time_in_zone@v3",),
        family="analytics",
        fields=(_IMAGE, _DETECTIONS, *_zone("zone_polygons")),  # one polygon or several
        outputs=_TIMED,
    ),
)

_PATH_DEVIATION = (
    BlockSpec(
        names=("roboflow_core/path_deviation_analytics@v1",),
        family="analytics",
        fields=(_METADATA, _DETECTIONS, *_path()),
        outputs=_DEVIATION,
    ),
    BlockSpec(
        names=("roboflow_core/path_deviation_analytics@v2",),
        family="analytics",
        fields=(_IMAGE, _DETECTIONS, *_path()),
        outputs=_DEVIATION,
    ),
)

_OTHERS = (
    BlockSpec(
        names=("roboflow_core/velocity@v1",),
        family="analytics",
        fields=(
            _IMAGE,
            Field("detections", kinds=_WITH_KEYPOINTS, literal=None),
            Field("smoothing_alpha", kinds=(kinds.FLOAT,), literal="smoothing_alpha", default=0.5),
            Field("pixels_per_meter", kinds=(kinds.FLOAT,), literal="positive_number", default=1.0),
        ),
        outputs={"velocity_detections": _WITH_KEYPOINTS},
    ),
    BlockSpec(
        names=("roboflow_core/detection_event_log@v1",),
        family="analytics",
        fields=(
            _IMAGE,
            _DETECTIONS,
            Field("frame_threshold", kinds=(kinds.INTEGER,), literal="positive_int", default=30),
            Field("flush_interval", kinds=(kinds.INTEGER,), literal="positive_int", default=30),
            Field("stale_frames", kinds=(kinds.INTEGER,), literal="positive_int", default=300),
            # Deprecated and unused in the reference; accepted for compatibility.
            Field("reference_timestamp", kinds=(kinds.FLOAT,), literal="optional_number", default=None),
            Field("fallback_fps", kinds=(kinds.FLOAT,), literal="positive_number", default=1.0),
        ),
        outputs={
            "event_log": (kinds.DICTIONARY,),
            "detections": _BOXES,
            "total_logged": (kinds.INTEGER,),
            "total_pending": (kinds.INTEGER,),
            "complete_events": (kinds.DICTIONARY,),
        },
    ),
    BlockSpec(
        names=("roboflow_core/overlap@v1",),
        family="analytics",
        fields=(
            Field("predictions", kinds=_BOXES, literal=None),
            # Both literal only in the manifest.
            Field("overlap_type", literal="str", default="Center Overlap", choices=("Center Overlap", "Any Overlap")),
            Field("overlap_class_name", literal="str"),
        ),
        outputs={"overlaps": (kinds.OBJECT_DETECTION,)},
    ),
)


def _motion_setting(name: str, default: int) -> Field:
    return Field(name, kinds=(kinds.INTEGER,), literal="positive_int", default=default)


# Background subtraction on the frames of one source (the reference's classical CV block).
_MOTION_DETECTION = BlockSpec(
    names=("roboflow_core/motion_detection@v1",),
    family="analytics",
    fields=(
        image_field("image"),  # "images" is an alias here
        _motion_setting("minimum_contour_area", 200),
        _motion_setting("morphological_kernel_size", 3),
        _motion_setting("threshold", 16),
        _motion_setting("history", 30),
        Field("detection_zone", kinds=(kinds.ZONE, kinds.LIST_OF_VALUES), literal="detection_zone", default=None),
        Field("suppress_first_detections", kinds=(kinds.BOOLEAN,), literal="bool", default=True),
    ),
    outputs={
        "motion": (kinds.BOOLEAN,),
        "alarm": (kinds.BOOLEAN,),
        "detections": (kinds.OBJECT_DETECTION,),
        "motion_zones": (kinds.LIST_OF_VALUES,),
    },
)

BLOCKS: tuple[BlockSpec, ...] = (*_LINE_COUNTERS, *_TIME_IN_ZONE, *_PATH_DEVIATION, *_OTHERS, _MOTION_DETECTION)
