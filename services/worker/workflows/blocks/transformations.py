"""transformations blocks: crops, image slicer, image preprocessing, detection offset, detections merge,
perspective correction, detections stitch, dimension collapse, classes replacement and consensus, stitch OCR
detections (v1, v2), bounding_rect and geotag_detection; the fusion blocks buffer, frame_delay, detections_difference,
overlap_analysis, detections_list_rollup and image_stack; camera calibration, stitch images and the QR code generator
(see ``transforms/``)."""

from services.worker.workflows.blocks.base import BlockFactory
from services.worker.workflows.blocks.transforms.bounding_rect import BoundingRect
from services.worker.workflows.blocks.transforms.classes_replacement import DetectionsClassesReplacement
from services.worker.workflows.blocks.transforms.collapse import DimensionCollapse
from services.worker.workflows.blocks.transforms.consensus import DetectionsConsensus
from services.worker.workflows.blocks.transforms.crops import AbsoluteStaticCrop, DynamicCrop, RelativeStaticCrop
from services.worker.workflows.blocks.transforms.difference import DetectionsDifference
from services.worker.workflows.blocks.transforms.geotag import GeotagDetection
from services.worker.workflows.blocks.transforms.history import Buffer, FrameDelay
from services.worker.workflows.blocks.transforms.image_stack import ImageStack
from services.worker.workflows.blocks.transforms.imaging import CameraCalibration, QRCodeGenerator, StitchImages
from services.worker.workflows.blocks.transforms.merge import DetectionsMerge
from services.worker.workflows.blocks.transforms.offset import DetectionOffset
from services.worker.workflows.blocks.transforms.overlap_analysis import OverlapAnalysis
from services.worker.workflows.blocks.transforms.perspective import PerspectiveCorrection
from services.worker.workflows.blocks.transforms.preprocessing import ImagePreprocessing
from services.worker.workflows.blocks.transforms.rollup import DetectionsListRollUp
from services.worker.workflows.blocks.transforms.slicer import ImageSlicer, ImageSlicerV2
from services.worker.workflows.blocks.transforms.stitch import DetectionsStitch
from services.worker.workflows.blocks.transforms.stitch_ocr import StitchOCRDetectionsV1, StitchOCRDetectionsV2

BLOCKS: dict[str, BlockFactory] = {
    "roboflow_core/dynamic_crop@v1": DynamicCrop,
    "roboflow_core/absolute_static_crop@v1": AbsoluteStaticCrop,
    "roboflow_core/relative_static_crop@v1": RelativeStaticCrop,
    "roboflow_core/image_slicer@v1": ImageSlicer,
    "roboflow_core/image_slicer@v2": ImageSlicerV2,
    "roboflow_core/image_preprocessing@v1": ImagePreprocessing,
    "roboflow_core/detections_stitch@v1": DetectionsStitch,
    "roboflow_core/detection_offset@v1": DetectionOffset,
    "roboflow_core/detections_merge@v1": DetectionsMerge,
    "roboflow_core/perspective_correction@v1": PerspectiveCorrection,
    "roboflow_core/dimension_collapse@v1": DimensionCollapse,
    "roboflow_core/detections_classes_replacement@v1": DetectionsClassesReplacement,
    "roboflow_core/detections_consensus@v1": DetectionsConsensus,
    "roboflow_core/buffer@v1": Buffer,
    "roboflow_core/frame_delay@v1": FrameDelay,
    "roboflow_core/detections_difference@v1": DetectionsDifference,
    "roboflow_core/overlap_analysis@v1": OverlapAnalysis,
    "roboflow_core/camera-calibration@v1": CameraCalibration,
    "roboflow_core/stitch_images@v1": StitchImages,
    "roboflow_core/qr_code_generator@v1": QRCodeGenerator,
    "roboflow_core/stitch_ocr_detections@v1": StitchOCRDetectionsV1,
    "roboflow_core/stitch_ocr_detections@v2": StitchOCRDetectionsV2,
    "roboflow_core/detections_list_rollup@v1": DetectionsListRollUp,
    "roboflow_core/image_stack@v1": ImageStack,
    "roboflow_core/bounding_rect@v1": BoundingRect,
    "roboflow_core/geotag_detection@v1": GeotagDetection,
}
