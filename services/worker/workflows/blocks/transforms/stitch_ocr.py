"""stitch_ocr_detections v1 and v2: detections whose class names are characters or words (a licence plate's
characters, an OCR model's words) read as one text, ``ocr_text``, in a reading direction.

Directions: ``left_to_right``, ``right_to_left``, ``vertical_top_to_bottom``, ``vertical_bottom_to_top``, and
``auto``: horizontal (left to right) when the boxes are on average wider than tall, else vertical (top to bottom).
Lines of horizontal text are joined by a newline, columns of vertical text by a space.

The ``tolerance`` algorithm (v1's only one), as the reference: boxes rounded to whole pixels; a box's line is its
top edge (its left edge for vertical text) rounded to the nearest multiple of ``tolerance`` (so two boxes a pixel
apart may fall on either side of a multiple's midpoint); lines in ascending order (descending for
``vertical_bottom_to_top``; ``right_to_left`` reads its lines top to bottom), boxes in a line by their left edge
(top edge for vertical text), reversed for the right-to-left and bottom-to-top directions. The texts and the line
separators are one sequence joined by ``delimiter``, so a delimiter also stands on both sides of a line break
(``"A-B-\\n-C"``), as the reference writes it.

v2 adds ``stitching_algorithm`` (as the reference's v2):

- ``otsu``: lines by box centre (a box joins the line whose running mean centre is within half the median box
  height, taken in centre order); in a line, the gap between neighbours divided by their mean width; Otsu's
  threshold over every gap of the text (a histogram of min(50, gaps) bins), times ``otsu_threshold_multiplier``;
  when the gaps are two groups (the upper group's mean and its distance from the lower one's both above 0.3 box
  widths) a gap above the threshold starts a new word. Characters join by ``delimiter``, words by a space (by
  ``delimiter`` when it is not empty), lines by the direction's separator.
- ``collimate``: boxes by centre along the reading direction; each line (column) grows greedily from its last box
  by every remaining box that lies ahead of it and is aligned with it (centres closer across the reading direction
  than half the taller (wider) box plus ``collimate_tolerance``); a box that follows no line starts one. Lines in
  order of their mean centre (columns reversed for ``vertical_bottom_to_top``), characters joined by ``delimiter``.

Unlike the reference, ``auto`` is decided per image (the reference decides it on the first image of a batch and
reads every image of the batch that way); a ``tolerance`` of 0 or less from a selector fails the step (the
reference divides by it).
"""

from collections.abc import Sequence
from typing import Any

import numpy as np
import supervision as sv

from services.core.workflows.catalogue.transformations import READING_DIRECTIONS, STITCHING_ALGORITHMS
from services.core.workflows.plan import PlanStep
from services.worker.workflows import values
from services.worker.workflows.blocks.base import BlockEnvironment

_VERTICAL = ("vertical_top_to_bottom", "vertical_bottom_to_top")
_BACKWARDS = ("right_to_left", "vertical_bottom_to_top")
_TWO_GROUPS = 0.3  # in box widths: how far apart the gap groups' means must be for them to be words


def reading_direction_of(detections: sv.Detections) -> str:
    """``auto``'s choice: left to right when the boxes are on average wider than tall, else top to bottom."""
    if len(detections) == 0:
        return "left_to_right"
    xyxy = np.asarray(detections.xyxy, dtype=np.float64)
    wide = float(np.mean(xyxy[:, 2] - xyxy[:, 0])) > float(np.mean(xyxy[:, 3] - xyxy[:, 1]))
    return "left_to_right" if wide else "vertical_top_to_bottom"


def line_separator(direction: str) -> str:
    return " " if direction in _VERTICAL else "\n"


def _texts(detections: sv.Detections) -> list[str]:
    names = detections.data.get(values.CLASS_NAME)
    if names is None:
        raise ValueError("stitch_ocr_detections needs detections with class names (the characters or words)")
    return [str(name) for name in names]


def _in_reading_axes(xyxy: np.ndarray, direction: str) -> np.ndarray:
    """Boxes with x and y swapped for vertical text: the reading axis is then always x, the line axis y."""
    return xyxy[:, [1, 0, 3, 2]] if direction in _VERTICAL else xyxy


