"""Analytics blocks, by canonical name: the video analytics and motion detection (one module each under
``blocks.video``) and overlap."""

from services.worker.workflows.blocks.base import BlockFactory
from services.worker.workflows.blocks.overlap import OverlapV1
from services.worker.workflows.blocks.video.event_log import DetectionEventLogV1
from services.worker.workflows.blocks.video.line_counter import LineCounterV1, LineCounterV2
from services.worker.workflows.blocks.video.motion import MotionDetectionV1
from services.worker.workflows.blocks.video.path_deviation import PathDeviationV1, PathDeviationV2
from services.worker.workflows.blocks.video.time_in_zone import TimeInZoneV1, TimeInZoneV2, TimeInZoneV3
from services.worker.workflows.blocks.video.velocity import VelocityV1

BLOCKS: dict[str, BlockFactory] = {
    "roboflow_core/line_counter@v1": LineCounterV1,
    "roboflow_core/line_counter@v2": LineCounterV2,
    "roboflow_core/time_in_zone@v1": TimeInZoneV1,
    "roboflow_core/time_in_zone@v2": TimeInZoneV2,
    "roboflow_core/time_in_zone@v3": TimeInZoneV3,
    "roboflow_core/path_deviation_analytics@v1": PathDeviationV1,
    "roboflow_core/path_deviation_analytics@v2": PathDeviationV2,
    "roboflow_core/velocity@v1": VelocityV1,
    "roboflow_core/detection_event_log@v1": DetectionEventLogV1,
    "roboflow_core/overlap@v1": OverlapV1,
    "roboflow_core/motion_detection@v1": MotionDetectionV1,
}
