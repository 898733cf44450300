"""Classical computer vision blocks, by canonical name (implementations under ``blocks/cv/``)."""

from services.worker.workflows.blocks.base import BlockFactory
from services.worker.workflows.blocks.cv.areas import MaskAreaMeasurement
from services.worker.workflows.blocks.cv.background import BackgroundSubtraction
from services.worker.workflows.blocks.cv.deskew import AutoRotateOnEdges
from services.worker.workflows.blocks.cv.features import (
    SiftComparisonV1,
    SiftComparisonV2,
    SiftV1,
    TemplateMatching,
)
from services.worker.workflows.blocks.cv.focus import CameraFocusV1, CameraFocusV2
from services.worker.workflows.blocks.cv.images import (
    ContoursDetection,
    ContrastEnhancement,
    ContrastEqualization,
    ConvertGrayscale,
    ImageBlur,
    ImageThreshold,
    MorphologicalTransformationV1,
    MorphologicalTransformationV2,
)
from services.worker.workflows.blocks.cv.measurements import (
    DetectionsNearestNeighbor,
    DistanceMeasurement,
    DominantColor,
    PixelColorCount,
    SizeMeasurement,
)

# Image operations (cv/images.py, cv/background.py, cv/deskew.py).
_IMAGE_OPERATIONS: dict[str, BlockFactory] = {
    "roboflow_core/convert_grayscale@v1": ConvertGrayscale,
    "roboflow_core/image_blur@v1": ImageBlur,
    "roboflow_core/threshold@v1": ImageThreshold,
    "roboflow_core/morphological_transformation@v1": MorphologicalTransformationV1,
    "roboflow_core/morphological_transformation@v2": MorphologicalTransformationV2,
    "roboflow_core/contrast_equalization@v1": ContrastEqualization,
    "roboflow_core/contrast_enhancement@v1": ContrastEnhancement,
    "roboflow_core/contours_detection@v1": ContoursDetection,
    "roboflow_core/background_subtraction@v1": BackgroundSubtraction,
    "roboflow_core/auto_rotate_on_edges@v1": AutoRotateOnEdges,
}

# Measurements (cv/measurements.py, cv/focus.py, cv/features.py, cv/areas.py).
_MEASUREMENTS: dict[str, BlockFactory] = {
    "roboflow_core/dominant_color@v1": DominantColor,
    "roboflow_core/pixel_color_count@v1": PixelColorCount,
    "roboflow_core/camera_focus@v1": CameraFocusV1,
    "roboflow_core/camera_focus@v2": CameraFocusV2,
    "roboflow_core/template_matching@v1": TemplateMatching,
    "roboflow_core/sift@v1": SiftV1,
    "roboflow_core/sift_comparison@v1": SiftComparisonV1,
    "roboflow_core/sift_comparison@v2": SiftComparisonV2,
    "roboflow_core/distance_measurement@v1": DistanceMeasurement,
    "roboflow_core/size_measurement@v1": SizeMeasurement,
    "roboflow_core/detections_nearest_neighbor@v1": DetectionsNearestNeighbor,
    "roboflow_core/mask_area_measurement@v1": MaskAreaMeasurement,
}

BLOCKS: dict[str, BlockFactory] = {**_IMAGE_OPERATIONS, **_MEASUREMENTS}
