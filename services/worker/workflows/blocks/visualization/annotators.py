"""How the box and label annotators are configured: one function each, for the blocks and the preview.

bounding_box_visualization and label_visualization build their supervision annotators here, and so
does the dashboard's preview (``services.worker.preview``) with its own style, so what the dashboard
shows is drawn exactly as a workflow draws it.
"""

import supervision as sv

from services.worker.workflows.blocks.visualization.colours import Colours, parse_color


def anchor(name: str) -> sv.Position:
    """An anchor name (``CENTER``, ``TOP_LEFT``, ..., ``CENTER_OF_MASS``) as supervision's."""
    try:
        return sv.Position[name]
    except KeyError:
        names = ", ".join(member.name for member in sv.Position)
        raise ValueError(f"invalid position {name!r}: expected one of {names}") from None


def box_annotator(colours: Colours, thickness: int, roundness: float) -> sv.BoxAnnotator | sv.RoundBoxAnnotator:
    """Square corners for ``roundness`` 0, else rounded ones (0 < roundness <= 1)."""
    if not 0.0 <= roundness <= 1.0:
        raise ValueError(f"roundness must be between 0 and 1, got {roundness!r}")
    if roundness == 0:
        return sv.BoxAnnotator(color=colours.palette, color_lookup=colours.lookup, thickness=thickness)
    return sv.RoundBoxAnnotator(color=colours.palette, color_lookup=colours.lookup, thickness=thickness,
                                roundness=roundness)


def label_annotator(colours: Colours, text_position: str, text_color: str, text_scale: float,
                    text_thickness: int, text_padding: int, border_radius: int) -> sv.LabelAnnotator:
    """Labels on a band of the detection's colour, anchored at ``text_position`` of its box."""
    return sv.LabelAnnotator(
        color=colours.palette,
        color_lookup=colours.lookup,
        text_position=anchor(text_position),
        text_color=parse_color(text_color),
        text_scale=text_scale,
        text_thickness=text_thickness,
        text_padding=text_padding,
        border_radius=border_radius,
    )
