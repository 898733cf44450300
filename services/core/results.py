"""The entry format of a pipeline's results stream: one entry per inference round.

An entry has two fields, each a compact JSON list aligned with the pipeline's sources
(``null`` where a source contributed no frame to the round):

- ``outputs``: the reference prediction dict per source
  (``{"image": {...}, "predictions": [...]}``);
- ``frames_metadata``: ``{"frame_timestamp": ISO-8601, "frame_id": int, "source_id": int}`` per source;
- ``epoch``: the dispatch epoch of the task that produced it. Epochs never decrease along the
  stream: a task whose epoch was superseded can no longer append (the write is fenced).

Written by the worker, read by CONSUME_RESULT and by any other stream consumer.
"""

import json
from collections.abc import Mapping
from typing import Any

OUTPUTS = "outputs"
FRAMES_METADATA = "frames_metadata"
EPOCH = "epoch"

Output = dict[str, Any] | None


def encode_entry(outputs: list[Output], frames_metadata: list[Output]) -> dict[str, str]:
    if len(outputs) != len(frames_metadata):
        raise ValueError("outputs and frames_metadata must be aligned with the sources")
    return {
        OUTPUTS: json.dumps(outputs, separators=(",", ":")),
        FRAMES_METADATA: json.dumps(frames_metadata, separators=(",", ":")),
    }


def decode_entry(fields: Mapping[bytes, bytes] | Mapping[str, str]) -> tuple[list[Output], list[Output]]:
    """The (outputs, frames_metadata) of a raw stream entry, as redis-py returns it."""
    normalised = {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in fields.items()
    }
    return json.loads(normalised[OUTPUTS]), json.loads(normalised[FRAMES_METADATA])


def entry_epoch(fields: Mapping[bytes, bytes] | Mapping[str, str]) -> int | None:
    """The producing task's epoch of a raw stream entry (None for entries written without one)."""
    for key, value in fields.items():
        if (key.decode() if isinstance(key, bytes) else key) == EPOCH:
            return int(value)
    return None


def detections_in(output: Any, depth: int = 4) -> list[dict[str, Any]] | None:
    """Every detection in one source's output: the flat payload's prediction dict, or the prediction
    dicts (``{"image": {...}, "predictions": [...]}``) anywhere in a workflow's outputs. None when the
    output holds no prediction dict at all (excluded, or a workflow without detection outputs)."""
    if depth < 0:
        return None
    if isinstance(output, Mapping):
        predictions = output.get("predictions")
        if isinstance(predictions, list) and ("image" in output or len(output) == 1):
            return [item for item in predictions if isinstance(item, dict)]
        children: Any = output.values()
    elif isinstance(output, list):
        children = output
    else:
        return None
    found = [detections_in(child, depth - 1) for child in children]
    present = [items for items in found if items is not None]
    return [item for items in present for item in items] if present else None


def image_in(output: Any, depth: int = 4) -> str | None:
    """The first image output (base64 JPEG) in one source's workflow output, if any."""
    if depth < 0:
        return None
    if isinstance(output, Mapping):
        if output.get("type") == "base64" and isinstance(output.get("value"), str):
            return str(output["value"])
        values: Any = output.values()
    elif isinstance(output, list):
        values = output
    else:
        return None
    for value in values:
        if (found := image_in(value, depth - 1)) is not None:
            return found
    return None