def stitch_by_tolerance(detections: sv.Detections, direction: str, tolerance: int, delimiter: str = "") -> str:
    if len(detections) == 0:
        return ""
    texts = _texts(detections)
    boxes = _in_reading_axes(np.round(np.asarray(detections.xyxy)).astype(np.int64), direction)
    line_of = np.round(boxes[:, 1] / tolerance) * tolerance
    lines: dict[float, list[int]] = {}
    for index, line in enumerate(line_of.tolist()):
        lines.setdefault(line, []).append(index)
    parts: list[str] = []
    for number, line in enumerate(sorted(lines, reverse=direction == "vertical_bottom_to_top")):
        members = np.array(lines[line])
        starts = boxes[members, 0]
        order = np.argsort(-starts if direction in _BACKWARDS else starts, kind="stable")
        parts.extend(texts[i] for i in members[order].tolist())
        if number < len(lines) - 1:
            parts.append(line_separator(direction))
    return delimiter.join(parts)


def otsu_gap_threshold(gaps: np.ndarray) -> tuple[float, bool]:
    """Otsu's threshold between small (in-word) and large (between-word) gaps, and whether there are two groups."""
    if len(gaps) < 2:
        return 0.0, False
    edges = np.histogram_bin_edges(gaps, bins=min(50, len(gaps)))
    best, best_variance, lower_mean, upper_mean = 0.0, 0.0, 0.0, 0.0
    for candidate in ((edges[:-1] + edges[1:]) / 2).tolist():
        lower, upper = gaps[gaps <= candidate], gaps[gaps > candidate]
        if len(lower) == 0 or len(upper) == 0:
            continue
        variance = len(lower) * len(upper) * (float(lower.mean()) - float(upper.mean())) ** 2
        if variance > best_variance:
            best, best_variance = candidate, variance
            lower_mean, upper_mean = float(lower.mean()), float(upper.mean())
    two_groups = upper_mean > _TWO_GROUPS and abs(upper_mean - lower_mean) > _TWO_GROUPS
    return best, two_groups


