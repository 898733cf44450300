"""Visualization blocks: predictions, zones and model comparisons drawn with supervision's annotators.

Each block returns the image with the same lineage and new pixels (``copy_image`` true leaves the
input as it was). The modules: ``colours`` (palette options), ``labels`` (label texts),
``annotators`` (the box and label configuration the dashboard's preview shares), ``base`` (the
annotator cache and canvas), ``shapes``, ``label``, ``regions``, ``heatmap``, ``zones``, ``comparison``,
``grid`` (images tiled into one) and ``text`` (text_display).
"""

from services.worker.workflows.blocks.base import BlockFactory
from services.worker.workflows.blocks.visualization.comparison import ModelComparison
from services.worker.workflows.blocks.visualization.grid import Grid
from services.worker.workflows.blocks.visualization.heatmap import Heatmap
from services.worker.workflows.blocks.visualization.label import ClassificationLabel, LabelV1, LabelV2
from services.worker.workflows.blocks.visualization.regions import (
    BackgroundColor,
    Blur,
    ColorFill,
    Crop,
    Halo,
    Pixelate,
)
from services.worker.workflows.blocks.visualization.shapes import (
    BoundingBox,
    Circle,
    Corner,
    Dot,
    Ellipse,
    Trace,
    Triangle,
)
from services.worker.workflows.blocks.visualization.text import TextDisplay
from services.worker.workflows.blocks.visualization.zones import LineCounterZone, PolygonZone, ReferencePath

BLOCKS: dict[str, BlockFactory] = {
    "roboflow_core/bounding_box_visualization@v1": BoundingBox,
    "roboflow_core/label_visualization@v1": LabelV1,
    "roboflow_core/label_visualization@v2": LabelV2,
    "roboflow_core/blur_visualization@v1": Blur,
    "roboflow_core/pixelate_visualization@v1": Pixelate,
    "roboflow_core/trace_visualization@v1": Trace,
    "roboflow_core/dot_visualization@v1": Dot,
    "roboflow_core/ellipse_visualization@v1": Ellipse,
    "roboflow_core/halo_visualization@v1": Halo,
    "roboflow_core/halo_visualization@v2": Halo,
    "roboflow_core/corner_visualization@v1": Corner,
    "roboflow_core/triangle_visualization@v1": Triangle,
    "roboflow_core/circle_visualization@v1": Circle,
    "roboflow_core/color_visualization@v1": ColorFill,
    "roboflow_core/crop_visualization@v1": Crop,
    "roboflow_core/heatmap_visualization@v1": Heatmap,
    "roboflow_core/line_counter_visualization@v1": LineCounterZone,
    "roboflow_core/polygon_zone_visualization@v1": PolygonZone,
    "roboflow_core/reference_path_visualization@v1": ReferencePath,
    "roboflow_core/model_comparison_visualization@v1": ModelComparison,
    "roboflow_core/classification_label_visualization@v1": ClassificationLabel,
    "roboflow_core/background_color_visualization@v1": BackgroundColor,
    "roboflow_core/grid_visualization@v1": Grid,
    "roboflow_core/text_display@v1": TextDisplay,
}
