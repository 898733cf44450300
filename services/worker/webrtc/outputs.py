"""What goes back to the peer: the video frame chosen from a round's outputs, and the run-time output switches.

A round's prediction for the peer's source is the workflow's serialised outputs by name. An image output
is ``{"type": "base64", "value": <JPEG>, ...}``; ``serialise_image`` also keeps the BGR pixels on it
(``pixels``), used as they are; without them the JPEG is decoded.
"""

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

MAX_DEPTH = 4  # how deep inside an output an image is looked for (a dict of crops, a list of images)
_NAME_LIMIT = 200  # characters of a client-sent name quoted back in an error


def image_of(prediction: Mapping[str, Any], stream_output: str | None) -> np.ndarray | None:
    """The BGR image to send for ``stream_output`` (``""``: the first image output), or None (send the input)."""
    if stream_output is None:
        return None
    if stream_output == "":
        return _find_image(list(prediction.values()), MAX_DEPTH)
    if stream_output not in prediction:
        return None
    return _find_image(prediction[stream_output], MAX_DEPTH)


def _find_image(value: Any, depth: int) -> np.ndarray | None:
    if depth < 0:
        return None
    if isinstance(value, Mapping):
        if value.get("type") == "base64" and isinstance(value.get("value"), str):
            return _pixels(value)
        items: Iterable[Any] = value.values()
    elif isinstance(value, list | tuple):
        items = value
    else:
        return None
    for item in items:
        if (found := _find_image(item, depth - 1)) is not None:
            return found
    return None


def _pixels(image: Mapping[str, Any]) -> np.ndarray | None:
    pixels = getattr(image, "pixels", None)
    if isinstance(pixels, np.ndarray) and pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.dtype == np.uint8:
        return pixels
    try:
        data = base64.b64decode(image["value"], validate=True)
    except (binascii.Error, ValueError):
        return None
    decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    return decoded if isinstance(decoded, np.ndarray) and decoded.size else None


def data_message(prediction: Mapping[str, Any], data_output: str | None) -> str | None:
    """The data channel message for one round: the output's serialised value as JSON, or None (nothing to send)."""
    if not data_output or data_output not in prediction:
        return None
    return json.dumps(prediction[data_output], default=str)


@dataclass(frozen=True, slots=True)
class Switch:
    """A client's request to change the outputs; ``errors`` says what was refused (the rest applies)."""

    changes: dict[str, str | None]
    errors: tuple[str, ...]


SWITCHABLE = ("stream_output", "data_output")


def parse_switch(message: str | bytes, known: frozenset[str] | None) -> Switch | None:
    """A data channel message from the client as a :class:`Switch`; None when it is not one (to be ignored).

    ``{"stream_output": name or [name] or null, "data_output": ...}``: a list gives its first name, an empty
    list or null means none (``stream_output``: the input frame; ``data_output``: no data), ``""`` for
    ``stream_output`` the first image output. With ``known`` names, other names are refused.
    """
    if isinstance(message, bytes):
        try:
            message = message.decode("utf-8")
        except UnicodeDecodeError:
            return None
    try:
        data = json.loads(message)
    except ValueError:
        return None
    if not isinstance(data, dict) or not any(key in data for key in SWITCHABLE):
        return None
    changes: dict[str, str | None] = {}
    errors: list[str] = []
    for key in SWITCHABLE:
        if key not in data:
            continue
        value = data[key]
        if isinstance(value, list):
            value = value[0] if value else None
        if value is not None and not isinstance(value, str):
            errors.append(f"{key} must be an output name, a list of names or null")
            continue
        if key == "data_output" and value == "":
            value = None
        if value and known is not None and value not in known:
            errors.append(f"{key}: unknown output {value[:_NAME_LIMIT]!r}; known: {', '.join(sorted(known))}")
            continue
        changes[key] = value
    return Switch(changes, tuple(errors))
