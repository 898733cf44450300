"""Which values of a workflow are secrets: passwords, credential-like headers and query values, URL
credentials. Pure functions, used by the manager (to keep them out of task views such as Flower's)
and by the worker's sink blocks (to keep them out of outputs, status and logs).

A value is a secret when its field is named like one (``sender_email_password``), when it sits under a
key named like a credential (``Authorization``, ``api_key``, ``X-Token``, ...) in headers or query
parameters, or when it is a URL's user info or secret query value. Selectors are not secrets (their
values are found at run time, by the blocks).
"""

import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from services.core.workflows.plan import WorkflowPlan

_SECRET_NAME = re.compile(
    r"auth|api[-_]?key|apikey|token|secret|passw|pwd|signature|cookie|credential|session|private[-_]?key|account[-_]?sid"
    r"|access[-_]?key",  # s3_sink's aws_access_key_id: half of the key pair, kept out of views as the rest
    re.IGNORECASE,
)
# "Bearer abc", "Basic abc", "Token abc": the credential after the scheme is a secret on its own too.
_AUTH_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]*\s+(?P<credential>\S.*)$")
_MAPPINGS = ("headers", "query_parameters")


# The names environment_secrets_store may ask for and WORKER_WORKFLOW_SECRETS may list (POSIX shell names).
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def is_variable_name(name: object) -> bool:
    """Whether ``name`` is an environment variable's name as a shell writes it (``SLACK_TOKEN``)."""
    return isinstance(name, str) and _VARIABLE_NAME.fullmatch(name) is not None


def is_secret_name(name: str) -> bool:
    return _SECRET_NAME.search(name) is not None


def secrets_in_url(url: Any) -> Iterator[str]:
    """The password (and whole user info) and the secret query values of a URL."""
    if not isinstance(url, str) or _is_selector(url):
        return
    try:
        parts = urlsplit(url)
    except ValueError:
        return
    if "@" in parts.netloc:
        userinfo = parts.netloc.rsplit("@", 1)[0]
        yield userinfo
        if ":" in userinfo:
            yield userinfo.split(":", 1)[1]
    yield from secrets_in_mapping(dict(parse_qsl(parts.query)))


def secrets_in_mapping(values: Any) -> Iterator[str]:
    """The values under credential-like keys of headers or query parameters (selectors left out)."""
    if not isinstance(values, Mapping):
        return
    for key, value in values.items():
        if isinstance(key, str) and is_secret_name(key):
            yield from secret_strings(value)


def secret_strings(value: Any) -> Iterator[str]:
    """A secret value as the strings to hide (a list's items; an auth header's credential too)."""
    if isinstance(value, list | tuple):
        for item in value:
            yield from secret_strings(item)
        return
    if value is None or isinstance(value, bool):
        return
    text = value if isinstance(value, str) else str(value)
    if not text or _is_selector(text):
        return
    yield text
    if (match := _AUTH_SCHEME.match(text)) is not None:
        yield match["credential"]


def plan_secrets(plan: WorkflowPlan) -> tuple[str, ...]:
    """Every secret literal of a compiled workflow (parameters were substituted at compile time)."""
    found: list[str] = []
    for step in plan.steps:
        for name, value in step.params.items():
            if name == "url":
                found += secrets_in_url(value)
            elif name in _MAPPINGS:
                found += secrets_in_mapping(value)
            elif is_secret_name(name):
                found += secret_strings(value)
    return tuple(dict.fromkeys(secret for secret in found if secret))


def _is_selector(text: str) -> bool:
    return text.startswith("$inputs.") or text.startswith("$steps.")
