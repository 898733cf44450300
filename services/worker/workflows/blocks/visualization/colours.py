"""Colours of the visualization blocks: colour strings, the palette options and the colour axis.

A colour string is ``#RRGGBB`` (or ``#RGB``), ``rgb(R, G, B)``, ``bgr(B, G, R)`` or a supervision
colour name (``WHITE``, ``RED``, ...), as the reference accepts. A palette is one of
supervision's (``DEFAULT``, ``ROBOFLOW``), ``CUSTOM`` (``custom_colors``) or ``Matplotlib <name>``
sampled to ``palette_size`` colours; colours are picked by detection index, class id or tracker id.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass

import supervision as sv

_TRIPLE = re.compile(r"(rgb|bgr)\(\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*\)", re.IGNORECASE)
_NAMED: dict[str, sv.Color] = {name: getattr(sv.Color, name) for name in dir(sv.Color) if name.isupper()}
_SUPERVISION_PALETTES: dict[str, sv.ColorPalette] = {
    name: getattr(sv.ColorPalette, name) for name in dir(sv.ColorPalette) if name.isupper()
}
# Matplotlib's own spelling of the colormaps the reference lists capitalised; the rest are lower case.
_CAPITALISED = {"Greys_R", "Purples_R", "Blues_R", "Greens_R", "Oranges_R", "Reds_R", "Wistia", "Pastel1",
                "Pastel2", "Paired", "Accent", "Dark2", "Set1", "Set2", "Set3"}
MATPLOTLIB_PREFIX = "Matplotlib "


@dataclass(frozen=True, slots=True)
class Colours:
    """What a colorable annotator is given: a palette and how detections index it."""

    palette: sv.ColorPalette
    lookup: sv.ColorLookup


def parse_color(text: str) -> sv.Color:
    """The colour a colour string names; ValueError says which formats are accepted."""
    if not isinstance(text, str):
        raise ValueError(f"invalid colour {text!r}: expected a string")
    if text.startswith("#"):
        try:
            return sv.Color.from_hex(text)
        except ValueError:
            pass
    elif (match := _TRIPLE.fullmatch(text.strip())) is not None:
        values = tuple(int(v) for v in match.group(2, 3, 4))
        if max(values) <= 255:
            r, g, b = values if match.group(1).lower() == "rgb" else values[::-1]
            return sv.Color(r=r, g=g, b=b)
    elif text.upper() in _NAMED:
        return _NAMED[text.upper()]
    raise ValueError(
        f"invalid colour {text!r}: expected #RRGGBB, rgb(R, G, B), bgr(B, G, R) or one of {', '.join(_NAMED)}"
    )


def build_palette(name: str, size: int, custom_colors: Sequence[str] | None) -> sv.ColorPalette:
    """The palette option ``name`` (``palette_size`` applies to Matplotlib palettes only)."""
    if name == "CUSTOM":
        if not custom_colors:
            raise ValueError("color_palette CUSTOM needs at least one colour in custom_colors")
        return sv.ColorPalette([parse_color(color) for color in custom_colors])
    if name in _SUPERVISION_PALETTES:
        return _SUPERVISION_PALETTES[name]
    if name.startswith(MATPLOTLIB_PREFIX):
        return _matplotlib_palette(name.removeprefix(MATPLOTLIB_PREFIX), size)
    raise ValueError(
        f"unknown color_palette {name!r}: expected CUSTOM, {', '.join(_SUPERVISION_PALETTES)} "
        f"or '{MATPLOTLIB_PREFIX}<colormap>'"
    )


def color_lookup(axis: str) -> sv.ColorLookup:
    """``INDEX``, ``CLASS`` or ``TRACK`` as supervision's colour lookup."""
    try:
        return sv.ColorLookup[axis]
    except KeyError:
        raise ValueError(f"unknown color_axis {axis!r}: expected INDEX, CLASS or TRACK") from None


def colours(color_palette: str, palette_size: int, custom_colors: Sequence[str] | None,
            color_axis: str) -> Colours:
    """The four colour options of a colorable block, resolved."""
    if not isinstance(palette_size, int) or palette_size < 1:
        raise ValueError(f"palette_size must be a positive integer, got {palette_size!r}")
    return Colours(build_palette(color_palette, palette_size, custom_colors), color_lookup(color_axis))


def _matplotlib_palette(colormap: str, size: int) -> sv.ColorPalette:
    name = colormap.capitalize() if colormap in _CAPITALISED else colormap.lower()
    try:
        return sv.ColorPalette.from_matplotlib(name, size)
    except ValueError as exc:
        raise ValueError(f"unknown Matplotlib palette {colormap!r}: {exc}") from exc
