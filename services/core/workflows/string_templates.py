"""The templates of ``string_template@v1``: named ``{placeholder}`` fields filled by ``str.format``'s rules.

As the reference: ``{{`` and ``}}`` are literal braces, format specs apply (``{confidence:.2f}``, and
nested ones such as ``{value:{width}}``), positional placeholders (``{}``, ``{0}``) and attribute or
index access (``{x.y}``, ``{x[0]}``) are refused, numeric widths and precisions are capped and so is
the rendered length, so that no template exhausts memory. Plain standard library: the manager checks a
literal template at INIT (:func:`check_declared`), the worker renders it on each frame (:func:`render`).
"""

import re
from collections.abc import Iterable, Mapping
from string import Formatter
from typing import Any

MAX_FORMAT_NUMBER = 10_000  # the largest width or precision a format spec may ask for
MAX_RENDERED_LENGTH = 1_000_000  # characters
_DIGITS = re.compile(r"\d+")


class TemplateError(ValueError):
    """A template that cannot be rendered: unparseable, a refused or undeclared placeholder, too large."""


def placeholders(template: str) -> set[str]:
    """The variable names ``template`` reads, those in its format specs included."""
    try:
        parsed = list(Formatter().parse(template))
    except ValueError as exc:
        raise TemplateError(f"cannot parse the template ({exc}); write a literal brace as '{{{{' or '}}}}'") from exc
    names: set[str] = set()
    for _, name, format_spec, _ in parsed:
        if name is None:
            continue
        if name == "" or name.isdigit():
            raise TemplateError("positional placeholders ('{}', '{0}') are not supported; name them, e.g. '{count}'")
        if "." in name or "[" in name:
            raise TemplateError(f"placeholder '{{{name}}}' uses attribute or index access, which is not supported; "
                                "extract the value with data_operations instead")
        names.add(name)
        if format_spec and "{" in format_spec:
            names |= placeholders(format_spec)
    return names


def check_declared(template: str, declared: Iterable[str]) -> None:
    """Raises :class:`TemplateError` unless ``template`` parses and reads only ``declared`` variables."""
    known = set(declared)
    missing = placeholders(template) - known
    if missing:
        raise TemplateError(f"the template reads {sorted(missing)}, which data does not declare "
                            f"(declared: {sorted(known)})")


def render(template: str, variables: Mapping[str, Any]) -> str:
    """``template`` with each placeholder replaced by its variable (``format(value, spec)``)."""
    check_declared(template, variables)
    try:
        rendered = _BoundedFormatter().vformat(template, (), dict(variables))
    except TemplateError:
        raise
    except (ValueError, TypeError) as exc:
        raise TemplateError(f"cannot render the template: {exc} (does each format spec suit its value?)") from exc
    if len(rendered) > MAX_RENDERED_LENGTH:
        raise TemplateError(f"the rendered template has {len(rendered)} characters, more than {MAX_RENDERED_LENGTH}")
    return rendered


class _BoundedFormatter(Formatter):
    """Refuses a width or precision over :data:`MAX_FORMAT_NUMBER` before the padded string is built.

    ``format_field`` sees a spec after its nested fields are filled in, so widths that come from the
    data at run time (``{value:{width}}``) are checked too.
    """

    def format_field(self, value: Any, format_spec: str) -> str:
        for digits in _DIGITS.findall(format_spec):
            number = digits.lstrip("0")
            if len(number) > len(str(MAX_FORMAT_NUMBER)) or int(number or "0") > MAX_FORMAT_NUMBER:
                raise TemplateError(f"format spec {format_spec!r} asks for {digits}, more than the largest width "
                                    f"or precision allowed ({MAX_FORMAT_NUMBER})")
        return str(super().format_field(value, format_spec))
