"""Placing detections on an image: the lineage fields ``values.detections_on`` writes, rewritten.

Used when detections change the image they are expressed in (a dynamic crop's own detection, now
in its crop's pixels; stitched slice detections, now in the reference image's pixels).
"""

import numpy as np
import supervision as sv

from services.worker.workflows import values
from services.worker.workflows.values import WorkflowImage


def place_on(detections: sv.Detections, image: WorkflowImage) -> sv.Detections:
    """``detections`` (changed in place and returned) said to be made on ``image``, in its pixels."""
    count = len(detections)
    root = image.root_origin

    def rows(pair: tuple[int, int]) -> np.ndarray:
        return np.array([pair] * count, dtype=np.int64).reshape(-1, 2)

    detections.data[values.PARENT_ID] = np.array([image.parent_id] * count, dtype=object)
    detections.data[values.IMAGE_DIMENSIONS] = rows((image.height, image.width))
    detections.data[values.PARENT_COORDINATES] = rows((image.origin.offset_x, image.origin.offset_y))
    detections.data[values.PARENT_DIMENSIONS] = rows((image.origin.parent_height, image.origin.parent_width))
    detections.data[values.ROOT_PARENT_ID] = np.array([root.parent_id] * count, dtype=object)
    detections.data[values.ROOT_PARENT_COORDINATES] = rows((root.offset_x, root.offset_y))
    detections.data[values.ROOT_PARENT_DIMENSIONS] = rows((root.parent_height, root.parent_width))
    detections.metadata[values.IMAGE_SIZE] = (image.height, image.width)
    return detections


# The data fields that say where a detection lies (its image, that image's place in its parent and in the
# video frame): the same for all the detections made on one image.
LINEAGE = (values.PARENT_ID, values.PARENT_COORDINATES, values.PARENT_DIMENSIONS, values.ROOT_PARENT_ID,
           values.ROOT_PARENT_COORDINATES, values.ROOT_PARENT_DIMENSIONS, values.IMAGE_DIMENSIONS)


def copy_of(detections: sv.Detections, indices: list[int] | None = None) -> sv.Detections:
    """An independent copy of the detections at ``indices`` (all by default), data and metadata included."""
    copied = detections[np.arange(len(detections)) if indices is None else np.array(indices, dtype=np.int64)]
    assert isinstance(copied, sv.Detections)  # an index array selects detections, not a data field
    copied.data = dict(copied.data)
    copied.metadata = dict(detections.metadata)
    return copied


def empty_detections(image_size: tuple[int, int] | None = None) -> sv.Detections:
    """No detections, with the data keys blocks read (and the image's (h, w) when known)."""
    detections = sv.Detections.empty()
    detections.data = {key: np.array([], dtype=object)
                       for key in (values.CLASS_NAME, values.DETECTION_ID, values.PARENT_ID)}
    if image_size is not None:
        detections.metadata[values.IMAGE_SIZE] = image_size
    return detections
