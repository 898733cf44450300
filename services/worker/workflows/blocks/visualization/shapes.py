"""Visualizations that draw a mark per detection: its box, corners, a dot, ellipse, circle, triangle or trace."""

from typing import Any

import supervision as sv

from services.worker.workflows.blocks.visualization.annotators import anchor, box_annotator
from services.worker.workflows.blocks.visualization.base import ColorableVisualization
from services.worker.workflows.blocks.visualization.colours import Colours
from services.worker.workflows.values import WorkflowImage


class BoundingBox(ColorableVisualization):
    def annotator(self, colours: Colours, thickness: int, roundness: float) -> Any:
        return box_annotator(colours, thickness, roundness)


class Corner(ColorableVisualization):
    def annotator(self, colours: Colours, thickness: int, corner_length: int) -> Any:
        return sv.BoxCornerAnnotator(color=colours.palette, color_lookup=colours.lookup, thickness=thickness,
                                     corner_length=corner_length)


class Dot(ColorableVisualization):
    def annotator(self, colours: Colours, position: str, radius: int, outline_thickness: int) -> Any:
        return sv.DotAnnotator(color=colours.palette, color_lookup=colours.lookup, position=anchor(position),
                               radius=radius, outline_thickness=outline_thickness)


class Ellipse(ColorableVisualization):
    def annotator(self, colours: Colours, thickness: int, start_angle: int, end_angle: int) -> Any:
        return sv.EllipseAnnotator(color=colours.palette, color_lookup=colours.lookup, thickness=thickness,
                                   start_angle=start_angle, end_angle=end_angle)


class Circle(ColorableVisualization):
    def annotator(self, colours: Colours, thickness: int) -> Any:
        return sv.CircleAnnotator(color=colours.palette, color_lookup=colours.lookup, thickness=thickness)


class Triangle(ColorableVisualization):
    def annotator(self, colours: Colours, position: str, base: int, height: int, outline_thickness: int) -> Any:
        return sv.TriangleAnnotator(color=colours.palette, color_lookup=colours.lookup, position=anchor(position),
                                    base=base, height=height, outline_thickness=outline_thickness)


class Trace(ColorableVisualization):
    """Each tracked object's path over its last ``trace_length`` frames (the history is this instance's)."""

    def annotator(self, colours: Colours, position: str, trace_length: int, thickness: int) -> Any:
        return sv.TraceAnnotator(color=colours.palette, color_lookup=colours.lookup, position=anchor(position),
                                 trace_length=trace_length, thickness=thickness)

    def configure(self, image: WorkflowImage, predictions: sv.Detections, config: dict[str, Any]) -> dict[str, Any]:
        if len(predictions) and predictions.tracker_id is None:
            raise ValueError(f"{self.name} needs tracked predictions (they have no tracker ids): feed it a "
                             "tracker's output, e.g. $steps.<byte_tracker>.tracked_detections")
        return super().configure(image, predictions, config)

