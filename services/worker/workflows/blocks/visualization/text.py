"""text_display: text in a box on the image, its ``{{ $parameters.<name> }}`` placeholders filled in.

The placeholders are the notification blocks' (``render`` of ``sinks.email_message``): a value goes in
as ``str(value)`` after its ``text_parameters_operations`` chain, a placeholder whose parameter is not
given stays as written. The box holds the text's lines (``\\n`` splits them; OpenCV's Hershey simplex
font) plus ``padding``; it is placed at ``position_x, position_y`` (``position_mode`` absolute) or at
``anchor`` of the image moved by ``offset_x, offset_y`` (relative), then moved inside the image. Its
background is ``background_color`` ("transparent": none) at ``background_opacity``, with corners
rounded by ``border_radius``; the lines are aligned left, centre or right within it.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import supervision as sv
from supervision.draw.utils import draw_rounded_rectangle

from services.core.workflows.catalogue.visualization import (
    FONT_SCALE_RANGE,
    FONT_THICKNESS_RANGE,
    POSITION_MODES,
    TEXT_ALIGNMENTS,
)
from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment
from services.worker.workflows.blocks.sinks import inputs
from services.worker.workflows.blocks.sinks.email_message import render
from services.worker.workflows.blocks.visualization.base import OUTPUT, canvas, opacity_value
from services.worker.workflows.blocks.visualization.colours import parse_color
from services.worker.workflows.values import WorkflowImage

FONT = cv2.FONT_HERSHEY_SIMPLEX
TRANSPARENT = "transparent"
LINE_SPACING = 0.25  # the gap between lines, a fraction of a line's height
# Where each anchor is, as fractions of the image's (and the box's) width and height.
ANCHORS: dict[str, tuple[float, float]] = {
    "top_left": (0.0, 0.0), "top_center": (0.5, 0.0), "top_right": (1.0, 0.0),
    "center_left": (0.0, 0.5), "center": (0.5, 0.5), "center_right": (1.0, 0.5),
    "bottom_left": (0.0, 1.0), "bottom_center": (0.5, 1.0), "bottom_right": (1.0, 1.0),
}


@dataclass(frozen=True, slots=True)
class TextBox:
    """The text's lines and where they go: the box's top-left corner and size, each line's width."""

    lines: list[str]
    widths: list[int]
    ascent: int  # a line's height above its baseline
    advance: int  # from one line's top to the next one's (without the gap)
    gap: int
    x: int
    y: int
    width: int
    height: int


class TextDisplay:
    """The rendered text in its box on the image (a copy unless ``copy_image`` is false)."""

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        del step, env

    def run(self, image: WorkflowImage, text: Any, text_parameters: Any = None, text_parameters_operations: Any = None,
            text_color: str = "WHITE", background_color: str = "BLACK", background_opacity: float = 1.0,
            font_scale: float = 1.0, font_thickness: int = 2, padding: int = 10, text_align: str = "left",
            border_radius: int = 0, position_mode: str = "relative", position_x: int = 0, position_y: int = 0,
            anchor: str = "top_left", offset_x: int = 10, offset_y: int = 10, copy_image: bool = True
            ) -> dict[str, Any]:
        rendered = render(inputs.as_str(text, "text"), inputs.as_mapping(text_parameters or {}, "text_parameters"),
                          inputs.as_operations(text_parameters_operations or {}, "text_parameters_operations"))
        _check_range(font_scale, FONT_SCALE_RANGE, "font_scale")
        _check_range(font_thickness, FONT_THICKNESS_RANGE, "font_thickness", integer=True)
        padding = inputs.as_int(padding, "padding", 0)
        radius = inputs.as_int(border_radius, "border_radius", 0)
        _check_choice(text_align, TEXT_ALIGNMENTS, "text_align")
        _check_choice(position_mode, POSITION_MODES, "position_mode")
        colour = parse_color(text_color).as_bgr()
        transparent = isinstance(background_color, str) and background_color.lower() == TRANSPARENT
        background = None if transparent else parse_color(background_color)
        opacity = opacity_value(background_opacity, "background_opacity")

        scene = canvas(image, copy_image)
        box = layout(rendered, font_scale, font_thickness, padding, image.width, image.height,
                     _origin(position_mode, position_x, position_y, anchor, offset_x, offset_y))
        if background is not None and opacity > 0:
            fill_box(scene, box, background, opacity, radius)
        write_lines(scene, box, padding, text_align, font_scale, font_thickness, colour)
        return {OUTPUT: image.with_image(scene)}


