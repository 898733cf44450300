"""geotag_detection@v1: each detection's box centre as a latitude / longitude on flat ground under a camera looking
straight down (a drone's), from the camera's position, height above ground, horizontal field of view and heading.

The ground the image covers is ``2 · altitude · tan(fov / 2)`` wide and as tall as the image's aspect ratio makes
it; a pixel's offset from the image centre, in that ground's metres to the image's right and top, is turned by the
heading (degrees clockwise from north that the image's top faces) onto east and north, then into degrees: 111 320 m
per degree of latitude, that times cos(latitude) per degree of longitude. An altitude of 0 or less puts every
detection at the camera. Records and GeoJSON are rounded as the reference rounds them (degrees to 7 decimals,
pixels to 1, confidence to 4); a detection without a class name is "unknown".
"""

import math
from typing import Any

import numpy as np
import supervision as sv

from services.core.workflows.blocks import is_number
from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.values import CLASS_NAME, WorkflowImage

METRES_PER_DEGREE_OF_LATITUDE = 111320.0


def ground_position(x: float, y: float, image_width: int, image_height: int, latitude: float, longitude: float,
                    altitude: float, horizontal_fov: float, heading: float) -> tuple[float, float]:
    """The (latitude, longitude) that pixel (x, y) sees, for a nadir camera at (latitude, longitude, altitude)."""
    if altitude <= 0:
        return latitude, longitude
    ground_width = 2 * altitude * math.tan(math.radians(horizontal_fov) / 2)
    ground_height = ground_width * image_height / image_width
    right = (x - image_width / 2) / image_width * ground_width
    up = (image_height / 2 - y) / image_height * ground_height
    turn = math.radians(heading)
    east = right * math.cos(turn) + up * math.sin(turn)
    north = up * math.cos(turn) - right * math.sin(turn)
    metres_per_degree_of_longitude = METRES_PER_DEGREE_OF_LATITUDE * math.cos(math.radians(latitude))
    return latitude + north / METRES_PER_DEGREE_OF_LATITUDE, longitude + east / metres_per_degree_of_longitude


class GeotagDetection:
    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        pass

    def run(self, image: WorkflowImage, predictions: sv.Detections, latitude: Any, longitude: Any, altitude: Any,
            horizontal_fov: Any = 73.7, heading: Any = 0.0) -> dict[str, Any]:
        camera = {"latitude": latitude, "longitude": longitude, "altitude": altitude,
                  "horizontal_fov": horizontal_fov, "heading": heading}
        for name, value in camera.items():
            if not is_number(value):
                raise ValueError(f"geotag_detection: {name} must be a number, got {value!r}")
        names = predictions.data.get(CLASS_NAME)
        confidences = (np.asarray(predictions.confidence, dtype=np.float64) if predictions.confidence is not None
                       else np.zeros(len(predictions)))
        records: list[dict[str, Any]] = []
        features: list[dict[str, Any]] = []
        for index, (x1, y1, x2, y2) in enumerate(np.asarray(predictions.xyxy, dtype=np.float64).tolist()):
            x, y = (x1 + x2) / 2, (y1 + y2) / 2
            lat, lon = ground_position(x, y, image.width, image.height, float(latitude), float(longitude),
                                       float(altitude), float(horizontal_fov), float(heading))
            record = {
                "class": str(names[index]) if names is not None and index < len(names) else "unknown",
                "confidence": round(float(confidences[index]), 4),
                "lat": round(lat, 7),
                "lon": round(lon, 7),
                "pixel_x": round(x, 1),
                "pixel_y": round(y, 1),
                "width": round(x2 - x1, 1),
                "height": round(y2 - y1, 1),
            }
            records.append(record)
            features.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [record["lon"],
                                                                                              record["lat"]]},
                             "properties": {"class": record["class"], "confidence": record["confidence"]}})
        return {"geo_detections": records, "geojson": {"type": "FeatureCollection", "features": features}}