def _centres_and_sizes(detections: sv.Detections, direction: str) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                              np.ndarray]:
    """Centres along and across the reading direction, and box sizes along and across it."""
    boxes = _in_reading_axes(np.asarray(detections.xyxy, dtype=np.float64), direction)
    return ((boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2, boxes[:, 2] - boxes[:, 0],
            boxes[:, 3] - boxes[:, 1])


def _otsu_lines(across: np.ndarray, sizes_across: np.ndarray, direction: str) -> list[list[int]]:
    """Boxes grouped into lines by centre, the lines in reading order."""
    reach = float(np.median(sizes_across)) * 0.5
    order = np.argsort(across, kind="stable").tolist()
    lines, current = [], [order[0]]
    mean = float(across[order[0]])
    for index in order[1:]:
        if abs(float(across[index]) - mean) <= reach:
            current.append(index)
            mean = float(np.mean(across[current]))
        else:
            lines.append(current)
            current, mean = [index], float(across[index])
    lines.append(current)
    positions = [float(np.mean(across[line])) for line in lines]
    line_order = np.argsort(positions, kind="stable")
    if direction == "vertical_bottom_to_top":
        line_order = line_order[::-1]
    return [lines[i] for i in line_order.tolist()]


def stitch_by_otsu(detections: sv.Detections, direction: str, delimiter: str = "", multiplier: float = 1.0) -> str:
    if len(detections) == 0:
        return ""
    texts = _texts(detections)
    along, across, sizes_along, sizes_across = _centres_and_sizes(detections, direction)
    backwards = direction in _BACKWARDS
    read: list[tuple[list[int], np.ndarray | None]] = []
    every_gap: list[float] = []
    for line in _otsu_lines(across, sizes_across, direction):
        if len(line) == 1:
            read.append((line, None))
            continue
        members = np.array(line)
        order = np.argsort(along[members], kind="stable")
        ordered = members[order[::-1] if backwards else order]
        centres, widths = along[ordered], sizes_along[ordered]
        steps = centres[:-1] - centres[1:] if backwards else centres[1:] - centres[:-1]
        scale = (widths[:-1] + widths[1:]) / 2
        gaps = np.divide(steps - scale, scale, out=np.zeros_like(scale), where=scale > 0)
        every_gap.extend(gaps.tolist())
        read.append((ordered.tolist(), gaps))
    threshold, two_groups = otsu_gap_threshold(np.array(every_gap))
    threshold *= multiplier
    word_separator = delimiter or " "
    lines: list[str] = []
    for in_order, line_gaps in read:
        if line_gaps is None or not two_groups:
            lines.append(delimiter.join(texts[i] for i in in_order))
            continue
        words = [[in_order[0]]]
        for index, gap in zip(in_order[1:], line_gaps.tolist(), strict=True):
            if gap > threshold:
                words.append([index])
            else:
                words[-1].append(index)
        lines.append(word_separator.join(delimiter.join(texts[i] for i in word) for word in words))
    return line_separator(direction).join(lines)


def stitch_by_collimation(detections: sv.Detections, direction: str, delimiter: str = "", tolerance: int = 10) -> str:
    if len(detections) == 0:
        return ""
    texts = _texts(detections)
    along, across, _, sizes_across = _centres_and_sizes(detections, direction)
    backwards = direction in _BACKWARDS
    remaining = sorted(range(len(texts)), key=lambda i: float(along[i]), reverse=backwards)

    def follows(parent: int, child: int) -> bool:
        aligned = abs(float(across[parent] - across[child])) < max(sizes_across[parent], sizes_across[child]) / 2 \
            + tolerance
        ahead = along[parent] >= along[child] if backwards else along[parent] <= along[child]
        return aligned and bool(ahead)

    lines = [[remaining.pop(0)]]
    while remaining:
        grown = False
        for line in lines:
            for candidate in list(remaining):
                if follows(line[-1], candidate):
                    line.append(candidate)
                    remaining.remove(candidate)
                    grown = True
        if not grown:
            lines.append([remaining.pop(0)])
    lines.sort(key=lambda line: float(np.mean(across[line])), reverse=direction == "vertical_bottom_to_top")
    return line_separator(direction).join(delimiter.join(texts[i] for i in line) for line in lines)


def _checked(name: str, value: Any, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return str(value)


def _checked_int(name: str, value: Any, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or (minimum is not None and value < minimum):
        raise ValueError(f"{name} must be an integer{f' >= {minimum}' if minimum is not None else ''}, got {value!r}")
    return int(value)


def _direction(detections: sv.Detections, reading_direction: Any) -> str:
    direction = _checked("reading_direction", reading_direction, READING_DIRECTIONS)
    return reading_direction_of(detections) if direction == "auto" else direction


def _delimiter(delimiter: Any) -> str:
    if not isinstance(delimiter, str):
        raise ValueError(f"delimiter must be a string, got {delimiter!r}")
    return delimiter


class StitchOCRDetectionsV1:
    """``roboflow_core/stitch_ocr_detections@v1``: the tolerance algorithm."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step, env

    def run(self, predictions: sv.Detections, reading_direction: str, tolerance: int = 10,
            delimiter: str = "") -> dict[str, Any]:
        direction = _direction(predictions, reading_direction)
        return {"ocr_text": stitch_by_tolerance(predictions, direction, _checked_int("tolerance", tolerance, 1),
                                                _delimiter(delimiter))}


class StitchOCRDetectionsV2:
    """``roboflow_core/stitch_ocr_detections@v2``: tolerance, otsu or collimate."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step, env

    def run(self, predictions: sv.Detections, stitching_algorithm: str, reading_direction: str, tolerance: int = 10,
            delimiter: str = "", otsu_threshold_multiplier: float = 1.0,
            collimate_tolerance: int = 10) -> dict[str, Any]:
        algorithm = _checked("stitching_algorithm", stitching_algorithm, STITCHING_ALGORITHMS)
        direction, joiner = _direction(predictions, reading_direction), _delimiter(delimiter)
        if algorithm == "otsu":
            multiplier = otsu_threshold_multiplier
            if isinstance(multiplier, bool) or not isinstance(multiplier, int | float | np.integer | np.floating):
                raise ValueError(f"otsu_threshold_multiplier must be a number, got {multiplier!r}")
            return {"ocr_text": stitch_by_otsu(predictions, direction, joiner, float(multiplier))}
        if algorithm == "collimate":
            return {"ocr_text": stitch_by_collimation(predictions, direction, joiner,
                                                      _checked_int("collimate_tolerance", collimate_tolerance))}
        return {"ocr_text": stitch_by_tolerance(predictions, direction, _checked_int("tolerance", tolerance, 1),
                                                joiner)}