Origin = tuple[str, int, int]  # ("absolute", x, y) or (anchor, offset_x, offset_y)


def _origin(mode: str, x: Any, y: Any, anchor: Any, offset_x: Any, offset_y: Any) -> Origin:
    if mode == "absolute":
        return "absolute", _whole(x, "position_x"), _whole(y, "position_y")
    key = anchor.lower() if isinstance(anchor, str) else anchor  # the reference accepts any case
    _check_choice(key, tuple(ANCHORS), "anchor")
    return key, _whole(offset_x, "offset_x"), _whole(offset_y, "offset_y")


def layout(text: str, scale: float, thickness: int, padding: int, image_width: int, image_height: int,
           origin: Origin) -> TextBox:
    """Where ``text``'s box goes on the image (inside it when it fits; at its top-left when it is larger)."""
    lines = text.split("\n")
    (_, ascent), baseline = cv2.getTextSize("Ag", FONT, scale, thickness)
    advance = ascent + baseline
    gap = max(1, round(LINE_SPACING * advance))
    widths = [cv2.getTextSize(line, FONT, scale, thickness)[0][0] if line.strip() else 0 for line in lines]
    width = max(widths) + 2 * padding
    height = len(lines) * advance + (len(lines) - 1) * gap + 2 * padding
    where, dx, dy = origin
    if where == "absolute":
        x, y = dx, dy
    else:
        fx, fy = ANCHORS[where]
        x = round(fx * image_width) - round(fx * width) + dx
        y = round(fy * image_height) - round(fy * height) + dy
    x = 0 if width > image_width else min(max(x, 0), image_width - width)
    y = 0 if height > image_height else min(max(y, 0), image_height - height)
    return TextBox(lines, widths, ascent, advance, gap, x, y, width, height)


def fill_box(scene: np.ndarray, box: TextBox, color: sv.Color, opacity: float, radius: int) -> None:
    """The box's background (the part inside the image), blended at ``opacity``."""
    region = scene[box.y:box.y + box.height, box.x:box.x + box.width]
    if region.size == 0:
        return
    painted = region.copy()
    rect = sv.Rect(x=0, y=0, width=region.shape[1] - 1, height=region.shape[0] - 1)  # cv2's corners are inclusive
    draw_rounded_rectangle(painted, rect, color, radius)
    region[...] = cv2.addWeighted(painted, opacity, region, 1.0 - opacity, 0.0)


def write_lines(scene: np.ndarray, box: TextBox, padding: int, align: str, scale: float, thickness: int,
                colour: tuple[int, int, int]) -> None:
    """Each non-blank line at its baseline, anti-aliased, shifted within the box for ``align``."""
    top = box.y + padding
    text_width = box.width - 2 * padding
    for line, width in zip(box.lines, box.widths, strict=True):
        if line.strip():
            shift = {"left": 0, "center": (text_width - width) // 2, "right": text_width - width}[align]
            cv2.putText(scene, line, (box.x + padding + shift, top + box.ascent), FONT, scale, colour, thickness,
                        cv2.LINE_AA)
        top += box.advance + box.gap


def _whole(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return value


def _check_range(value: Any, bounds: tuple[float, float], name: str, integer: bool = False) -> None:
    number = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not number or not bounds[0] <= value <= bounds[1]:
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{name} must be {kind} from {bounds[0]} to {bounds[1]}, got {value!r}")


def _check_choice(value: Any, choices: Sequence[str], name: str) -> None:
    if value not in choices:
        raise ValueError(f"invalid {name} {value!r}: expected one of {', '.join(choices)}")
