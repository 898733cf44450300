"""Tracking blocks: ByteTrack v1/v2/v3 (supervision-style), the roboflow ``trackers`` package's
ByteTrack, SORT, OC-SORT and BoT-SORT v1, track_class_lock v1 (a track's class by vote), and
stabilize_detections v1 (tracked boxes smoothed, briefly missed tracks filled in).

Field names, defaults and outputs follow the reference's manifests
(``transformations/byte_tracker/v*.py``, ``trackers/{bytetrack,sort,ocsort,botsort}/v1.py``,
``trackers/_base.py``, ``transformations/track_class_lock/v1.py``,
``transformations/stabilize_detections/v1.py``).
"""

from collections.abc import Mapping
from typing import Any

from services.core.errors import InvalidPayloadError
from services.core.workflows import kinds
from services.core.workflows.blocks import BlockSpec, Field, image_field

_TRACKED = "tracked_detections"
_BOXES = (kinds.OBJECT_DETECTION, kinds.INSTANCE_SEGMENTATION)
_METADATA = Field("metadata", kinds=(kinds.VIDEO_METADATA,), literal=None)
_IMAGE = image_field("image", ())  # no "images" alias in these manifests

# Camera motion compensation of BoT-SORT (trackers/botsort/v1.py: CMCMethod).
BOTSORT_CMC_METHODS = ("orb", "sift", "sparseOptFlow", "ecc")
_LOST_TRACK_BUFFER = Field("lost_track_buffer", kinds=(kinds.INTEGER,), literal="non_negative_int", default=30)


def _unit(name: str, default: float) -> Field:
    return Field(name, kinds=(kinds.FLOAT_ZERO_TO_ONE,), literal="unit", default=default)


def _consecutive(default: int) -> Field:
    return Field("minimum_consecutive_frames", kinds=(kinds.INTEGER,), literal="positive_int", default=default)


_TUNING = (
    _unit("track_activation_threshold", 0.25),
    _LOST_TRACK_BUFFER,
    _unit("minimum_matching_threshold", 0.8),
    _consecutive(1),
)
# Literal only in the manifests (a plain ``int``): no selector.
_CACHE_SIZE = Field("instances_cache_size", literal="positive_int", default=16384)

# trackers/_base.py: TRACKER_PREDICTION_KINDS, accepted and produced by the trackers package blocks.
_TRACKER_KINDS = (
    kinds.OBJECT_DETECTION, kinds.INSTANCE_SEGMENTATION, kinds.KEYPOINT_DETECTION, kinds.RLE_INSTANCE_SEGMENTATION,
)


def _package_tracker(algorithm: str, tuning: tuple[Field, ...]) -> BlockSpec:
    """``trackers_<algorithm>@v1``: one of the trackers package's trackers, with the shared outputs of
    ``trackers/_base.py`` (every confirmed detection, and those split into first and later sightings)."""
    return BlockSpec(
        names=(f"roboflow_core/trackers_{algorithm}@v1",),
        family="tracking",
        fields=(_IMAGE, Field("detections", kinds=_TRACKER_KINDS, literal=None), *tuning, _CACHE_SIZE),
        outputs={
            _TRACKED: _TRACKER_KINDS,
            "new_instances": _TRACKER_KINDS,
            "already_seen_instances": _TRACKER_KINDS,
        },
    )


CLASS_LOCK = "roboflow_core/track_class_lock@v1"


def check_reattach_window(params: Mapping[str, Any], path: str) -> None:
    """track_class_lock: a lost track is forgotten after ``state_ttl`` frames, so it cannot be re-attached
    later than that (the manifest's own rule)."""
    window, ttl = params.get("reattach_window"), params.get("state_ttl")
    if isinstance(window, int) and isinstance(ttl, int) and window > ttl:
        raise InvalidPayloadError(
            f"field '{path}.reattach_window': {window} exceeds state_ttl {ttl}; a lost track is forgotten after "
            "state_ttl frames, so it can be re-attached within at most that many"
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
    _package_tracker("bytetrack", (
        _unit("minimum_iou_threshold", 0.1),
        _consecutive(2),
        _LOST_TRACK_BUFFER,
        _unit("track_activation_threshold", 0.7),
        _unit("high_conf_det_threshold", 0.6),
    )),
    _package_tracker("sort", (
        _unit("minimum_iou_threshold", 0.3),
        _consecutive(3),
        _LOST_TRACK_BUFFER,
        _unit("track_activation_threshold", 0.25),
    )),
    _package_tracker("ocsort", (
        _unit("minimum_iou_threshold", 0.3),
        _consecutive(3),
        _LOST_TRACK_BUFFER,
        _unit("high_conf_det_threshold", 0.6),
        _unit("direction_consistency_weight", 0.2),
        Field("delta_t", kinds=(kinds.INTEGER,), literal="positive_int", default=3),
    )),
    _package_tracker("botsort", (
        _unit("minimum_iou_threshold_first_assoc", 0.2),
        _unit("minimum_iou_threshold_second_assoc", 0.5),
        _unit("minimum_iou_threshold_unconfirmed_assoc", 0.3),
        _consecutive(2),
        _LOST_TRACK_BUFFER,
        _unit("track_activation_threshold", 0.7),
        _unit("high_conf_det_threshold", 0.6),
        Field("enable_cmc", kinds=(kinds.BOOLEAN,), literal="bool", default=False),
        # Literal only in the manifest (a Literal of these names): no selector.
        Field("cmc_method", literal="str", default="sparseOptFlow", choices=BOTSORT_CMC_METHODS),
        Field("cmc_downscale", kinds=(kinds.INTEGER,), literal="positive_int", default=2),
        Field("instant_first_frame_activation", kinds=(kinds.BOOLEAN,), literal="bool", default=False),
    )),
    BlockSpec(  # a track's class locked by majority vote: no class flicker in counts and labels
        names=(CLASS_LOCK,),
        family="tracking",
        fields=(
            _IMAGE,
            Field("detections", kinds=_TRACKER_KINDS, literal=None),
            Field("min_votes", kinds=(kinds.INTEGER,), literal="positive_int", default=10),
            _unit("vote_confidence", 0.8),
            Field("lead_margin", kinds=(kinds.INTEGER,), literal="non_negative_int", default=3),
            Field("switch_after", kinds=(kinds.INTEGER,), literal="positive_int", default=15),
            Field("state_ttl", kinds=(kinds.INTEGER,), literal="positive_int", default=300),
            Field("reattach_window", kinds=(kinds.INTEGER,), literal="non_negative_int", default=30),
            _unit("reattach_iou", 0.3),
        ),
        outputs={_TRACKED: _TRACKER_KINDS},
        check=check_reattach_window,
    ),
    BlockSpec(  # tracked boxes steadied across frames, a briefly missed track filled in where it was heading
        names=("roboflow_core/stabilize_detections@v1",),
        family="tracking",
        fields=(
            _IMAGE,
            Field("detections", kinds=_BOXES, literal=None),
            Field("smoothing_window_size", kinds=(kinds.INTEGER,), literal="positive_int", default=3),
            _unit("bbox_smoothing_coefficient", 0.2),
        ),
        outputs={_TRACKED: _BOXES},
    ),
)
