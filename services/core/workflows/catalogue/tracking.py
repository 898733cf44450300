"""Tracking blocks: ByteTrack v1/v2/v3 (supervision-style) and the roboflow ``trackers`` ByteTrack v1.

Field names, defaults and outputs follow the reference's manifests
(``transformations/byte_tracker/v*.py``, ``trackers/bytetrack/v1.py``, ``trackers/_base.py``).
"""

from services.core.workflows import kinds
from services.core.workflows.blocks import BlockSpec, Field, image_field

_TRACKED = "tracked_detections"
_BOXES = (kinds.OBJECT_DETECTION, kinds.INSTANCE_SEGMENTATION)
_METADATA = Field("metadata", kinds=(kinds.VIDEO_METADATA,), literal=None)
_IMAGE = image_field("image", ())  # no "images" alias in these manifests
_TUNING = (
    Field("track_activation_threshold", kinds=(kinds.FLOAT_ZERO_TO_ONE,), literal="unit", default=0.25),
    Field("lost_track_buffer", kinds=(kinds.INTEGER,), literal="non_negative_int", default=30),
    Field("minimum_matching_threshold", kinds=(kinds.FLOAT_ZERO_TO_ONE,), literal="unit", default=0.8),
    Field("minimum_consecutive_frames", kinds=(kinds.INTEGER,), literal="positive_int", default=1),
)
# Literal only in the manifests (a plain ``int``): no selector.
_CACHE_SIZE = Field("instances_cache_size", literal="positive_int", default=16384)

# trackers/_base.py: TRACKER_PREDICTION_KINDS, accepted and produced by the trackers package blocks.
_TRACKER_KINDS = (
    kinds.OBJECT_DETECTION, kinds.INSTANCE_SEGMENTATION, kinds.KEYPOINT_DETECTION, kinds.RLE_INSTANCE_SEGMENTATION,
)

BLOCKS = (
    BlockSpec(
        names=("roboflow_core/byte_tracker@v1",),
        family="tracking",
        fields=(_METADATA, Field("detections", kinds=_BOXES, literal=None), *_TUNING),
        outputs={_TRACKED: (kinds.OBJECT_DETECTION,)},
    ),
    BlockSpec(
        names=("roboflow_core/byte_tracker@v2",),
        family="tracking",
        fields=(_IMAGE, Field("detections", kinds=_BOXES, literal=None), *_TUNING),
        outputs={_TRACKED: (kinds.OBJECT_DETECTION,)},
    ),
    BlockSpec(
        names=("roboflow_core/byte_tracker@v3",),
        family="tracking",
        fields=(
            _IMAGE,
            Field("detections", kinds=(*_BOXES, kinds.KEYPOINT_DETECTION), literal=None),
            *_TUNING,
            _CACHE_SIZE,
        ),
        outputs={
            _TRACKED: (kinds.OBJECT_DETECTION,),
            "new_instances": (kinds.OBJECT_DETECTION,),
            "already_seen_instances": (kinds.OBJECT_DETECTION,),
        },
    ),
    BlockSpec(
        names=("roboflow_core/trackers_bytetrack@v1",),
        family="tracking",
        fields=(
            _IMAGE,
            Field("detections", kinds=_TRACKER_KINDS, literal=None),
            Field("minimum_iou_threshold", kinds=(kinds.FLOAT_ZERO_TO_ONE,), literal="unit", default=0.1),
            Field("minimum_consecutive_frames", kinds=(kinds.INTEGER,), literal="positive_int", default=2),
            Field("lost_track_buffer", kinds=(kinds.INTEGER,), literal="non_negative_int", default=30),
            Field("track_activation_threshold", kinds=(kinds.FLOAT_ZERO_TO_ONE,), literal="unit", default=0.7),
            Field("high_conf_det_threshold", kinds=(kinds.FLOAT_ZERO_TO_ONE,), literal="unit", default=0.6),
            _CACHE_SIZE,
        ),
        outputs={
            _TRACKED: _TRACKER_KINDS,
            "new_instances": _TRACKER_KINDS,
            "already_seen_instances": _TRACKER_KINDS,
        },
    ),
)
