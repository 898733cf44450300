"""Image outputs: their JSON is the reference's, their pixels ride along outside it only where wanted."""

import json

import numpy as np

from services.worker.workflows.serialization import SerialisedImage, drop_pixels, serialise
from tests.worker.workflows.query_values import frame


def test_an_image_output_keeps_its_pixels_outside_its_json() -> None:
    image = frame(np.full((576, 768, 3), 7, np.uint8))

    output = serialise({"annotated": image, "nested": [image]})

    annotated = output["annotated"]
    assert isinstance(annotated, SerialisedImage) and annotated.pixels is image.image
    assert set(json.loads(json.dumps(output))["annotated"]) == {"type", "value", "video_metadata"}
    assert annotated == {**annotated}  # compares as the plain dict it serialises to


def test_drop_pixels_forgets_them_everywhere_and_keeps_the_json() -> None:
    image = frame(np.full((576, 768, 3), 7, np.uint8))
    output = serialise({"annotated": image, "nested": {"list": [image]}})
    before = json.dumps(output)

    drop_pixels(output)

    assert output["annotated"].pixels is None and output["nested"]["list"][0].pixels is None
    assert json.dumps(output) == before
